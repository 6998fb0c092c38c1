"""Make a snapshot exist and be active: resolve, create, activate, replace, and wait.

Each loop turn reads the snapshot by name and lets `naming.decide` choose the next step, so a
concurrent run, a lost response or a snapshot deleted behind our back all end up in a known
state instead of a blind retry. Every wait shares one deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import stamina

from pipeline import console
from pipeline.adapters.daytona.client import (
    CreateConflict,
    DaytonaClient,
    OutcomeUnknown,
    QuietRetry,
)
from pipeline.errors import DaytonaAuthError, DaytonaError, DeadlineExceeded
from pipeline.rules.daytona_models import (
    ACTIVE,
    FAILED_STATES,
    INACTIVE,
    REMOVING,
    CreateSnapshot,
    Snapshot,
)
from pipeline.rules.snapshot_names import Action, decide, one_line

Clock = Callable[[], float]
T = TypeVar("T")
# A wait for a snapshot ends when it is in one of these (None: it is gone).
_SETTLED = frozenset({ACTIVE, INACTIVE, REMOVING}) | FAILED_STATES


@dataclass(frozen=True)
class PollPolicy:
    """How often to read a snapshot while waiting: 1 s, growing to 10 s (Daytona's own cron
    re-checks every 10 s, so polling faster than that late in a wait buys nothing)."""

    initial: float = 1.0
    factor: float = 1.5
    maximum: float = 10.0
    heartbeat: float = 60.0  # repeat an unchanged state this often, so CI logs show life

    def interval(self, polls: int) -> float:
        return min(self.maximum, self.initial * self.factor ** max(0, polls - 1))


@dataclass(frozen=True)
class SnapshotSpec:
    name: str
    image: str
    cpu: int
    memory: int
    disk: int
    entrypoint: tuple[str, ...] | None = None

    def request(self) -> CreateSnapshot:
        return CreateSnapshot(
            name=self.name,
            image_name=self.image,
            cpu=self.cpu,
            memory=self.memory,
            disk=self.disk,
            entrypoint=list(self.entrypoint) if self.entrypoint else None,
        )

    def describe(self) -> list[str]:
        return [
            f"name:       {self.name}",
            f"image:      {self.image}",
            f"resources:  {self.cpu} vCPU, {self.memory} GB memory, {self.disk} GB disk",
            f"entrypoint: {' '.join(self.entrypoint) if self.entrypoint else '(the image’s)'}",
        ]


@dataclass(frozen=True)
class Outcome:
    snapshot: Snapshot
    # created | replaced | activated | existing (was active) | waited (found it being made)
    action: str
    duration_s: float


def failure_fix(reason: str | None) -> str:
    """What to do about a snapshot that ended in error, judged from Daytona's errorReason."""
    text = (reason or "").lower()
    then = "then re-run with --force to replace the failed snapshot"
    if any(word in text for word in ("unauthorized", "denied", "authentication required")):
        return (
            "let Daytona pull the image: add a registry entry for its registry (Daytona dashboard "
            f"→ Registries) with a token that can read it, {then}"
        )
    if "manifest unknown" in text or "not found" in text:
        return f"push the image first (nox -s snapshot_push), {then}"
    if "exceeds maximum" in text or "quota" in text:
        return f"shrink the image or lower SANDBOX_SNAPSHOT_CPU/_MEMORY/_DISK, {then}"
    return f"fix the cause, {then}"


def failed_error(snapshot: Snapshot) -> DaytonaError:
    reason = one_line(snapshot.error_reason) or "Daytona gave no reason"
    return DaytonaError(
        f"snapshot {snapshot.name} is in state {snapshot.state}: {reason}",
        failure_fix(snapshot.error_reason),
    )


