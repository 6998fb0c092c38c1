"""`/api/docker-registry`: an organization's registry entries, as Daytona's controller serves them.

Per request: JSON body parsing (400), authentication (401), permission guard (403,
`write:registries` / `delete:registries`), `DockerRegistryAccessGuard` (404 for an unknown id,
another organization's entry or a non-UUID alike), body validation (400), then the service.
Create answers 201 (the generated client knows only that code), delete 204 with no body.
"""

from __future__ import annotations

from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from daytona_emulator.auth import request_context
from daytona_emulator.config import DELETE_REGISTRIES, WRITE_REGISTRIES, new_id
from daytona_emulator.registries import RegistryEntry, parse_registry_body, registry_wire
from daytona_emulator.request_body import json_body

router = APIRouter(prefix="/api/docker-registry")


@router.post("")
async def create_registry(request: Request) -> JSONResponse:
    body = await json_body(request)
    state, auth = request_context(request)
    auth.require(WRITE_REGISTRIES)
    wanted = parse_registry_body(body, password_required=True)
    moment = state.clock.now()
    entry = RegistryEntry(
        id=new_id(),
        organization_id=auth.organization_id,
        name=wanted.name,
        url=wanted.url,
        username=wanted.username,
        password=wanted.password or "",
        project=wanted.project or "",
        created_at=moment,
        updated_at=moment,
    )
    state.registries.insert(entry)
    return JSONResponse(registry_wire(entry), status_code=201)


@router.get("")
async def list_registries(request: Request) -> JSONResponse:
    state, auth = request_context(request)
    return JSONResponse(
        [registry_wire(entry) for entry in state.registries.of(auth.organization_id)]
    )


@router.get("/{registry_id}")
async def get_registry(request: Request, registry_id: str) -> JSONResponse:
    state, auth = request_context(request)
    entry = state.registries.resolve(auth.organization_id, unquote(registry_id))
    return JSONResponse(registry_wire(entry))


@router.patch("/{registry_id}")
async def update_registry(request: Request, registry_id: str) -> JSONResponse:
    body = await json_body(request)
    state, auth = request_context(request)
    auth.require(WRITE_REGISTRIES)
    with state.registries.lock:
        entry = state.registries.resolve(auth.organization_id, unquote(registry_id))
        wanted = parse_registry_body(body, password_required=False)
        entry.name, entry.url, entry.username = wanted.name, wanted.url, wanted.username
        # The service keeps the stored password unless a non-empty one is sent, and the
        # project unless one is sent.
        if wanted.password:
            entry.password = wanted.password
        if wanted.project is not None:
            entry.project = wanted.project
        entry.updated_at = state.clock.now()
        return JSONResponse(registry_wire(entry))


@router.delete("/{registry_id}")
async def delete_registry(request: Request, registry_id: str) -> Response:
    state, auth = request_context(request)
    auth.require(DELETE_REGISTRIES)
    with state.registries.lock:
        entry = state.registries.resolve(auth.organization_id, unquote(registry_id))
        state.registries.remove(entry.id)
    return Response(status_code=204)
