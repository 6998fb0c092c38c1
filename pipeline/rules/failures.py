"""Which error a failed `docker buildx` run is, read from its output and the phase it died in
(pure). The phase decides first: an error in a Dockerfile instruction is the Dockerfile's, one
while pushing is the registry's, a lost connection is the engine's. Sending someone to debug their
Dockerfile for a registry outage is the mistake this module exists to avoid.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pipeline.errors import BuildError, DeadlineExceeded, EngineError, PipelineError, RegistryError
from pipeline.rules.auth_words import says_auth_refused
from pipeline.rules.build_plan import BuildPlan
from pipeline.rules.build_summary import short
from pipeline.rules.image_ref import split_host
from pipeline.rules.progress import ProgressStats

ENGINE_FIX = "start it (scripts/setup-engine.sh) or point DOCKER_HOST at a running engine"
BUILDX_FIX = "run scripts/setup-engine.sh (Debian: docker-buildx) or install the buildx plugin"
# How buildx says its connection to the engine (BuildKit) went away while the build ran.
_ENGINE_LOST = (
    "error reading from server: eof",
    "code = unavailable",
    "transport is closing",
    "connection is shutting down",
    "failed to receive status",
    "the daemon stopped",
    "cannot connect to the docker daemon",
)
_RESOLVE_FAILED = re.compile(r"failed to resolve source metadata for (?P<ref>\S+?):? ")
_HTTP_STATUS = re.compile(r"\b(?P<code>[45]\d\d) [A-Z][A-Za-z ]+")
_UNREACHABLE = re.compile(
    r"connection refused|no such host|i/o timeout|connection reset|\bEOF\b|network is "
    r"unreachable|TLS handshake timeout|context deadline exceeded|server misbehaving|"
    # Go's HTTP client, when the registry went away between two requests of one push
    r"server closed idle connection|broken pipe",
    re.IGNORECASE,
)
# Digests and URLs carry hex and paths ("…401f…", "/denied/"): never read them as auth words.
_NOISE = re.compile(r"sha256:[0-9a-f]+|[a-z]+://\S+")


def classify_failure(
    return_code: int,
    stderr: str,
    stats: ProgressStats,
    plan: BuildPlan,
    buildx_probe: Callable[[], bool] = lambda: True,
    *,
    timed_out: bool = False,
) -> PipelineError:
    """`buildx_probe` is asked only when the run died before buildx printed any progress: without
    the plugin the CLI just says "unknown flag", so the cause has to be checked, not parsed."""
    tail = tuple(stats.tail)
    text = stderr + "\n" + "\n".join(tail)
    if timed_out:
        where = stats.first_error or (tail[-1] if tail else "before any output")
        return DeadlineExceeded(
            f"the build hit its {plan.request.timeout_s:g} s timeout and was cancelled "
            f"(last: {where})",
            "raise SANDBOX_BUILD_TIMEOUT (seconds) or fix the step that hangs",
            details=tail,
        )
    if (setup := setup_failure(text, plan.request.builder)) is not None:
        return setup
    if not stats.vertices and not buildx_probe():
        return EngineError("docker buildx is not installed", BUILDX_FIX)
    verdict = "\n".join([*stats.final_errors, stats.first_error or "", stderr])
    if not stats.failed_in_step and any(m in verdict.lower() for m in _ENGINE_LOST):
        return EngineError(
            f"the Docker engine stopped answering during the build ({_short(verdict)})",
            "check that the engine runs (`docker info`, its log), then rerun; "
            "nothing was tagged or pushed",
            details=tail,
        )
    if (registry := registry_failure(verdict, stats, plan)) is not None:
        return registry
    reason = stats.first_error or _last_error_line(text) or f"exit code {return_code}"
    return BuildError(
        f"docker buildx build failed: {reason}",
        "fix the failing step (last lines of the build log above), then rerun",
        details=tail,
    )


def setup_failure(text: str, builder: str | None) -> PipelineError | None:
    """Failures before any build: no engine, no buildx, no such builder (also for `inspect`)."""
    if "Cannot connect to the Docker daemon" in text or "error during connect" in text:
        return EngineError("the Docker engine does not answer" + _endpoint(text), ENGINE_FIX)
    if "unknown command: docker buildx" in text or "'buildx' is not a docker command" in text:
        return EngineError("docker buildx is not installed", BUILDX_FIX)
    if "no builder" in text and "found" in text:
        return EngineError(
            f"buildx builder {builder!r} does not exist",
            "unset BUILDX_BUILDER or create it with `docker buildx create`",
        )
    return None


def registry_failure(verdict: str, stats: ProgressStats, plan: BuildPlan) -> PipelineError | None:
    if plan.push and not stats.failed_in_step and ("failed to push" in verdict or stats.pushing):
        host = split_host(plan.request.repository)[0]  # the only registry a build pushes to
        reason = _reason(verdict)
        if says_auth_refused(_NOISE.sub(" ", reason)):
            return RegistryError(
                f"{host} refused the push: {reason}",
                "check REGISTRY_USERNAME/REGISTRY_PASSWORD (or GITHUB_TOKEN with packages: "
                "write) and that the account may push to " + plan.request.repository,
                details=tuple(stats.tail),
            )
        return RegistryError(
            f"the push to {host} failed: {_registry_trouble(reason)}",
            f"check that {host} is up and reachable from the engine, then rerun; "
            "the local sha- tag was removed, nothing counts as pushed",
            details=tuple(stats.tail),
        )
    resolved = _RESOLVE_FAILED.search(verdict)
    if resolved and not stats.failed_in_step:
        ref = resolved["ref"]
        host = split_host(ref)[0]  # BuildKit names it in full: its host comes first
        if says_auth_refused(_NOISE.sub(" ", verdict)):
            fix = f"log in to {host} (`docker login {host}`) or use an image you may pull"
        else:
            fix = (
                f"check that {host} is reachable from the engine, or set SANDBOX_BASE_IMAGE to "
                "an image the engine has (`nox -s base_image` makes one offline)"
            )
        return RegistryError(f"cannot get {ref} from {host}: {_reason(verdict)}", fix)
    return None


def untag_after_failed_push(stats: ProgressStats, plan: BuildPlan) -> tuple[str, ...]:
    """The tags this build moved in the local engine but did not push: they must not stay and
    look pushed."""
    return tuple(ref for ref in stats.named if ref in plan.pushed_tags) if plan.push else ()


def _registry_trouble(reason: str) -> str:
    status = _HTTP_STATUS.search(reason)
    if status and status["code"].startswith("5"):
        return f"it answered {status.group(0).strip()} ({_short(reason)})"
    unreachable = _UNREACHABLE.search(reason)
    if unreachable:  # the cause ends Go's wrapped error, past what _short keeps: name it first
        return (
            f"it stopped answering or cannot be reached ({unreachable.group(0)}: {_short(reason)})"
        )
    return _short(reason)


def _reason(verdict: str) -> str:
    for line in verdict.splitlines():
        if line.strip():
            return line.strip().removeprefix("failed to solve:").strip()
    return "no reason given"


def _short(text: str) -> str:
    return short(_reason(text), 200)


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
