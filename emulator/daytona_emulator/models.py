"""Snapshot rows as the emulator stores them, and the `SnapshotDto` they are served as (spec §4.1).

Rows are plain mutable dataclasses guarded by the store's lock; the DTO is a pydantic model so the
wire shape (camelCase, explicit `null`s, ms-precision dates) is written down in one place.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from daytona_emulator.wire import iso

# Where Daytona copies pulled images; only ever appears inside `ref`.
INTERNAL_REGISTRY = "registry.daytona.internal/daytona"


class SnapshotState(StrEnum):
    # Declaration order matters: Postgres sorts enum columns by it (`sort=state`).
    PENDING = "pending"
    BUILDING = "building"
    PULLING = "pulling"
    SNAPSHOTTING = "snapshotting"
    ACTIVE = "active"
    INACTIVE = "inactive"
    ERROR = "error"
    BUILD_FAILED = "build_failed"
    REMOVING = "removing"


STATE_ORDER: dict[str, int] = {state.value: index for index, state in enumerate(SnapshotState)}

# States that count against the snapshot quota (snapshot-states-consuming-resources.constant.ts).
QUOTA_STATES = frozenset(
    {SnapshotState.PENDING, SnapshotState.BUILDING, SnapshotState.PULLING, SnapshotState.ACTIVE}
)
TERMINAL_STATES = frozenset({SnapshotState.ACTIVE, SnapshotState.ERROR, SnapshotState.BUILD_FAILED})


@dataclass
class BuildInfo:
    dockerfile_content: str
    context_hashes: list[str]
    created_at: datetime

    @property
    def snapshot_ref(self) -> str:
        digest = hashlib.sha256(
            (self.dockerfile_content + "".join(sorted(self.context_hashes))).encode()
        ).hexdigest()
        return f"daytona-{digest}:daytona"


@dataclass
class Snapshot:
    id: str
    organization_id: str | None
    name: str
    image_name: str
    cpu: float
    gpu: float
    mem: float
    disk: float
    region_ids: list[str]
    state: SnapshotState = SnapshotState.PENDING
    general: bool = False
    entrypoint: list[str] | None = None
    gpu_type: str | None = None
    sandbox_class: str = "container"
    build_info: BuildInfo | None = None
    size: float | None = None
    error_reason: str | None = None
    ref: str | None = None
    initial_runner_id: str | None = None
    source_sandbox_id: str | None = None
    # From the emulator's clock, always given (no silent wall-clock default).
    created_at: datetime = field(kw_only=True)
    updated_at: datetime = field(kw_only=True)
    last_used_at: datetime | None = None
    # Emulator bookkeeping, never served:
    state_since: float = 0.0  # monotonic time the current state was entered
    generation: int = 0  # bumped on every state change, so stale registry probes are ignored
    busy: bool = False  # a registry probe is in flight
    image_size: float | None = None  # GB, known from the registry; shown as `size` once active


class BuildInfoDto(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    snapshot_ref: str
    dockerfile_content: str
    context_hashes: list[str]
    created_at: str
    updated_at: str


class SnapshotDto(BaseModel):
    """`SnapshotDto` as SDK 0.226.1 parses it; nullable fields are always present (rule E2)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: str
    organization_id: str | None
    general: bool
    name: str
    image_name: str
    state: str
    # int | float keeps integers integral on the wire, as JavaScript prints them
    size: int | float | None
    entrypoint: list[str] | None
    cpu: int | float
    gpu: int | float
    gpu_type: str | None
    mem: int | float
    disk: int | float
    error_reason: str | None
    created_at: str
    updated_at: str
    last_used_at: str | None
    build_info: BuildInfoDto | None
    region_ids: list[str]
    initial_runner_id: str | None
    ref: str | None
    source_sandbox_id: str | None
    sandbox_class: str

    @classmethod
    def of(cls, row: Snapshot) -> SnapshotDto:
        build_info = None
        if row.build_info is not None:
            build_info = BuildInfoDto(
                snapshot_ref=row.build_info.snapshot_ref,
                dockerfile_content=row.build_info.dockerfile_content,
                context_hashes=list(row.build_info.context_hashes),
                created_at=iso(row.build_info.created_at),
                updated_at=iso(row.build_info.created_at),
            )
        return cls(
            id=row.id,
            organization_id=row.organization_id,
            general=row.general,
            name=row.name,
            image_name=row.image_name,
            state=row.state.value,
            size=row.size,
            entrypoint=list(row.entrypoint) if row.entrypoint is not None else None,
            cpu=row.cpu,
            gpu=row.gpu,
            gpu_type=row.gpu_type,
            mem=row.mem,
            disk=row.disk,
            error_reason=row.error_reason,
            created_at=iso(row.created_at),
            updated_at=iso(row.updated_at),
            last_used_at=iso(row.last_used_at) if row.last_used_at else None,
            build_info=build_info,
            region_ids=list(row.region_ids),
            initial_runner_id=row.initial_runner_id,
            ref=row.ref,
            source_sandbox_id=row.source_sandbox_id,
            sandbox_class=row.sandbox_class,
        )

    def wire(self) -> dict[str, Any]:
        body = self.model_dump(by_alias=True)
        # Nest leaves `buildInfo` undefined (omitted) for image snapshots; the rest stay null.
        if body["buildInfo"] is None:
            del body["buildInfo"]
        return body


def snapshot_wire(row: Snapshot) -> dict[str, Any]:
    return SnapshotDto.of(row).wire()
