"""`snapshot_local` and `snapshot_push`: plan, log in, build, report.

The build machinery (buildx, the registry's HTTP client, the login) is imported where it is used:
an unchanged `snapshot_local` is answered by dev_build's fast path before any of it loads.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING

from pipeline import console
from pipeline.build.local import (
    Seen,
    fingerprint_local,
    git_facts,
    observe_for_replay,
    ref_source,
    remember_build,
    remember_for_replay,
    skip_if_unchanged,
    skip_unchanged,
    with_build_base,
)
from pipeline.errors import ConfigError
from pipeline.git.meta_context import dockerfile_wants_git_context
from pipeline.git.refs import ExportedTree
from pipeline.report import publish
from pipeline.rules.build_plan import (
    CACHE_EXPORT_FIX,
    BuildPlan,
    Mode,
    builder_problem,
    hold_main,
    main_tag,
    needs_image_store_check,
    plan_build,
    settle_cache_export,
)
from pipeline.rules.platforms import BuilderFacts
from pipeline.rules.release import MainMove
from pipeline.sessions.options import parser
from pipeline.settings.build import BuildSettings, ReportSettings, load

if TYPE_CHECKING:
    from pipeline.docker.buildx import BuildOutcome


def snapshot_local(argv: Sequence[str]) -> None:
    cli = parser(
        "snapshot_local",
        "Build the sandbox image from this checkout and load it as :local and :sha-<sha>; "
        "with PUSH=1 also push the sha tag and use the registry build cache.",
    )
    cli.add_argument(
        "--background",
        action="store_true",
        help="start the build detached and return at once, printing its log's path (one build "
        "per repository and image; a call during a build asks for one more if the tree changed)",
    )
    cli.add_argument(
        "--status",
        action="store_true",
        help="print idle, building or failed, with the last background build's result",
    )
    cli.add_argument("--json", action="store_true", help="with --status: JSON on stdout")
    args = cli.parse_args(argv)
    if args.background or args.status:
        from pipeline.sessions import background

        settings = load(BuildSettings)
        if args.status:
            background.show_status(
                settings.build_context, settings.image_repository, as_json=args.json
            )
        else:
            command = [sys.executable, "-m", "pipeline", "snapshot_local"]
            background.launch(
                settings.build_context, settings.dockerfile, settings.image_repository, command
            )
        return
    seen: Seen = None
    if not args.dry_run:
        skipped, seen = skip_if_unchanged()
        if skipped:
            return  # unchanged: tagged before any build machinery was loaded
    run_build("local", dry_run=args.dry_run, seen=seen)


def snapshot_push(argv: Sequence[str]) -> None:
    args = parser(
        "snapshot_push",
        "Build and push :main and :sha-<sha> with the registry build cache (CI on main). "
        "Refuses a dirty work tree.",
    ).parse_args(argv)
    run_build("push", dry_run=args.dry_run)


def prepare(mode: Mode) -> tuple[BuildSettings, BuildPlan]:
    settings = load(BuildSettings)
    return settings, plan_for(mode, settings)


def plan_for(mode: Mode, settings: BuildSettings, tree: ExportedTree | None = None) -> BuildPlan:
    if not settings.build_context.is_dir():
        what = "is not a directory" if settings.build_context.exists() else "does not exist"
        raise ConfigError(
            f"SANDBOX_BUILD_CONTEXT={settings.build_context} {what}",
            "point it at the folder to send to the build (default: the repo root)",
        )
    facts = git_facts(settings, tree)
    # The commit time, not the wall clock: an unchanged rebuild then yields the same image digest.
    wants_git = dockerfile_wants_git_context(settings.dockerfile)
    return plan_build(
        mode,
        settings,
        facts,
        built_at=facts.commit_time,
        git_context=wants_git,
        ref_build=tree is not None,
    )


def run_build(mode: Mode, *, dry_run: bool, seen: Seen = None) -> BuildOutcome | None:
    """`seen`: what skip_if_unchanged observed for the replay before it declined (not again)."""
    with ref_source(load(BuildSettings)) as (settings, tree):
        return _run_build(mode, settings, tree, dry_run=dry_run, seen=seen)


def _run_build(
    mode: Mode,
    settings: BuildSettings,
    tree: ExportedTree | None,
    *,
    dry_run: bool,
    seen: Seen = None,
) -> BuildOutcome | None:
    reports = load(ReportSettings)
    if dry_run:
        plan = plan_for(mode, settings, tree)
        _describe(plan)
        console.step("dry run: nothing was built, pushed or tagged")
        return None
    before = None
    if mode == "local" and tree is None:
        before = seen or observe_for_replay(settings)
    if mode == "local":  # one session on every machine: it finds (or makes) a base it can use
        settings = with_build_base(settings)
    from pipeline.docker.buildx import build, docker_cli
    from pipeline.docker.login import push_credentials

    plan, builder = _checked_plan(mode, settings, tree)
    plan, main = _settle_main(plan, settings)
    plan, measured = fingerprint_local(plan, settings, builder.driver, tree)
    _describe(plan)
    if main is not None and not main.move:
        console.warn(main.reason)
    if skip_unchanged(plan, measured, settings, reports):
        if before is not None and measured is not None and measured.local is not None:
            remember_for_replay(before, plan, measured, measured.local.id)
        return None
    if plan.cache_export_skipped:
        console.warn(
            f"no registry cache export: {plan.cache_export_skipped} (the image is built and "
            f"pushed; to export the cache, {CACHE_EXPORT_FIX})"
        )
    # A push logs in right before it, in a Docker config deleted right after.
    credentials = push_credentials(settings) if plan.push else nullcontext()
    with (
        credentials as config,
        console.group(f"docker buildx build ({', '.join(plan.build_tags)})"),
    ):
        outcome = build(plan, docker_cli(settings.docker_host, config), console.say)
    _tell(outcome)
    if before is not None:
        remember_build(before, plan, measured, settings.docker_host)
    values = _report_values(plan, outcome, main)
    publish("build", values, reports, summary=_summary(plan, outcome, main))
    return outcome


def _checked_plan(
    mode: Mode, settings: BuildSettings, tree: ExportedTree | None
) -> tuple[BuildPlan, BuilderFacts]:
    """The plan, checked against the builder and the engine's image store."""
    from pipeline.docker.buildx import BuilderProbe, containerd_image_store, docker_cli

    cli = docker_cli(settings.docker_host)
    # Asked now, answered while git is read: the check costs the fast path almost nothing.
    with BuilderProbe(cli, settings.builder) as probe:
        plan = plan_for(mode, settings, tree)
        if not plan.dockerfile.is_file():
            raise ConfigError(
                f"SANDBOX_DOCKERFILE={plan.dockerfile} does not exist",
                "point SANDBOX_DOCKERFILE at the sandbox Dockerfile (default sandbox/Dockerfile)",
            )
        builder = probe.result()
    problem = builder_problem(plan, builder)
    if problem is not None:
        raise problem
    if needs_image_store_check(plan, builder):
        plan = settle_cache_export(plan, containerd_image_store(cli), settings.cache)
    return plan, builder


