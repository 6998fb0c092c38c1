"""`/api/sandbox`: Daytona's sandbox endpoints, guards and pipes in Nest's order.

Per request: JSON body parsing (400), authentication (401), permission guard (403), lookup
(404), body validation (400), then `sandbox.service.ts`'s rules. Container work happens in
`sandbox_lifecycle.py`; like Daytona's controller, create and start wait (bounded) for `started`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from daytona_emulator.auth import request_context
from daytona_emulator.config import DELETE_SANDBOXES, WRITE_SANDBOXES, new_id
from daytona_emulator.errors import ApiError, bad_request, forbidden, not_found
from daytona_emulator.models import Snapshot, SnapshotState
from daytona_emulator.preview_proxy import PREVIEW_PREFIX
from daytona_emulator.request_body import json_body, query_lists
from daytona_emulator.sandbox_models import (
    DEFAULT_AUTO_ARCHIVE_MINUTES,
    DEFAULT_AUTO_DELETE_MINUTES,
    DEFAULT_AUTO_STOP_MINUTES,
    DEFAULT_USER,
    SandboxRow,
    SandboxState,
    sandbox_list_item_wire,
    sandbox_wire,
)
from daytona_emulator.sandbox_validation import (
    DEFAULT_LIST_LIMIT,
    CreateSandboxRequest,
    list_messages,
    parse_create_sandbox,
    values,
)
from daytona_emulator.state import EmulatorState
from daytona_emulator.store import is_uuid
from daytona_emulator.validation import PER_SANDBOX_LIMIT_MESSAGE
from daytona_emulator.wire import js_str

router = APIRouter(prefix="/api/sandbox")


def origin(request: Request) -> str:
    """The emulator as this client reaches it: it is its own proxy, as for build logs."""
    return str(request.base_url).rstrip("/")


def toolbox_proxy_url(request: Request) -> str:
    return f"{origin(request)}/toolbox"


def _wire(state: EmulatorState, request: Request, row: SandboxRow) -> dict[str, Any]:
    with state.sandboxes.lock:
        return sandbox_wire(row, toolbox_proxy_url(request))


def _snapshot_for(state: EmulatorState, organization_id: str, id_or_name: str) -> Snapshot:
    """`createFromSnapshot`'s lookup: own or general by name, or by id; an active one wins."""
    is_id = is_uuid(id_or_name)
    found = [
        row
        for row in state.snapshots.rows()
        if (row.organization_id == organization_id or row.general)
        and (row.name == id_or_name or (is_id and row.id == id_or_name.lower()))
    ]
    if not found:
        raise bad_request(
            f"Snapshot {id_or_name} not found. Did you add it through the Daytona Dashboard?"
        )
    snapshot = next((row for row in found if row.state == SnapshotState.ACTIVE), found[0])
    if snapshot.state != SnapshotState.ACTIVE:
        raise bad_request(f"Snapshot {id_or_name} is {snapshot.state.value}")
    return snapshot


def _check_per_sandbox_limits(state: EmulatorState, cpu: int, memory: int, disk: int) -> None:
    """`validateOrganizationQuotas`: per-sandbox limits are 403s on this path."""
    limits = state.knobs.limits
    if cpu > limits.max_cpu_per_sandbox:
        raise forbidden(
            f"CPU request {cpu} exceeds maximum allowed per sandbox "
            f"({js_str(limits.max_cpu_per_sandbox)}).\n{PER_SANDBOX_LIMIT_MESSAGE}"
        )
    if memory > limits.max_memory_per_sandbox:
        raise forbidden(
            f"Memory request {memory}GB exceeds maximum allowed per sandbox "
            f"({js_str(limits.max_memory_per_sandbox)}GB).\n{PER_SANDBOX_LIMIT_MESSAGE}"
        )
    if disk > limits.max_disk_per_sandbox:
        raise forbidden(
            f"Disk request {disk}GB exceeds maximum allowed per sandbox "
            f"({js_str(limits.max_disk_per_sandbox)}GB).\n{PER_SANDBOX_LIMIT_MESSAGE}"
        )


def _whole(amount: float) -> int:
    # Sandbox resources are integer columns; the SDK refuses anything but JSON integers.
    return math.ceil(amount)


async def _once_started(
    state: EmulatorState, request: Request, row: SandboxRow, leaving: SandboxState
) -> JSONResponse:
    """Daytona's controller waits (bounded) for `started`, and turns `error` into a 400."""
    settled = await state.sandbox_lifecycle.settle(
        row, leaving, state.knobs.timings.sandbox_start_wait_seconds
    )
    if settled == SandboxState.ERROR:
        raise bad_request(f"Sandbox failed to start: {row.error_reason}")
    return JSONResponse(_wire(state, request, row), status_code=200)


