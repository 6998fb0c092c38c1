"""`/api/snapshots`: Daytona's snapshot endpoints, guards and pipes in Nest's order.

Per request: authentication (401), permission guard (403), `SnapshotAccessGuard` lookup (404),
then pipes and body validation (400), then the service's business rules.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from daytona_emulator.auth import AuthContext, request_context
from daytona_emulator.config import DELETE_SNAPSHOTS, WRITE_SNAPSHOTS, new_id
from daytona_emulator.errors import ApiError, bad_request, forbidden, not_found
from daytona_emulator.lifecycle import set_state
from daytona_emulator.models import (
    TERMINAL_STATES,
    BuildInfo,
    Snapshot,
    SnapshotState,
    snapshot_wire,
)
from daytona_emulator.request_body import json_body, query_lists
from daytona_emulator.state import EmulatorState, emulator_state
from daytona_emulator.store import is_uuid
from daytona_emulator.validation import (
    check_resource_limits,
    check_snapshot_quota,
    parse_create_snapshot,
    parse_list_query,
)

router = APIRouter(prefix="/api/snapshots")


def _by_uuid(state: EmulatorState, auth: AuthContext, raw_id: str) -> Snapshot:
    """Guard (lookup by name or id, 404), then `ParseUUIDPipe` (400), then load by id (404)."""
    snapshot_id = unquote(raw_id)
    state.snapshots.resolve(auth.organization_id, snapshot_id)
    if not is_uuid(snapshot_id):
        raise bad_request("Validation failed (uuid is expected)")
    row = state.snapshots.get(snapshot_id.lower())
    if row is None:
        raise not_found(f"Snapshot {snapshot_id} not found")
    return row


@router.post("")
async def create_snapshot(request: Request) -> JSONResponse:
    # Express parses the body in middleware, before any guard: malformed JSON is a 400 first.
    body = await json_body(request)
    state, auth = request_context(request)
    auth.require(WRITE_SNAPSHOTS)
    wanted = parse_create_snapshot(body, state.config.regions)
    limits = state.knobs.limits
    store = state.snapshots
    with store.lock:
        check_resource_limits(limits, wanted.cpu, wanted.memory, wanted.disk, wanted.gpu)
        check_snapshot_quota(limits, store.quota_usage(auth.organization_id))
        moment = state.clock.now()
        build_info = None
        if wanted.dockerfile_content is not None:
            build_info = BuildInfo(wanted.dockerfile_content, wanted.context_hashes, moment)
        row = Snapshot(
            id=new_id(),
            organization_id=auth.organization_id,
            name=wanted.name,
            image_name=wanted.image_name or "",
            entrypoint=wanted.entrypoint,
            # Daytona's column defaults when the body leaves resources out.
            cpu=wanted.cpu if wanted.cpu is not None else 1,
            gpu=wanted.gpu if wanted.gpu is not None else 0,
            mem=wanted.memory if wanted.memory is not None else 1,
            disk=wanted.disk if wanted.disk is not None else 3,
            gpu_type=wanted.gpu_type,
            sandbox_class=wanted.sandbox_class or "container",
            region_ids=[wanted.region_id or state.config.default_region],
            build_info=build_info,
            created_at=moment,
            updated_at=moment,
            state_since=state.clock.monotonic(),
        )
        store.insert(row)
        return JSONResponse(snapshot_wire(row), status_code=200)


@router.get("")
async def list_snapshots(request: Request) -> JSONResponse:
    state, auth = request_context(request)
    params = query_lists(request)
    query = parse_list_query(params)
    page = state.snapshots.list(auth.organization_id, query)
    with state.snapshots.lock:
        items = [snapshot_wire(row) for row in page.items]
    return JSONResponse(
        {"items": items, "total": page.total, "page": page.page, "totalPages": page.total_pages}
    )


@router.get("/{id_or_name}")
async def get_snapshot(request: Request, id_or_name: str) -> JSONResponse:
    state, auth = request_context(request)
    with state.snapshots.lock:
        row = state.snapshots.resolve(auth.organization_id, unquote(id_or_name))
        return JSONResponse(snapshot_wire(row))


@router.delete("/{snapshot_id}")
async def remove_snapshot(request: Request, snapshot_id: str) -> Response:
    state, auth = request_context(request)
    auth.require(DELETE_SNAPSHOTS)
    with state.snapshots.lock:
        row = _by_uuid(state, auth, snapshot_id)
        if row.general:
            raise forbidden("You cannot delete a general snapshot")
        # Deleting twice must not restart the clean-up clock.
        if row.state != SnapshotState.REMOVING:
            set_state(row, SnapshotState.REMOVING, row.error_reason, clock=state.clock)
    return Response(status_code=200)


@router.post("/{snapshot_id}/activate")
async def activate_snapshot(request: Request, snapshot_id: str) -> JSONResponse:
    state, auth = request_context(request)
    auth.require(WRITE_SNAPSHOTS)
    limits = state.knobs.limits
    cooldown = state.knobs.timings.activation_cooldown_seconds
    with state.snapshots.lock:
        row = _by_uuid(state, auth, snapshot_id)
        shown_id = unquote(snapshot_id)
        if row.state == SnapshotState.ACTIVE:
            raise bad_request(f"Snapshot {shown_id} is already active")
        if row.state != SnapshotState.INACTIVE:
            raise bad_request(
                f"Snapshot {shown_id} cannot be activated - it is in {row.state.value} state"
            )
        if state.clock.monotonic() < row.state_since + cooldown:
            raise bad_request(
                "Snapshot deactivation is still in progress. Please try again in a few minutes."
            )
        check_resource_limits(limits, row.cpu, row.mem, row.disk, None)
        check_snapshot_quota(limits, state.snapshots.quota_usage(auth.organization_id))
        set_state(row, SnapshotState.PENDING, clock=state.clock)
        return JSONResponse(snapshot_wire(row), status_code=200)


@router.post("/{snapshot_id}/deactivate")
async def deactivate_snapshot(request: Request, snapshot_id: str) -> Response:
    state, auth = request_context(request)
    auth.require(WRITE_SNAPSHOTS)
    with state.snapshots.lock:
        row = _by_uuid(state, auth, snapshot_id)
        if row.state != SnapshotState.INACTIVE:
            set_state(row, SnapshotState.INACTIVE, clock=state.clock)
    return Response(status_code=204)


def _build_snapshot(request: Request, raw_id: str) -> Snapshot:
    state, auth = request_context(request)
    snapshot_id = unquote(raw_id)
    with state.snapshots.lock:
        state.snapshots.resolve(auth.organization_id, snapshot_id)
        if not is_uuid(snapshot_id):
            # The guard accepts a name, but the handler then loads by id: Postgres refuses a
            # non-uuid and the API answers with a bare 500.
            raise ApiError(500, "An unexpected error occurred.")
        row = state.snapshots.get(snapshot_id.lower())
        if row is None:
            raise not_found(f"Snapshot {snapshot_id} not found")
        if row.build_info is None:
            raise not_found(f"Snapshot {snapshot_id} has no build info")
        return row


@router.get("/{snapshot_id}/build-logs-url")
async def build_logs_url(request: Request, snapshot_id: str) -> JSONResponse:
    row = _build_snapshot(request, snapshot_id)
    # Real Daytona answers with its proxy's URL; here the emulator is its own proxy.
    base = str(request.base_url).rstrip("/")
    return JSONResponse({"url": f"{base}/api/snapshots/{row.id}/build-logs"})


@router.get("/{snapshot_id}/build-logs")
async def build_logs(request: Request, snapshot_id: str) -> StreamingResponse:
    row = _build_snapshot(request, snapshot_id)
    state = emulator_state(request)
    follow = request.query_params.get("follow") == "true"
    assert row.build_info is not None
    lines = [line for line in row.build_info.dockerfile_content.splitlines() if line.strip()]

    async def stream() -> AsyncIterator[bytes]:
        for number, line in enumerate(lines, start=1):
            yield f"#{number} [{number}/{len(lines)}] {line.strip()}\n".encode()
        # With follow, the stream ends once the snapshot reaches a terminal state.
        while follow:
            current = state.snapshots.get(row.id)
            if current is None or current.state in TERMINAL_STATES:
                break
            await asyncio.sleep(0.1)
        yield b"#done\n"

    return StreamingResponse(stream(), media_type="application/octet-stream")
