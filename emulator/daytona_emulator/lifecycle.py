"""What happens as time passes (spec §7), checked by a background task against the clock.

Snapshots:
pending --(dwell; registry inspect OK)--> pulling --(dwell)--> active
pending --(dwell; registry says no)-----> error
pending --(dwell)--> building --(dwell)--> active            (buildInfo snapshots)
removing --(removal delay)--> row gone

Sandboxes: a destroyed one goes once its container is removed and the destroy dwell is over; a
started one idle for `autoStopInterval` minutes is stopped; a stopped one is deleted
`autoDeleteInterval` minutes later (when positive). Archiving is not emulated.

Transitions depend only on the clock and scripted outcomes, never on how often clients poll.
With a manual clock, `advance` walks through every due time up to the target in order and waits
for the work each transition starts (a registry probe, a container stop), so the state a test
reads after advancing is the state that much time would have produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from daytona_emulator.clock import Clock, ManualClock
from daytona_emulator.docker_reference import ReferenceError
from daytona_emulator.models import INTERNAL_REGISTRY, Snapshot, SnapshotState
from daytona_emulator.pull_source import UNREADABLE_NAME
from daytona_emulator.registry_probe import PullError, inspect_image
from daytona_emulator.sandbox_models import SandboxRow, SandboxState

if TYPE_CHECKING:
    from daytona_emulator.state import EmulatorState

# How often the background task looks; what it compares against comes from the clock.
TICK_SECONDS = 0.02
# Real-time bound on waiting for the work one transition started (probes, container stops).
SETTLE_TIMEOUT_SECONDS = 120.0
GIB = 1024**3
log = logging.getLogger(__name__)


def set_state(
    row: Snapshot, state: SnapshotState, error_reason: str | None = None, *, clock: Clock
) -> None:
    """Every state change goes through here, so dwell clocks and stale probes stay right."""
    row.state = state
    row.error_reason = error_reason
    row.updated_at = clock.now()
    row.state_since = clock.monotonic()
    row.generation += 1
    row.busy = False


class Lifecycle:
    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._probes: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    self.step()
                except Exception:  # one bad row must not stop every other snapshot
                    log.exception("lifecycle step failed")
                await asyncio.sleep(TICK_SECONDS)
        finally:
            for task in list(self._probes):
                task.cancel()
            for task in list(self._probes):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # Driving a manual clock

    async def advance(self, clock: ManualClock, seconds: float) -> None:
        target = clock.monotonic() + seconds
        await self.settle()
        while (due := self.next_due()) is not None and due <= target:
            clock.move_to(due)
            await self.settle()
        clock.move_to(target)
        await self.settle()

    async def settle(self) -> None:
        """Apply what is due now and wait for the work it starts, until nothing changes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT_SECONDS
        while True:
            changed = self.step()
            in_flight = self._probes | self._state.sandbox_lifecycle.in_flight()
            if in_flight and loop.time() < deadline:
                await asyncio.wait(in_flight, timeout=deadline - loop.time())
                continue
            if not changed:
                return

    def next_due(self) -> float | None:
        """The earliest moment after now at which the clock alone would change something."""
        now = self._state.clock.monotonic()
        with self._state.snapshots.lock:
            dues = [
                due for row in self._state.snapshots.rows() if (due := self._due(row)) is not None
            ]
        dues += [
            due
            for row in self._state.sandboxes.rows()
            if (due := self._sandbox_due(row)) is not None
        ]
        later = [due for due in dues if due > now]
        return min(later) if later else None

    # One pass

    def step(self) -> bool:
        """Apply every transition due at the clock's current time; whether any happened."""
        now = self._state.clock.monotonic()
        return self._step_snapshots(now) | self._step_sandboxes(now)

    def _due(self, row: Snapshot) -> float | None:
        dwell = self._dwell(row)
        return None if dwell is None else row.state_since + dwell

    def _dwell(self, row: Snapshot) -> float | None:
        """How long `row` stays in its state before the machine acts; None while it waits on
        something else (a registry probe, a scripted hang) or has nowhere to go."""
        timings = self._state.knobs.timings
        outcome = self._state.knobs.outcome_for(row.name)
        stuck = outcome.outcome if outcome is not None else None
        if row.state == SnapshotState.REMOVING:
            return timings.removal_seconds
        if row.state == SnapshotState.PENDING and not row.busy and stuck != "stuck_pending":
            return timings.pending_seconds
        if stuck == "stuck_pulling":
            return None
        if row.state == SnapshotState.PULLING:
            return timings.pulling_seconds
        if row.state == SnapshotState.BUILDING:
            return timings.building_seconds
        return None

    def _step_snapshots(self, now: float) -> bool:
        store = self._state.snapshots
        changed = False
        with store.lock:
            for row in store.rows():
                # The same sum as in `next_due`, so stepping to a due time always acts on it.
                due = self._due(row)
                if due is None or now < due:
                    continue
                changed = True
                if row.state == SnapshotState.REMOVING:
                    store.remove(row.id)
                elif row.state == SnapshotState.PENDING:
                    self._leave_pending(row)
                else:
                    self._finish(row)
        return changed

    def _step_sandboxes(self, now: float) -> bool:
        changed = False
        with self._state.sandboxes.lock:
            for row in self._state.sandboxes.rows():
                due = self._sandbox_due(row)
                if due is None or now < due:
                    continue
                changed = True
                if row.state == SandboxState.DESTROYING:
                    self._state.sandbox_lifecycle.forget(row)
                elif row.state == SandboxState.STARTED:
                    self._state.sandbox_lifecycle.stop(row, force=False)
                else:
                    self._state.sandbox_lifecycle.destroy(row)
        return changed

    def _sandbox_due(self, row: SandboxRow) -> float | None:
        """When the clock alone ends this sandbox's destroy, stops it (auto-stop) or deletes it
        (auto-delete); None if it does not."""
        if row.state == SandboxState.DESTROYING:
            if row.container_id is not None:  # still being removed
                return None
            return row.state_since + self._state.knobs.timings.sandbox_destroy_seconds
        if row.busy:
            return None
        if row.state == SandboxState.STARTED and row.auto_stop_interval > 0:
            return row.last_activity + row.auto_stop_interval * 60
        if row.state == SandboxState.STOPPED and row.auto_delete_interval > 0:
            return row.state_since + row.auto_delete_interval * 60
        return None

    # Snapshot transitions

    def _leave_pending(self, row: Snapshot) -> None:
        outcome = self._state.knobs.outcome_for(row.name)
        clock = self._state.clock
        if outcome is not None and outcome.outcome in ("error", "build_failed"):
            set_state(row, SnapshotState(outcome.outcome), outcome.reason, clock=clock)
            return
        row.initial_runner_id = self._state.runner_id
        if row.build_info is not None:
            row.ref = f"{INTERNAL_REGISTRY}/{row.build_info.snapshot_ref}"
            set_state(row, SnapshotState.BUILDING, clock=clock)
            return
        row.busy = True
        task = asyncio.get_running_loop().create_task(
            self._probe(row.id, row.generation, row.image_name, row.organization_id)
        )
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def _probe(
        self, snapshot_id: str, generation: int, image: str, organization_id: str | None
    ) -> None:
        try:
            source = self._state.pull_source(organization_id, image)
            details = await inspect_image(
                source, timeout=self._state.knobs.timings.registry_timeout_seconds
            )
        except UNREADABLE_NAME as error:  # e.g. docker's "invalid reference format"
            # Docker's refusal reaches the API through runner v0's error middleware
            # (HandlePossibleDockerError: an invalid-argument error becomes "bad request: …").
            daemon = "bad request: Error response from daemon: "
            reason = f"{daemon}{error}" if isinstance(error, ReferenceError) else str(error)
            self._fail(snapshot_id, generation, reason)
            return
        except PullError as error:
            self._fail(snapshot_id, generation, str(error))
            return
        except Exception as error:  # a registry speaking nonsense is a failed pull, not a crash
            log.exception("registry probe of %s failed", image)
            self._fail(snapshot_id, generation, f"Failed to inspect image {image}: {error}")
            return
        row_ref = f"{INTERNAL_REGISTRY}/daytona-{details.digest.removeprefix('sha256:')}:daytona"
        with self._state.snapshots.lock:
            current = self._current(snapshot_id, generation)
            if current is None:
                return
            current.ref = row_ref
            current.image_size = details.size_bytes / GIB
            if current.entrypoint is None:
                # Daytona falls back to the image's ENTRYPOINT, then to `sleep infinity`.
                current.entrypoint = details.entrypoint or ["sleep", "infinity"]
            set_state(current, SnapshotState.PULLING, clock=self._state.clock)

    def _fail(self, snapshot_id: str, generation: int, reason: str) -> None:
        with self._state.snapshots.lock:
            row = self._current(snapshot_id, generation)
            if row is not None:
                set_state(row, SnapshotState.ERROR, reason, clock=self._state.clock)

    def _current(self, snapshot_id: str, generation: int) -> Snapshot | None:
        """The row, unless it was deleted, reset or moved on while the registry was asked."""
        row = self._state.snapshots.get(snapshot_id)
        if row is None or row.generation != generation or row.state != SnapshotState.PENDING:
            return None
        return row

    def _finish(self, row: Snapshot) -> None:
        clock = self._state.clock
        # Daytona learns the size from the runner when the image is ready, not before.
        if row.build_info is not None:
            row.image_size = len(row.build_info.dockerfile_content) / GIB
        row.size = row.image_size
        maximum = self._state.knobs.limits.max_snapshot_size_gb
        if row.size is not None and row.size > maximum:
            set_state(
                row,
                SnapshotState.ERROR,
                f"Snapshot size ({row.size:.2f}GB) exceeds maximum allowed size of {maximum:g}GB",
                clock=clock,
            )
            return
        set_state(row, SnapshotState.ACTIVE, clock=clock)