@dataclass(frozen=True)
class _SnapshotFacts:
    """What a new sandbox takes from its snapshot, read under the snapshot store's lock."""

    name: str
    ref: str | None
    image_name: str
    entrypoint: list[str] | None
    cpu: int
    gpu: int
    memory: int
    disk: int


def _new_row(
    state: EmulatorState,
    organization_id: str,
    wanted: CreateSandboxRequest,
    region: str,
    snapshot: _SnapshotFacts,
) -> SandboxRow:
    """The row `POST /sandbox` stores, with Daytona's defaults for what the body left out."""
    sandbox_id = new_id()
    moment, since = state.clock.now(), state.clock.monotonic()
    return SandboxRow(
        id=sandbox_id,
        organization_id=organization_id,
        name=wanted.name or sandbox_id,
        target=region,
        snapshot_name=snapshot.name,
        snapshot_ref=snapshot.ref,
        image_name=snapshot.image_name,
        entrypoint=snapshot.entrypoint,
        cpu=snapshot.cpu,
        gpu=snapshot.gpu,
        memory=snapshot.memory,
        disk=snapshot.disk,
        user=wanted.user or DEFAULT_USER,
        env=wanted.env,
        labels=wanted.labels,
        public=wanted.public,
        network_block_all=bool(wanted.network_block_all),
        network_allow_list=wanted.network_allow_list,
        auto_stop_interval=(
            wanted.auto_stop_interval
            if wanted.auto_stop_interval is not None
            else DEFAULT_AUTO_STOP_MINUTES
        ),
        auto_archive_interval=(
            # 0 means "the maximum", which is also the default.
            wanted.auto_archive_interval or DEFAULT_AUTO_ARCHIVE_MINUTES
        ),
        auto_delete_interval=(
            wanted.auto_delete_interval
            if wanted.auto_delete_interval is not None
            else DEFAULT_AUTO_DELETE_MINUTES
        ),
        runner_id=state.runner_id,
        created_at=moment,
        updated_at=moment,
        state_since=since,
        last_activity=since,
    )


@router.post("")
async def create_sandbox(request: Request) -> JSONResponse:
    body = await json_body(request)
    state, auth = request_context(request)
    auth.require(WRITE_SANDBOXES)
    wanted = parse_create_sandbox(body)
    if wanted.has_build_info:
        if wanted.snapshot:
            raise bad_request("Cannot specify a snapshot when using a build info entry")
        raise bad_request(
            "The emulator does not build images: create a snapshot from a pushed image "
            "and create the sandbox from it"
        )
    if wanted.has_resources:
        raise bad_request("Cannot specify Sandbox resources when using a snapshot")
    region = wanted.target or state.config.default_region
    if region not in state.config.regions:
        raise not_found("Region not found")
    # Daytona falls back to its configured default snapshot; here, the first general one.
    snapshot_key = wanted.snapshot or next(iter(state.config.general_snapshots), "")
    with state.snapshots.lock:
        found = _snapshot_for(state, auth.organization_id, snapshot_key)
        snapshot = _SnapshotFacts(
            name=found.name,
            ref=found.ref,
            image_name=found.image_name,
            entrypoint=list(found.entrypoint) if found.entrypoint else None,
            cpu=_whole(found.cpu),
            gpu=_whole(found.gpu),
            memory=_whole(found.mem),
            disk=_whole(found.disk),
        )
    _check_per_sandbox_limits(state, snapshot.cpu, snapshot.memory, snapshot.disk)
    if wanted.volume_ids:
        # The emulator has no volumes, so none can be found.
        raise not_found(f"Volume '{wanted.volume_ids[0]}' not found")
    row = _new_row(state, auth.organization_id, wanted, region, snapshot)
    state.sandboxes.insert(row)
    state.sandbox_lifecycle.create(row)
    return await _once_started(state, request, row, SandboxState.CREATING)


@router.get("")
async def list_sandboxes(request: Request) -> JSONResponse:
    """`ListSandboxesResponse` as SDK 0.226.1 pages it: `items` and an opaque `nextCursor`."""
    state, auth = request_context(request)
    params = query_lists(request)
    messages = list_messages(params)
    if messages:
        raise ApiError(400, ", ".join(messages))
    limit = int(params["limit"][-1]) if "limit" in params else DEFAULT_LIST_LIMIT
    offset = int(params["cursor"][-1]) if "cursor" in params else 0
    labels: dict[str, Any] = json.loads(params["labels"][-1]) if "labels" in params else {}
    id_prefix = params.get("id", [""])[-1]
    name_prefix = params.get("name", [""])[-1].lower()
    states = values(params, "states")
    snapshots = values(params, "snapshots")

    def wanted(row: SandboxRow) -> bool:
        return (
            row.id.startswith(id_prefix)
            and row.name.lower().startswith(name_prefix)
            and all(row.labels.get(key) == value for key, value in labels.items())
            and (not states or row.state.value in states)
            and (not snapshots or row.snapshot_name in snapshots)
        )

    rows = state.sandboxes.matching(auth.organization_id, wanted)
    page = rows[offset : offset + limit]
    next_cursor = str(offset + limit) if offset + limit < len(rows) else None
    url = toolbox_proxy_url(request)
    with state.sandboxes.lock:
        items = [sandbox_list_item_wire(row, url) for row in page]
    return JSONResponse({"items": items, "nextCursor": next_cursor})


