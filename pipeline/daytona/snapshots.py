"""Make a snapshot exist and be active: resolve, create, activate, replace, and wait.

Each loop turn reads the snapshot by name and lets `snapshot_names.decide` choose the next step,
so a concurrent run, a lost response or a snapshot deleted behind our back all end up in a known
state instead of a blind retry. Every wait shares one deadline. Creates go through NamedCreate
(never sent again before the name was looked up, then only after a pause as the client's
RetryPolicy says), so a Daytona blip does not fail a release.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Final

from pipeline import console
from pipeline.daytona.client import DaytonaClient
from pipeline.daytona.transport import CreateConflict, NamedCreate, OutcomeUnknown, RetriesSpent
from pipeline.errors import DaytonaAuthError, DaytonaError, DeadlineExceeded
from pipeline.rules.daytona_models import (
    ACTIVE,
    FAILED_STATES,
    INACTIVE,
    REMOVING,
    Snapshot,
    state_of,
)
from pipeline.rules.snapshot_names import (
    Action,
    Decision,
    SnapshotSpec,
    decide,
    failure_fix,
    pulled_problem,
    reason,
)
from pipeline.waiting import Clock, Interval, PollTimeout, watch

# Read at 1 s, growing to 10 s: Daytona's own cron re-checks every 10 s, so polling faster than
# that late in a wait buys nothing.
SNAPSHOT_POLL: Final = Interval(first_s=1.0, factor=1.5, max_s=10.0)
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
    interval: Interval = SNAPSHOT_POLL,
    clock: Clock | None = None,
) -> Outcome:
    """An active snapshot named `spec.name` of `spec.image`, made if needed, within `timeout` s;
    with `spec.digest`, one that Daytona says (`ref`) it pulled as that digest. `check_image` runs
    once, before the first create or delete, so that a missing image fails fast instead of as a
    snapshot in `error` minutes later. The clock defaults to the client's."""
    once = cache(check_image)
    return _Ensure(client, spec, timeout, force, once, interval, clock or client.clock).loop()


@dataclass
class _Ensure:
    client: DaytonaClient
    spec: SnapshotSpec
    timeout: float
    force: bool
    check_image: Callable[[], None]
    interval: Interval
    clock: Clock
    action: str = "existing"
    replaced: bool = False
    landed: int = 0  # creates that landed (an answer, a 409, or found after a lost answer)

    def __post_init__(self) -> None:
        self.started = self.clock.monotonic()
        self.deadline = self.started + self.timeout
        self.creating = NamedCreate(self.client, lambda: self.client.get_snapshot(self.spec.name))

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
                digest=self.spec.digest,
            )
            if decision.action is not Action.CREATE:
                console.say(f"   {self.spec.name}: {decision.why}")
            if decision.action is Action.DONE and current is not None:
                return self._outcome(current)
            waiting_for = self._act(decision, current)
            if waiting_for is not None and (final := self._settle(waiting_for)) is not None:
                return final

    def _act(self, decision: Decision, current: Snapshot | None) -> Snapshot | None:
        """The snapshot to wait for, or None to look again."""
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
            self.check_image()  # never delete what we could not re-create
            console.say(f"   deleting {current.name} ({current.id})")
            self.client.delete_snapshot(current.id)
            self.replaced = True
        # WAIT_GONE, and the second half of REPLACE: until then Daytona keeps the name reserved.
        self._wait(current, lambda s: s is None, "still {}, not gone")
        return None

    def _create(self) -> Snapshot | None:
        """POST it (never blindly repeated: NamedCreate): the one to wait for, or None to look
        again."""
        self.check_image()
        if self.landed >= MAX_CREATES:
            raise DaytonaError(
                f"snapshot {self.spec.name} was still missing after {MAX_CREATES} create attempts",
                "check Daytona's status and re-run",
            )
        console.say(f"   creating {self.spec.name} from {self.spec.image}")
        self.landed += 1  # if it raises, the whole ensure ends: the count no longer matters
        try:
            created, answered = self.creating.send(lambda: self.client.create_snapshot(self.spec))
        except CreateConflict:
            console.say(f"   {self.spec.name}: another run created it first; waiting for that one")
        except (DaytonaAuthError, RetriesSpent):
            raise
        except DaytonaError:
            # Daytona checks quota and validation before duplicates, so a run that lost the
            # race can get a 400 instead of a 409: if the name exists now, wait for it.
            if self.client.get_snapshot(self.spec.name) is None:
                raise
            console.say(f"   {self.spec.name}: another run created it meanwhile; waiting for it")
        else:
            self.creating.unsure = False
            self.action = "replaced" if self.replaced else "created"
            return created if answered else None  # found after a lost answer: decide again
        if not self.creating.unsure:  # else our own earlier create may be the one that exists
            self.action = "waited"
        return None

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
        final = self._wait(snapshot, lambda s: s is None or s.state in _SETTLED, "still {}")
        if final is None:
            console.warn(f"{self.spec.name} disappeared while we waited; looking again")
            return None
        if final.failed:
            raise DaytonaError(
                f"snapshot {final.name} is in state {final.state}: {reason(final)}",
                failure_fix(final.error_reason),
            )
        if final.state == ACTIVE:
            if problem := pulled_problem(final, self.spec.digest):
                # The tag was verified right before the POST; Daytona inspected it later.
                raise DaytonaError(
                    f"snapshot {final.name} is active, but {problem}",
                    "the tag moved between the check and Daytona's pull: find out who pushed it, "
                    "then re-run with --force to replace the snapshot",
                )
            return self._outcome(final)
        return None  # inactive or removing while we waited: decide again from what it is now

    def _wait(
        self, snapshot: Snapshot, done: Callable[[Snapshot | None], bool], late: str
    ) -> Snapshot | None:
        try:
            return watch(
                snapshot.name,
                lambda: self.client.get_snapshot(snapshot.id),
                done,
                state_of,
                state=snapshot.state,
                deadline=self.deadline,
                interval=self.interval,
                clock=self.clock,
            )
        except PollTimeout as timeout:
            what = late.format(state_of(timeout.last))
            raise _deadline(snapshot.name, what, self.timeout) from None

    def _outcome(self, snapshot: Snapshot) -> Outcome:
        return Outcome(snapshot, self.action, self.clock.monotonic() - self.started)


def _deadline(name: str, what: str, timeout: float) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"snapshot {name} is {what} after {timeout:g} s",
        "Daytona keeps working on it; re-run later to pick it up, or raise "
        "DAYTONA_SNAPSHOT_TIMEOUT",
    )
