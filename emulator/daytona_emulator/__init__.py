"""An offline emulator of Daytona's REST API (snapshot surface), for tests and demos.

Spec: /work/shared/docs/daytona-api.md. Start one with `EmulatorServer` (server.py) or
`python -m daytona_emulator`.
"""

from daytona_emulator.clock import Clock, ManualClock, SystemClock
from daytona_emulator.config import (
    ALL_PERMISSIONS,
    SANDBOX_ONLY_PERMISSIONS,
    ApiKey,
    EmulatorConfig,
    Limits,
    RegistryCredential,
    Timings,
)
from daytona_emulator.knobs import FaultRule, Knobs, RequestRecord, SnapshotOutcome
from daytona_emulator.server import EmulatorServer

__all__ = [
    "ALL_PERMISSIONS",
    "SANDBOX_ONLY_PERMISSIONS",
    "ApiKey",
    "Clock",
    "EmulatorConfig",
    "EmulatorServer",
    "FaultRule",
    "Knobs",
    "Limits",
    "ManualClock",
    "RegistryCredential",
    "RequestRecord",
    "SnapshotOutcome",
    "SystemClock",
    "Timings",
]
