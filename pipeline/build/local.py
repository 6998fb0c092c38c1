"""What `snapshot_local` and the other build sessions add for the dev loop: build any ref from an
export of its tree (`SANDBOX_ITERATE_REPO_REF`), and skip a local build whose inputs match the
fingerprint label `:local` already carries (then the tags are applied and nothing is built).
Each such outcome is also recorded for the replay (fastpath/replay.py), which lets the next
unchanged run end in nox's own interpreter.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline import console
from pipeline.base_image.choose import ensure_build_base
from pipeline.base_image.rootfs import APT_SOURCE_FILES, BaseImageError
from pipeline.build.inputs import (
    Fingerprint,
    fingerprint_build,
    inspect_images,
    tag_image,
)
from pipeline.errors import PipelineError
from pipeline.fastpath import replay
from pipeline.fastpath.context import cache_file_for, default_cache_dir, ignore_rules
from pipeline.fastpath.local_key import KEY_FILE_NAME
from pipeline.git.facts import read_git_facts
from pipeline.git.meta_context import dockerfile_wants_git_context
from pipeline.git.refs import ExportedTree, export_ref
from pipeline.report import publish
from pipeline.rules.base_image_plan import DEFAULT_TAG, dockerfile_default_base
from pipeline.rules.build_plan import BuildPlan, plan_build
from pipeline.rules.dockerignore import ignore_file_candidates
from pipeline.rules.fingerprint import ENV_INPUTS, LABEL, unchanged
from pipeline.rules.git_facts import GitFacts
from pipeline.settings.build import PROJECT_ROOT, BuildSettings, ReportSettings, env_names, load

REF_VARIABLE = "SANDBOX_ITERATE_REPO_REF"
FINGERPRINT_CACHE_DIRS = (PROJECT_ROOT / ".pipeline" / "cache" / "fingerprint", default_cache_dir())
# How a replayed run says so (scripts and tests look for it).
REPLAYED = "nothing the build reads has changed since the last run"
# Read outside the settings, by docker, buildx and the stat caches: a replay watches them too
# (git is asked directly: fastpath/replay.git_state).
REPLAY_ENV = (
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_TLS_VERIFY",
    "DOCKER_CERT_PATH",
    "SSL_CERT_FILE",
    "XDG_CACHE_HOME",
    "HOME",
    *ENV_INPUTS,
)


# What a run saw before deciding (fastpath/replay.py), handed on so it is observed once per run.
Seen = tuple[replay.Watch, replay.Observation] | None


def skip_if_unchanged() -> tuple[bool, Seen]:
    """The fast path of an unchanged `snapshot_local`, taken before the build machinery is even
    imported: plan, fingerprint, compare with `:local`'s label, tag. False whenever anything
    says build (or cannot be read: the full path then reports it properly); with it, what was
    observed for the replay before deciding, for the build to record its outcome against."""
    before: Seen = None
    try:
        settings = load(BuildSettings)
        if settings.push or settings.repo_ref or not settings.dockerfile.is_file():
            return False, None
        before = observe_for_replay(settings)
        settings = with_build_base(settings)  # the fingerprint then covers the chosen base
        facts = git_facts(settings, None)
        wants_git = dockerfile_wants_git_context(settings.dockerfile)
        plan = plan_build("local", settings, facts, facts.commit_time, git_context=wants_git)
        plan, measured = fingerprint_local(plan, settings, None, None)
        if measured is None or measured.value is None:
            return False, before
        if not skip_unchanged(plan, measured, settings, load(ReportSettings)):
            return False, before
    except PipelineError:
        return False, before
    if measured.local is not None:
        remember_for_replay(before, plan, measured, measured.local.id)
    return True, before


def replay_watch(settings: BuildSettings) -> replay.Watch:
    """What a replay of this build's decision has to find unchanged (fastpath/replay.py)."""
    context, dockerfile = settings.build_context, settings.dockerfile
    rules = ignore_rules(dockerfile, context)
    cache_file = cache_file_for(FINGERPRINT_CACHE_DIRS, context, rules)
    key_dir = cache_file.parent if cache_file else default_cache_dir()
    files: list[Path] = [
        dockerfile,
        *map(Path, ignore_file_candidates(dockerfile, context)),
        key_dir / KEY_FILE_NAME,
        *APT_SOURCE_FILES,
        *(f for d in APT_SOURCE_FILES for f in (*_listing(d, "*.list"), *_listing(d, "*.sources"))),
        *_listing(PROJECT_ROOT / "pipeline", "**/*.py"),  # the decision's own code
    ]
    if settings.ca_bundle is not None:
        files.append(settings.ca_bundle)
    return replay.Watch(
        context=str(context),
        dockerfile=str(dockerfile),
        cache_file=str(cache_file) if cache_file else None,
        # where reports go changes no decision (and a replay leaves them to the full path)
        env_names=(*env_names(BuildSettings), *REPLAY_ENV),
        report_names=tuple(env_names(ReportSettings)),
        files=tuple(dict.fromkeys(str(f) for f in files)),
    )


