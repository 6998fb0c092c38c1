"""A thin client for Daytona's snapshot and sandbox APIs: one method per endpoint.

Decisions (what to create, when to wait) live in pipeline/rules and in snapshots.py /
sandbox_lifecycle.py; this module only turns calls into HTTP through `Transport`, which retries
and maps failures to `pipeline.errors`. The sandbox endpoints are in sandbox_api.py, the registry
entries' in registry_endpoints.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from pipeline.daytona.registry_endpoints import RegistryEndpoints
from pipeline.daytona.sandbox_api import (
    DEFAULT_EXEC_TIMEOUT,
    LIST_LIMIT_MAX,
    SandboxEndpoints,
    StateChangeInProgress,
)
from pipeline.daytona.transport import (
    CreateConflict,
    OutcomeUnknown,
    Transport,
    url_of,
)
from pipeline.errors import ConfigError
from pipeline.rules.daytona_http import (
    KEYS_URL,
    SNAPSHOT_PERMISSIONS,
    RetryPolicy,
    api_error,
    retry_after_seconds,
)
from pipeline.rules.daytona_models import CreateSnapshot, Snapshot, SnapshotPage
from pipeline.settings.daytona import DaytonaSettings
from pipeline.waiting import SYSTEM_CLOCK, Clock

# `build-logs-url` may hold the request 30 s on the server while it waits for a build runner.
BUILD_LOGS_HTTP_TIMEOUT: Final = 45.0


class DaytonaClient(SandboxEndpoints, RegistryEndpoints):
    """Daytona's snapshot endpoints here, its sandbox and registry-entry endpoints from
    SandboxEndpoints and RegistryEndpoints."""

    def __init__(
        self,
        api_url: str,
        api_key: SecretStr,
        organization_id: str | None = None,
        *,
        http_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.organization_id = organization_id
        self._transport = Transport(
            self.api_url,
            api_key,
            organization_id,
            http_timeout=http_timeout,
            retry=retry or RetryPolicy(),
            clock=clock,
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: DaytonaSettings, **kwargs: Any) -> DaytonaClient:
        if settings.api_key is None:
            raise ConfigError(
                "DAYTONA_API_KEY is not set",
                f"create a key with write:snapshots and delete:snapshots at {KEYS_URL} "
                "and export DAYTONA_API_KEY",
            )
        kwargs.setdefault("retry", RetryPolicy(timeout=settings.retry_timeout))
        return cls(
            settings.api_url,
            settings.api_key,
            settings.organization_id,
            http_timeout=settings.http_timeout,
            **kwargs,
        )

    @property
    def retry(self) -> RetryPolicy:
        return self._transport.retry

    @property
    def clock(self) -> Clock:
        """The clock of this client's retries; waits on top of it default to the same one."""
        return self._transport.clock

    def __repr__(self) -> str:
        return f"DaytonaClient({self.api_url!r}, organization_id={self.organization_id!r})"

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- snapshots -------------------------------------------------------------------------

    def get_snapshot(self, id_or_name: str) -> Snapshot | None:
        """The snapshot with that name (or id), None when Daytona answers 404."""
        operation = f"looking up snapshot {id_or_name}"
        response = self._send("GET", _path(id_or_name), operation, tolerate=(404,))
        if response.status_code == 404:
            return None
        return self._parse(Snapshot, response, operation)

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
        response = self._send("GET", "/snapshots", operation, params=params)
        return self._parse(SnapshotPage, response, operation)

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
        """`POST /snapshots`, never retried once it may have landed (OutcomeUnknown)."""
        operation = f"creating snapshot {request.name}"
        response = self._send(
            "POST", "/snapshots", operation, json=request.body(), idempotent=False, tolerate=(409,)
        )
        if response.status_code == 409:
            raise CreateConflict(f"{operation}: {self._message(response)}")
        return self._parse(Snapshot, response, operation)

    def activate_snapshot(self, snapshot_id: str) -> Snapshot:
        operation = f"activating snapshot {snapshot_id}"
        response = self._send("POST", f"{_path(snapshot_id)}/activate", operation, idempotent=False)
        return self._parse(Snapshot, response, operation)

    def delete_snapshot(self, snapshot_id: str) -> bool:
        """Delete by UUID (Daytona refuses names here). False when it was already gone."""
        operation = f"deleting snapshot {snapshot_id}"
        response = self._send("DELETE", _path(snapshot_id), operation, tolerate=(404,))
        return response.status_code != 404

    def build_logs_url(self, snapshot_id: str) -> str | None:
        """None for image snapshots: Daytona answers 404 "has no build info" for every one."""
        operation = f"getting the build-log URL of snapshot {snapshot_id}"
        response = self._send(
            "GET",
            f"{_path(snapshot_id)}/build-logs-url",
            operation,
            tolerate=(404,),
            timeout=self._longer(BUILD_LOGS_HTTP_TIMEOUT),
        )
        if response.status_code == 404:
            return None
        return url_of(response, operation)


def _path(id_or_name: str) -> str:
    # Like the generated client: no safe characters, so a `/` stays inside one path segment.
    return f"/snapshots/{quote(id_or_name, safe='')}"


__all__ = [
    "DEFAULT_EXEC_TIMEOUT",
    "LIST_LIMIT_MAX",
    "SNAPSHOT_PERMISSIONS",
    "CreateConflict",
    "DaytonaClient",
    "OutcomeUnknown",
    "RetryPolicy",
    "StateChangeInProgress",
    "api_error",
    "retry_after_seconds",
]
