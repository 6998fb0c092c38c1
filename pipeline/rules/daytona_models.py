"""Daytona's wire format for snapshots and sandboxes, as pydantic models.

Only the fields the pipeline uses are typed; unknown keys are ignored so a newer server that adds
fields does not break us. `state` stays a plain string: the server gained and lost states within
months (see the API notes), and an unknown state must be shown, not rejected.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.alias_generators import to_camel

ACTIVE: Final = "active"
INACTIVE: Final = "inactive"
REMOVING: Final = "removing"
IN_PROGRESS_STATES: Final = frozenset({"pending", "building", "pulling", "snapshotting"})
FAILED_STATES: Final = frozenset({"error", "build_failed"})  # of snapshots and sandboxes


class _Wire(BaseModel):
    # Daytona's JSON is camelCase: `image_name` travels as `imageName`.
    model_config = ConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, alias_generator=to_camel
    )

    def body(self) -> dict[str, object]:
        # Daytona treats an omitted field as "server default"; never send nulls.
        return self.model_dump(by_alias=True, exclude_none=True)


class _Row(_Wire):
    id: str
    name: str
    state: str = "unknown"
    error_reason: str | None = None

    @property
    def failed(self) -> bool:
        return self.state in FAILED_STATES


class Snapshot(_Row):
    image_name: str | None = None
    general: bool = False
    cpu: float = 0
    mem: float = 0
    disk: float = 0
    # Where Daytona copied the image it pulled: `<internal registry>/daytona-<hex>:daytona`,
    # <hex> being the digest the tag resolved to when Daytona inspected it (snapshot.manager.ts
    # processSnapshotDigest); set once the inspect passed, kept across reactivations.
    ref: str | None = None
    created_at: datetime

    def resources(self) -> str:
        return resources_words(self.cpu, self.mem, self.disk)


def resources_words(cpu: float, memory: float, disk: float) -> str:
    return f"{cpu:g} vCPU, {memory:g} GB memory, {disk:g} GB disk"


class SnapshotPage(_Wire):
    items: list[Snapshot]
    total_pages: int


class CreateSnapshot(_Wire):
    """Body of `POST /snapshots`; the request says `memory` where the response says `mem`."""

    name: str
    image: str = Field(alias="imageName")
    cpu: int
    memory: int
    disk: int
    entrypoint: list[str] | None = None


class ApiError(_Wire):
    """The body of every Daytona error (NestJS' global filter); `message` is always a string."""

    message: str | None = None
    error: str | None = None


# --- sandboxes ---------------------------------------------------------------------------------

# SandboxState values the pipeline acts on (the API knows ~20; any other one is "not yet").
SANDBOX_STARTED: Final = "started"
SANDBOX_STOPPED: Final = "stopped"
SANDBOX_DESTROYED: Final = "destroyed"
SANDBOX_ERROR: Final = "error"
SANDBOX_ARCHIVED: Final = "archived"

# Being removed or removed: as good as gone for a wait, and never startable again.
SANDBOX_GONE_STATES: Final = frozenset({"destroying", SANDBOX_DESTROYED})


class Sandbox(_Row):
    """A `Sandbox` (or `SandboxListItem`). `env` is deliberately not read: it may hold secrets
    the caller passed in, and nothing here needs it back."""

    desired_state: str | None = None
    snapshot: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    toolbox_proxy_url: str = ""
    auto_stop_interval: int | None = None
    auto_delete_interval: int | None = None
    created_at: datetime | None = None


class SandboxPage(_Wire):
    """`ListSandboxesResponse`: cursor paging; `nextCursor` is null on the last page."""

    items: list[Sandbox]
    next_cursor: str | None = None


class CreateSandbox(_Wire):
    """Body of `POST /sandbox` from a snapshot. No cpu/memory/disk: Daytona refuses them with a
    snapshot (400 "Cannot specify Sandbox resources when using a snapshot")."""

    snapshot: str
    name: str
    # Daytona's field is `env` (the SDK's parameter is `env_vars`). Values may be secrets:
    # kept out of repr; they travel only in the request body.
    env: dict[str, str] = Field(default_factory=dict, repr=False)
    labels: dict[str, str] = Field(default_factory=dict)
    public: bool | None = None
    auto_stop_interval: int | None = None
    auto_delete_interval: int | None = None


class PortPreview(_Wire):
    """`PortPreviewUrl`. The token opens a private sandbox's port to anyone holding it, so it is
    a SecretStr: reprs and reports show `**********`."""

    url: str
    token: SecretStr


class ExecResult(_Wire):
    """`ExecuteResponse` of the toolbox: `result` is stdout and stderr together."""

    exit_code: int | None = None
    result: str = ""
    code: int | None = None  # older daemons said `code`; the SDK falls back to it too

    @property
    def exit_status(self) -> int:
        """-1 when the daemon reported no exit code."""
        return next((c for c in (self.exit_code, self.code) if c is not None), -1)


def state_of(row: Snapshot | Sandbox | None) -> str:
    return "gone" if row is None else row.state


# --- docker registries -------------------------------------------------------------------------


class DockerRegistry(_Wire):
    """`DockerRegistry` (`GET /docker-registry`): Daytona never returns the password."""

    id: str
    name: str
    url: str
    username: str = ""
    registry_type: str = "organization"
    created_at: datetime | None = None


class RegistryEntryRequest(_Wire):
    """Body of `POST /docker-registry` (CreateDockerRegistry) and of `PATCH /docker-registry/{id}`
    (UpdateDockerRegistry): the same four fields. The password is a SecretStr, so it shows in no
    repr; it leaves the process only in the request body."""

    name: str
    url: str
    username: str
    password: SecretStr

    def body(self) -> dict[str, object]:
        return {**super().body(), "password": self.password.get_secret_value()}
