"""The snapshot state machine (spec §7), driven by the clock in a background task.

pending --(dwell; registry inspect OK)--> pulling --(dwell)--> active
pending --(dwell; registry says no)-----> error
pending --(dwell)--> building --(dwell)--> active            (buildInfo snapshots)
removing --(removal delay)--> row gone

Transitions depend only on elapsed time and scripted outcomes, never on how often clients poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from daytona_emulator.models import INTERNAL_REGISTRY, Snapshot, SnapshotState
from daytona_emulator.registry_probe import PullError, inspect_image
from daytona_emulator.state import EmulatorState
from daytona_emulator.wire import utcnow

TICK_SECONDS = 0.02
GIB = 1024**3
log = logging.getLogger(__name__)


def set_state(row: Snapshot, state: SnapshotState, error_reason: str | None = None) -> None:
    """Every state change goes through here, so dwell clocks and stale probes stay right."""
    row.state = state
    row.error_reason = error_reason
    row.updated_at = utcnow()
    row.state_since = time.monotonic()
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
                    log.exception("snapshot lifecycle step failed")
                await asyncio.sleep(TICK_SECONDS)
        finally:
            for task in list(self._probes):
                task.cancel()
            for task in list(self._probes):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def step(self) -> None:
        timings = self._state.knobs.timings
        store = self._state.snapshots
        now = time.monotonic()
        with store.lock:
            for row in store.rows():
                elapsed = now - row.state_since
                if row.state == SnapshotState.REMOVING and elapsed >= timings.removal_seconds:
                    store.remove(row.id)
                elif row.state == SnapshotState.PENDING and not row.busy:
                    if elapsed >= timings.pending_seconds:
                        self._leave_pending(row)
                elif row.state in (SnapshotState.PULLING, SnapshotState.BUILDING):
                    dwell = (
                        timings.pulling_seconds
                        if row.state == SnapshotState.PULLING
                        else timings.building_seconds
                    )
                    if elapsed >= dwell:
                        self._finish(row)

    def _leave_pending(self, row: Snapshot) -> None:
        outcome = self._state.knobs.outcome_for(row.name)
        if outcome is not None and outcome.outcome == "stuck_pending":
            return
        if outcome is not None and outcome.outcome in ("error", "build_failed"):
            set_state(row, SnapshotState(outcome.outcome), outcome.reason)
            return
        row.initial_runner_id = self._state.runner_id
        if row.build_info is not None:
            row.ref = f"{INTERNAL_REGISTRY}/{row.build_info.snapshot_ref}"
            set_state(row, SnapshotState.BUILDING)
            return
        row.busy = True
        task = asyncio.get_running_loop().create_task(
            self._probe(row.id, row.generation, row.image_name)
        )
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def _probe(self, snapshot_id: str, generation: int, image: str) -> None:
        knobs = self._state.knobs
        try:
            details = await inspect_image(
                image,
                credentials=knobs.registry_auth,
                mirrors=knobs.registry_mirrors,
                timeout=knobs.timings.registry_timeout_seconds,
            )
        except PullError as error:
            self._fail(snapshot_id, generation, str(error))
            return
        except Exception as error:  # a registry speaking nonsense is a failed pull, not a crash
            log.exception("registry probe of %s failed", image)
            self._fail(snapshot_id, generation, f"Failed to inspect image {image}: {error}")
            return
        row_ref = f"{INTERNAL_REGISTRY}/daytona-{details.digest.removeprefix('sha256:')}:daytona"
        with self._state.snapshots.lock:
            row = self._current(snapshot_id, generation)
            if row is None:
                return
            row.ref = row_ref
            row.image_size = details.size_bytes / GIB
            if row.entrypoint is None:
                # Daytona falls back to the image's ENTRYPOINT, then to `sleep infinity`.
                row.entrypoint = details.entrypoint or ["sleep", "infinity"]
            set_state(row, SnapshotState.PULLING)

    def _fail(self, snapshot_id: str, generation: int, reason: str) -> None:
        with self._state.snapshots.lock:
            row = self._current(snapshot_id, generation)
            if row is not None:
                set_state(row, SnapshotState.ERROR, reason)

    def _current(self, snapshot_id: str, generation: int) -> Snapshot | None:
        """The row, unless it was deleted, reset or moved on while the registry was asked."""
        row = self._state.snapshots.get(snapshot_id)
        if row is None or row.generation != generation or row.state != SnapshotState.PENDING:
            return None
        return row

    def _finish(self, row: Snapshot) -> None:
        outcome = self._state.knobs.outcome_for(row.name)
        if outcome is not None and outcome.outcome == "stuck_pulling":
            return
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
            )
            return
        set_state(row, SnapshotState.ACTIVE)
