"""The Daytona sessions, for code that imported them from here: each now has a module of its own
(snapshot_daytona, snapshot_stage, snapshot_latest, snapshots_clean, sandbox_daytona)."""

from __future__ import annotations

from pipeline.sessions.sandbox_daytona import sandbox_daytona
from pipeline.sessions.snapshot_daytona import snapshot_daytona
from pipeline.sessions.snapshot_latest import snapshot_latest
from pipeline.sessions.snapshot_stage import snapshot_stage
from pipeline.sessions.snapshots_clean import snapshots_clean

__all__ = [
    "sandbox_daytona",
    "snapshot_daytona",
    "snapshot_latest",
    "snapshot_stage",
    "snapshots_clean",
]
