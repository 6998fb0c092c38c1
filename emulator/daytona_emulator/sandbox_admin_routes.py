"""`/_emulator/sandbox-*`: knobs for sandboxes. Not part of Daytona; no auth (loopback only).

Scripted outcomes make sandboxes of matching snapshots fail (or hang) without a container; the
container list shows what this emulator instance has running on the engine.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from daytona_emulator.admin_routes import knob_list
from daytona_emulator.knobs import Knobs, SandboxOutcome
from daytona_emulator.state import emulator_state

router = APIRouter(prefix="/_emulator")


knob_list(
    "/sandbox-outcomes",
    SandboxOutcome,
    items=Knobs.sandbox_outcomes,
    clear=Knobs.clear_sandbox_outcomes,
    add=Knobs.add_sandbox_outcome,
    on=router,
)


@router.get("/sandbox-containers")
async def list_sandbox_containers(request: Request) -> JSONResponse:
    """Ids of this instance's containers on the engine, running or not."""
    runtime = emulator_state(request).runtime
    return JSONResponse(await asyncio.to_thread(runtime.containers))
