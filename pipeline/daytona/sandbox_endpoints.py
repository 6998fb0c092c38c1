"""Daytona's sandbox endpoints (paths and fields as in Daytona's generated client,
daytona_api_client.api.sandbox_api), and the toolbox's `process/execute`; part of DaytonaClient.
"""

from __future__ import annotations

import json as json_module
from collections.abc import Iterator, Mapping
from typing import Final
from urllib.parse import quote

import httpx

from pipeline.daytona.transport import CreateConflict, Transport, url_of
from pipeline.errors import DaytonaError
from pipeline.rules.daytona_http import SANDBOX_PERMISSIONS, api_error
from pipeline.rules.daytona_models import (
    SANDBOX_GONE_STATES,
    CreateSandbox,
    ExecResult,
    PortPreview,
    Sandbox,
    SandboxPage,
)

LIST_LIMIT_MAX: Final = 200
# `POST /sandbox` and `/start` answer only once the sandbox started or the server gave up
# waiting (30 s on Daytona): a shorter read timeout would turn every slow start into an
# "outcome unknown".
SANDBOX_WAIT_HTTP_TIMEOUT: Final = 75.0
# The toolbox answers when the command ends; allow its own timeout plus this much.
EXEC_HTTP_MARGIN: Final = 15.0
DEFAULT_EXEC_TIMEOUT: Final = 60


class StateChangeInProgress(DaytonaError):
    """409 "Sandbox state change in progress": Daytona refuses a start/stop/delete meanwhile."""


