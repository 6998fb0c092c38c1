"""The one place that runs `docker buildx` (argv from python-on-whales, the process run here).

python-on-whales cannot time a command out or stop what it started, so the docker CLI runs as a
`GroupProcess` (process_group.py): the build timeout is enforced in Python, and Ctrl-C, SIGTERM
or the timeout stop the CLI and its buildx plugin together, which makes buildx cancel the build
in the engine. Nothing but python, git and docker needs to be on PATH. Output streams as plain
progress; `--metadata-file` gives the digest; failures become pipeline errors
(rules/failures.py) without ever printing an argv.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from pipeline.adapters.git_context import CONTEXT_NAME, cached_git_context
from pipeline.adapters.process_group import GroupProcess, LineSink
from pipeline.errors import DOCKER_CLI_FIX, EngineError, PipelineError
from pipeline.rules.build_plan import BuildPlan
from pipeline.rules.failures import classify_failure, setup_failure, untag_after_failed_push
from pipeline.rules.platforms import BuilderFacts, parse_builder_inspect
from pipeline.rules.progress import ProgressStats

if TYPE_CHECKING:
    from python_on_whales import DockerClient

QUERY_TIMEOUT_S = 30.0  # `docker buildx inspect`, `docker info`, `docker image rm`
CONTAINERD_STORE = "io.containerd.snapshotter.v1"


class BuildOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    digest: str | None
    tags: tuple[str, ...]
    pushed: bool
    duration_s: float
    steps_total: int
    steps_cached: int
    cache_import: str
    cache_export: str
    cache_from: tuple[str, ...]
    cache_to: str | None
    platforms: tuple[str, ...]
    provenance: bool
    sbom: bool
    build_ref: str | None


def docker_client(docker_host: str | None, config: Path | None = None) -> DockerClient:
    """A python-on-whales client for the engine at `docker_host` (None: docker's default)."""
    if shutil.which("docker") is None:
        raise EngineError("the docker CLI is not on PATH", DOCKER_CLI_FIX)
    from python_on_whales import DockerClient

    # python-on-whales logs every argv it runs; argv is ours to show (or not), never its logger's.
    logging.getLogger("python_on_whales").setLevel(logging.WARNING)
    return DockerClient(host=docker_host, config=config)


def docker_argv(client: DockerClient, *args: str | Path) -> list[str]:
    """`docker [--host …] [--config …] ARGS` as python-on-whales would run it."""
    return [str(part) for part in (*client.client_config.docker_cmd, *args)]


def run_docker(
    client: DockerClient, *args: str, timeout_s: float = QUERY_TIMEOUT_S
) -> tuple[int, str]:
    """A short docker command: (exit code, output); a timeout is exit code -1."""
    lines: list[str] = []
    with GroupProcess(docker_argv(client, *args)) as group:
        ran = group.finish(timeout_s, lines.append, f"docker {args[0]} stopped")
    return (-1 if ran.timed_out else ran.returncode), "\n".join(lines)


class BuilderProbe:
    """`docker buildx inspect`, started early so it runs while git is read, collected later."""

    def __init__(self, client: DockerClient, builder: str | None) -> None:
        self.builder = builder
        self.group = GroupProcess(
            docker_argv(client, "buildx", "inspect", *filter(None, [builder]))
        )

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
                f"`docker buildx inspect` failed: {_last_line(text)}",
                "check the builder with `docker buildx ls`, or unset BUILDX_BUILDER",
            )
        return parse_builder_inspect(text)


def containerd_image_store(client: DockerClient) -> bool | None:
    """Whether the engine keeps images in containerd (None: it did not say)."""
    code, text = run_docker(client, "info", "--format", "{{json .DriverStatus}}")
    if code:
        return None
    try:
        status = dict(json.loads(text.strip() or "[]") or [])
    except (ValueError, TypeError):
        return None
    return status.get("driver-type") == CONTAINERD_STORE