@router.get("/{id_or_name}")
async def get_sandbox(request: Request, id_or_name: str) -> JSONResponse:
    state, auth = request_context(request)
    row = state.sandboxes.resolve(auth.organization_id, unquote(id_or_name))
    return JSONResponse(_wire(state, request, row))


def state_change_in_progress() -> ApiError:
    """`StateChangeInProgressError`: Daytona's 409 while a change is in flight."""
    return ApiError(409, "Sandbox state change in progress")


@router.delete("/{id_or_name}")
async def delete_sandbox(request: Request, id_or_name: str) -> JSONResponse:
    state, auth = request_context(request)
    auth.require(DELETE_SANDBOXES)
    with state.sandboxes.lock:
        row = state.sandboxes.resolve(auth.organization_id, unquote(id_or_name))
        # `destroy`: while anything is in flight (a delete included), a second one is a 409.
        if row.busy:
            raise state_change_in_progress()
        state.sandbox_lifecycle.destroy(row)
    return JSONResponse(_wire(state, request, row), status_code=200)


def _settled(row: SandboxRow) -> bool:
    """Daytona's `String(sandbox.state) !== String(sandbox.desiredState)` test, negated."""
    return row.state.value == row.desired_state.value


def _check_not_errored(row: SandboxRow) -> None:
    """`assertSandboxNotErrored`."""
    if row.state == SandboxState.ERROR:
        raise bad_request("Sandbox is in an errored state")


@router.post("/{id_or_name}/start")
async def start_sandbox(request: Request, id_or_name: str) -> JSONResponse:
    state, auth = request_context(request)
    auth.require(WRITE_SANDBOXES)
    with state.sandboxes.lock:
        row = state.sandboxes.resolve(auth.organization_id, unquote(id_or_name))
        if row.state == SandboxState.STARTED and _settled(row):
            return JSONResponse(_wire(state, request, row), status_code=200)
        _check_not_errored(row)
        if not _settled(row):
            raise state_change_in_progress()
        if row.state != SandboxState.STOPPED:
            raise bad_request("Sandbox is not in valid state")
        state.sandbox_lifecycle.start(row)
    return await _once_started(state, request, row, SandboxState.STARTING)


@router.post("/{id_or_name}/stop")
async def stop_sandbox(request: Request, id_or_name: str) -> JSONResponse:
    state, auth = request_context(request)
    auth.require(WRITE_SANDBOXES)
    force = request.query_params.get("force") == "true"
    with state.sandboxes.lock:
        row = state.sandboxes.resolve(auth.organization_id, unquote(id_or_name))
        _check_not_errored(row)
        if not _settled(row):
            raise state_change_in_progress()
        if row.state != SandboxState.STARTED:
            raise bad_request("Sandbox is not in a stoppable state")
        state.sandbox_lifecycle.stop(row, force=force)
    return JSONResponse(_wire(state, request, row), status_code=200)


@router.post("/{id_or_name}/public/{is_public}")
async def update_public_status(request: Request, id_or_name: str, is_public: str) -> JSONResponse:
    state, auth = request_context(request)
    auth.require(WRITE_SANDBOXES)
    with state.sandboxes.lock:
        row = state.sandboxes.resolve(auth.organization_id, unquote(id_or_name))
        row.public = is_public == "true"
    return JSONResponse(_wire(state, request, row), status_code=200)


@router.get("/{id_or_name}/toolbox-proxy-url")
async def get_toolbox_proxy_url(request: Request, id_or_name: str) -> JSONResponse:
    state, auth = request_context(request)
    state.sandboxes.resolve(auth.organization_id, unquote(id_or_name))
    return JSONResponse({"url": toolbox_proxy_url(request)})


@router.get("/{id_or_name}/ports/{port}/preview-url")
async def get_port_preview_url(request: Request, id_or_name: str, port: str) -> JSONResponse:
    """`{sandboxId, url, token}`; the URL is the emulator's own preview proxy (preview_proxy.py)."""
    state, auth = request_context(request)
    number = int(port) if port.isdigit() else 0
    if not 1 <= number <= 65535:
        raise bad_request("Invalid port")
    with state.sandboxes.lock:
        row = state.sandboxes.resolve(auth.organization_id, unquote(id_or_name))
        return JSONResponse(
            {
                "sandboxId": row.id,
                "url": f"{origin(request)}{PREVIEW_PREFIX}/{row.id}/{number}",
                "token": row.auth_token,
            }
        )
