"""`/_emulator/*`: the knob API for tests. Not part of Daytona; no auth (loopback only).

Faults and the request log never apply to these routes, so a test can always reach them.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daytona_emulator.clock import ManualClock
from daytona_emulator.errors import not_found
from daytona_emulator.knobs import FaultRule, SettingsPatch, SnapshotOutcome
from daytona_emulator.lifecycle import set_state
from daytona_emulator.models import SnapshotState, snapshot_wire
from daytona_emulator.state import EmulatorState, emulator_state
from daytona_emulator.wire import iso

router = APIRouter(prefix="/_emulator")


class RegistryAuthBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str
    password: str


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


@router.post("/reset")
async def reset(request: Request) -> Response:
    emulator_state(request).reset()
    return Response(status_code=204)


@router.get("/faults")
async def list_faults(request: Request) -> JSONResponse:
    return JSONResponse([_dump(rule) for rule in emulator_state(request).knobs.faults()])


@router.post("/faults")
async def add_fault(request: Request, rule: FaultRule) -> JSONResponse:
    return JSONResponse(_dump(emulator_state(request).knobs.add_fault(rule)), status_code=201)


@router.delete("/faults")
async def clear_faults(request: Request) -> Response:
    emulator_state(request).knobs.clear_faults()
    return Response(status_code=204)


@router.get("/outcomes")
async def list_outcomes(request: Request) -> JSONResponse:
    return JSONResponse([_dump(item) for item in emulator_state(request).knobs.outcomes()])


@router.post("/outcomes")
async def add_outcome(request: Request, outcome: SnapshotOutcome) -> JSONResponse:
    return JSONResponse(_dump(emulator_state(request).knobs.add_outcome(outcome)), status_code=201)


@router.delete("/outcomes")
async def clear_outcomes(request: Request) -> Response:
    emulator_state(request).knobs.clear_outcomes()
    return Response(status_code=204)


@router.get("/requests")
async def list_requests(request: Request) -> JSONResponse:
    return JSONResponse([_dump(item) for item in emulator_state(request).knobs.requests()])


@router.delete("/requests")
async def clear_requests(request: Request) -> Response:
    emulator_state(request).knobs.clear_requests()
    return Response(status_code=204)


@router.get("/settings")
async def get_settings(request: Request) -> JSONResponse:
    return JSONResponse(_dump(emulator_state(request).knobs.settings()))


@router.patch("/settings")
async def patch_settings(request: Request, patch: SettingsPatch) -> JSONResponse:
    try:
        settings = emulator_state(request).knobs.update_settings(patch)
    except ValidationError as error:
        return JSONResponse({"detail": json.loads(error.json(include_url=False))}, status_code=422)
    return JSONResponse(_dump(settings))


@router.put("/registry-auth/{host}")
async def put_registry_auth(request: Request, host: str, body: RegistryAuthBody) -> Response:
    emulator_state(request).knobs.set_registry_auth(host, body.username, body.password)
    return Response(status_code=204)


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
