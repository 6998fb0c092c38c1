"""Entry points of the nox sessions: parse `session.posargs`, call into `pipeline`, report.

Imported lazily by name, so a session pays only for the modules it uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

Command = Callable[[Sequence[str]], None]

COMMANDS: dict[str, str] = {
    "snapshot_local": "pipeline.sessions.build:snapshot_local",
    "snapshot_push": "pipeline.sessions.build:snapshot_push",
    "doctor": "pipeline.sessions.doctor:doctor",
    "registry": "pipeline.sessions.registry:registry",
    "sandbox_up": "pipeline.sessions.sandbox_local:sandbox_up",
    "sandbox_down": "pipeline.sessions.sandbox_local:sandbox_down",
    "snapshot_daytona": "pipeline.sessions.snapshot_daytona:snapshot_daytona",
    "snapshot_stage": "pipeline.sessions.snapshot_stage:snapshot_stage",
    "snapshot_latest": "pipeline.sessions.snapshot_latest:snapshot_latest",
    "snapshots_clean": "pipeline.sessions.snapshots_clean:snapshots_clean",
    "sandbox_daytona": "pipeline.sessions.sandbox_daytona:sandbox_daytona",
    "daytona_registry": "pipeline.sessions.daytona_registry:daytona_registry",
    "base_image": "pipeline.sessions.base_image:base_image",
}


def resolve(name: str) -> Command:
    module, _, attribute = COMMANDS[name].partition(":")
    command: Command = getattr(importlib.import_module(module), attribute)
    return command
