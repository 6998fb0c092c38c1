"""`docker buildx`: the build, the builder it uses, and whether the engine can export a cache.

The build runs as a `GroupProcess`, so a timeout, Ctrl-C or SIGTERM stop the CLI and its buildx
plugin together (which makes buildx cancel the build in the engine). `--metadata-file` gives the
digest; failures become pipeline errors (rules/failures.py) without ever printing an argv.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from pipeline.docker import images
from pipeline.docker.cli import QUERY_TIMEOUT_S, Docker, repeated
from pipeline.errors import EngineError
from pipeline.fastpath.files import json_object
from pipeline.process_group import GroupProcess, LineSink, last_line
from pipeline.rules.build_plan import GIT_META, BuildPlan, cache_option
from pipeline.rules.failures import classify_failure, setup_failure, untag_after_failed_push
from pipeline.rules.platforms import BuilderFacts, parse_builder_inspect
from pipeline.rules.progress import ProgressStats

CONTAINERD_STORE = "io.containerd.snapshotter.v1"
Source = tuple[Path, Path]  # the context folder and the Dockerfile buildx reads


class BuildOutcome(BaseModel):
    """What buildx measured and answered; what was asked for is the plan's."""

    model_config = ConfigDict(frozen=True)

    plan: BuildPlan
    digest: str | None
    duration_s: float
    steps_total: int
    steps_cached: int
    cache_import: str
    cache_export: str
    build_ref: str | None

    @property
    def tags(self) -> tuple[str, ...]:
        return self.plan.all_tags


class BuilderProbe:
    """`docker buildx inspect`, started early so it runs while git is read, collected later."""

    def __init__(self, docker: Docker, builder: str | None) -> None:
        self.builder = builder
        self.group = docker.start("buildx", "inspect", *filter(None, [builder]))

    def __enter__(self) -> BuilderProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.group.stop()

    def result(self, timeout_s: float = QUERY_TIMEOUT_S) -> BuilderFacts:
        lines: list[str] = []
        ran = self.group.finish(timeout_s, lines.append, "docker buildx inspect stopped")
        text = "\n".join(lines)
        if ran.timed_out:
            raise EngineError(
                f"`docker buildx inspect` did not answer within {timeout_s:g} s",
                "check that the engine answers (`docker info`) and restart it if it hangs",
            )
        if ran.returncode:
            raise setup_failure(text, self.builder) or EngineError(
                f"`docker buildx inspect` failed: {last_line(text).removeprefix('ERROR:').strip()}",
                "check the builder with `docker buildx ls`, or unset BUILDX_BUILDER",
            )
        return parse_builder_inspect(text)


def containerd_image_store(docker: Docker) -> bool | None:
    """Whether the engine keeps images in containerd (None: it did not say)."""
    done = docker.run("info", "--format", "{{json .DriverStatus}}")
    # docker 26's CLI exits 0 and prints null for an engine that is down
    if done.code or done.out.strip() in ("", "null"):
        return None
    try:
        status = dict(json.loads(done.out) or [])
    except (ValueError, TypeError):
        return None
    return status.get("driver-type") == CONTAINERD_STORE


def build(
    plan: BuildPlan, docker: Docker, on_line: LineSink, source: Source | None, stats: ProgressStats
) -> BuildOutcome:
    """`source`: the (context, Dockerfile) buildx reads, when they are a copy of the plan's
    (fastpath/mirror.py); `stats`: where progress is counted and timed (a live view reads it)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sandbox-pipeline-") as tmp:
        metadata_file = Path(tmp) / "metadata.json"
        argv = build_argv(docker, plan, metadata_file, source)

        def feed(line: str) -> None:
            stats.feed(line, time.monotonic() - started)
            on_line(line)

        try:
            ran = GroupProcess(argv).finish(plan.request.timeout_s, feed, "build cancelled")
            if ran.returncode or ran.timed_out:
                raise classify_failure(
                    ran.returncode,
                    "",
                    stats,
                    plan,
                    lambda: docker.run("buildx", "version").code == 0,  # is buildx there at all
                    timed_out=ran.timed_out,
                )
        except BaseException:
            images.remove(docker, untag_after_failed_push(stats, plan))
            raise
        metadata = json_object(metadata_file)
    if plan.push and plan.local_tags:
        # the pushed image's local-only tags; a remote builder leaves nothing local, so pull
        images.ensure(docker, plan.pushed_tags[0])
        images.tag(docker, plan.pushed_tags[0], plan.local_tags)
    return BuildOutcome(
        plan=plan,
        digest=metadata.get("containerimage.digest"),
        duration_s=round(time.monotonic() - started, 3),
        steps_total=stats.steps_total,
        steps_cached=stats.steps_cached,
        cache_import=stats.cache_import,
        cache_export=_export_state(stats, metadata, plan),
        build_ref=metadata.get("buildx.build.ref"),
    )


def build_argv(
    docker: Docker, plan: BuildPlan, metadata_file: Path, source: Source | None = None
) -> list[str]:
    request = plan.request
    context, dockerfile = source or (request.context, request.dockerfile)
    argv = ["buildx", "build", "--progress", "plain"]
    if request.builder:
        argv += ["--builder", request.builder]
    argv += ["--file", str(dockerfile)]
    argv += repeated("--build-arg", (f"{k}={v}" for k, v in plan.build_args.items()))
    argv += repeated("--label", (f"{k}={v}" for k, v in plan.labels.items()))
    argv += ["--build-context", f"{GIT_META}={plan.git_context}"] if plan.git_context else []
    argv += ["--platform", ",".join(request.platforms)]
    argv += ["--push"] if plan.push else []
    argv += ["--load"] if plan.load else []
    argv += [f"--provenance={str(plan.provenance).lower()}", f"--sbom={str(plan.sbom).lower()}"]
    argv += repeated("--cache-from", map(cache_option, plan.cache_from))
    if plan.cache_to is not None:
        argv += ["--cache-to", cache_option(plan.cache_to, export=True)]
    if request.ca_bundle:
        argv += ["--secret", f"id=extra_ca_certs,src={request.ca_bundle}"]
    argv += ["--metadata-file", str(metadata_file)]
    argv += repeated("--tag", plan.build_tags)
    return docker.argv(*argv, context)


def _export_state(stats: ProgressStats, metadata: dict[str, Any], plan: BuildPlan) -> str:
    if plan.cache_export_skipped:
        return f"skipped: {plan.cache_export_skipped}"
    if stats.cache_export == "ok" and "cache.manifest" not in metadata:
        return "failed: buildx wrote no cache manifest"
    return stats.cache_export