def _listing(directory: Path, pattern: str) -> list[Path]:
    try:
        return sorted(directory.glob(pattern)) if directory.is_dir() else []
    except OSError:
        return []


def base_candidates(settings: BuildSettings) -> list[str]:
    """The images whose presence decides the base (base_image/choose.py)."""
    if settings.base_image:
        return [settings.base_image]
    try:
        official = dockerfile_default_base(settings.dockerfile.read_text())
    except OSError:
        return []
    return [official, DEFAULT_TAG] if official else []


def observe_for_replay(settings: BuildSettings) -> Seen:
    """Taken before a local build's decision reads anything; None when a replay of it would
    not be possible anyway (a push, a ref build, an engine the replay cannot ask)."""
    if settings.push or settings.repo_ref:
        return None
    try:
        watch = replay_watch(settings)
        return watch, replay.observe(watch, os.environ, base_candidates(settings))
    except Exception:  # an optimisation only: the build goes on, the next run is not replayed
        return None


def remember_for_replay(
    before: Seen,
    plan: BuildPlan,
    measured: Fingerprint,
    image_id: str,
) -> None:
    """Record that `plan`'s tags are on `image_id`, whose label is `measured`'s fingerprint."""
    if before is None or measured.value is None:
        replay.forget(os.environ)
        return
    watch, seen = before
    local = plan.local_tags[0]
    message = (
        f"unchanged since {local} was built (inputs {measured.value[:12]}; {REPLAYED}): "
        f"{', '.join(plan.build_tags)} in place; nothing built"
    )
    replay.remember(watch, seen, image_id, plan.build_tags, measured.bases, message, os.environ)


def remember_build(
    before: Seen,
    plan: BuildPlan,
    measured: Fingerprint | None,
    docker_host: str | None,
) -> None:
    """After a local build: record it when `:local` now carries the fingerprint it was built
    with (a build that someone else's build overtook is not recorded)."""
    if before is None or measured is None or measured.value is None:
        replay.forget(os.environ)
        return
    try:
        images = inspect_images([plan.local_tags[0]], docker_host)
    except PipelineError:  # the build stands; only its record is not made
        images = None
    built = images[0] if images else None
    if built is None or built.fingerprint != measured.value:
        replay.forget(os.environ)
        return
    remember_for_replay(before, plan, measured, built.id)


# The base chosen for each (SANDBOX_BASE_IMAGE, Dockerfile, engine) in this process: the fast path
# and the full build after it ask once (a failed pull is not tried twice).
_CHOSEN_BASES: dict[tuple[str | None, Path, str | None], str | BaseImageError | None] = {}


