"""`/toolbox/{sandboxId}/...`: the daemon API the SDK reaches through a sandbox's `toolboxProxyUrl`.

Daytona's proxy authenticates the caller (`sandbox_access.py`), then the runner forwards to the
daemon inside the container. Here the emulator is the proxy and the engine is the daemon:
commands run with `docker exec`. Only what `daytona.create()` and
`sandbox.process.exec()` need is served, plus the two directory lookups. Errors use the Go
services' body (`proxy_wire.py`), not the API's.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from daytona_emulator.proxy_wire import proxy_error
from daytona_emulator.sandbox_access import MISSING_AUTHENTICATION, authentication_error
from daytona_emulator.sandbox_models import SandboxRow, SandboxState
from daytona_emulator.sandbox_runtime import ExecTimeout, RuntimeFailure
from daytona_emulator.state import emulator_state

router = APIRouter(prefix="/toolbox/{sandbox_id}")

DAEMON_VERSION = "0.0.0-emulator"


def _error(request: Request, status: int, message: str) -> Response:
    return proxy_error(status, message, request.scope, emulator_state(request).clock.now())


def _sandbox(request: Request, sandbox_id: str) -> SandboxRow | Response:
    """The started sandbox this request may use, or the error response to send instead."""
    state = emulator_state(request)
    row = state.sandboxes.get(sandbox_id)
    # An unknown sandbox looks the same as someone else's: nothing the caller has reaches it.
    reason = authentication_error(state, request, row)
    if reason is not None or row is None:
        return _error(request, 401, reason or MISSING_AUTHENTICATION)
    if row.state != SandboxState.STARTED or row.container_id is None:
        return _error(request, 502, f"Sandbox {row.id} is not running (state {row.state.value})")
    state.sandbox_lifecycle.touch(row)  # toolbox use is activity: auto-stop counts from here
    return row


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


@router.post("/process/execute")
async def execute_command(request: Request, sandbox_id: str) -> Response:
    """`ExecuteRequest` {command, cwd?, envs?, timeout?} -> `ExecuteResponse` {exitCode, result}."""
    row = _sandbox(request, sandbox_id)
    if isinstance(row, Response):
        return row
    body = await _json_object(request)
    command = body.get("command") if body else None
    timeout = body.get("timeout") if body else None
    cwd = body.get("cwd") if body else None
    envs = body.get("envs") if body else None
    if (
        not isinstance(command, str)
        or not command
        or (timeout is not None and (not isinstance(timeout, int) or timeout < 0))
        or (cwd is not None and not isinstance(cwd, str))
        or (envs is not None and not isinstance(envs, dict))
    ):
        # gin's ShouldBindJSON fails as a whole; the daemon reports it this way.
        return _error(request, 400, "command is required")
    if not command.strip():
        return _error(request, 400, "empty command")
    assert row.container_id is not None
    runtime = emulator_state(request).runtime
    try:
        result = await runtime.exec(
            row.container_id,
            command,
            cwd=cwd,
            env={str(k): str(v) for k, v in (envs or {}).items()},
            timeout=timeout or None,
        )
    except ExecTimeout:
        return _error(
            request,
            408,
            f"Command execution timed out after {timeout} seconds. The timeout can be "
            "increased by adjusting the timeout parameter in the request.",
        )
    except RuntimeFailure as error:
        return _error(request, 500, str(error))
    return JSONResponse({"exitCode": result.exit_code, "result": result.output})


async def _shell_value(request: Request, sandbox_id: str, command: str) -> Response:
    row = _sandbox(request, sandbox_id)
    if isinstance(row, Response):
        return row
    assert row.container_id is not None
    runtime = emulator_state(request).runtime
    try:
        result = await runtime.exec(row.container_id, command, cwd=None, env={}, timeout=10)
    except (ExecTimeout, RuntimeFailure) as error:
        return _error(request, 500, str(error) or "timed out")
    if result.exit_code != 0:
        return _error(request, 500, result.output.strip())
    return JSONResponse({"dir": result.output.strip()})


@router.get("/user-home-dir")
async def user_home_dir(request: Request, sandbox_id: str) -> Response:
    # The container runs as the image's user, not Daytona's `daytona`: ask it.
    return await _shell_value(request, sandbox_id, 'printf "%s" "${HOME:-/}"')


@router.get("/work-dir")
async def work_dir(request: Request, sandbox_id: str) -> Response:
    # The image's WORKDIR is where `docker exec` starts, as the daemon's own cwd is in Daytona.
    return await _shell_value(request, sandbox_id, "pwd")


@router.get("/version")
async def version(request: Request, sandbox_id: str) -> Response:
    row = _sandbox(request, sandbox_id)
    if isinstance(row, Response):
        return row
    return JSONResponse({"version": DAEMON_VERSION})


@router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def not_served(request: Request, sandbox_id: str, path: str) -> Response:
    """The rest of the daemon's API (files, git, sessions, ...) is not emulated: gin's 404."""
    row = _sandbox(request, sandbox_id)
    if isinstance(row, Response):
        return row
    return PlainTextResponse("404 page not found", status_code=404)
