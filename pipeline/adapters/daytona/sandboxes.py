"""Daytona sandboxes on top of the client: create from a snapshot, wait, use, stop and delete.

The rules (is it started yet? may it be deleted now? which leftovers go?) are pure functions
over `Sandbox` readings; the functions that talk to Daytona only read, decide and act. Every
sandbox the pipeline makes carries `created-by: sandbox-pipeline`, so `--cleanup` finds the
leftovers of crashed runs, and by default asks Daytona to stop it when idle and delete it once
stopped, so even a leftover that nobody cleans up goes away on its own.

The test suite uses `running_sandbox`:

    with running_sandbox(client, snapshot="prd--20261123-120000", env={...}) as sb:
        result = sb.exec("curl -fsS localhost:3000/health")
        preview = sb.preview(3000)   # .url, and .token for X-Daytona-Preview-Token
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from pipeline import console
from pipeline.adapters.daytona.client import (
    DEFAULT_EXEC_TIMEOUT,
    CreateConflict,
    DaytonaClient,
    OutcomeUnknown,
)
from pipeline.adapters.daytona.snapshots import PollPolicy
from pipeline.errors import DaytonaAuthError, DaytonaError, DeadlineExceeded, PipelineError
from pipeline.rules.daytona_models import (
    SANDBOX_ARCHIVED,
    SANDBOX_DESTROYED,
    SANDBOX_ERROR,
    SANDBOX_GONE_STATES,
    SANDBOX_STARTED,
    SANDBOX_STOPPED,
    CreateSandbox,
    ExecResult,
    PortPreview,
    Sandbox,
)
from pipeline.rules.snapshot_names import one_line

Clock = Callable[[], float]
Sleep = Callable[[float], None]

CREATED_BY_LABEL: Final = "created-by"
CREATED_BY: Final = "sandbox-pipeline"
GIT_SHA_LABEL: Final = "git-sha"
PIPELINE_LABELS: Final = {CREATED_BY_LABEL: CREATED_BY}
PREVIEW_TOKEN_HEADER: Final = "X-Daytona-Preview-Token"  # noqa: S105 - a header name
DEFAULT_PORT: Final = 3000  # the sandbox daemon's HTTP port
DEFAULT_START_TIMEOUT: Final = 300.0
DEFAULT_TEARDOWN_TIMEOUT: Final = 120.0
DEFAULT_AUTO_STOP: Final = 60  # minutes idle before Daytona stops it
DEFAULT_AUTO_DELETE: Final = 0  # minutes after a stop before Daytona deletes it: at once
DEFAULT_LOG_GLOB: Final = "/var/log/*/*.log"
DEFAULT_LOG_LINES: Final = 50
NAME_PREFIX: Final = "sbx"
# How often a create may be sent when earlier ones surely made nothing (looked up: absent).
MAX_CREATES: Final = 3
# Sandbox polls start faster than snapshot polls: a start takes seconds, not minutes.
SANDBOX_POLL: Final = PollPolicy(initial=0.5, factor=1.5, maximum=5.0)


# --- pure rules ------------------------------------------------------------------------------


class Step(StrEnum):
    DONE = "done"
    WAIT = "wait"
    FAIL = "fail"


@dataclass(frozen=True)
class Verdict:
    step: Step
    why: str


def start_verdict(sandbox: Sandbox | None) -> Verdict:
    """Waiting for `started`: done, keep waiting, or give up (and why)."""
    if sandbox is None:
        return Verdict(Step.FAIL, "it disappeared (deleted by someone else?)")
    if sandbox.state == SANDBOX_STARTED:
        return Verdict(Step.DONE, "it is started")
    if sandbox.failed:
        reason = one_line(sandbox.error_reason) or "Daytona gave no reason"
        return Verdict(Step.FAIL, f"it is in state {sandbox.state}: {reason}")
    if sandbox.state in SANDBOX_GONE_STATES:
        return Verdict(Step.FAIL, f"it is {sandbox.state} (being deleted)")
    if sandbox.state in (SANDBOX_STOPPED, SANDBOX_ARCHIVED):
        return Verdict(Step.FAIL, f"it is {sandbox.state}, not starting")
    # creating, starting, pulling_snapshot, restoring, or a state newer than this code.
    return Verdict(Step.WAIT, f"it is {sandbox.state}")


def stopped_verdict(sandbox: Sandbox | None) -> Verdict:
    """Waiting after a stop: any settled state will do, since a delete follows."""
    if sandbox is None or sandbox.state in SANDBOX_GONE_STATES:
        return Verdict(Step.DONE, "it is gone or being deleted")
    if sandbox.state in (SANDBOX_STOPPED, SANDBOX_ARCHIVED) or sandbox.failed:
        return Verdict(Step.DONE, f"it is {sandbox.state}")
    return Verdict(Step.WAIT, f"it is {sandbox.state}")


def gone_verdict(sandbox: Sandbox | None) -> Verdict:
    """Waiting after a delete: Daytona answers 404 (or shows `destroyed`) once it is gone."""
    if sandbox is None or sandbox.state == SANDBOX_DESTROYED:
        return Verdict(Step.DONE, "it is gone")
    if sandbox.state == SANDBOX_ERROR and sandbox.desired_state == SANDBOX_DESTROYED:
        reason = one_line(sandbox.error_reason) or "Daytona gave no reason"
        return Verdict(Step.FAIL, f"deleting it failed: {reason}")
    return Verdict(Step.WAIT, f"it is {sandbox.state}")


def settling(sandbox: Sandbox) -> bool:
    """A state change is under way: Daytona refuses another one until it ends."""
    return sandbox.desired_state is not None and sandbox.state != sandbox.desired_state


def pipeline_labels(
    extra: Mapping[str, str] | None = None, *, git_sha: str | None = None
) -> dict[str, str]:
    """The labels of a sandbox the pipeline makes; `created-by` always wins, so a cleanup can
    rely on it."""
    labels = dict(extra or {})
    if git_sha:
        labels.setdefault(GIT_SHA_LABEL, git_sha)
    labels.update(PIPELINE_LABELS)
    return labels


def new_sandbox_name(now: datetime, suffix: str, prefix: str = NAME_PREFIX) -> str:
    """`sbx-<YYYYMMDD-HHMMSS>-<suffix>` (UTC): unique per run, and sorts like creation time."""
    if now.tzinfo is None:
        raise ValueError("new_sandbox_name needs an aware datetime")
    return f"{prefix}-{now.astimezone(UTC).strftime('%Y%m%d-%H%M%S')}-{suffix}"


def create_failure_fix(message: str) -> str:
    """What to do when Daytona refused `POST /sandbox`, judged from its message."""
    text = message.lower()
    if "failed to start" in text:
        return start_failure_fix(message)
    if "snapshot" in text and "not found" in text:
        return (
            "check --snapshot / DAYTONA_SNAPSHOT_NAME (`nox -s snapshot_latest` prints the newest "
            "active snapshot of a stage)"
        )
    if "snapshot" in text and ("inactive" in text or " is " in text):
        return (
            "use an active snapshot: re-run `nox -s snapshot_daytona` for it (that reactivates "
            "an inactive one) or pick a newer one"
        )
    if "quota" in text or "exceeds maximum" in text or "limit" in text:
        return (
            "stop or delete sandboxes (`nox -s sandbox_daytona -- --cleanup --yes` removes the "
            "pipeline's), or raise the organization's limits"
        )
    return "correct the request and re-run"


def start_failure_fix(reason: str | None) -> str:
    """What to do about a sandbox that ended in `error` instead of `started`."""
    text = (reason or "").lower()
    if any(word in text for word in ("unauthorized", "denied", "authentication required")):
        return "let Daytona pull the snapshot's image: check its registry entry in the dashboard"
    if "manifest unknown" in text or "no such image" in text:
        return "the snapshot's image is gone from its registry: push it again or use a newer one"
    return (
        "the snapshot's image must start and keep running (its entrypoint must not exit); "
        "try it locally with `nox -s sandbox_up`"
    )


@dataclass(frozen=True)
class CleanupPlan:
    to_delete: tuple[Sandbox, ...]
    kept: tuple[Sandbox, ...]  # younger than the cut-off, or of unknown age
    older_than: timedelta

    def describe(self) -> list[str]:
        lines = [f"   delete {_label(s)}" for s in self.to_delete]
        young = f"younger than {_minutes(self.older_than)}"
        lines += [f"   keep   {_label(s)} ({young})" for s in self.kept]
        lines.append(f"   {len(self.to_delete)} to delete, {len(self.kept)} kept")
        return lines


def plan_cleanup(
    sandboxes: Iterable[Sandbox], *, now: datetime, older_than: timedelta
) -> CleanupPlan:
    """Which of the pipeline's sandboxes to delete: those at least `older_than` old.

    The server's label filter is checked again (never delete what lacks our label), and
    sandboxes already on their way out are left alone.
    """
    ours = [
        s
        for s in sandboxes
        if s.labels.get(CREATED_BY_LABEL) == CREATED_BY and s.state not in SANDBOX_GONE_STATES
    ]
    ours.sort(key=lambda s: (s.created_at or now, s.name))
    cut = now - older_than

    def old_enough(sandbox: Sandbox) -> bool:
        if older_than <= timedelta(0):
            return True
        # Unknown age: keep it; a running test's sandbox must not vanish under it.
        return sandbox.created_at is not None and sandbox.created_at <= cut

    return CleanupPlan(
        to_delete=tuple(s for s in ours if old_enough(s)),
        kept=tuple(s for s in ours if not old_enough(s)),
        older_than=older_than,
    )


def log_details(text: str, max_lines: int = DEFAULT_LOG_LINES) -> tuple[str, ...]:
    """The last lines of a log, for `PipelineError.details` (printed above the error line)."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    return tuple(lines[-max_lines:])


