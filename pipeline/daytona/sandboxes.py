"""Daytona sandboxes: create from a snapshot, wait for started, stop, delete, wait until gone
(the rules are pipeline/rules/sandbox_rules.py's). `running_sandbox` starts one for a `with`
block and always removes it, also when the block raises or the start fails half-way.

Its sandboxes carry `created-by: sandbox-pipeline` (so `--cleanup` finds the leftovers of crashed
runs) and ask Daytona to stop them when idle and delete them once stopped, so even a leftover
that nobody cleans up goes away on its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from pipeline import console
from pipeline.daytona.client import DEFAULT_EXEC_TIMEOUT, DaytonaClient, StateChangeInProgress
from pipeline.daytona.transport import CreateConflict, NamedCreate
from pipeline.errors import DaytonaAuthError, DaytonaError, DeadlineExceeded, PipelineError
from pipeline.rules.daytona_models import (
    SANDBOX_GONE_STATES,
    SANDBOX_STARTED,
    CreateSandbox,
    ExecResult,
    PortPreview,
    Sandbox,
    state_of,
)
from pipeline.rules.sandbox_rules import (
    DEFAULT_AUTO_DELETE,
    DEFAULT_AUTO_STOP,
    DEFAULT_LOG_LINES,
    DEFAULT_PORT,
    PREVIEW_TOKEN_HEADER,
    create_failure_fix,
    gone_verdict,
    is_ours,
    new_sandbox_name,
    pipeline_labels,
    settling,
    start_failure_fix,
    start_verdict,
    stopped_verdict,
)
from pipeline.rules.snapshot_names import Action, Decision
from pipeline.waiting import Clock, Interval, PollTimeout, poll, watch

# Sandbox polls start faster than snapshot polls: a start takes seconds, not minutes.
SANDBOX_POLL: Final = Interval(first_s=0.5, factor=1.5, max_s=5.0)


@dataclass(frozen=True)
class SandboxWaits:
    """How long a sandbox may take to start and to go away, and how often it is read meanwhile.
    `clock` None: the client's (tests give both the same fake clock)."""

    start_s: float = 300.0
    teardown_s: float = 120.0
    interval: Interval = SANDBOX_POLL
    clock: Clock | None = None

    def clock_of(self, client: DaytonaClient) -> Clock:
        return self.clock or client.clock


DEFAULT_WAITS: Final = SandboxWaits()


class NameTaken(DaytonaError):
    """Another sandbox has the name: it is not ours, so a failed launch must not remove it."""


def create_sandbox(client: DaytonaClient, request: CreateSandbox) -> Sandbox:
    creating = NamedCreate(client, lambda: client.get_sandbox(request.name))
    try:
        return creating.send(lambda: client.create_sandbox(request))[0]
    except CreateConflict as conflict:
        found = client.get_sandbox(request.name)
        # Our own earlier POST may have made it after all: adopt it only then.
        if creating.unsure and found is not None and is_ours(found, request.labels):
            return found
        raise NameTaken(
            f"a sandbox named {request.name} already exists ({conflict.cause})",
            f"pick another name, or remove it: nox -s sandbox_daytona -- --down {request.name}",
        ) from None
    except DaytonaError as error:
        if error.fix or isinstance(error, DaytonaAuthError):
            raise
        raise DaytonaError(error.cause, create_failure_fix(error.cause)) from None


def wait_started(
    client: DaytonaClient,
    sandbox: Sandbox,
    waits: SandboxWaits = DEFAULT_WAITS,
    *,
    deadline: float | None = None,
) -> Sandbox:
    """Poll the sandbox until it is `started`; `error`/`build_failed` end the wait with
    Daytona's errorReason on one line, the deadline with DeadlineExceeded."""
    if start_verdict(sandbox).action is Action.DONE:
        return sandbox
    if deadline is None:
        deadline = waits.clock_of(client).monotonic() + waits.start_s
    late = (
        "Daytona may still start it; raise DAYTONA_SANDBOX_TIMEOUT (--timeout), or remove it: "
        f"nox -s sandbox_daytona -- --down {sandbox.name}"
    )
    found = _wait(
        client, sandbox, start_verdict, waits, deadline, waits.start_s, start_failure_fix, late
    )
    assert found is not None  # start_verdict never accepts a missing sandbox
    return found