def build(plan: BuildPlan, client: DockerClient, on_line: LineSink) -> BuildOutcome:
    stats = ProgressStats()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sandbox-pipeline-") as tmp:
        metadata_file = Path(tmp) / "metadata.json"
        argv = build_argv(client, plan, metadata_file)

        def feed(line: str) -> None:
            stats.feed(line)
            on_line(line)

        finished = False
        try:
            ran = GroupProcess(argv).finish(plan.timeout_s, feed, "build cancelled")
            if ran.returncode or ran.timed_out:
                error = classify_failure(
                    ran.returncode,
                    "",
                    stats,
                    plan,
                    lambda: buildx_present(client),
                    timed_out=ran.timed_out,
                )
                raise error
            finished = True
        finally:
            if not finished:
                _untag(client, untag_after_failed_push(stats, plan))
        metadata = _read_metadata(metadata_file)
    if plan.push and plan.local_tags:
        tag_locally(client, plan.pushed_tags[0], plan.local_tags)
    return BuildOutcome(
        digest=metadata.get("containerimage.digest"),
        tags=plan.all_tags,
        pushed=plan.push,
        duration_s=round(time.monotonic() - started, 3),
        steps_total=stats.steps_total,
        steps_cached=stats.steps_cached,
        cache_import=stats.cache_import,
        cache_export=_export_state(stats, metadata, plan),
        cache_from=tuple(c.ref for c in plan.cache_from),
        cache_to=plan.cache_to.ref if plan.cache_to else None,
        platforms=plan.platforms,
        provenance=plan.provenance,
        sbom=plan.sbom,
        build_ref=metadata.get("buildx.build.ref"),
    )


def build_argv(client: DockerClient, plan: BuildPlan, metadata_file: Path) -> list[str]:
    from python_on_whales.client_config import Command

    contexts: dict[str, str | Path] = {}
    if plan.git_context is not None:
        source = plan.labels.get("org.opencontainers.image.source")
        contexts[CONTEXT_NAME] = cached_git_context(plan.git_context, plan.sha, plan.branch, source)
    command = Command(["buildx", "build", "--progress", "plain"])
    command.add_simple_arg("--builder", plan.builder)
    command.add_simple_arg("--file", plan.dockerfile)
    command.add_args_mapping("--build-arg", plan.build_args)
    command.add_args_mapping("--label", plan.labels)
    command.add_args_mapping("--build-context", contexts)
    command.add_simple_arg("--platform", ",".join(plan.platforms))
    command.add_flag("--push", plan.push)
    command.add_flag("--load", plan.load)
    command.append(f"--provenance={str(plan.provenance).lower()}")
    command.append(f"--sbom={str(plan.sbom).lower()}")
    for cache in plan.cache_from:
        command.add_simple_arg("--cache-from", _buildx_options(cache.buildx()))
    if plan.cache_to is not None:
        command.add_simple_arg("--cache-to", _buildx_options(plan.cache_to.buildx()))
    if plan.ca_bundle:
        command.add_simple_arg("--secret", f"id=extra_ca_certs,src={plan.ca_bundle}")
    command.add_simple_arg("--metadata-file", metadata_file)
    command.add_args_iterable("--tag", plan.build_tags)
    command.append(plan.context)
    return docker_argv(client, *(str(part) for part in command))


def _buildx_options(options: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in options.items())


def tag_locally(client: DockerClient, source: str, targets: Iterable[str]) -> None:
    """Give the pushed image its local-only tags; a remote builder leaves nothing local, so pull."""
    from python_on_whales.exceptions import NoSuchImage

    try:
        client.image.inspect(source)
    except NoSuchImage:
        client.image.pull(source, quiet=True)
    for target in targets:
        client.image.tag(source, target)


def _untag(client: DockerClient, references: tuple[str, ...]) -> None:
    """Drop local tags of a push that did not complete (best effort: the engine may be gone)."""
    if references:
        with suppress(OSError, PipelineError):
            run_docker(client, "image", "rm", "--force", "--no-prune", *references)


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _export_state(stats: ProgressStats, metadata: dict[str, Any], plan: BuildPlan) -> str:
    if plan.cache_export_skipped:
        return f"skipped: {plan.cache_export_skipped}"
    if stats.cache_export == "ok" and "cache.manifest" not in metadata:
        return "failed: buildx wrote no cache manifest"
    return stats.cache_export


def buildx_present(client: DockerClient) -> bool:
    code, _ = run_docker(client, "buildx", "version")
    return code == 0


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1].removeprefix("ERROR:").strip() if lines else "no output"