def _label(sandbox: Sandbox) -> str:
    created = sandbox.created_at.strftime("%Y-%m-%d %H:%M") if sandbox.created_at else "?"
    sha = sandbox.labels.get(GIT_SHA_LABEL)
    return (
        f"{sandbox.name} ({sandbox.state}, created {created}, snapshot {sandbox.snapshot or '?'}"
        + (f", git {sha[:12]}" if sha else "")
        + ")"
    )


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:g} min"


# --- talking to Daytona ----------------------------------------------------------------------


class NameTaken(DaytonaError):
    """Another sandbox has the name: it is not ours, so a failed launch must not remove it."""


def create_sandbox(client: DaytonaClient, request: CreateSandbox) -> Sandbox:
    """`POST /sandbox`, never blindly repeated.

    When the answer is lost (or a 5xx leaves it unknown whether it worked), the name is looked
    up first: found means it worked; absent means no sandbox was made, so posting again is safe.
    """
    posted_unknown = False
    for _ in range(MAX_CREATES):
        try:
            return client.create_sandbox(request)
        except OutcomeUnknown as unknown:
            console.warn(f"{unknown.cause}; looking the name up before trying again")
            found = client.get_sandbox(request.name)
            if found is not None:
                return found
            posted_unknown = True
        except CreateConflict as conflict:
            found = client.get_sandbox(request.name)
            # Our own earlier POST may have made it after all: adopt it only then.
            if posted_unknown and found is not None and _ours(found, request):
                return found
            raise NameTaken(
                f"a sandbox named {request.name} already exists ({conflict.cause})",
                f"pick another name, or remove it: nox -s sandbox_daytona -- --down {request.name}",
            ) from None
        except DaytonaAuthError:
            raise
        except DaytonaError as error:
            if error.fix:
                raise
            raise DaytonaError(error.cause, create_failure_fix(error.cause)) from None
    raise DaytonaError(
        f"sandbox {request.name} was still missing after {MAX_CREATES} create attempts",
        "check Daytona's status and re-run",
    )


