"""`/_emulator/*`: the knob API for tests. Not part of Daytona; no auth (loopback only).

Faults and the request log never apply to these routes, so a test can always reach them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daytona_emulator.clock import ManualClock
from daytona_emulator.errors import not_found
from daytona_emulator.knobs import FaultRule, Knobs, RequestRecord, SettingsPatch, SnapshotOutcome
from daytona_emulator.lifecycle import set_state
from daytona_emulator.models import SnapshotState, snapshot_wire
from daytona_emulator.state import EmulatorState, emulator_state
from daytona_emulator.wire import iso

router = APIRouter(prefix="/_emulator")
Item = TypeVar("Item", bound=BaseModel)


class RegistryMirrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str = Field(description="host:port actually contacted for this registry host")


class ForcedState(BaseModel):
    """Put a snapshot into any state, e.g. `inactive` as Daytona's 14-day cron would."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    state: SnapshotState
    error_reason: str | None = Field(default=None, alias="errorReason")


class AdvanceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0)


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def _invalid(error: ValidationError) -> JSONResponse:
    """FastAPI's own answer to a body it cannot validate."""
    return JSONResponse({"detail": json.loads(error.json(include_url=False))}, status_code=422)


@router.post("/reset")
async def reset(request: Request) -> Response:
    emulator_state(request).reset()
    return Response(status_code=204)


def knob_list(
    path: str,
    model: type[Item],
    *,
    items: Callable[[Knobs], list[Item]],
    clear: Callable[[Knobs], None],
    add: Callable[[Knobs, Item], Item] | None = None,
    on: APIRouter = router,
) -> None:
    """One of the knobs' lists at `path`: GET lists it, POST adds to it (201), DELETE clears
    it (204)."""

    async def listed(request: Request) -> JSONResponse:
        return JSONResponse([_dump(item) for item in items(emulator_state(request).knobs)])

    async def added(request: Request) -> JSONResponse:
        assert add is not None
        try:
            item = model.model_validate_json(await request.body())
        except ValidationError as error:
            return _invalid(error)
        return JSONResponse(_dump(add(emulator_state(request).knobs, item)), status_code=201)

    async def cleared(request: Request) -> Response:
        clear(emulator_state(request).knobs)
        return Response(status_code=204)

    on.add_api_route(path, listed, methods=["GET"])
    if add is not None:
        on.add_api_route(path, added, methods=["POST"])
    on.add_api_route(path, cleared, methods=["DELETE"])


knob_list("/faults", FaultRule, items=Knobs.faults, clear=Knobs.clear_faults, add=Knobs.add_fault)
knob_list(
    "/outcomes",
    SnapshotOutcome,
    items=Knobs.outcomes,
    clear=Knobs.clear_outcomes,
    add=Knobs.add_outcome,
)
knob_list("/requests", RequestRecord, items=Knobs.requests, clear=Knobs.clear_requests)


@router.get("/settings")
async def get_settings(request: Request) -> JSONResponse:
    return JSONResponse(_dump(emulator_state(request).knobs.settings()))


@router.patch("/settings")
async def patch_settings(request: Request, patch: SettingsPatch) -> JSONResponse:
    try:
        settings = emulator_state(request).knobs.update_settings(patch)
    except ValidationError as error:
        return _invalid(error)
    return JSONResponse(_dump(settings))


@router.put("/registry-mirrors/{host}")
async def put_registry_mirror(request: Request, host: str, body: RegistryMirrorBody) -> Response:
    emulator_state(request).knobs.set_registry_mirror(host, body.target)
    return Response(status_code=204)


@router.post("/snapshots/{snapshot_id}/state")
async def force_state(request: Request, snapshot_id: str, body: ForcedState) -> JSONResponse:
    state = emulator_state(request)
    with state.snapshots.lock:
        row = state.snapshots.get(snapshot_id)
        if row is None:
            raise not_found(f"Snapshot {snapshot_id} not found")
        set_state(row, body.state, body.error_reason, clock=state.clock)
        return JSONResponse(snapshot_wire(row))


# The clock (clock.py): frozen, time moves only when a test advances it; a reset unfreezes it.


def _clock(state: EmulatorState) -> JSONResponse:
    return JSONResponse(
        {
            "frozen": isinstance(state.clock, ManualClock),
            "now": iso(state.clock.now()),
            "monotonic": state.clock.monotonic(),
        }
    )


@router.get("/clock")
async def get_clock(request: Request) -> JSONResponse:
    return _clock(emulator_state(request))


@router.post("/clock/freeze")
async def freeze_clock(request: Request) -> JSONResponse:
    state = emulator_state(request)
    state.freeze_clock()
    return _clock(state)


@router.post("/clock/advance")
async def advance_clock(request: Request, body: AdvanceBody) -> JSONResponse:
    """Move a frozen clock forward; answers once every transition due meanwhile happened."""
    state = emulator_state(request)
    await state.advance_clock(body.seconds)
    return _clock(state)
