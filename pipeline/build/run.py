"""One build, start to end: gather the facts, make the plan once, print it, then either tag the
image `:local` already holds (nothing changed) or log in (a push) and run buildx; report, and
leave the replay its record.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path

from pipeline import console
from pipeline.build import record
from pipeline.build.facts import gather, ref_source
from pipeline.build.view import build_view
from pipeline.docker import images
from pipeline.docker.buildx import BuildOutcome, build
from pipeline.docker.cli import Docker, find_docker
from pipeline.docker.login import logged_in
from pipeline.errors import BuildError, PipelineError
from pipeline.fastpath.context import ignore_rules
from pipeline.fastpath.mirror import Mirror, mirrored
from pipeline.git.refs import ExportedTree
from pipeline.registry.credentials import push_login_credentials
from pipeline.report import publish
from pipeline.rules.build_plan import CACHE_EXPORT_FIX, BuildPlan, Mode, plan_build
from pipeline.rules.build_summary import (
    Layer,
    Step,
    gantt,
    human_size,
    largest,
    layer_name,
    short,
    steps,
    table,
)
from pipeline.rules.fingerprint import LABEL
from pipeline.settings.build import BuildSettings, ReportSettings, ViewSettings, load

# How often the checkout may change between the fingerprint and its copy before we give up.
ATTEMPTS = 3


def run_build(mode: Mode, *, dry_run: bool) -> BuildOutcome | None:
    with ref_source(load(BuildSettings)) as (settings, tree):
        for attempt in range(1, ATTEMPTS + 1):
            done, outcome = _attempt(
                mode, settings, tree, dry_run=dry_run, last=attempt == ATTEMPTS
            )
            if done:
                return outcome
            console.warn("the build context changed while it was being read; reading it again")
    return None


def _attempt(
    mode: Mode, settings: BuildSettings, tree: ExportedTree | None, *, dry_run: bool, last: bool
) -> tuple[bool, BuildOutcome | None]:
    """One read of the facts, one plan, and what it says. (False, None): the context changed
    between the fingerprint and the copy buildx is sent from; read everything again."""
    # what a replay would watch, seen before anything is read (a change made while this run
    # decides then keeps the next run from replaying it)
    before = record.observe(settings) if mode == "local" and not tree and not dry_run else None
    facts, docker = gather(settings, mode, tree, dry_run=dry_run)
    plan = plan_build(facts)
    for line in plan.describe():
        console.say(f"    {line}")
    if docker is None:
        console.step("dry run: nothing was built, pushed or tagged")
        return True, None
    reports = load(ReportSettings)
    if plan.action in ("tag", "reuse"):
        _unbuilt(docker, plan, reports)
        if plan.action == "tag":
            record.remember(before, plan, plan.image_id, facts.inputs)
        return True, None
    with _sent_from(settings, plan, tree) as source:
        inputs = facts.inputs if facts.inputs and not facts.inputs.unknown else None
        held = (source.digest, source.dockerfile_digest) if source else None
        if held and inputs and held != (inputs.context, inputs.dockerfile):
            if last:
                raise BuildError(
                    f"the build context {plan.request.context} kept changing while it was read",
                    "let the tree settle (an editor saving, a watcher building), then rerun",
                )
            return False, None
        outcome, timeline = _build(docker, plan, settings, source)
    if before is not None:
        built = images.one(docker, plan.local_tags[0]) if plan.local_tags else None
        same = built is not None and built.labels.get(LABEL) == plan.fingerprint
        record.remember(before, plan, built.id if built and same else None, facts.inputs)
    _report(docker, outcome, timeline, reports)
    return True, outcome


def _sent_from(
    settings: BuildSettings, plan: BuildPlan, tree: ExportedTree | None
) -> AbstractContextManager[Mirror | None]:
    """The copy buildx is sent from (fastpath/mirror.py) when the image is labelled with what it
    holds; None for a build without a fingerprint (it claims nothing: buildx reads the checkout
    as it would without us) and for a ref build, whose export is already a folder of its own."""
    if tree is not None or plan.fingerprint is None:
        return nullcontext()
    context, dockerfile = plan.request.context, plan.request.dockerfile
    rules = ignore_rules(dockerfile, context)
    key = hashlib.sha256(f"{context.resolve()}\0{dockerfile}".encode()).hexdigest()
    return mirrored(context, rules, dockerfile, settings.cache_dir / "contexts" / key[:20])


def _unbuilt(docker: Docker, plan: BuildPlan, reports: ReportSettings) -> None:
    """Tag the image `:local` holds (nothing changed), or reuse the pushed one."""
    if plan.action == "tag":
        assert plan.image_id is not None
        images.tag(docker, plan.image_id, plan.retag)
        console.step(record.unchanged_message(plan, plan.fingerprint_note))
        tags = list(plan.build_tags)
        more = {"image_id": plan.image_id, "skipped": True, "fingerprint": plan.fingerprint}
        summary = [("tags", ", ".join(f"`{t}`" for t in tags)), ("built", "no: unchanged")]
    else:
        image, digest = plan.pushed_tags[0], plan.registry_digest
        console.step(
            f"{image} is already in the registry as {digest}: reused, nothing built or pushed"
        )
        tags, more = [image], {"digest": digest, "reused": True}
        summary = [("tag", f"`{image}`"), ("digest", f"`{digest}`"), ("built", "no: reused")]
    publish("build", _values(plan, tags=tags, pushed=False, **more), reports, summary=summary)


@contextmanager
def push_credentials(settings: BuildSettings) -> Iterator[Path | None]:
    """The Docker config folder to push with (`docker --config DIR`), logged in with what
    registry/credentials.py resolves and deleted after the push; None when docker can push as it
    is (its config already holds credentials for the host, or a loopback registry needs none)."""
    host = settings.registry_host
    credentials = push_login_credentials(settings, host)
    if credentials is None:
        yield None
        return
    with logged_in(find_docker(settings.docker), host, credentials) as pushing:
        console.step(f"logged in to {host} with {credentials.source}, for this push only")
        yield pushing.config


def _build(
    docker: Docker, plan: BuildPlan, settings: BuildSettings, copy: Mirror | None
) -> tuple[BuildOutcome, list[Step]]:
    if plan.cache_export_skipped:
        console.warn(
            f"no registry cache export: {plan.cache_export_skipped} (the image is built and "
            f"pushed; to export the cache, {CACHE_EXPORT_FIX})"
        )
    # A push logs in right before it, in a Docker config deleted right after.
    login = push_credentials(settings) if plan.push else nullcontext()
    title = f"docker buildx build ({', '.join(plan.build_tags)})"
    live = load(ViewSettings).live(sys.stderr.isatty())
    with login as config, build_view(settings.cache_dir, live, title) as view:
        source = (copy.context, copy.dockerfile) if copy else None
        try:
            with nullcontext() if live else console.group(title):
                outcome = build(plan, docker.with_config(config), view.line, source, view.stats)
        except PipelineError as failure:
            # a plain log has just shown its last lines; the live view has not
            failure.details = (*failure.details, f"full log: {view.path}") if live else ()
            raise
        return outcome, steps(view.stats, view.elapsed_s)


def _report(
    docker: Docker, outcome: BuildOutcome, timeline: list[Step], reports: ReportSettings
) -> None:
    """Say and publish what was built, where the time went (rules/build_summary.py) and how big
    the image is as `docker history` counts it, when the engine holds the image."""
    plan = outcome.plan
    made = next((found for tag in outcome.tags if (found := images.history(docker, tag))), [])
    layers = [Layer(added, layer_name(by) or "(the base image's files)") for added, by in made]
    size = sum(layer.size for layer in layers) if layers else None
    if outcome.cache_export.startswith("failed"):
        console.warn(
            f"the registry cache was not exported ({outcome.cache_export.removeprefix('failed: ')})"
            "; the image is fine, the next cold build will be slower"
        )
    if outcome.cache_import.startswith("failed"):
        console.warn(f"the registry cache could not be read ({outcome.cache_import})")
    verb = "built and pushed" if plan.push else "built"
    cached = f"{outcome.steps_cached}/{outcome.steps_total}"
    console.step(
        f"{verb} {', '.join(outcome.tags)} in {outcome.duration_s:.1f} s ({cached} steps cached)"
        + (f", digest {outcome.digest}" if outcome.digest else "")
    )
    for line in table(timeline, size, layers):
        console.say(f"    {line}")
    values = _values(
        plan,
        **outcome.model_dump(mode="json", exclude={"plan"}),
        tags=outcome.tags,
        pushed=plan.push,
        platforms=plan.request.platforms,
        **plan.model_dump(mode="json", include={"cache_from", "cache_to", "provenance", "sbom"}),
        timeline=[asdict(step) for step in timeline],
        image_size=size,
        layers=[asdict(layer) for layer in largest(layers, 5)],
    )
    rows = [
        ("tags", ", ".join(f"`{t}`" for t in outcome.tags)),
        ("digest", f"`{outcome.digest}`" if outcome.digest else "-"),
        ("steps cached", cached),
        ("cache", f"import {outcome.cache_import}, export {outcome.cache_export}"),
        ("duration", f"{outcome.duration_s:.1f} s"),
        ("pushed", "yes" if plan.push else "no"),
    ]
    # One tag, the shortest: the chart's title is centred and clipped where it is wider.
    title = f"{min(outcome.tags, key=len)} — {outcome.duration_s:.1f} s, {cached} steps cached"
    if size is not None:
        unpacked = f"{human_size(size)} unpacked"
        biggest = "; ".join(
            f"{human_size(layer.size)} `{short(layer.created_by, 50)}`" for layer in largest(layers)
        )
        rows.append(("image size", unpacked + (f" (largest: {biggest})" if biggest else "")))
        title += f", image {unpacked}"
    chart = gantt(timeline, title, round((time.time() - outcome.duration_s) * 1000))
    publish("build", values, reports, summary=rows, picture=chart)


def _values(plan: BuildPlan, **more: object) -> dict[str, object]:
    return {
        "image": plan.pushed_tags[0],
        "repository": plan.request.repository,
        "sha": plan.git.sha,
        "dirty": plan.git.dirty,
        "branch": plan.git.branch,
        **more,
        "labels": plan.labels,
    }
