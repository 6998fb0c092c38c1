"""Everything one emulator instance holds in memory, passed to routes through `app.state`.

New resource kinds get their own store next to `snapshots` and their own router module. Sandboxes
also hold real containers (`runtime`), which a reset removes along with their rows. All of them
read time from `clock` (clock.py), which a test may swap for a manual one until the next reset.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import cast

from starlette.requests import HTTPConnection

from daytona_emulator.clock import Clock, ManualClock, SystemClock
from daytona_emulator.config import ApiKey, EmulatorConfig, new_id
from daytona_emulator.errors import ApiError
from daytona_emulator.knobs import Knobs
from daytona_emulator.lifecycle import Lifecycle
from daytona_emulator.models import Snapshot, SnapshotState
from daytona_emulator.pull_source import PullSource, pull_source
from daytona_emulator.registries import RegistryStore
from daytona_emulator.sandbox_lifecycle import SandboxLifecycle
from daytona_emulator.sandbox_runtime import RuntimeFailure, SandboxRuntime
from daytona_emulator.sandbox_store import SandboxStore
from daytona_emulator.store import SnapshotStore

# Daytona's own organization, owner of the `general` snapshots every organization sees.
DAYTONA_ORGANIZATION_ID = "00000000-0000-4000-8000-000000000000"


class EmulatorState:
    def __init__(self, config: EmulatorConfig, clock: Clock | None = None) -> None:
        self.config = config
        self._configured_clock: Clock = clock or SystemClock()
        self.clock: Clock = self._configured_clock
        self.api_keys: dict[str, ApiKey] = {key.key: key for key in config.api_keys}
        self.knobs = Knobs(config)
        self.snapshots = SnapshotStore()
        self.registries = RegistryStore()
        # The one fake runner every snapshot is "pulled" on.
        self.runner_id = new_id()
        self.sandboxes = SandboxStore()
        # The engine is touched only once a sandbox is created; the id labels its containers.
        self.runtime = SandboxRuntime(instance_id=new_id(), settings=config.sandboxes)
        self.sandbox_lifecycle = SandboxLifecycle(self)
        self.lifecycle = Lifecycle(self)
        # The server's event loop, once it runs (for work handed in from other threads).
        self.loop: asyncio.AbstractEventLoop | None = None
        self._seed()

    def reset(self) -> None:
        """Forget all rows and knobs and remove all sandbox containers; seeds are as configured,
        and so is the clock."""
        self.knobs.reset()
        self.snapshots.clear()
        self.registries.clear()
        self.sandboxes.clear()
        self.clock = self._configured_clock
        # Work still in flight for a forgotten row removes its own container when it ends.
        with contextlib.suppress(RuntimeFailure):
            self.runtime.remove_all()
        self._seed()

    # Time

    def freeze_clock(self) -> ManualClock:
        """From now on time moves only through `advance_clock` (until a reset)."""
        if isinstance(self.clock, ManualClock):
            return self.clock
        frozen = ManualClock(monotonic=self.clock.monotonic(), now=self.clock.now())
        self.clock = frozen
        return frozen

    async def advance_clock(self, seconds: float) -> None:
        """Move a frozen clock forward, letting every due transition happen on the way."""
        if not isinstance(self.clock, ManualClock):
            raise ApiError(409, "The clock is not frozen: POST /_emulator/clock/freeze first")
        if seconds < 0:
            raise ApiError(400, "seconds must not be less than 0")
        await self.lifecycle.advance(self.clock, seconds)

    # Pulls

    def pull_source(self, organization_id: str | None, image: str) -> PullSource:
        """Where and with which credentials `image` is pulled for this organization."""
        return pull_source(
            image,
            entries=self.registries.of(organization_id) if organization_id else [],
            mirrors=self.knobs.registry_mirrors,
        )

    def _seed(self) -> None:
        moment = self.clock.now()
        for name in self.config.general_snapshots:
            self.snapshots.insert(
                Snapshot(
                    id=new_id(),
                    organization_id=DAYTONA_ORGANIZATION_ID,
                    general=True,
                    name=name,
                    image_name=name,
                    state=SnapshotState.ACTIVE,
                    cpu=1,
                    gpu=0,
                    mem=1,
                    disk=3,
                    size=1.0,
                    entrypoint=["sleep", "infinity"],
                    region_ids=list(self.config.regions),
                    created_at=moment,
                    updated_at=moment,
                    state_since=self.clock.monotonic(),
                )
            )


def emulator_state(connection: HTTPConnection) -> EmulatorState:
    return cast(EmulatorState, connection.app.state.emulator)