def ensure_snapshot(
    client: DaytonaClient,
    spec: SnapshotSpec,
    *,
    timeout: float,
    force: bool = False,
    check_image: Callable[[], None] = lambda: None,
    poll: PollPolicy | None = None,
    clock: Clock = time.monotonic,
    max_creates: int = 3,
) -> Outcome:
    """An active snapshot named `spec.name` of `spec.image`, made if needed, within `timeout` s.

    `check_image` runs once, before the first create or delete, so that a missing image fails
    fast instead of as a snapshot in `error` minutes later.
    """
    poll = poll or PollPolicy()
    started = clock()
    deadline = started + timeout
    action = "existing"
    image_checked = replaced = False
    creates = 0

    def ensure_image() -> None:
        nonlocal image_checked
        if not image_checked:
            check_image()
            image_checked = True

    while True:
        if clock() >= deadline:
            raise _deadline(spec.name, "not active yet", timeout)
        current = client.get_snapshot(spec.name)
        decision = decide(current, image=spec.image, force=force and not replaced)
        if decision.action is not Action.CREATE:
            console.say(f"   {spec.name}: {decision.why}")
        waiting_for: Snapshot | None = None
        if decision.action is Action.DONE and current is not None:
            return Outcome(current, action, clock() - started)
        if decision.action is Action.FAIL:
            fix = failure_fix(current.error_reason) if current and current.failed else ""
            raise DaytonaError(f"snapshot {spec.name}: {decision.why}", fix)
        if decision.action is Action.CREATE:
            ensure_image()
            creates += 1
            if creates > max_creates:
                raise DaytonaError(
                    f"snapshot {spec.name} was still missing after {max_creates} create attempts",
                    "check Daytona's status and re-run",
                )
            console.say(f"   creating {spec.name} from {spec.image}")
            try:
                waiting_for = client.create_snapshot(spec.request())
                action = "replaced" if replaced else "created"
            except CreateConflict:
                console.say(f"   {spec.name}: another run created it first; waiting for that one")
                action = "waited"
                continue
            except OutcomeUnknown as unknown:
                # The POST may have worked: read the name again before any new POST.
                console.warn(f"{unknown.cause}; looking the name up before trying again")
                continue
            except DaytonaAuthError:
                raise
            except DaytonaError:
                # Daytona checks quota and validation before duplicates, so a run that lost the
                # race can get a 400 instead of a 409: if the name exists now, wait for it.
                if client.get_snapshot(spec.name) is None:
                    raise
                console.say(f"   {spec.name}: another run created it meanwhile; waiting for it")
                action = "waited"
                continue
        elif decision.action is Action.WAIT:
            waiting_for = current
            if action == "existing":
                action = "waited"
        elif decision.action is Action.ACTIVATE and current is not None:
            try:
                waiting_for = client.activate_snapshot(current.id)
                action = "activated"
            except OutcomeUnknown as unknown:
                console.warn(f"{unknown.cause}; reading the snapshot again")
                continue
            except DaytonaAuthError:
                raise
            except DaytonaError:
                # 400 "already active" / "in pending state": a concurrent run activated it.
                now = client.get_snapshot(spec.name)
                if now is not None and now.state == INACTIVE:
                    raise
                action = "waited"
                continue
        elif decision.action is Action.WAIT_GONE and current is not None:
            wait_gone(client, current, deadline=deadline, timeout=timeout, poll=poll, clock=clock)
            continue
        elif decision.action is Action.REPLACE and current is not None:
            ensure_image()  # never delete what we could not re-create
            console.say(f"   deleting {current.name} ({current.id})")
            client.delete_snapshot(current.id)
            wait_gone(client, current, deadline=deadline, timeout=timeout, poll=poll, clock=clock)
            replaced = True
            continue
        if waiting_for is None:  # pragma: no cover - every action above sets it or continues
            continue
        final = wait_settled(
            client, waiting_for, deadline=deadline, timeout=timeout, poll=poll, clock=clock
        )
        if final is None:
            console.warn(f"{spec.name} disappeared while we waited; looking again")
            continue
        if final.failed:
            raise failed_error(final)
        if final.state == ACTIVE:
            return Outcome(final, action, clock() - started)
        # inactive or removing while we waited: decide again from what it is now.


