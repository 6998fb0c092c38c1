"""`/_emulator/sandbox-*`: knobs for sandboxes. Not part of Daytona; no auth (loopback only).

Scripted outcomes make sandboxes of matching snapshots fail (or hang) without a container; the
container list shows what this emulator instance has running on the engine.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from daytona_emulator.knobs import SandboxOutcome
from daytona_emulator.state import emulator_state

router = APIRouter(prefix="/_emulator")


@router.get("/sandbox-outcomes")
async def list_sandbox_outcomes(request: Request) -> JSONResponse:
    outcomes = emulator_state(request).knobs.sandbox_outcomes()
    return JSONResponse([outcome.model_dump(mode="json") for outcome in outcomes])


@router.post("/sandbox-outcomes")
async def add_sandbox_outcome(request: Request, outcome: SandboxOutcome) -> JSONResponse:
    added = emulator_state(request).knobs.add_sandbox_outcome(outcome)
    return JSONResponse(added.model_dump(mode="json"), status_code=201)


@router.delete("/sandbox-outcomes")
async def clear_sandbox_outcomes(request: Request) -> Response:
    emulator_state(request).knobs.clear_sandbox_outcomes()
    return Response(status_code=204)


@router.get("/sandbox-containers")
async def list_sandbox_containers(request: Request) -> JSONResponse:
    """Ids of this instance's containers on the engine, running or not."""
    runtime = emulator_state(request).runtime
    return JSONResponse(await asyncio.to_thread(runtime.containers))
