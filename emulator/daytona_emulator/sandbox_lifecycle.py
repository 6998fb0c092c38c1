"""The sandbox state machine (spec §5.2), driven by real container work in the background.

creating --(image pulled, container running)--> started
creating --(pull/run fails, or a scripted `error` outcome)--> error (errorReason)
started --stop--> stopping --(container stopped)--> stopped  (autoDeleteInterval 0: as delete)
stopped --start--> starting --(container running)--> started     (a new preview token)
any settled state --delete--> destroying --(container removed, dwell)--> row gone (404)
(a delete renames the sandbox `DESTROYED_<name>_<ms>` at once, so its name is free again)

Routes check Daytona's preconditions and call the methods here, which set the transitional state
at once and leave the container work to a task on the server's loop; the work itself runs in a
worker thread. A task whose row was reset away or changed meanwhile (`generation`) undoes what it
made instead of recording it, so no container outlives its sandbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from daytona_emulator.clock import epoch_ms
from daytona_emulator.pull_source import UNREADABLE_NAME
from daytona_emulator.sandbox_models import (
    DesiredState,
    SandboxRow,
    SandboxState,
    new_auth_token,
    soft_delete_name,
)
from daytona_emulator.sandbox_runtime import ContainerSpec, RuntimeFailure

if TYPE_CHECKING:
    from daytona_emulator.state import EmulatorState

log = logging.getLogger(__name__)
POLL_SECONDS = 0.02
SHUTDOWN_GRACE_SECONDS = 30.0


class SandboxLifecycle:
    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._tasks: set[asyncio.Task[None]] = set()

    # Requested by routes, which have checked Daytona's preconditions.

    def create(self, row: SandboxRow) -> None:
        self._spawn(self._create(row, row.generation))

    def start(self, row: SandboxRow) -> None:
        with self._state.sandboxes.lock:
            self._transition(row, SandboxState.STARTING, DesiredState.STARTED)
            # Daytona issues a new preview token on every start; old links stop working.
            row.auth_token = new_auth_token()
            generation = row.generation
        self._spawn(self._start(row, generation))

    def stop(self, row: SandboxRow, *, force: bool) -> None:
        if row.auto_delete_interval == 0:
            # An ephemeral sandbox is destroyed by its stop (and shown as `destroying`).
            self.destroy(row)
            return
        with self._state.sandboxes.lock:
            self._transition(row, SandboxState.STOPPING, DesiredState.STOPPED)
            generation = row.generation
        self._spawn(self._stop(row, generation, force))

    def destroy(self, row: SandboxRow) -> None:
        with self._state.sandboxes.lock:
            row.name = soft_delete_name(row.name, epoch_ms(self._state.clock.now()))
            self._transition(row, SandboxState.DESTROYING, DesiredState.DESTROYED)
            generation = row.generation
        self._spawn(self._destroy(row, generation))

    def touch(self, row: SandboxRow) -> None:
        """Someone used the sandbox (toolbox, preview): auto-stop counts from now."""
        row.last_activity = self._state.clock.monotonic()

    async def settle(self, row: SandboxRow, leaving: SandboxState, timeout: float) -> SandboxState:
        """Wait until the row leaves `leaving`, like Daytona's controller, at most `timeout`
        seconds of the emulator's clock (a manual clock must be advanced to give up); its
        state."""
        clock = self._state.clock
        deadline = clock.monotonic() + timeout
        while (
            row.state == leaving
            and clock.monotonic() < deadline
            and self._state.sandboxes.get(row.id) is row
        ):
            await asyncio.sleep(POLL_SECONDS)
        return row.state

    def in_flight(self) -> set[asyncio.Task[None]]:
        return set(self._tasks)

    async def shutdown(self) -> None:
        """Let running work finish, then remove every container this emulator made."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=SHUTDOWN_GRACE_SECONDS)
        for task in list(self._tasks):
            task.cancel()
        runtime = self._state.runtime
        try:
            await asyncio.to_thread(runtime.remove_all)
        except RuntimeFailure:
            log.exception("could not remove the emulator's sandbox containers")
        runtime.close()

    def _transition(
        self,
        row: SandboxRow,
        state: SandboxState,
        desired: DesiredState | None = None,
        error_reason: str | None = None,
    ) -> None:
        """Every state change goes through here, so stale container work can tell it is
        stale."""
        clock = self._state.clock
        row.state = state
        if desired is not None:
            row.desired_state = desired
        row.error_reason = error_reason
        row.updated_at = clock.now()
        row.state_since = clock.monotonic()
        if state == SandboxState.STARTED:
            row.last_activity = row.state_since
        row.generation += 1

    # Background work

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sandbox work failed", exc_info=task.exception())

    async def _create(self, row: SandboxRow, generation: int) -> None:
        knobs = self._state.knobs
        outcome = knobs.sandbox_outcome_for(row.snapshot_name)
        if outcome is not None and outcome.outcome == "stuck_creating":
            return
        if outcome is not None and outcome.outcome == "error":
            self._fail(row, generation, outcome.reason)
            return
        if not row.image_name:
            self._fail(
                row,
                generation,
                "The emulator cannot run sandboxes of Dockerfile (buildInfo) snapshots: "
                "it builds no images",
            )
            return
        spec = ContainerSpec(
            sandbox_id=row.id,
            organization_id=row.organization_id,
            snapshot_ref=row.snapshot_ref or row.image_name,
            user=row.user,
            entrypoint=row.entrypoint,
            env=dict(row.env),
            labels=dict(row.labels),
            cpu=row.cpu,
            memory_gb=row.memory,
        )
        runtime = self._state.runtime
        try:
            source = self._state.pull_source(row.organization_id, row.image_name)
        except UNREADABLE_NAME:
            self._fail(row, generation, f"Failed to pull image {row.image_name}: invalid reference")
            return
        try:
            container_id = await asyncio.to_thread(runtime.run, spec, source=source)
        except RuntimeFailure as error:
            self._fail(row, generation, str(error))
            return
        with self._state.sandboxes.lock:
            if self._state.sandboxes.is_current(row, generation):
                row.container_id = container_id
                self._transition(row, SandboxState.STARTED)
                return
        # Reset (or deleted) while the container was being made: it must not outlive its row.
        await asyncio.to_thread(runtime.remove, container_id)

    async def _start(self, row: SandboxRow, generation: int) -> None:
        if row.container_id is None:
            self._fail(row, generation, "Sandbox has no container")
            return
        try:
            await asyncio.to_thread(self._state.runtime.start, row.container_id)
        except RuntimeFailure as error:
            self._fail(row, generation, str(error))
            return
        with self._state.sandboxes.lock:
            if self._state.sandboxes.is_current(row, generation):
                self._transition(row, SandboxState.STARTED)

    async def _stop(self, row: SandboxRow, generation: int, force: bool) -> None:
        runtime = self._state.runtime
        timeout = self._state.knobs.timings.sandbox_stop_timeout_seconds
        if row.container_id is not None:
            try:
                await asyncio.to_thread(
                    runtime.stop, row.container_id, timeout=timeout, force=force
                )
            except RuntimeFailure as error:
                self._fail(row, generation, str(error))
                return
        with self._state.sandboxes.lock:
            if self._state.sandboxes.is_current(row, generation):
                self._transition(row, SandboxState.STOPPED)

    async def _destroy(self, row: SandboxRow, generation: int) -> None:
        """Remove the container; the row goes once the destroy dwell is over (lifecycle.py),
        so a client can meet it in `destroying`, as it would on Daytona."""
        if row.container_id is not None:
            await asyncio.to_thread(self._state.runtime.remove, row.container_id)
        with self._state.sandboxes.lock:
            if self._state.sandboxes.is_current(row, generation):
                row.container_id = None

    def forget(self, row: SandboxRow) -> None:
        """The end of a destroy: `destroyed`, and gone from every lookup (404)."""
        with self._state.sandboxes.lock:
            self._transition(row, SandboxState.DESTROYED)
            self._state.sandboxes.remove(row.id)

    def _fail(self, row: SandboxRow, generation: int, reason: str) -> None:
        with self._state.sandboxes.lock:
            if self._state.sandboxes.is_current(row, generation):
                self._transition(row, SandboxState.ERROR, error_reason=reason)
