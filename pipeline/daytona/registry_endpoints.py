"""Daytona's `/docker-registry` endpoints (paths and fields as in Daytona's generated client,
daytona_api_client.api.docker_registry_api); part of DaytonaClient.

The password travels only in request bodies: each call that sends one names it as a secret of
the call, so an answer that echoes the body cannot bring it into a message.
"""

from __future__ import annotations

from urllib.parse import quote

from pydantic import TypeAdapter

from pipeline.daytona.transport import Transport
from pipeline.rules.daytona_http import REGISTRY_PERMISSIONS
from pipeline.rules.daytona_models import DockerRegistry, RegistryEntryRequest

_ENTRIES = TypeAdapter(list[DockerRegistry])


class RegistryEndpoints(Transport):
    def list_registries(self) -> list[DockerRegistry]:
        """`GET /docker-registry`: the organization's entries, newest first."""
        operation = "listing Daytona's registry entries"
        response = self.send("GET", "/docker-registry", operation, permissions=REGISTRY_PERMISSIONS)
        return self.parse_as(_ENTRIES, response, operation, "a list of registry entries")

    def create_registry(self, request: RegistryEntryRequest) -> DockerRegistry:
        """`POST /docker-registry` (201). Never retried once sent: a second POST would make a
        second entry; a lost answer raises OutcomeUnknown and the caller lists again."""
        operation = f"creating Daytona's registry entry for {request.url}"
        response = self.send(
            "POST",
            "/docker-registry",
            operation,
            json=request.body(),
            idempotent=False,
            permissions=REGISTRY_PERMISSIONS,
            secrets=(request.password,),
        )
        return self.parse(DockerRegistry, response, operation)

    def update_registry(self, registry_id: str, request: RegistryEntryRequest) -> DockerRegistry:
        """`PATCH /docker-registry/{id}`: the same body again gives the same entry, so it is
        retried like a read."""
        operation = f"updating Daytona's registry entry {registry_id}"
        response = self.send(
            "PATCH",
            _path(registry_id),
            operation,
            json=request.body(),
            permissions=REGISTRY_PERMISSIONS,
            secrets=(request.password,),
        )
        return self.parse(DockerRegistry, response, operation)

    def delete_registry(self, registry_id: str) -> bool:
        """`DELETE /docker-registry/{id}` (204). False when it was already gone (404)."""
        operation = f"deleting Daytona's registry entry {registry_id}"
        response = self.send(
            "DELETE",
            _path(registry_id),
            operation,
            tolerate=(404,),
            permissions=REGISTRY_PERMISSIONS,
        )
        return response.status_code != 404


def _path(registry_id: str) -> str:
    return f"/docker-registry/{quote(registry_id, safe='')}"
