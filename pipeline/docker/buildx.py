"""The one place that runs `docker buildx`, and the docker commands a build needs around it.

python-on-whales cannot time a command out or stop what it started, so the docker CLI runs as a
`GroupProcess` (process_group.py): the build timeout is enforced in Python, and Ctrl-C, SIGTERM
or the timeout stop the CLI and its buildx plugin together, which makes buildx cancel the build
in the engine. Nothing but python, git and docker needs to be on PATH. Output streams as plain
progress; `--metadata-file` gives the digest; failures become pipeline errors
(rules/failures.py) without ever printing an argv.

The argv comes from `DockerCLI`, the same `docker [--host H] [--config D]` prefix
python-on-whales builds (a unit test holds them equal): importing python-on-whales costs about
0.15 s of CPU, more than the whole pipeline adds to an unchanged build otherwise, so the fast
path does not; it is imported for what it does well (image inspect/tag/pull, login) when a
push needs those.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from pipeline.errors import DOCKER_CLI_FIX, EngineError, PipelineError
from pipeline.git.meta_context import CONTEXT_NAME, cached_git_context
from pipeline.process_group import GroupProcess, LineSink
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


@dataclass(frozen=True)
class DockerCLI:
    """The docker CLI, and which engine (and config folder) it talks to."""

    binary: str
    host: str | None = None
    config: Path | None = None

    def argv(self, *args: str | Path) -> list[str]:
        prefix = [self.binary]
        if self.config is not None:
            prefix += ["--config", str(self.config)]
        if self.host is not None:
            prefix += ["--host", self.host]
        return [*prefix, *(str(arg) for arg in args)]


def docker_cli(docker_host: str | None, config: Path | None = None) -> DockerCLI:
    binary = shutil.which("docker")
    if binary is None:
        raise EngineError("the docker CLI is not on PATH", DOCKER_CLI_FIX)
    return DockerCLI(binary, docker_host, config)


def docker_client(docker_host: str | None, config: Path | None = None) -> DockerClient:
    """A python-on-whales client for the engine at `docker_host` (None: docker's default)."""
    docker_cli(docker_host)  # one line instead of python-on-whales' ClientNotFoundError
    from python_on_whales import DockerClient

    # python-on-whales logs every argv it runs; argv is ours to show (or not), never its logger's.
    logging.getLogger("python_on_whales").setLevel(logging.WARNING)
    return DockerClient(host=docker_host, config=config)


def run_docker(cli: DockerCLI, *args: str, timeout_s: float = QUERY_TIMEOUT_S) -> tuple[int, str]:
    """A short docker command: (exit code, output); a timeout is exit code -1."""
    lines: list[str] = []
    with GroupProcess(cli.argv(*args)) as group:
        ran = group.finish(timeout_s, lines.append, f"docker {args[0]} stopped")
    return (-1 if ran.timed_out else ran.returncode), "\n".join(lines)


class BuilderProbe:
    """`docker buildx inspect`, started early so it runs while git is read, collected later."""

    def __init__(self, cli: DockerCLI, builder: str | None) -> None:
        self.builder = builder
        self.group = GroupProcess(cli.argv("buildx", "inspect", *filter(None, [builder])))

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


def containerd_image_store(cli: DockerCLI) -> bool | None:
    """Whether the engine keeps images in containerd (None: it did not say)."""
    code, text = run_docker(cli, "info", "--format", "{{json .DriverStatus}}")
    # docker 26's CLI exits 0 and prints null for an engine that is down
    if code or text.strip() in ("", "null"):
        return None
    try:
        status = dict(json.loads(text.strip() or "[]") or [])
    except (ValueError, TypeError):
        return None
    return status.get("driver-type") == CONTAINERD_STORE


def build(plan: BuildPlan, cli: DockerCLI, on_line: LineSink) -> BuildOutcome:
    stats = ProgressStats()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sandbox-pipeline-") as tmp:
        metadata_file = Path(tmp) / "metadata.json"
        argv = build_argv(cli, plan, metadata_file)

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
                    lambda: buildx_present(cli),
                    timed_out=ran.timed_out,
                )
                raise error
            finished = True
        finally:
            if not finished:
                _untag(cli, untag_after_failed_push(stats, plan))
        metadata = _read_metadata(metadata_file)
    if plan.push and plan.local_tags:
        tag_locally(docker_client(cli.host, cli.config), plan.pushed_tags[0], plan.local_tags)
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


def build_argv(cli: DockerCLI, plan: BuildPlan, metadata_file: Path) -> list[str]:
    argv = ["buildx", "build", "--progress", "plain"]
    if plan.builder:
        argv += ["--builder", plan.builder]
    argv += ["--file", str(plan.dockerfile)]
    argv += _repeated("--build-arg", (f"{k}={v}" for k, v in plan.build_args.items()))
    argv += _repeated("--label", (f"{k}={v}" for k, v in plan.labels.items()))
    if plan.git_context is not None:
        source = plan.labels.get("org.opencontainers.image.source")
        clone = cached_git_context(plan.git_context, plan.sha, plan.branch, source)
        argv += ["--build-context", f"{CONTEXT_NAME}={clone}"]
    argv += ["--platform", ",".join(plan.platforms)]
    argv += ["--push"] if plan.push else []
    argv += ["--load"] if plan.load else []
    argv += [f"--provenance={str(plan.provenance).lower()}", f"--sbom={str(plan.sbom).lower()}"]
    argv += _repeated("--cache-from", (_buildx_options(c.buildx()) for c in plan.cache_from))
    if plan.cache_to is not None:
        argv += ["--cache-to", _buildx_options(plan.cache_to.buildx())]
    if plan.ca_bundle:
        argv += ["--secret", f"id=extra_ca_certs,src={plan.ca_bundle}"]
    argv += ["--metadata-file", str(metadata_file)]
    argv += _repeated("--tag", plan.build_tags)
    return cli.argv(*argv, plan.context)


def _repeated(flag: str, values: Iterable[str]) -> list[str]:
    return [part for value in values for part in (flag, value)]


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


def _untag(cli: DockerCLI, references: tuple[str, ...]) -> None:
    """Drop local tags of a push that did not complete (best effort: the engine may be gone)."""
    if references:
        with suppress(OSError, PipelineError):
            run_docker(cli, "image", "rm", "--force", "--no-prune", *references)


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


def buildx_present(cli: DockerCLI) -> bool:
    code, _ = run_docker(cli, "buildx", "version")
    return code == 0


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1].removeprefix("ERROR:").strip() if lines else "no output"
