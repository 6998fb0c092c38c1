"""A thin client for Daytona's API: one method per endpoint (paths and fields as in Daytona's
generated client, daytona_api_client), nothing decided here; sending, retrying and error mapping
are transport.py's. A registry password travels only in request bodies, named as a secret of the
call, so an answer that echoes the body cannot bring it into a message.
"""

from __future__ import annotations

import json as json_module
from collections.abc import Iterator, Mapping
from itertools import count
from typing import Final
from urllib.parse import quote

import httpx

from pipeline.daytona.transport import Transport, is_json_object
from pipeline.errors import DaytonaError
from pipeline.rules.daytona_models import (
    SANDBOX_GONE_STATES,
    CreateSandbox,
    CreateSnapshot,
    DockerRegistry,
    ExecResult,
    PortPreview,
    RegistryEntryRequest,
    Sandbox,
    SandboxPage,
    Snapshot,
    SnapshotPage,
)

LIST_LIMIT_MAX: Final = 200
# `POST /sandbox` answers only once the sandbox started or the server gave up waiting (30 s on
# Daytona): a shorter read timeout would turn every slow start into an "outcome unknown".
SANDBOX_WAIT_HTTP_TIMEOUT: Final = 75.0
# The toolbox answers when the command ends; allow its own timeout plus this much.
EXEC_HTTP_MARGIN: Final = 15.0
DEFAULT_EXEC_TIMEOUT: Final = 60


class StateChangeInProgress(DaytonaError):
    """409 "Sandbox state change in progress": Daytona refuses a start/stop/delete meanwhile."""