def wait_settled(
    client: DaytonaClient,
    snapshot: Snapshot,
    *,
    deadline: float,
    timeout: float,
    poll: PollPolicy,
    clock: Clock = time.monotonic,
) -> Snapshot | None:
    """Poll until the snapshot is active, failed, inactive or removing (None: it is gone)."""
    progress = _Progress(snapshot.name, snapshot.state, clock, poll.heartbeat)
    return _poll(
        lambda: client.get_snapshot(snapshot.id),
        lambda s: s is None or s.state in _SETTLED,
        lambda s: progress.show(s.state if s else "gone"),
        lambda: _deadline(snapshot.name, f"still {progress.state}", timeout),
        deadline=deadline,
        poll=poll,
        clock=clock,
    )


def wait_gone(
    client: DaytonaClient,
    snapshot: Snapshot,
    *,
    deadline: float,
    timeout: float,
    poll: PollPolicy,
    clock: Clock = time.monotonic,
) -> None:
    """Poll until reading the snapshot gives 404: until then Daytona keeps its name reserved."""
    progress = _Progress(snapshot.name, snapshot.state, clock, poll.heartbeat)
    _poll(
        lambda: client.get_snapshot(snapshot.id),
        lambda s: s is None,
        lambda s: progress.show(s.state if s else "gone"),
        lambda: _deadline(snapshot.name, f"still {progress.state}, not gone", timeout),
        deadline=deadline,
        poll=poll,
        clock=clock,
    )


class _NotYet(QuietRetry):
    """A signal to stamina: read again later. Caught in `_poll`."""

    def __init__(self, polls: int) -> None:
        super().__init__(f"not settled after {polls} polls")
        self.polls = polls


def _poll(
    fetch: Callable[[], T],
    finished: Callable[[T], bool],
    on_reading: Callable[[T], None],
    late: Callable[[], DeadlineExceeded],
    *,
    deadline: float,
    poll: PollPolicy,
    clock: Clock,
) -> T:
    """Read until `finished`, with growing pauses that never sleep past the deadline."""

    def backoff(error: Exception) -> bool | float:
        if not isinstance(error, _NotYet):
            return False
        return max(0.0, min(poll.interval(error.polls), deadline - clock()))

    polls = 0
    try:
        for attempt in stamina.retry_context(
            on=backoff, attempts=None, timeout=None, wait_jitter=0
        ):
            with attempt:
                reading = fetch()
                on_reading(reading)
                if finished(reading):
                    return reading
                if clock() >= deadline:
                    raise late()
                polls += 1
                raise _NotYet(polls)
    except _NotYet:  # stamina deactivated (stamina.set_active(False)): one reading only
        raise late() from None
    raise AssertionError("stamina yields at least one attempt")  # pragma: no cover


class _Progress:
    """Prints a state when it changes, and again every `heartbeat` s while it does not."""

    def __init__(self, name: str, state: str, clock: Clock, heartbeat: float) -> None:
        self.name, self.state, self._clock, self._heartbeat = name, state, clock, heartbeat
        self._started = self._last_print = clock()

    def show(self, state: str) -> None:
        now = self._clock()
        elapsed = now - self._started
        if state != self.state:
            console.say(f"   {self.name}: {self.state} → {state} ({elapsed:.0f} s)")
            self.state, self._last_print = state, now
        elif now - self._last_print >= self._heartbeat:
            console.say(f"   {self.name}: still {state} ({elapsed:.0f} s)")
            self._last_print = now


def _deadline(name: str, what: str, timeout: float) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"snapshot {name} is {what} after {timeout:g} s",
        "Daytona keeps working on it; re-run later to pick it up, or raise "
        "DAYTONA_SNAPSHOT_TIMEOUT",
    )
