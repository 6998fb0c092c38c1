"""Daytona's wire format for snapshots, as pydantic models.

Only the fields the pipeline uses are typed; unknown keys are ignored so a newer server that adds
fields does not break us. `state` stays a plain string: the server gained and lost states within
months (see the API notes), and an unknown state must be shown, not rejected.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

PENDING: Final = "pending"
BUILDING: Final = "building"
PULLING: Final = "pulling"
SNAPSHOTTING: Final = "snapshotting"
ACTIVE: Final = "active"
INACTIVE: Final = "inactive"
ERROR: Final = "error"
BUILD_FAILED: Final = "build_failed"
REMOVING: Final = "removing"

IN_PROGRESS_STATES: Final = frozenset({PENDING, BUILDING, PULLING, SNAPSHOTTING})
FAILED_STATES: Final = frozenset({ERROR, BUILD_FAILED})


class _Wire(BaseModel):
    model_config = ConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, serialize_by_alias=True
    )


class Snapshot(_Wire):
    id: str
    name: str
    state: str = "unknown"
    image_name: str | None = Field(None, alias="imageName")
    general: bool = False
    cpu: float = 0
    gpu: float = 0
    mem: float = 0
    disk: float = 0
    size: float | None = None
    entrypoint: list[str] | None = None
    error_reason: str | None = Field(None, alias="errorReason")
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime | None = Field(None, alias="updatedAt")
    last_used_at: datetime | None = Field(None, alias="lastUsedAt")

    @property
    def failed(self) -> bool:
        return self.state in FAILED_STATES

    def resources(self) -> str:
        return f"{self.cpu:g} vCPU, {self.mem:g} GB memory, {self.disk:g} GB disk"


class SnapshotPage(_Wire):
    items: list[Snapshot]
    total: int
    page: int
    total_pages: int = Field(alias="totalPages")


class CreateSnapshot(_Wire):
    """Body of `POST /snapshots`; the request says `memory` where the response says `mem`."""

    name: str
    image_name: str = Field(alias="imageName")
    cpu: int
    memory: int
    disk: int
    entrypoint: list[str] | None = None

    def body(self) -> dict[str, object]:
        # Daytona treats an omitted field as "server default"; never send nulls.
        return self.model_dump(by_alias=True, exclude_none=True)


class ApiError(_Wire):
    """The body of every Daytona error (NestJS' global filter); `message` is always a string."""

    message: str | None = None
    error: str | None = None
    status_code: int | None = Field(None, alias="statusCode")