class DaytonaClient(Transport):
    # --- snapshots ------------------------------------------------------------------------------

    def get_snapshot(self, id_or_name: str) -> Snapshot | None:
        return self.find(
            Snapshot, _path("snapshots", id_or_name), f"looking up snapshot {id_or_name}"
        )

    def snapshot_pages(
        self, name: str | None, *, limit: int = LIST_LIMIT_MAX
    ) -> Iterator[SnapshotPage]:
        operation = "listing snapshots" + (f" matching {name!r}" if name else "")
        params: dict[str, str | int] = {"limit": limit, "sort": "createdAt", "order": "desc"}
        if name:
            params["name"] = name
        for page in count(1):
            params["page"] = page
            result = self.fetch(SnapshotPage, "GET", "/snapshots", operation, params=params)
            yield result
            if page >= result.total_pages or not result.items:
                return

    def iter_snapshots(
        self, name: str | None, *, limit: int = LIST_LIMIT_MAX
    ) -> Iterator[Snapshot]:
        for page in self.snapshot_pages(name, limit=limit):
            yield from page.items

    def create_snapshot(self, request: CreateSnapshot) -> Snapshot:
        operation = f"creating snapshot {request.name}"
        return self.create(Snapshot, "/snapshots", operation, json=request.body())

    def activate_snapshot(self, snapshot_id: str) -> Snapshot:
        path = f"{_path('snapshots', snapshot_id)}/activate"
        operation = f"activating snapshot {snapshot_id}"
        return self.fetch(Snapshot, "POST", path, operation, idempotent=False)

    def delete_snapshot(self, snapshot_id: str) -> bool:
        """Delete by UUID (Daytona refuses names here)."""
        return self.remove(_path("snapshots", snapshot_id), f"deleting snapshot {snapshot_id}")

    # --- sandboxes ------------------------------------------------------------------------------

    def create_sandbox(self, request: CreateSandbox) -> Sandbox:
        operation = f"creating sandbox {request.name} from snapshot {request.snapshot}"
        timeout = max(SANDBOX_WAIT_HTTP_TIMEOUT, self.http.timeout.read or 0)
        return self.create(Sandbox, "/sandbox", operation, json=request.body(), timeout=timeout)

    def get_sandbox(self, id_or_name: str) -> Sandbox | None:
        return self.find(Sandbox, _path("sandbox", id_or_name), f"looking up sandbox {id_or_name}")

    def iter_sandboxes(
        self, labels: Mapping[str, str] | None = None, *, limit: int = LIST_LIMIT_MAX
    ) -> Iterator[Sandbox]:
        """Every sandbox with all of `labels` (sent JSON-encoded, as the SDK does), following
        `nextCursor` lazily."""
        params: dict[str, str | int] = {"limit": limit}
        if labels:
            params["labels"] = json_module.dumps(dict(labels), sort_keys=True)
        operation = "listing sandboxes" + (f" labelled {dict(labels)}" if labels else "")
        while True:
            response = self.send("GET", "/sandbox", operation, params=params)
            if response.content.lstrip().startswith(b"["):
                # Servers before the cursor API (public source up to v0.190) answer a bare array.
                body = b'{"items": ' + response.content + b', "nextCursor": null}'
                response = httpx.Response(response.status_code, content=body)
            page = self.parse(SandboxPage, response, operation)
            yield from page.items
            if not page.next_cursor or not page.items:
                return
            params["cursor"] = page.next_cursor

    def stop_sandbox(self, id_or_name: str) -> Sandbox:
        path = f"{_path('sandbox', id_or_name)}/stop"
        operation = f"stopping sandbox {id_or_name}"
        return self.fetch(Sandbox, "POST", path, operation, idempotent=False)

    def delete_sandbox(self, id_or_name: str) -> bool:
        """Ask Daytona to destroy it (it shows `destroying`, then 404); False when it was already
        gone. Retried like a read: a repeat finds it `destroying` or gone, never something new.
        Daytona answers a repeated DELETE, and one during a start or stop, with 409 "state change
        in progress": then `destroying` or gone is success, else StateChangeInProgress."""
        operation = f"deleting sandbox {id_or_name}"
        path = _path("sandbox", id_or_name)
        response = self.send("DELETE", path, operation, tolerate=(404, 409))
        if response.status_code == 404:
            return False
        if response.status_code == 409:
            now = self.get_sandbox(id_or_name)
            if now is not None and now.state not in SANDBOX_GONE_STATES:
                raise StateChangeInProgress(
                    f"{operation}: Daytona answered 409 {self.message(response)}",
                    "wait for it to settle and retry",
                )
        return True

    def preview_url(self, id_or_name: str, port: int) -> PortPreview:
        """The preview URL of a port and the token that opens it (`X-Daytona-Preview-Token`)."""
        path = f"{_path('sandbox', id_or_name)}/ports/{port}/preview-url"
        operation = f"getting the preview URL of port {port} of sandbox {id_or_name}"
        return self.fetch(PortPreview, "GET", path, operation)

    def toolbox_proxy_url(self, sandbox_id: str) -> str:
        """What the SDK asks when a Sandbox came without `toolboxProxyUrl`."""
        operation = f"getting the toolbox URL of sandbox {sandbox_id}"
        path = f"{_path('sandbox', sandbox_id)}/toolbox-proxy-url"
        response = self.send("GET", path, operation)
        url = response.json().get("url") if is_json_object(response) else None
        if not isinstance(url, str) or not url:
            raise DaytonaError(f"{operation}: the answer has no url")
        return url

    def execute(
        self,
        toolbox_proxy_url: str,
        sandbox_id: str,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: int = DEFAULT_EXEC_TIMEOUT,
    ) -> ExecResult:
        """Run `command` like the SDK: `POST <toolboxProxyUrl>/<sandboxId>/process/execute` with
        the same Bearer key. A command can have effects: never re-sent after it may have run."""
        base = toolbox_proxy_url.rstrip("/")
        if not base.startswith(("https://", "http://")):
            # The key goes wherever this points: only to a real http(s) URL.
            raise DaytonaError(
                f"sandbox {sandbox_id} has no usable toolbox URL ({toolbox_proxy_url!r})"
            )
        body: dict[str, object] = {"command": command, "timeout": timeout}
        if cwd:
            body["cwd"] = cwd
        if env:
            body["envs"] = dict(env)
        return self.fetch(
            ExecResult,
            "POST",
            f"{base}/{quote(sandbox_id, safe='')}/process/execute",
            f"running a command in sandbox {sandbox_id}",
            json=body,
            idempotent=False,
            timeout=timeout + EXEC_HTTP_MARGIN,
        )

    # --- registry entries -----------------------------------------------------------------------

    def list_registries(self) -> list[DockerRegistry]:
        operation = "listing Daytona's registry entries"
        response = self.send("GET", "/docker-registry", operation)
        return self.parse(list[DockerRegistry], response, operation, "a list of registry entries")

    def save_registry(
        self, request: RegistryEntryRequest, entry_id: str | None = None
    ) -> DockerRegistry:
        """POST a new entry, or PATCH entry `entry_id`. Only the PATCH is retried like a read
        (the same body gives the same entry): a second POST would make a second entry, so a lost
        answer raises OutcomeUnknown and the caller lists again."""
        what = f"entry {entry_id}" if entry_id else f"entry for {request.url}"
        return self.fetch(
            DockerRegistry,
            "PATCH" if entry_id else "POST",
            _path("docker-registry", entry_id) if entry_id else "/docker-registry",
            f"{'updating' if entry_id else 'creating'} Daytona's registry {what}",
            json=request.body(),
            idempotent=entry_id is not None,
            secrets=(request.password,),
        )

    def delete_registry(self, registry_id: str) -> bool:
        operation = f"deleting Daytona's registry entry {registry_id}"
        return self.remove(_path("docker-registry", registry_id), operation)


def _path(collection: str, id_or_name: str) -> str:
    # Like the generated client: no safe characters, so a `/` stays inside one path segment.
    return f"/{collection}/{quote(id_or_name, safe='')}"