def _ours(found: Sandbox, request: CreateSandbox) -> bool:
    return all(found.labels.get(k) == v for k, v in request.labels.items())


def wait_started(
    client: DaytonaClient,
    sandbox: Sandbox,
    *,
    timeout: float,
    deadline: float | None = None,
    poll: PollPolicy = SANDBOX_POLL,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> Sandbox:
    """Poll `GET /sandbox/{id}` until it is `started`; `error`/`build_failed` end the wait with
    Daytona's errorReason on one line, the deadline with DeadlineExceeded."""
    if start_verdict(sandbox).step is Step.DONE:
        return sandbox
    found = _wait(
        client,
        sandbox,
        start_verdict,
        deadline=clock() + timeout if deadline is None else deadline,
        timeout=timeout,
        poll=poll,
        clock=clock,
        sleep=sleep,
        failure_fix=lambda s: start_failure_fix(s.error_reason if s else None),
        late_fix=(
            f"Daytona may still start it; raise DAYTONA_SANDBOX_TIMEOUT (--timeout), or remove "
            f"it: nox -s sandbox_daytona -- --down {sandbox.name}"
        ),
    )
    assert found is not None  # start_verdict never accepts a missing sandbox
    return found


def stop_and_delete(
    client: DaytonaClient,
    id_or_name: str,
    *,
    timeout: float = DEFAULT_TEARDOWN_TIMEOUT,
    poll: PollPolicy = SANDBOX_POLL,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> bool:
    """Stop the sandbox (so its processes get SIGTERM), delete it, and wait until it is gone.

    False when there was no such sandbox. A stop that fails or hangs does not prevent the
    delete: removing it is what matters.
    """
    started = clock()
    deadline = started + timeout
    current = client.get_sandbox(id_or_name)
    if current is None:
        return False
    name, sandbox_id = current.name, current.id
    if current.state == SANDBOX_STARTED:
        console.say(f"   stopping sandbox {name}")
        try:
            client.stop_sandbox(sandbox_id)
            # Half the budget at most: the delete must still fit.
            current = _wait(
                client,
                current,
                stopped_verdict,
                deadline=min(deadline, clock() + timeout / 2),
                timeout=timeout / 2,
                poll=poll,
                clock=clock,
                sleep=sleep,
            )
        except DaytonaAuthError:
            raise
        except PipelineError as error:
            console.say(f"   {name}: the stop did not finish ({error.cause}); deleting anyway")
            current = client.get_sandbox(sandbox_id)
    if current is not None and current.state not in SANDBOX_GONE_STATES:
        console.say(f"   deleting sandbox {name}")
        _delete(client, current, deadline=deadline, poll=poll, clock=clock, sleep=sleep)
    if current is not None:
        _wait(
            client,
            current,
            gone_verdict,
            deadline=deadline,
            timeout=timeout,
            poll=poll,
            clock=clock,
            sleep=sleep,
            late_fix=f"re-run `nox -s sandbox_daytona -- --down {name}` later",
        )
    console.say(f"   sandbox {name} is gone ({clock() - started:.1f} s)")
    return True


def _delete(
    client: DaytonaClient,
    sandbox: Sandbox,
    *,
    deadline: float,
    poll: PollPolicy,
    clock: Clock,
    sleep: Sleep,
) -> None:
    """`DELETE`, waiting out a state change in progress (Daytona refuses deletes meanwhile)."""
    polls = 0
    while True:
        try:
            client.delete_sandbox(sandbox.id)
            return
        except DaytonaAuthError:
            raise
        except DaytonaError:
            now = client.get_sandbox(sandbox.id)
            if now is None or now.state in SANDBOX_GONE_STATES:
                return
            if not settling(now) or clock() >= deadline:
                raise
        polls += 1
        sleep(max(0.0, min(poll.interval(polls), deadline - clock())))


def launch_sandbox(
    client: DaytonaClient,
    request: CreateSandbox,
    *,
    timeout: float = DEFAULT_START_TIMEOUT,
    teardown_timeout: float = DEFAULT_TEARDOWN_TIMEOUT,
    poll: PollPolicy = SANDBOX_POLL,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> Sandbox:
    """Create the sandbox and wait for `started` within `timeout` s. If that fails, whatever
    was made under the name is removed before the error propagates: no half-started leftovers.
    """
    deadline = clock() + timeout
    try:
        created = create_sandbox(client, request)
        return wait_started(
            client, created, timeout=timeout, deadline=deadline, poll=poll, clock=clock, sleep=sleep
        )
    except BaseException as failure:
        # With a refused key nothing was made; with a taken name, what exists is not ours.
        if not isinstance(failure, DaytonaAuthError | NameTaken):
            _remove_after_failure(
                client, request.name, timeout=teardown_timeout, poll=poll, clock=clock, sleep=sleep
            )
        raise


def _remove_after_failure(
    client: DaytonaClient,
    name: str,
    *,
    timeout: float,
    poll: PollPolicy,
    clock: Clock,
    sleep: Sleep,
) -> None:
    try:
        if stop_and_delete(client, name, timeout=timeout, poll=poll, clock=clock, sleep=sleep):
            console.say(f"   removed sandbox {name} after the failure")
    except PipelineError as error:
        # The original failure matters more; say how to remove the leftover by hand.
        console.warn(
            f"could not remove sandbox {name}: {error.cause}; remove it with "
            f"`nox -s sandbox_daytona -- --down {name}`"
        )


def execute(
    client: DaytonaClient,
    sandbox: Sandbox,
    command: str,
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: int = DEFAULT_EXEC_TIMEOUT,
) -> ExecResult:
    """Run a shell command in a started sandbox (toolbox `process/execute`, as the SDK)."""
    base = sandbox.toolbox_proxy_url or client.toolbox_proxy_url(sandbox.id)
    return client.execute(base, sandbox.id, command, cwd=cwd, env=env, timeout=timeout)


def service_logs(
    client: DaytonaClient,
    sandbox: Sandbox,
    *,
    pattern: str = DEFAULT_LOG_GLOB,
    lines: int = DEFAULT_LOG_LINES,
    timeout: int = 15,
) -> str:
    """The last `lines` of each service log (`tail` prints a header per file), for failure
    messages. Never raises: a sandbox that cannot be asked yields a note saying why."""
    try:
        result = execute(client, sandbox, f"tail -n {lines} {pattern} 2>&1", timeout=timeout)
    except PipelineError as error:
        return f"(could not read the service logs of {sandbox.name}: {error.cause})"
    return result.result


@dataclass
class SandboxHandle:
    """A started sandbox and the client that reaches it; what `running_sandbox` yields."""

    client: DaytonaClient
    sandbox: Sandbox

    @property
    def id(self) -> str:
        return self.sandbox.id

    @property
    def name(self) -> str:
        return self.sandbox.name

    def exec(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: int = DEFAULT_EXEC_TIMEOUT,
    ) -> ExecResult:
        return execute(self.client, self.sandbox, command, cwd=cwd, env=env, timeout=timeout)

    def preview(self, port: int = DEFAULT_PORT) -> PortPreview:
        """URL and token of a port; send the token as `X-Daytona-Preview-Token`."""
        return self.client.preview_url(self.sandbox.id, port)

    def logs(self, *, pattern: str = DEFAULT_LOG_GLOB, lines: int = DEFAULT_LOG_LINES) -> str:
        return service_logs(self.client, self.sandbox, pattern=pattern, lines=lines)

    def refresh(self) -> Sandbox:
        found = self.client.get_sandbox(self.sandbox.id)
        if found is None:
            raise DaytonaError(f"sandbox {self.sandbox.name} is gone")
        self.sandbox = found
        return found


def preview_headers(preview: PortPreview) -> dict[str, str]:
    """Headers that open a private sandbox's preview URL (never log them)."""
    return {PREVIEW_TOKEN_HEADER: preview.token.get_secret_value()}


@contextmanager
def running_sandbox(
    client: DaytonaClient,
    *,
    snapshot: str,
    env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_START_TIMEOUT,
    name: str | None = None,
    public: bool = False,
    auto_stop_interval: int = DEFAULT_AUTO_STOP,
    auto_delete_interval: int = DEFAULT_AUTO_DELETE,
    teardown_timeout: float = DEFAULT_TEARDOWN_TIMEOUT,
    poll: PollPolicy = SANDBOX_POLL,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> Iterator[SandboxHandle]:
    """A started sandbox from `snapshot` for the `with` block; stopped and deleted (and waited
    for until gone) when the block ends, also when it raises or creation fails half-way.

    A teardown failure is raised only when the block itself succeeded; otherwise it is printed
    as a warning, so it never hides the block's own error.
    """
    request = CreateSandbox(
        snapshot=snapshot,
        name=name or new_sandbox_name(datetime.now(UTC), secrets.token_hex(3)),
        env=dict(env or {}),
        labels=pipeline_labels(labels),
        public=public,
        auto_stop_interval=auto_stop_interval,
        auto_delete_interval=auto_delete_interval,
    )
    sandbox = launch_sandbox(
        client,
        request,
        timeout=timeout,
        teardown_timeout=teardown_timeout,
        poll=poll,
        clock=clock,
        sleep=sleep,
    )
    failed = False
    try:
        yield SandboxHandle(client, sandbox)
    except BaseException:
        failed = True
        raise
    finally:
        try:
            stop_and_delete(
                client, sandbox.id, timeout=teardown_timeout, poll=poll, clock=clock, sleep=sleep
            )
        except PipelineError as error:
            if not failed:
                raise
            console.warn(
                f"could not remove sandbox {sandbox.name}: {error}; remove it with "
                f"`nox -s sandbox_daytona -- --down {sandbox.name}`"
            )


# --- polling -----------------------------------------------------------------------------------


def _wait(
    client: DaytonaClient,
    sandbox: Sandbox,
    verdict: Callable[[Sandbox | None], Verdict],
    *,
    deadline: float,
    timeout: float,
    poll: PollPolicy,
    clock: Clock,
    sleep: Sleep,
    failure_fix: Callable[[Sandbox | None], str] = lambda _: "",
    late_fix: str = "",
) -> Sandbox | None:
    """Read the sandbox until `verdict` says done (the reading) or fail (DaytonaError), with
    growing pauses that never sleep past the deadline (then DeadlineExceeded)."""
    state = sandbox.state
    started = clock()
    polls = 0
    while True:
        current = client.get_sandbox(sandbox.id)
        now_state = current.state if current else "gone"
        if now_state != state:
            console.say(f"   {sandbox.name}: {state} → {now_state} ({clock() - started:.0f} s)")
            state = now_state
        judged = verdict(current)
        if judged.step is Step.DONE:
            return current
        if judged.step is Step.FAIL:
            raise DaytonaError(f"sandbox {sandbox.name}: {judged.why}", failure_fix(current))
        now = clock()
        if now >= deadline:
            raise DeadlineExceeded(
                f"sandbox {sandbox.name} ({sandbox.id}) is still {state} after {timeout:g} s",
                late_fix,
            )
        polls += 1
        sleep(max(0.0, min(poll.interval(polls), deadline - now)))


__all__ = [
    "CREATED_BY",
    "CREATED_BY_LABEL",
    "GIT_SHA_LABEL",
    "PREVIEW_TOKEN_HEADER",
    "CleanupPlan",
    "NameTaken",
    "SandboxHandle",
    "Step",
    "Verdict",
    "create_failure_fix",
    "create_sandbox",
    "execute",
    "gone_verdict",
    "launch_sandbox",
    "log_details",
    "new_sandbox_name",
    "pipeline_labels",
    "plan_cleanup",
    "preview_headers",
    "running_sandbox",
    "service_logs",
    "settling",
    "start_failure_fix",
    "start_verdict",
    "stop_and_delete",
    "stopped_verdict",
    "wait_started",
]