def with_build_base(settings: BuildSettings) -> BuildSettings:
    """The settings with the base this machine can build from as SANDBOX_BASE_IMAGE: the
    Dockerfile's own (pulled if need be), else the offline base, made if need be; one image
    inspect when the base is there. Raises BaseImageError (exit code 12) when there is none."""
    key = (settings.base_image, settings.dockerfile, settings.docker_host)
    if key not in _CHOSEN_BASES:
        try:
            _CHOSEN_BASES[key] = ensure_build_base(settings)
        except BaseImageError as error:
            _CHOSEN_BASES[key] = error
    chosen = _CHOSEN_BASES[key]
    if isinstance(chosen, BaseImageError):
        raise BaseImageError(chosen.cause, chosen.fix, chosen.details)
    if chosen == settings.base_image:
        return settings
    return settings.model_copy(update={"base_image": chosen})


@contextmanager
def ref_source(settings: BuildSettings) -> Iterator[tuple[BuildSettings, ExportedTree | None]]:
    """The settings to build with: unchanged, or pointing into an export of the requested
    ref's tree for as long as the build runs (the checkout itself is never touched)."""
    ref = settings.repo_ref
    if ref is None:
        yield settings, None
        return
    with export_ref(settings.build_context, ref) as tree:
        console.step(f"building {ref} = {tree.sha} from an export of its tree ({tree.path})")
        moved = {
            "build_context": tree.map(settings.build_context),
            "dockerfile": tree.map(settings.dockerfile),
        }
        yield settings.model_copy(update=moved), tree


def git_facts(settings: BuildSettings, tree: ExportedTree | None) -> GitFacts:
    """The checkout's facts, or the exported commit's (clean, its sha, its commit time)."""
    if tree is None:
        return read_git_facts(settings.build_context, os.environ)
    return tree.facts(read_git_facts(tree.work_tree, os.environ))


def fingerprint_local(
    plan: BuildPlan, settings: BuildSettings, builder_driver: str | None, tree: ExportedTree | None
) -> tuple[BuildPlan, Fingerprint | None]:
    """For a build that only loads into the engine: its fingerprint, and the plan with the label
    that records it. Pushed images get no label (a machine-local value has no place there)."""
    if plan.push or not plan.load or not plan.local_tags:
        return plan, None
    measured = fingerprint_build(
        plan,
        docker_host=settings.docker_host,
        # an export is a new folder each time: a stat cache of it would never be read again
        cache_dirs=() if tree else FINGERPRINT_CACHE_DIRS,
        compare_with=plan.local_tags[0],
        also_look_up=[t for t in plan.build_tags if t != plan.local_tags[0]],
        env=os.environ,
        builder_driver=builder_driver,
    )
    if measured.value is None:
        return plan, measured
    return plan.model_copy(update={"labels": {**plan.labels, LABEL: measured.value}}), measured


def skip_unchanged(
    plan: BuildPlan, measured: Fingerprint | None, settings: BuildSettings, reports: ReportSettings
) -> bool:
    """Tag the image `:local` already names and report it, when its fingerprint label equals
    this build's; False (build) otherwise."""
    if measured is None:
        return False
    if measured.value is None:
        console.say(f"    fingerprint: unknown ({measured.reason}); building")
        return False
    local = measured.local
    if local is None or not unchanged(local.fingerprint, measured.value):
        return False
    stale = [
        t for t in plan.build_tags if t != plan.local_tags[0] and measured.also.get(t) != local.id
    ]
    tag_image(local.id, stale, settings.docker_host)
    console.step(
        f"unchanged since {plan.local_tags[0]} was built (inputs {measured.value[:12]}, "
        f"{measured.reason}): tagged {', '.join(plan.build_tags)}; nothing built"
    )
    values = {
        "image": plan.pushed_tags[0],
        "repository": plan.repository,
        "sha": plan.sha,
        "dirty": plan.dirty,
        "branch": plan.branch,
        "tags": list(plan.build_tags),
        "image_id": local.id,
        "skipped": True,
        "fingerprint": measured.value,
        "pushed": False,
        "labels": plan.labels,
    }
    summary = [("tags", ", ".join(f"`{t}`" for t in plan.build_tags)), ("built", "no: unchanged")]
    publish("build", values, reports, summary=summary)
    return True
