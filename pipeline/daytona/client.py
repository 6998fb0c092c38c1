"""A thin client for Daytona's API: one method per endpoint, nothing decided here.

The snapshot endpoints are below; the sandbox and registry-entry ones come from
sandbox_endpoints.py and registry_endpoints.py; sending, retrying and error mapping from
transport.py. Decisions (what to create, when to wait) live in pipeline/rules and in
snapshots.py / sandbox_lifecycle.py / registries.py. Sessions make the client from settings
(`pipeline.sessions.daytona_common.connect`); this module takes values only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final
from urllib.parse import quote

from pipeline.daytona.registry_endpoints import RegistryEndpoints
from pipeline.daytona.sandbox_endpoints import LIST_LIMIT_MAX, SandboxEndpoints
from pipeline.daytona.transport import CreateConflict, url_of
from pipeline.rules.daytona_models import CreateSnapshot, Snapshot, SnapshotPage

# `build-logs-url` may hold the request 30 s on the server while it waits for a build runner.
BUILD_LOGS_HTTP_TIMEOUT: Final = 45.0


class DaytonaClient(SandboxEndpoints, RegistryEndpoints):
    """Daytona's snapshot endpoints here, its sandbox and registry-entry endpoints from
    SandboxEndpoints and RegistryEndpoints; constructed as a `Transport`."""

    def get_snapshot(self, id_or_name: str) -> Snapshot | None:
        """The snapshot with that name (or id), None when Daytona answers 404."""
        operation = f"looking up snapshot {id_or_name}"
        response = self.send("GET", _path(id_or_name), operation, tolerate=(404,))
        if response.status_code == 404:
            return None
        return self.parse(Snapshot, response, operation)

    def list_snapshots(
        self,
        *,
        page: int = 1,
        limit: int = 100,
        name: str | None = None,
        sort: str = "createdAt",
        order: str = "desc",
    ) -> SnapshotPage:
        params: dict[str, str | int] = {"page": page, "limit": limit, "sort": sort, "order": order}
        if name:
            params["name"] = name
        operation = "listing snapshots" + (f" matching {name!r}" if name else "")
        response = self.send("GET", "/snapshots", operation, params=params)
        return self.parse(SnapshotPage, response, operation)

    def iter_snapshots(
        self, name: str | None, *, limit: int = LIST_LIMIT_MAX
    ) -> Iterator[Snapshot]:
        """Every snapshot the server matches to `name`, newest first, page by page (lazily)."""
        page = 1
        while True:
            result = self.list_snapshots(page=page, limit=limit, name=name)
            yield from result.items
            if page >= result.total_pages or not result.items:
                return
            page += 1

    def create_snapshot(self, request: CreateSnapshot) -> Snapshot:
        """`POST /snapshots`, never sent again once it may have landed (OutcomeUnknown)."""
        operation = f"creating snapshot {request.name}"
        response = self.send(
            "POST", "/snapshots", operation, json=request.body(), idempotent=False, tolerate=(409,)
        )
        if response.status_code == 409:
            raise CreateConflict(f"{operation}: {self.message(response)}")
        return self.parse(Snapshot, response, operation)

    def activate_snapshot(self, snapshot_id: str) -> Snapshot:
        operation = f"activating snapshot {snapshot_id}"
        response = self.send("POST", f"{_path(snapshot_id)}/activate", operation, idempotent=False)
        return self.parse(Snapshot, response, operation)

    def delete_snapshot(self, snapshot_id: str) -> bool:
        """Delete by UUID (Daytona refuses names here). False when it was already gone."""
        operation = f"deleting snapshot {snapshot_id}"
        response = self.send("DELETE", _path(snapshot_id), operation, tolerate=(404,))
        return response.status_code != 404

    def build_logs_url(self, snapshot_id: str) -> str | None:
        """None for image snapshots: Daytona answers 404 "has no build info" for every one."""
        operation = f"getting the build-log URL of snapshot {snapshot_id}"
        response = self.send(
            "GET",
            f"{_path(snapshot_id)}/build-logs-url",
            operation,
            tolerate=(404,),
            timeout=self.longer(BUILD_LOGS_HTTP_TIMEOUT),
        )
        if response.status_code == 404:
            return None
        return url_of(response, operation)


def _path(id_or_name: str) -> str:
    # Like the generated client: no safe characters, so a `/` stays inside one path segment.
    return f"/snapshots/{quote(id_or_name, safe='')}"