def _settle_main(plan: BuildPlan, settings: BuildSettings) -> tuple[BuildPlan, MainMove | None]:
    """`:main` never moves backwards: a re-run of an older release pushes only its sha tag."""
    main = main_tag(plan)
    if main is None:
        return plan, None
    from pipeline.registry.release_checks import main_tag_move

    decision = main_tag_move(main, plan.sha, plan.context, settings)
    return (plan if decision.move else hold_main(plan)), decision


def _describe(plan: BuildPlan) -> None:
    for line in plan.describe():
        console.say(f"    {line}")


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


def _report_values(
    plan: BuildPlan, outcome: BuildOutcome, main: MainMove | None
) -> dict[str, object]:
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


def _summary(
    plan: BuildPlan, outcome: BuildOutcome, main: MainMove | None
) -> list[tuple[str, str]]:
    rows = [
        ("tags", ", ".join(f"`{t}`" for t in outcome.tags)),
        ("digest", f"`{outcome.digest}`" if outcome.digest else "-"),
        ("steps cached", f"{outcome.steps_cached}/{outcome.steps_total}"),
        ("cache", f"import {outcome.cache_import}, export {outcome.cache_export}"),
        ("duration", f"{outcome.duration_s:.1f} s"),
        ("pushed", "yes" if outcome.pushed else "no"),
    ]
    if main is not None:
        rows.append((":main", "moved" if main.move else f"not moved: {main.reason}"))
    return rows