def stop_and_delete(
    client: DaytonaClient, id_or_name: str, waits: SandboxWaits = DEFAULT_WAITS
) -> bool:
    """Stop the sandbox (so its processes get SIGTERM), delete it, and wait until it is gone,
    all within `waits.teardown_s`. False when there was no such sandbox. A stop that fails or
    hangs does not prevent the delete: removing it is what matters."""
    clock = waits.clock_of(client)
    timeout = waits.teardown_s
    started = clock.monotonic()
    deadline = started + timeout
    current = client.get_sandbox(id_or_name)
    if current is None:
        return False
    name = current.name
    if current.state == SANDBOX_STARTED:
        current = _stop(client, current, waits, min(deadline, clock.monotonic() + timeout / 2))
    if current is not None and current.state not in SANDBOX_GONE_STATES:
        console.say(f"   deleting sandbox {name}")
        _delete(client, current, waits, deadline)
    if current is not None:
        late_fix = f"re-run `nox -s sandbox_daytona -- --down {name}` later"
        _wait(client, current, gone_verdict, waits, deadline, timeout, late_fix=late_fix)
    console.say(f"   sandbox {name} is gone ({clock.monotonic() - started:.1f} s)")
    return True


def _stop(
    client: DaytonaClient, sandbox: Sandbox, waits: SandboxWaits, deadline: float
) -> Sandbox | None:
    """Stop and wait for it to settle, in half the teardown budget at most (the delete must
    still fit); what it is afterwards, whether or not the stop worked."""
    console.say(f"   stopping sandbox {sandbox.name}")
    try:
        client.stop_sandbox(sandbox.id)
        return _wait(client, sandbox, stopped_verdict, waits, deadline, waits.teardown_s / 2)
    except DaytonaAuthError:
        raise
    except PipelineError as error:
        console.say(f"   {sandbox.name}: the stop did not finish ({error.cause}); deleting anyway")
        return client.get_sandbox(sandbox.id)


def _delete(client: DaytonaClient, sandbox: Sandbox, waits: SandboxWaits, deadline: float) -> None:
    """`DELETE`, waiting out a state change in progress (Daytona refuses deletes meanwhile)."""

    def attempt() -> DaytonaError | None:
        """None once the delete went through (or it is gone), else Daytona's refusal."""
        try:
            client.delete_sandbox(sandbox.id)
        except DaytonaAuthError:
            raise
        except StateChangeInProgress as error:
            # Refused while the state changed; the change may have ended since (a stop that
            # finishes between the 409 and the read after it): delete again.
            return error
        except DaytonaError as error:
            now = client.get_sandbox(sandbox.id)
            if now is not None and now.state not in SANDBOX_GONE_STATES:
                if not settling(now):
                    raise
                return error
        return None

    clock = waits.clock_of(client)
    try:
        poll(
            attempt,
            lambda refusal: refusal is None,
            timeout_s=deadline - clock.monotonic(),
            interval=waits.interval,
            clock=clock,
        )
    except PollTimeout as late:
        raise late.last from None


def launch_sandbox(
    client: DaytonaClient, request: CreateSandbox, waits: SandboxWaits = DEFAULT_WAITS
) -> Sandbox:
    """Create the sandbox and wait for `started` within `waits.start_s`. If that fails, whatever
    was made under the name is removed before the error propagates: no half-started leftovers.
    """
    deadline = waits.clock_of(client).monotonic() + waits.start_s
    try:
        return wait_started(client, create_sandbox(client, request), waits, deadline=deadline)
    except BaseException as failure:
        # With a refused key nothing was made; with a taken name, what exists is not ours.
        if not isinstance(failure, DaytonaAuthError | NameTaken):
            _remove_leftover(client, request.name, waits)
        raise


def _remove_leftover(client: DaytonaClient, name: str, waits: SandboxWaits) -> None:
    """Remove a sandbox while another error is on its way: a failure here is only a warning
    that says how to remove it by hand, so it never hides the error that matters."""
    try:
        if stop_and_delete(client, name, waits):
            console.say(f"   removed sandbox {name} after the failure")
    except PipelineError as error:
        console.warn(
            f"could not remove sandbox {name}: {error.cause}; remove it with "
            f"`nox -s sandbox_daytona -- --down {name}`"
        )


