"""Everything one emulator instance holds in memory, passed to routes through `app.state`.

New resource kinds get their own store next to `snapshots` and their own router module. Sandboxes
also hold real containers (`runtime`), which a reset removes along with their rows.
"""

from __future__ import annotations

import contextlib
from typing import cast

from starlette.requests import HTTPConnection

from daytona_emulator.config import ApiKey, EmulatorConfig, new_id
from daytona_emulator.knobs import Knobs
from daytona_emulator.models import Snapshot, SnapshotState
from daytona_emulator.sandbox_lifecycle import SandboxLifecycle
from daytona_emulator.sandbox_runtime import RuntimeFailure, SandboxRuntime
from daytona_emulator.sandbox_store import SandboxStore
from daytona_emulator.store import SnapshotStore

# Daytona's own organization, owner of the `general` snapshots every organization sees.
DAYTONA_ORGANIZATION_ID = "00000000-0000-4000-8000-000000000000"


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.api_keys: dict[str, ApiKey] = {key.key: key for key in config.api_keys}
        self.knobs = Knobs(config)
        self.snapshots = SnapshotStore()
        # The one fake runner every snapshot is "pulled" on.
        self.runner_id = new_id()
        self.sandboxes = SandboxStore()
        # The engine is touched only once a sandbox is created; the id labels its containers.
        self.runtime = SandboxRuntime(instance_id=new_id(), settings=config.sandboxes)
        self.sandbox_lifecycle = SandboxLifecycle(self)
        self._seed()

    def reset(self) -> None:
        """Forget all rows and knobs and remove all sandbox containers; seeds are as configured."""
        self.knobs.reset()
        self.snapshots.clear()
        self.sandboxes.clear()
        # Work still in flight for a forgotten row removes its own container when it ends.
        with contextlib.suppress(RuntimeFailure):
            self.runtime.remove_all()
        self._seed()

    def _seed(self) -> None:
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
                )
            )


def emulator_state(connection: HTTPConnection) -> EmulatorState:
    return cast(EmulatorState, connection.app.state.emulator)
