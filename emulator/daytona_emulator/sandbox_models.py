"""Sandbox rows as the emulator stores them, and the `Sandbox`/`SandboxListItem` they are served as.

Daytona keeps a sandbox's actual and desired state and shows a derived one (`creating` is
"unknown, should be started"); the emulator stores the shown state directly, next to the desired
one, because only the shown one ever reaches a client. Rows are mutable dataclasses guarded by
the sandbox store's lock; the wire shape (camelCase, integers for resources, explicit `null`s)
is written down here once (spec §4.5, rule E2).
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from daytona_emulator.wire import iso

# Daytona's defaults for a sandbox whose create body leaves them out (sandbox.entity.ts).
DEFAULT_USER = "daytona"
DEFAULT_AUTO_STOP_MINUTES = 15
DEFAULT_AUTO_ARCHIVE_MINUTES = 7 * 24 * 60
DEFAULT_AUTO_DELETE_MINUTES = -1  # disabled


class SandboxState(StrEnum):
    """The shown states the emulator produces (a subset of the client's `SandboxState`)."""

    CREATING = "creating"
    STARTING = "starting"
    STARTED = "started"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DESTROYING = "destroying"
    DESTROYED = "destroyed"
    ERROR = "error"


class DesiredState(StrEnum):
    STARTED = "started"
    STOPPED = "stopped"
    DESTROYED = "destroyed"


# A state change is in flight: Daytona refuses another one ("State change in progress").
TRANSITIONAL_STATES = frozenset(
    {
        SandboxState.CREATING,
        SandboxState.STARTING,
        SandboxState.STOPPING,
        SandboxState.DESTROYING,
    }
)

_TOKEN_ALPHABET = string.ascii_lowercase + string.digits


def new_auth_token() -> str:
    """Like Daytona's `nanoid(32).toLocaleLowerCase()`: the preview token, new on every start."""
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(32))


@dataclass
class SandboxRow:
    id: str
    organization_id: str
    name: str
    target: str
    snapshot_name: str  # what `snapshot` shows: the snapshot's name, even if created by id
    snapshot_ref: str | None  # the snapshot's internal ref, given to the container's env
    image_name: str  # what the runner pulls
    entrypoint: list[str] | None
    cpu: int
    gpu: int
    memory: int
    disk: int
    user: str = DEFAULT_USER
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    public: bool = False
    network_block_all: bool = False
    network_allow_list: str | None = None
    auto_stop_interval: int = DEFAULT_AUTO_STOP_MINUTES
    auto_archive_interval: int = DEFAULT_AUTO_ARCHIVE_MINUTES
    auto_delete_interval: int = DEFAULT_AUTO_DELETE_MINUTES
    runner_id: str | None = None
    state: SandboxState = SandboxState.CREATING
    desired_state: DesiredState = DesiredState.STARTED
    error_reason: str | None = None
    auth_token: str = field(default_factory=new_auth_token)
    # From the emulator's clock, always given (no silent wall-clock default).
    created_at: datetime = field(kw_only=True)
    updated_at: datetime = field(kw_only=True)
    # Emulator bookkeeping, never served:
    state_since: float = field(kw_only=True)  # monotonic time the current state was entered
    last_activity: float = field(kw_only=True)  # monotonic; what auto-stop counts from
    generation: int = 0  # bumped on every state change, so stale container work is undone
    container_id: str | None = None

    @property
    def busy(self) -> bool:
        """Daytona's `pending`: a state change is in flight, so another one is refused."""
        return self.state in TRANSITIONAL_STATES


def soft_delete_name(name: str, epoch_ms: int) -> str:
    """`Sandbox.getSoftDeleteName`: a deleted sandbox gives its name up at once."""
    return f"DESTROYED_{name}_{epoch_ms}"


def _common_wire(row: SandboxRow, toolbox_proxy_url: str) -> dict[str, Any]:
    """Fields `Sandbox` and `SandboxListItem` share, all of them present (null when unset)."""
    return {
        "id": row.id,
        "organizationId": row.organization_id,
        "name": row.name,
        "target": row.target,
        "runnerId": row.runner_id,
        "sandboxClass": "container",
        "state": row.state.value,
        "desiredState": row.desired_state.value,
        "snapshot": row.snapshot_name,
        "user": row.user,
        "errorReason": row.error_reason,
        "recoverable": False if row.state == SandboxState.ERROR else None,
        "public": row.public,
        "networkBlockAll": row.network_block_all,
        "networkAllowList": row.network_allow_list,
        "domainAllowList": None,
        "cpu": row.cpu,
        "gpu": row.gpu,
        "memory": row.memory,
        "disk": row.disk,
        "labels": dict(row.labels),
        "backupState": "None",
        "autoStopInterval": row.auto_stop_interval,
        "autoArchiveInterval": row.auto_archive_interval,
        "autoDeleteInterval": row.auto_delete_interval,
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
        "toolboxProxyUrl": toolbox_proxy_url,
    }


def sandbox_wire(row: SandboxRow, toolbox_proxy_url: str) -> dict[str, Any]:
    """`Sandbox` (SDK 0.226.1): resources are integers (StrictInt), `toolboxProxyUrl` required."""
    return {
        **_common_wire(row, toolbox_proxy_url),
        "env": dict(row.env),
        "kvm": False,
        "volumes": [],
        "daemonVersion": None,
    }


def sandbox_list_item_wire(row: SandboxRow, toolbox_proxy_url: str) -> dict[str, Any]:
    """`SandboxListItem`: like `Sandbox` without env, volumes and build info."""
    return _common_wire(row, toolbox_proxy_url)