class SandboxEndpoints(Transport):
    def create_sandbox(self, request: CreateSandbox) -> Sandbox:
        """`POST /sandbox`. Never retried once sent (a second POST could make a second
        sandbox): a lost answer or a 5xx raises OutcomeUnknown, a 409 CreateConflict."""
        operation = f"creating sandbox {request.name} from snapshot {request.snapshot}"
        response = self.send(
            "POST",
            "/sandbox",
            operation,
            json=request.body(),
            idempotent=False,
            tolerate=(409,),
            timeout=self.longer(SANDBOX_WAIT_HTTP_TIMEOUT),
            permissions=SANDBOX_PERMISSIONS,
        )
        if response.status_code == 409:
            raise CreateConflict(f"{operation}: {self.message(response)}")
        return self.parse(Sandbox, response, operation)

    def get_sandbox(self, id_or_name: str) -> Sandbox | None:
        """The sandbox with that id or name, None when Daytona answers 404."""
        operation = f"looking up sandbox {id_or_name}"
        response = self.send(
            "GET",
            _sandbox_path(id_or_name),
            operation,
            tolerate=(404,),
            permissions=SANDBOX_PERMISSIONS,
        )
        if response.status_code == 404:
            return None
        return self.parse(Sandbox, response, operation)

    def list_sandboxes(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> SandboxPage:
        """One page of `GET /sandbox`; `labels` is sent JSON-encoded, as the SDK does."""
        params: dict[str, str | int] = {"limit": limit}
        if labels:
            params["labels"] = json_module.dumps(dict(labels), sort_keys=True)
        if cursor:
            params["cursor"] = cursor
        operation = "listing sandboxes" + (f" labelled {dict(labels)}" if labels else "")
        response = self.send(
            "GET", "/sandbox", operation, params=params, permissions=SANDBOX_PERMISSIONS
        )
        if response.content.lstrip().startswith(b"["):
            # Servers before the cursor API (public source up to v0.190) answer a bare array.
            response = _as_page(response)
        return self.parse(SandboxPage, response, operation)

    def iter_sandboxes(
        self, labels: Mapping[str, str] | None = None, *, limit: int = LIST_LIMIT_MAX
    ) -> Iterator[Sandbox]:
        """Every sandbox with all of `labels`, following `nextCursor` lazily."""
        cursor: str | None = None
        while True:
            page = self.list_sandboxes(labels=labels, limit=limit, cursor=cursor)
            yield from page.items
            if not page.next_cursor or not page.items:
                return
            cursor = page.next_cursor

    def start_sandbox(self, id_or_name: str) -> Sandbox:
        operation = f"starting sandbox {id_or_name}"
        response = self.send(
            "POST",
            f"{_sandbox_path(id_or_name)}/start",
            operation,
            idempotent=False,
            timeout=self.longer(SANDBOX_WAIT_HTTP_TIMEOUT),
            permissions=SANDBOX_PERMISSIONS,
        )
        return self.parse(Sandbox, response, operation)

    def stop_sandbox(self, id_or_name: str, *, force: bool = False) -> Sandbox:
        operation = f"stopping sandbox {id_or_name}"
        response = self.send(
            "POST",
            f"{_sandbox_path(id_or_name)}/stop",
            operation,
            params={"force": "true"} if force else None,
            idempotent=False,
            permissions=SANDBOX_PERMISSIONS,
        )
        return self.parse(Sandbox, response, operation)

    def delete_sandbox(self, id_or_name: str) -> bool:
        """Ask Daytona to destroy it (asynchronous: it shows `destroying`, then 404).

        False when it was already gone. Retried like a read: a repeat finds it `destroying`
        or gone, never something new. Daytona answers a repeated DELETE, and one during a
        start or stop, with 409 "state change in progress": the sandbox is read again, and
        `destroying` or gone is success; anything else raises StateChangeInProgress.
        """
        operation = f"deleting sandbox {id_or_name}"
        response = self.send(
            "DELETE",
            _sandbox_path(id_or_name),
            operation,
            tolerate=(404, 409),
            permissions=SANDBOX_PERMISSIONS,
        )
        if response.status_code == 404:
            return False
        if response.status_code == 409:
            now = self.get_sandbox(id_or_name)
            if now is not None and now.state not in SANDBOX_GONE_STATES:
                conflict = api_error(409, self.message(response), operation, self.organization_id)
                raise StateChangeInProgress(conflict.cause, "wait for it to settle and retry")
        return True

    def preview_url(self, id_or_name: str, port: int) -> PortPreview:
        """The preview URL of a port and the token that opens it (`X-Daytona-Preview-Token`)."""
        operation = f"getting the preview URL of port {port} of sandbox {id_or_name}"
        response = self.send(
            "GET",
            f"{_sandbox_path(id_or_name)}/ports/{port}/preview-url",
            operation,
            permissions=SANDBOX_PERMISSIONS,
        )
        return self.parse(PortPreview, response, operation)

    def toolbox_proxy_url(self, sandbox_id: str) -> str:
        """What the SDK asks when a Sandbox came without `toolboxProxyUrl`."""
        operation = f"getting the toolbox URL of sandbox {sandbox_id}"
        response = self.send(
            "GET",
            f"{_sandbox_path(sandbox_id)}/toolbox-proxy-url",
            operation,
            permissions=SANDBOX_PERMISSIONS,
        )
        return url_of(response, operation)

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
        """Run `command` in the sandbox through the toolbox's `POST /process/execute`.

        Like the SDK: the URL is `<toolboxProxyUrl>/<sandboxId>/process/execute` with the same
        Bearer key. A command can have effects, so it is never re-sent after it may have run.
        """
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
        operation = f"running a command in sandbox {sandbox_id}"
        response = self.send(
            "POST",
            f"{base}/{quote(sandbox_id, safe='')}/process/execute",
            operation,
            json=body,
            idempotent=False,
            timeout=timeout + EXEC_HTTP_MARGIN,
            permissions=SANDBOX_PERMISSIONS,
        )
        return self.parse(ExecResult, response, operation)


def _sandbox_path(id_or_name: str) -> str:
    # Like the generated client: no safe characters, so a `/` stays inside one path segment.
    return f"/sandbox/{quote(id_or_name, safe='')}"


def _as_page(response: httpx.Response) -> httpx.Response:
    body = b'{"items": ' + response.content + b', "nextCursor": null}'
    return httpx.Response(response.status_code, content=body)