def _wait(
    client: DaytonaClient,
    sandbox: Sandbox,
    verdict: Callable[[Sandbox | None], Decision],
    waits: SandboxWaits,
    deadline: float,
    timeout: float,
    failure_fix: Callable[[str | None], str] = lambda _: "",
    late_fix: str = "",
) -> Sandbox | None:
    try:
        found = watch(
            sandbox.name,
            lambda: client.get_sandbox(sandbox.id),
            lambda s: verdict(s).action is not Action.WAIT,
            state_of,
            state=sandbox.state,
            deadline=deadline,
            interval=waits.interval,
            clock=waits.clock_of(client),
        )
    except PollTimeout as late:
        raise DeadlineExceeded(
            f"sandbox {sandbox.name} ({sandbox.id}) is still {state_of(late.last)} after "
            f"{timeout:g} s",
            late_fix,
        ) from None
    judged = verdict(found)
    if judged.action is Action.FAIL:
        fix = failure_fix(found.error_reason if found else None)
        raise DaytonaError(f"sandbox {sandbox.name}: {judged.why}", fix)
    return found


@dataclass(frozen=True)
class SandboxSpec:
    """The sandbox `running_sandbox` starts. `env` values may be secrets: not in the repr."""

    snapshot: str
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    labels: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None  # None: sbx-<YYYYMMDD-HHMMSS>-<random>
    public: bool = False
    auto_stop_interval: int = DEFAULT_AUTO_STOP
    auto_delete_interval: int = DEFAULT_AUTO_DELETE
    git_sha: str | None = None  # for the `git-sha` label

    def request(self, now: datetime) -> CreateSandbox:
        return CreateSandbox(
            snapshot=self.snapshot,
            name=self.name or new_sandbox_name(now, secrets.token_hex(3)),
            env=dict(self.env),
            labels=pipeline_labels(self.labels, git_sha=self.git_sha),
            public=self.public,
            auto_stop_interval=self.auto_stop_interval,
            auto_delete_interval=self.auto_delete_interval,
        )


@dataclass
class SandboxHandle:
    client: DaytonaClient
    sandbox: Sandbox

    def exec(
        self,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: int = DEFAULT_EXEC_TIMEOUT,
    ) -> ExecResult:
        sandbox, client = self.sandbox, self.client
        base = sandbox.toolbox_proxy_url or client.toolbox_proxy_url(sandbox.id)
        return client.execute(base, sandbox.id, command, cwd=cwd, env=env, timeout=timeout)

    def preview(self, port: int = DEFAULT_PORT) -> PortPreview:
        return self.client.preview_url(self.sandbox.id, port)

    def logs(self, *, pattern: str = "/var/log/*/*.log", lines: int = DEFAULT_LOG_LINES) -> str:
        """The last `lines` of each service log (`tail` prints a header per file), for failure
        messages. Never raises: a sandbox that cannot be asked yields a note saying why."""
        try:
            return self.exec(f"tail -n {lines} {pattern} 2>&1", timeout=15).result
        except PipelineError as error:
            return f"(could not read the service logs of {self.sandbox.name}: {error.cause})"


def preview_headers(preview: PortPreview) -> dict[str, str]:
    """Headers that open a private sandbox's preview URL (never log them)."""
    return {PREVIEW_TOKEN_HEADER: preview.token.get_secret_value()}


@contextmanager
def running_sandbox(
    client: DaytonaClient, spec: SandboxSpec, waits: SandboxWaits = DEFAULT_WAITS
) -> Iterator[SandboxHandle]:
    """A started sandbox from `spec` for the `with` block, stopped and deleted (and waited for
    until gone) when it ends. A teardown failure is raised only when the block succeeded;
    otherwise it is a warning, so it never hides the block's own error."""
    sandbox = launch_sandbox(client, spec.request(datetime.now(UTC)), waits)
    try:
        yield SandboxHandle(client, sandbox)
    except BaseException:
        _remove_leftover(client, sandbox.name, waits)
        raise
    stop_and_delete(client, sandbox.id, waits)
