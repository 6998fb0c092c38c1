"""What a local build leaves for the replay (fastpath/replay.py): what its decision read, what it
saw before deciding, and, when the outcome holds, a record for the next unchanged run.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.base_image.choose import candidates
from pipeline.base_image.rootfs import APT_SOURCE_FILES
from pipeline.fastpath import replay
from pipeline.fastpath.context import cache_file_for, ignore_rules
from pipeline.fastpath.files import KEY_FILE_NAME
from pipeline.rules.build_plan import BuildPlan
from pipeline.rules.dockerignore import ignore_file_candidates
from pipeline.rules.fingerprint import InputFacts
from pipeline.settings.build import (
    BUILDX_PREFIXES,
    OTHER_VARIABLES,
    PROJECT_ROOT,
    BuildSettings,
    ReportSettings,
    env_names,
)

# How a replayed run says so (scripts and tests look for it).
REPLAYED = "nothing the build reads has changed since the last run"

# What a run saw before deciding, handed on so it is observed once per run.
Seen = tuple[replay.Watch, replay.Observation] | None


def watch(settings: BuildSettings) -> replay.Watch:
    context, dockerfile = settings.build_context, settings.dockerfile
    rules = ignore_rules(dockerfile, context)
    cache_file = cache_file_for((settings.fingerprint_dir,), context, rules)
    files: list[Path] = [
        dockerfile,
        *map(Path, ignore_file_candidates(dockerfile, context)),
        settings.cache_dir / KEY_FILE_NAME,  # the key of keyed digests (the replay's, too)
        *APT_SOURCE_FILES,
        *(f for d in APT_SOURCE_FILES for f in (*_listing(d, "*.list"), *_listing(d, "*.sources"))),
        *_listing(PROJECT_ROOT / "pipeline", "**/*.py"),  # the decision's own code
        *filter(None, [settings.ca_bundle]),
    ]
    return replay.Watch(
        context=str(context),
        dockerfile=str(dockerfile),
        cache_file=str(cache_file) if cache_file else None,
        env_names=(*env_names(BuildSettings), *OTHER_VARIABLES),
        env_prefixes=BUILDX_PREFIXES,
        # where reports go changes no decision (and a replay leaves them to the full path)
        report_names=tuple(env_names(ReportSettings)),
        files=tuple(dict.fromkeys(str(f) for f in files)),
    )


def _listing(directory: Path, pattern: str) -> list[Path]:
    try:
        return sorted(directory.glob(pattern)) if directory.is_dir() else []
    except OSError:
        return []


def observe(settings: BuildSettings) -> Seen:
    """Taken before a local build's decision reads anything; None when a replay of it would
    not be possible anyway (a push, a ref build, an engine the replay cannot ask)."""
    if settings.push or settings.repo_ref:
        return None
    try:
        seen = watch(settings)
        wanted = candidates(settings.base_image, settings.dockerfile)
        return seen, replay.observe(seen, os.environ, wanted)
    except Exception:  # an optimisation only: the build goes on, the next run is not replayed
        return None


def remember(
    before: Seen, plan: BuildPlan, image_id: str | None, inputs: InputFacts | None
) -> None:
    """Record that `plan`'s tags are on `image_id`, whose label is the plan's fingerprint (a
    build someone else's build overtook, or one without a fingerprint, is not recorded)."""
    if (
        before is None
        or plan.fingerprint is None
        or image_id is None
        or inputs is None
        or inputs.unknown
        or not inputs.context
        or not inputs.dockerfile
    ):
        replay.forget(os.environ)
        return
    replay.remember(
        *before,
        image_id,
        plan.build_tags,
        dict(inputs.base_images),
        unchanged_message(plan, REPLAYED),
        os.environ,
        built_from=(inputs.context, inputs.dockerfile),
    )


def unchanged_message(plan: BuildPlan, why: str) -> str:
    """How a run that built nothing says so (the full path and the replay alike)."""
    assert plan.fingerprint is not None
    return (
        f"unchanged since {plan.local_tags[0]} was built (inputs {plan.fingerprint[:12]}; "
        f"{why}): {', '.join(plan.build_tags)} in place; nothing built"
    )
