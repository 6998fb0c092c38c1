"""One build, start to end: gather the facts, make the plan once, print it, then either tag the
image `:local` already holds (nothing changed) or log in (a push) and run buildx; report, and
leave the replay its record.
"""

from __future__ import annotations

from contextlib import nullcontext

from pipeline import console
from pipeline.build import record
from pipeline.build.facts import gather, ref_source
from pipeline.build.login import push_credentials
from pipeline.docker import images
from pipeline.docker.buildx import BuildOutcome, build
from pipeline.docker.cli import Docker
from pipeline.report import publish
from pipeline.rules.build_plan import CACHE_EXPORT_FIX, BuildFacts, BuildPlan, Mode, plan_build
from pipeline.rules.fingerprint import LABEL
from pipeline.settings.build import BuildSettings, ReportSettings, load


def run_build(mode: Mode, *, dry_run: bool) -> BuildOutcome | None:
    """Build (or find unchanged) what the environment asks for; None when nothing was built."""
    with ref_source(load(BuildSettings)) as (settings, tree):
        # what a replay would watch, seen before anything is read (a change made while this
        # run decides then keeps the next run from replaying it)
        before = record.observe(settings) if mode == "local" and not tree and not dry_run else None
        facts, docker = gather(settings, mode, tree, dry_run=dry_run)
        plan = plan_build(facts)
        for line in plan.describe():
            console.say(f"    {line}")
        if docker is None:
            console.step("dry run: nothing was built, pushed or tagged")
            return None
        reports = load(ReportSettings)
        if plan.action == "tag":
            _tag_unchanged(docker, plan, reports)
            record.remember(before, plan, plan.image_id, _bases(facts))
            return None
        outcome = _build(docker, plan, settings)
        if before is not None:
            built = images.one(docker, plan.local_tags[0]) if plan.local_tags else None
            same = built is not None and built.labels.get(LABEL) == plan.fingerprint
            record.remember(before, plan, built.id if built and same else None, _bases(facts))
        publish("build", _report_values(plan, outcome), reports, summary=_summary(plan, outcome))
        return outcome


def _bases(facts: BuildFacts) -> dict[str, str]:
    return dict(facts.inputs.base_images) if facts.inputs else {}


def _tag_unchanged(docker: Docker, plan: BuildPlan, reports: ReportSettings) -> None:
    """`:local` holds exactly these inputs: give its image the other tags, build nothing."""
    assert plan.image_id is not None
    images.tag(docker, plan.image_id, plan.retag)
    console.step(record.unchanged_message(plan, plan.fingerprint_note))
    values = {
        "image": plan.pushed_tags[0],
        "repository": plan.repository,
        "sha": plan.sha,
        "dirty": plan.dirty,
        "branch": plan.branch,
        "tags": list(plan.build_tags),
        "image_id": plan.image_id,
        "skipped": True,
        "fingerprint": plan.fingerprint,
        "pushed": False,
        "labels": plan.labels,
    }
    summary = [("tags", ", ".join(f"`{t}`" for t in plan.build_tags)), ("built", "no: unchanged")]
    publish("build", values, reports, summary=summary)


def _build(docker: Docker, plan: BuildPlan, settings: BuildSettings) -> BuildOutcome:
    if plan.cache_export_skipped:
        console.warn(
            f"no registry cache export: {plan.cache_export_skipped} (the image is built and "
            f"pushed; to export the cache, {CACHE_EXPORT_FIX})"
        )
    # A push logs in right before it, in a Docker config deleted right after.
    login = push_credentials(settings) if plan.push else nullcontext()
    with login as config, console.group(f"docker buildx build ({', '.join(plan.build_tags)})"):
        outcome = build(plan, docker.with_config(config), console.say)
    _tell(outcome)
    return outcome


def _tell(outcome: BuildOutcome) -> None:
    if outcome.cache_export.startswith("failed"):
        console.warn(
            f"the registry cache was not exported ({outcome.cache_export.removeprefix('failed: ')})"
            "; the image is fine, the next cold build will be slower"
        )
    if outcome.cache_import.startswith("failed"):
        console.warn(f"the registry cache could not be read ({outcome.cache_import})")
    verb = "built and pushed" if outcome.pushed else "built"
    console.step(
        f"{verb} {', '.join(outcome.tags)} in {outcome.duration_s:.1f} s "
        f"({outcome.steps_cached}/{outcome.steps_total} steps cached)"
        + (f", digest {outcome.digest}" if outcome.digest else "")
    )


def _report_values(plan: BuildPlan, outcome: BuildOutcome) -> dict[str, object]:
    main = plan.main
    moved = {} if main is None else {"main_moved": main.move, "main_reason": main.reason}
    return {
        "image": plan.pushed_tags[0],
        "repository": plan.repository,
        "sha": plan.sha,
        "dirty": plan.dirty,
        "branch": plan.branch,
        **outcome.model_dump(mode="json"),
        **moved,
        "labels": plan.labels,
    }


def _summary(plan: BuildPlan, outcome: BuildOutcome) -> list[tuple[str, str]]:
    rows = [
        ("tags", ", ".join(f"`{t}`" for t in outcome.tags)),
        ("digest", f"`{outcome.digest}`" if outcome.digest else "-"),
        ("steps cached", f"{outcome.steps_cached}/{outcome.steps_total}"),
        ("cache", f"import {outcome.cache_import}, export {outcome.cache_export}"),
        ("duration", f"{outcome.duration_s:.1f} s"),
        ("pushed", "yes" if outcome.pushed else "no"),
    ]
    if plan.main is not None:
        rows.append((":main", "moved" if plan.main.move else f"not moved: {plan.main.reason}"))
    return rows
