"""Make a snapshot exist and be active: resolve, create, activate, replace, and wait.

Each loop turn reads the snapshot by name and lets `snapshot_names.decide` choose the next step,
so a concurrent run, a lost response or a snapshot deleted behind our back all end up in a known
state instead of a blind retry. Every wait shares one deadline. A create whose outcome is unknown
(5xx, or the answer lost) is never sent again before the name was looked up; when it had not
landed, the next create waits as `RetryPolicy` says (backoff with jitter, Retry-After honoured,
within DAYTONA_RETRY_TIMEOUT), so a Daytona blip does not fail a release.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from pipeline import console
from pipeline.daytona.client import CreateConflict, DaytonaClient, OutcomeUnknown
from pipeline.daytona.retry import Backoff, gave_up
from pipeline.daytona.waiting import PollPolicy, Watch, wait_for
from pipeline.errors import DaytonaAuthError, DaytonaError, DeadlineExceeded
from pipeline.rules.daytona_models import ACTIVE, FAILED_STATES, INACTIVE, REMOVING, Snapshot
from pipeline.rules.snapshot_names import (
    Action,
    Decision,
    SnapshotSpec,
    decide,
    failed_error,
    failure_fix,
)
from pipeline.waiting import Clock

# A wait for a snapshot ends when it is in one of these (None: it is gone).
_SETTLED = frozenset({ACTIVE, INACTIVE, REMOVING}) | FAILED_STATES
# Creates that landed (an answer, or a 409) and whose snapshot then vanished: give up after this.
MAX_CREATES: Final = 3


@dataclass(frozen=True)
class Outcome:
    snapshot: Snapshot
    # created | replaced | activated | existing (was active) | waited (found it being made)
    action: str
    duration_s: float


def ensure_snapshot(
    client: DaytonaClient,
    spec: SnapshotSpec,
    *,
    timeout: float,
    force: bool = False,
    check_image: Callable[[], None] = lambda: None,
    poll: PollPolicy | None = None,
    clock: Clock | None = None,
) -> Outcome:
    """An active snapshot named `spec.name` of `spec.image`, made if needed, within `timeout` s.

    `check_image` runs once, before the first create or delete, so that a missing image fails
    fast instead of as a snapshot in `error` minutes later. The clock defaults to the client's.
    """
    run = _Ensure(client, spec, timeout, force, check_image, poll or PollPolicy(), clock)
    return run.loop()


class _Ensure:
    def __init__(
        self,
        client: DaytonaClient,
        spec: SnapshotSpec,
        timeout: float,
        force: bool,
        check_image: Callable[[], None],
        poll: PollPolicy,
        clock: Clock | None,
    ) -> None:
        self.client, self.spec, self.timeout, self.force = client, spec, timeout, force
        self.check_image, self.poll = check_image, poll
        self.clock = clock or client.clock
        self.started = self.clock.monotonic()
        self.deadline = self.started + timeout
        self.action = "existing"
        self.image_checked = self.replaced = False
        self.landed = 0  # creates that got an answer
        self.unknown: OutcomeUnknown | None = None  # the last create, if it may not have landed
        self.backoff: Backoff | None = None

    def loop(self) -> Outcome:
        while True:
            if self.clock.monotonic() >= self.deadline:
                raise _deadline(self.spec.name, "not active yet", self.timeout)
            current = self.client.get_snapshot(self.spec.name)
            decision = decide(
                current,
                image=self.spec.image,
                force=self.force and not self.replaced,
                resources=self.spec.resources,
            )
            if decision.action is not Action.CREATE:
                console.say(f"   {self.spec.name}: {decision.why}")
            if decision.action is Action.DONE and current is not None:
                return self._outcome(current)
            waiting_for = self._act(decision, current)
            if waiting_for is None:
                continue
            final = self._settle(waiting_for)
            if final is not None:
                return final

    def _act(self, decision: Decision, current: Snapshot | None) -> Snapshot | None:
        """Take the step `decision` names; the snapshot to wait for, or None to look again."""
        if decision.action is Action.FAIL:
            fix = failure_fix(current.error_reason) if current and current.failed else ""
            raise DaytonaError(f"snapshot {self.spec.name}: {decision.why}", fix)
        if decision.action is Action.CREATE:
            return self._create()
        assert current is not None  # every other action is about an existing snapshot
        if decision.action is Action.WAIT:
            if self.action == "existing":
                self.action = "waited"
            return current
        if decision.action is Action.ACTIVATE:
            return self._activate(current)
        if decision.action is Action.REPLACE:
            self._ensure_image()  # never delete what we could not re-create
            console.say(f"   deleting {current.name} ({current.id})")
            self.client.delete_snapshot(current.id)
            self.replaced = True
        self._wait_gone(current)  # WAIT_GONE, and the second half of REPLACE
        return None

    def _create(self) -> Snapshot | None:
        self._ensure_image()
        if self.unknown is not None:
            # The last create may have failed before landing (the name is still free): try
            # again after a pause, as long as the retry budget lasts.
            self.backoff = self.backoff or Backoff(self.client.retry, self.clock)
            if not self.backoff.wait(self.unknown.retry_after):
                raise gave_up(self.unknown, self.backoff)
        if self.landed >= MAX_CREATES:
            raise DaytonaError(
                f"snapshot {self.spec.name} was still missing after {MAX_CREATES} create attempts",
                "check Daytona's status and re-run",
            )
        console.say(f"   creating {self.spec.name} from {self.spec.image}")
        made = "replaced" if self.replaced else "created"
        try:
            created = self.client.create_snapshot(self.spec.request())
        except OutcomeUnknown as unknown:
            # The POST may have worked: read the name again before any new POST. If it did,
            # this run made the snapshot, whatever the look-up finds it doing.
            console.warn(f"{unknown.cause}; looking the name up before trying again")
            self.unknown, self.action = unknown, made
            return None
        except CreateConflict:
            console.say(f"   {self.spec.name}: another run created it first; waiting for that one")
            self._conflict()
            return None
        except DaytonaAuthError:
            raise
        except DaytonaError:
            # Daytona checks quota and validation before duplicates, so a run that lost the
            # race can get a 400 instead of a 409: if the name exists now, wait for it.
            if self.client.get_snapshot(self.spec.name) is None:
                raise
            console.say(f"   {self.spec.name}: another run created it meanwhile; waiting for it")
            self._conflict()
            return None
        self.landed += 1
        self.unknown, self.action = None, made
        return created

    def _conflict(self) -> None:
        self.landed += 1
        if self.unknown is None:  # else our own earlier create may be the one that exists
            self.action = "waited"

    def _activate(self, current: Snapshot) -> Snapshot | None:
        try:
            activated = self.client.activate_snapshot(current.id)
        except OutcomeUnknown as unknown:
            console.warn(f"{unknown.cause}; reading the snapshot again")
            return None
        except DaytonaAuthError:
            raise
        except DaytonaError:
            # 400 "already active" / "in pending state": a concurrent run activated it.
            now = self.client.get_snapshot(self.spec.name)
            if now is not None and now.state == INACTIVE:
                raise
            self.action = "waited"
            return None
        self.action = "activated"
        return activated

    def _settle(self, snapshot: Snapshot) -> Outcome | None:
        """Wait for `snapshot` to settle: the outcome when active, None to decide again."""
        final = wait_settled(self.client, snapshot, self._watch(snapshot), self.timeout)
        if final is None:
            console.warn(f"{self.spec.name} disappeared while we waited; looking again")
            return None
        if final.failed:
            raise failed_error(final)
        if final.state == ACTIVE:
            return self._outcome(final)
        return None  # inactive or removing while we waited: decide again from what it is now

    def _wait_gone(self, snapshot: Snapshot) -> None:
        wait_gone(self.client, snapshot, self._watch(snapshot), self.timeout)

    def _watch(self, snapshot: Snapshot) -> Watch:
        return Watch(snapshot.name, snapshot.state, self.deadline, self.clock, self.poll)

    def _ensure_image(self) -> None:
        if not self.image_checked:
            self.check_image()
            self.image_checked = True

    def _outcome(self, snapshot: Snapshot) -> Outcome:
        return Outcome(snapshot, self.action, self.clock.monotonic() - self.started)


def wait_settled(
    client: DaytonaClient, snapshot: Snapshot, watch: Watch, timeout: float
) -> Snapshot | None:
    """Poll until the snapshot is active, failed, inactive or removing (None: it is gone)."""
    return wait_for(
        watch,
        lambda: client.get_snapshot(snapshot.id),
        lambda s: s is None or s.state in _SETTLED,
        lambda s: s.state,
        lambda state: _deadline(snapshot.name, f"still {state}", timeout),
    )


def wait_gone(client: DaytonaClient, snapshot: Snapshot, watch: Watch, timeout: float) -> None:
    """Poll until reading the snapshot gives 404: until then Daytona keeps its name reserved."""
    wait_for(
        watch,
        lambda: client.get_snapshot(snapshot.id),
        lambda s: s is None,
        lambda s: s.state,
        lambda state: _deadline(snapshot.name, f"still {state}, not gone", timeout),
    )


def _deadline(name: str, what: str, timeout: float) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"snapshot {name} is {what} after {timeout:g} s",
        "Daytona keeps working on it; re-run later to pick it up, or raise "
        "DAYTONA_SNAPSHOT_TIMEOUT",
    )


__all__ = [
    "Outcome",
    "PollPolicy",
    "SnapshotSpec",
    "ensure_snapshot",
    "failed_error",
    "failure_fix",
    "wait_gone",
    "wait_settled",
]
