"""Entry points of the nox sessions: parse `session.posargs`, call into `pipeline`, report.

Imported lazily by name, so a session pays only for the modules it uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

Command = Callable[[Sequence[str]], None]

COMMANDS: dict[str, str] = {
    "snapshot_local": "pipeline.commands.build:snapshot_local",
    "snapshot_push": "pipeline.commands.build:snapshot_push",
    "doctor": "pipeline.commands.doctor:doctor",
    "registry": "pipeline.commands.registry:registry",
    "sandbox_up": "pipeline.commands.sandbox_local:sandbox_up",
    "sandbox_down": "pipeline.commands.sandbox_local:sandbox_down",
    "snapshot_daytona": "pipeline.daytona.commands:snapshot_daytona",
    "snapshot_stage": "pipeline.daytona.commands:snapshot_stage",
    "snapshot_latest": "pipeline.daytona.commands:snapshot_latest",
    "snapshots_clean": "pipeline.daytona.commands:snapshots_clean",
    "sandbox_daytona": "pipeline.daytona.commands:sandbox_daytona",
    "base_image": "pipeline.base_image:base_image",
}


def resolve(name: str) -> Command:
    module, _, attribute = COMMANDS[name].partition(":")
    command: Command = getattr(importlib.import_module(module), attribute)
    return command
