"""The one place that runs `docker buildx build` (through python-on-whales).

Streams plain progress, enforces the build timeout, reads `--metadata-file`, and turns docker's
failures into pipeline errors without ever printing the argv python-on-whales puts in its
exception text.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, ConfigDict

from pipeline.adapters.git_context import CONTEXT_NAME, cached_git_context
from pipeline.errors import BuildError, DeadlineExceeded, EngineError, RegistryError
from pipeline.rules.build_plan import BuildPlan
from pipeline.rules.progress import ProgressStats

if TYPE_CHECKING:
    from python_on_whales import DockerClient

TIMEOUT_EXIT_CODES = (124, 137)  # `timeout` timed out / had to SIGKILL
LineSink = Callable[[str], None]


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


def docker_client(docker_host: str | None, timeout_s: float | None = None) -> DockerClient:
    """A python-on-whales client; with a timeout, every call runs under coreutils' `timeout`."""
    from python_on_whales import DockerClient

    if shutil.which("docker") is None:
        raise EngineError(
            "the docker CLI is not on PATH", "run scripts/setup-engine.sh or install docker"
        )
    call = ["docker"]
    if timeout_s is not None:
        call = ["timeout", "--kill-after=10", f"{timeout_s:g}s", "docker"]
    # python-on-whales logs every argv it runs; argv is ours to show (or not), never its logger's.
    logging.getLogger("python_on_whales").setLevel(logging.WARNING)
    return DockerClient(host=docker_host, client_call=call)


def build(plan: BuildPlan, docker_host: str | None, on_line: LineSink) -> BuildOutcome:
    from python_on_whales.exceptions import DockerException

    client = docker_client(docker_host, plan.timeout_s)
    stats = ProgressStats()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sandbox-pipeline-") as tmp:
        metadata_file = Path(tmp) / "metadata.json"
        contexts: dict[str, str | Path] = {}
        if plan.git_context is not None:
            source = plan.labels.get("org.opencontainers.image.source")
            contexts[CONTEXT_NAME] = cached_git_context(
                plan.git_context, plan.sha, plan.branch, source
            )
        secrets = [f"id=extra_ca_certs,src={plan.ca_bundle}"] if plan.ca_bundle else []
        try:
            lines = client.buildx.build(
                plan.context,
                file=plan.dockerfile,
                tags=list(plan.build_tags),
                build_args=plan.build_args,
                labels=plan.labels,
                platforms=list(plan.platforms),
                push=plan.push,
                load=plan.load,
                cache_from=[c.buildx() for c in plan.cache_from] or None,
                cache_to=plan.cache_to.buildx() if plan.cache_to else None,
                provenance=plan.provenance,
                sbom=plan.sbom,
                builder=plan.builder,
                build_contexts=contexts,
                secrets=secrets,
                metadata_file=metadata_file,
                progress="plain",
                stream_logs=True,
            )
            for line in cast(Iterable[str], lines):  # stream_logs=True yields str lines
                stats.feed(line)
                on_line(line.rstrip("\n"))
        except DockerException as error:
            raise classify_failure(
                error.return_code, error.stderr or "", stats, plan, lambda: buildx_present(client)
            ) from None
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
        cache_export=_export_state(stats, metadata),
        cache_from=tuple(c.ref for c in plan.cache_from),
        cache_to=plan.cache_to.ref if plan.cache_to else None,
        platforms=plan.platforms,
        provenance=plan.provenance,
        sbom=plan.sbom,
        build_ref=metadata.get("buildx.build.ref"),
    )


def tag_locally(client: DockerClient, source: str, targets: Iterable[str]) -> None:
    """Give the pushed image its local-only tags; a remote builder leaves nothing local, so pull."""
    from python_on_whales.exceptions import NoSuchImage

    try:
        client.image.inspect(source)
    except NoSuchImage:
        client.image.pull(source, quiet=True)
    for target in targets:
        client.image.tag(source, target)


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _export_state(stats: ProgressStats, metadata: dict[str, Any]) -> str:
    if stats.cache_export == "ok" and "cache.manifest" not in metadata:
        return "failed: buildx wrote no cache manifest"
    return stats.cache_export


def buildx_present(client: DockerClient) -> bool:
    from python_on_whales.exceptions import DockerException

    try:
        client.buildx.version()
    except DockerException:
        return False
    return True


def classify_failure(
    return_code: int,
    stderr: str,
    stats: ProgressStats,
    plan: BuildPlan,
    buildx_probe: Callable[[], bool] = lambda: True,
) -> Exception:
    """Map a failed buildx run to the error that names its cause and fix.

    `buildx_probe` is asked only when the run died before buildx printed any progress: without
    the plugin the CLI just says "unknown flag", so the cause has to be checked, not parsed.
    """
    tail = tuple(stats.tail)
    text = stderr + "\n" + "\n".join(tail)
    if return_code in TIMEOUT_EXIT_CODES:
        where = stats.first_error or (tail[-1] if tail else "before any output")
        return DeadlineExceeded(
            f"the build hit its {plan.timeout_s:g} s timeout (last: {where})",
            "raise SANDBOX_BUILD_TIMEOUT (seconds) or fix the step that hangs",
            details=tail,
        )
    if "Cannot connect to the Docker daemon" in text or "error during connect" in text:
        return EngineError(
            "the Docker engine does not answer" + _endpoint(text),
            "start it (scripts/setup-engine.sh) or point DOCKER_HOST at a running engine",
        )
    named = "unknown command: docker buildx" in text or "'buildx' is not a docker command" in text
    if named or (not stats.saw_progress and not buildx_probe()):
        return EngineError(
            "docker buildx is not installed",
            "run scripts/setup-engine.sh (Debian: docker-buildx) or install the buildx plugin",
        )
    if "no builder" in text and "found" in text:
        return EngineError(
            f"buildx builder {plan.builder!r} does not exist",
            "unset BUILDX_BUILDER or create it with `docker buildx create`",
        )
    auth_words = ("unauthorized", "authentication required", "denied", "401 Unauthorized")
    if plan.push and any(word in text for word in auth_words):
        reason = stats.first_error or _last_error_line(text)
        return RegistryError(
            f"the registry refused the push: {reason}",
            "check REGISTRY_USERNAME/REGISTRY_PASSWORD (or GITHUB_TOKEN with packages: write) "
            "and that the account may push to " + plan.repository,
            details=tail,
        )
    reason = stats.first_error or _last_error_line(text) or f"exit code {return_code}"
    return BuildError(
        f"docker buildx build failed: {reason}",
        "fix the failing step (last lines of the build log above), then rerun",
        details=tail,
    )


def _endpoint(text: str) -> str:
    for marker in ("daemon at ", "connect to "):
        if marker in text:
            return " at " + text.split(marker, 1)[1].split()[0].rstrip(".")
    return ""


def _last_error_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if "ERROR" in line or "error" in line:
            return line.strip().removeprefix("ERROR:").strip()
    return ""
