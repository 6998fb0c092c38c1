"""Assemble the emulator: FastAPI routes inside raw-path routing inside the traffic layer.

`create_app(config)` returns the ASGI app and the `EmulatorState` it serves, so an in-process
runner (server.py) can hand tests a direct handle on the same knobs the admin routes use.
Preview traffic (preview_proxy.py) is split off before the traffic layer: it is not API traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp

from daytona_emulator import (
    admin_routes,
    registry_routes,
    sandbox_admin_routes,
    sandbox_routes,
    snapshot_routes,
    toolbox_routes,
)
from daytona_emulator.clock import Clock
from daytona_emulator.config import EmulatorConfig
from daytona_emulator.errors import ApiError
from daytona_emulator.preview_proxy import PreviewDispatch
from daytona_emulator.rawpath import RawPathRouting
from daytona_emulator.state import EmulatorState, emulator_state
from daytona_emulator.traffic import TrafficMiddleware
from daytona_emulator.wire import error_response, request_url

log = logging.getLogger(__name__)


def _now(request: Request) -> datetime:
    return emulator_state(request).clock.now()


def _fastapi_app(state: EmulatorState) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.loop = asyncio.get_running_loop()
        task = state.loop.create_task(state.lifecycle.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # Sandbox containers must not outlive the server.
            await state.sandbox_lifecycle.shutdown()

    app = FastAPI(
        title="Daytona API emulator",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
    )
    app.state.emulator = state
    app.include_router(snapshot_routes.router)
    app.include_router(registry_routes.router)
    app.include_router(sandbox_routes.router)
    app.include_router(toolbox_routes.router)
    app.include_router(admin_routes.router)
    app.include_router(sandbox_admin_routes.router)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(
            error.status, error.message, request.scope, _now(request), error.headers
        )

    @app.exception_handler(HTTPException)
    async def no_route(request: Request, error: HTTPException) -> JSONResponse:
        # Express answers unknown routes and unknown methods alike: 404 "Cannot GET /path".
        if error.status_code in (404, 405):
            message = f"Cannot {request.method} {request_url(request.scope)}"
            return error_response(404, message, request.scope, _now(request))
        return error_response(error.status_code, str(error.detail), request.scope, _now(request))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(500, "An unexpected error occurred.", request.scope, _now(request))

    return app


def create_app(config: EmulatorConfig, clock: Clock | None = None) -> tuple[ASGIApp, EmulatorState]:
    """The app and its state; `clock` defaults to real time (clock.py)."""
    state = EmulatorState(config, clock)
    api = TrafficMiddleware(RawPathRouting(_fastapi_app(state)), state)
    app: ASGIApp = PreviewDispatch(api, state)
    return app, state
