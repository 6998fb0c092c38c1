"""One small in-memory Daytona behind `httpx.MockTransport`, for the unit tests of the client,
the snapshot and sandbox lifecycles and the sessions. Integration tests use the real emulator.

- `FakeDaytona()`: snapshots and sandboxes; each GET of one moves it one step along its
  script (`add_snapshot("n", ["pending", "active"])`), `"GONE"` removes it. `log` holds
  `"METHOD /path"` of every request; `fail_next` is a queue of hooks that may answer (or raise)
  before the fake does. Registry entries: `add_registry(url)`, `registries` by id, and
  `passwords` (what Daytona stores but never returns).
- `fake.client()` / `mock_client(handler)`: a `DaytonaClient` on it with fast retries and a
  `FakeClock`, so nothing sleeps in real time; `clock.sleeps` shows every pause.
- `flaky(failures, final)`: a handler that fails as listed, then answers `final`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pipeline.daytona.client import DaytonaClient, RetryPolicy
from pipeline.rules.sandbox_rules import CREATED_BY, CREATED_BY_LABEL
from pipeline.waiting import FakeClock

KEY = "dtn_" + "s3cr3t" * 8
URL = "https://daytona.test/api"
TOOLBOX = "https://proxy.daytona.test/toolbox"
FAST = RetryPolicy(attempts=4, timeout=5, wait_initial=0.001, wait_max=0.005, wait_jitter=0)
Handler = Callable[[httpx.Request], httpx.Response]
Hook = Callable[[httpx.Request], httpx.Response | None]
GONE = "GONE"
OLD_PASSWORD = "old"  # what add_registry stores unless told otherwise


def mock_client(
    handler: Handler,
    org: str | None = None,
    *,
    retry: RetryPolicy = FAST,
    clock: FakeClock | None = None,
) -> DaytonaClient:
    return DaytonaClient(
        URL,
        SecretStr(KEY),
        org,
        retry=retry,
        clock=clock or FakeClock(),
        transport=httpx.MockTransport(handler),
    )


def error_body(status: int, message: str, path: str = "/api/x") -> dict[str, Any]:
    """Daytona's error body (NestJS' global filter)."""
    return {
        "path": path,
        "timestamp": "2026-11-23T00:00:00.000Z",
        "statusCode": status,
        "error": "Error",
        "message": message,
    }


def snapshot_wire(name: str, state: str = "active", **extra: Any) -> dict[str, Any]:
    """A `SnapshotDto` as Daytona sends it."""
    return {
        "id": extra.pop("id", str(uuid.uuid4())),
        "general": False,
        "name": name,
        "imageName": extra.pop("imageName", "ghcr.io/iterate/sandbox:sha-1"),
        "state": state,
        "cpu": extra.pop("cpu", 2),
        "gpu": 0,
        "mem": extra.pop("mem", 4),
        "disk": extra.pop("disk", 10),
        "size": None,
        "entrypoint": None,
        "errorReason": extra.pop("errorReason", None),
        "lastUsedAt": None,
        "sourceSandboxId": None,
        "createdAt": extra.pop("createdAt", "2026-11-23T10:00:00.000Z"),
        "updatedAt": "2026-11-23T10:00:00.000Z",
        **extra,
    }


def sandbox_wire(name: str, state: str = "started", **extra: Any) -> dict[str, Any]:
    """A `Sandbox` as Daytona sends it (all the fields SDK 0.226.1 requires)."""
    return {
        "id": extra.pop("id", str(uuid.uuid4())),
        "organizationId": "org-1",
        "name": name,
        "snapshot": extra.pop("snapshot", "prd--20261123-120000"),
        "user": "daytona",
        "env": extra.pop("env", {}),
        "labels": extra.pop("labels", {CREATED_BY_LABEL: CREATED_BY}),
        "public": False,
        "networkBlockAll": False,
        "kvm": False,
        "target": "us",
        "cpu": 1,
        "gpu": 0,
        "memory": 1,
        "disk": 3,
        "state": state,
        "desiredState": extra.pop("desiredState", "started"),
        "errorReason": extra.pop("errorReason", None),
        "toolboxProxyUrl": extra.pop("toolboxProxyUrl", TOOLBOX),
        "autoStopInterval": 60,
        "autoDeleteInterval": 0,
        "createdAt": extra.pop("createdAt", "2026-11-23T10:00:00.000Z"),
        "updatedAt": "2026-11-23T10:00:00.000Z",
        **extra,
    }


def flaky(
    failures: list[httpx.Response | Exception], final: httpx.Response
) -> tuple[Handler, list[str]]:
    """A handler that answers (or raises) `failures` in turn, then `final`; and its call log."""
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if len(calls) <= len(failures):
            failure = failures[len(calls) - 1]
            if isinstance(failure, Exception):
                raise failure
            return failure
        return final

    return handler, calls


class FakeDaytona:
    """Just enough Daytona for the lifecycles: each GET moves a snapshot or sandbox one step."""

    def __init__(
        self,
        script: dict[str, list[str]] | None = None,
        *,
        start_states: list[str] | None = None,
        refuse_delete_while_settling: int | None = None,
        fail_next: list[Hook] | None = None,
    ) -> None:
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.sandboxes: dict[str, dict[str, Any]] = {}
        # Registry entries by id, and each one's password (Daytona never sends it back).
        self.registries: dict[str, dict[str, Any]] = {}
        self.passwords: dict[str, str] = {}
        # Per id (or, for snapshots not made yet, per name): the states still to come.
        self.script: dict[str, list[str]] = script or {}
        self.log: list[str] = []
        self.fail_next: list[Hook] = fail_next or []
        self.start_states = start_states or ["creating", "starting", "started"]
        # The status a DELETE gets during a state change (Daytona: 409), None: never refused.
        self.refuse_delete_while_settling = refuse_delete_while_settling
        self.clock = FakeClock()

    def client(self, org: str | None = None, *, retry: RetryPolicy = FAST) -> DaytonaClient:
        return mock_client(self, org, retry=retry, clock=self.clock)

    def add_snapshot(self, name: str, states: list[str], **extra: Any) -> dict[str, Any]:
        row = snapshot_wire(name, states[0], **extra)
        self.snapshots[row["id"]] = row
        self.script[row["id"]] = states[1:]
        return row

    def add_sandbox(self, name: str, states: list[str], **extra: Any) -> dict[str, Any]:
        row = sandbox_wire(name, states[0], **extra)
        self.sandboxes[row["id"]] = row
        self.script[row["id"]] = states[1:]
        return row

    def snapshot(self, key: str) -> dict[str, Any] | None:
        return next((r for r in self.snapshots.values() if key in (r["name"], r["id"])), None)

    def sandbox(self, key: str) -> dict[str, Any] | None:
        return next((r for r in self.sandboxes.values() if key in (r["name"], r["id"])), None)

    def count(self, entry: str) -> int:
        return self.log.count(entry)

    def posts(self) -> int:
        return self.count("POST /snapshots")

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.log.append(f"{request.method} {request.url.path.removeprefix('/api')}")
        if self.fail_next:
            answer = self.fail_next.pop(0)(request)
            if answer is not None:
                return answer
        return self.handle(request)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api")
        if path.startswith("/snapshots"):
            return self._snapshot_call(request, path)
        if path.startswith("/docker-registry"):
            return self._registry_call(request, path)
        if path.startswith("/toolbox/"):
            return httpx.Response(200, json={"exitCode": 0, "result": "log line\n"})
        return self._sandbox_call(request, path)

    # --- snapshots ---------------------------------------------------------------------------

    def _snapshot_call(self, request: httpx.Request, path: str) -> httpx.Response:
        if request.method == "POST" and path == "/snapshots":
            body = json.loads(request.content)
            if self.snapshot(body["name"]):
                return httpx.Response(409, json=error_body(409, "already exists"))
            states = self.script.get(body["name"], ["pending", "pulling", "active"])
            resources = {"cpu": body["cpu"], "mem": body["memory"], "disk": body["disk"]}
            made = self.add_snapshot(body["name"], states, imageName=body["imageName"], **resources)
            return httpx.Response(200, json=made)
        if request.method == "GET" and path == "/snapshots":
            return self._snapshot_page(request)
        key = path.split("/")[2]
        row = self.snapshot(key)
        if row is None:
            return httpx.Response(404, json=error_body(404, f"Snapshot with name {key} not found"))
        if request.method == "DELETE":
            row["state"] = "removing"
            self.script[row["id"]] = ["removing", GONE]
            return httpx.Response(200)
        if path.endswith("/activate"):
            row["state"] = "pending"
            self.script[row["id"]] = ["active"]
            return httpx.Response(200, json=row)
        answer = httpx.Response(200, json=row)
        self._advance(self.snapshots, row, "manifest unknown: manifest unknown\n(at runner r1)")
        return answer

    def _snapshot_page(self, request: httpx.Request) -> httpx.Response:
        name = request.url.params.get("name", "")
        items = sorted(
            (r for r in self.snapshots.values() if name in r["name"]),
            key=lambda r: r["createdAt"],
            reverse=True,
        )
        page, limit = int(request.url.params["page"]), int(request.url.params["limit"])
        chunk = items[(page - 1) * limit : page * limit]
        pages = -(-len(items) // limit)
        body = {"items": chunk, "total": len(items), "page": page, "totalPages": pages}
        return httpx.Response(200, json=body)

    # --- registry entries --------------------------------------------------------------------

    def add_registry(
        self, url: str, *, name: str | None = None, password: str = OLD_PASSWORD, **extra: Any
    ) -> dict[str, Any]:
        """An entry as `GET /docker-registry` lists it; made at `createdAt` (default: now)."""
        row = {
            "id": extra.pop("id", str(uuid.uuid4())),
            "name": name or url,
            "url": url,
            "username": extra.pop("username", "someone"),
            "project": "",
            "registryType": "organization",
            "createdAt": extra.pop("createdAt", f"2026-11-23T10:{len(self.registries):02d}:00Z"),
            "updatedAt": "2026-11-23T10:00:00Z",
            **extra,
        }
        self.registries[row["id"]] = row
        self.passwords[row["id"]] = password
        return row

    def _registry_call(self, request: httpx.Request, path: str) -> httpx.Response:
        if path == "/docker-registry":
            if request.method == "GET":
                rows = sorted(self.registries.values(), key=lambda r: r["createdAt"], reverse=True)
                return httpx.Response(200, json=rows)
            body = json.loads(request.content)
            made = self.add_registry(
                body["url"], name=body["name"], password=body["password"], username=body["username"]
            )
            return httpx.Response(201, json=made)
        key = path.split("/")[2]
        row = self.registries.get(key)
        if row is None:
            message = f"Docker registry with ID {key} not found"
            return httpx.Response(404, json=error_body(404, message))
        if request.method == "DELETE":
            del self.registries[key]
            return httpx.Response(204)
        if request.method == "PATCH":
            body = json.loads(request.content)
            row.update(name=body["name"], url=body["url"], username=body["username"])
            if body.get("password"):
                self.passwords[key] = body["password"]
        return httpx.Response(200, json=row)

    # --- sandboxes ---------------------------------------------------------------------------

    def _sandbox_call(self, request: httpx.Request, path: str) -> httpx.Response:
        if request.method == "POST" and path == "/sandbox":
            body = json.loads(request.content)
            if self.sandbox(body["name"]):
                return httpx.Response(409, json=error_body(409, "Sandbox name already exists"))
            created = self.add_sandbox(body["name"], self.start_states, labels=body["labels"])
            return httpx.Response(200, json=created)
        key = path.split("/")[2]
        row = self.sandbox(key)
        if row is None:
            return httpx.Response(404, json=error_body(404, f"Sandbox {key} not found"))
        if request.method == "DELETE":
            refusal = self.refuse_delete_while_settling
            if refusal and row["state"] != row["desiredState"]:
                message = "Sandbox state change in progress"
                return httpx.Response(refusal, json=error_body(refusal, message))
            row["state"], row["desiredState"] = "destroying", "destroyed"
            self.script[row["id"]] = ["destroying", GONE]
            return httpx.Response(200, json=row)
        if path.endswith("/stop"):
            row["state"], row["desiredState"] = "stopping", "stopped"
            self.script[row["id"]] = ["stopped"]
            return httpx.Response(200, json=row)
        if path.endswith("/preview-url"):
            preview = {"sandboxId": row["id"], "url": f"https://3000-{row['id']}.p", "token": "t"}
            return httpx.Response(200, json=preview)
        answer = httpx.Response(200, json=row)
        self._advance(self.sandboxes, row, "Failed to start sandbox container:\nexit code 1")
        return answer

    def _advance(self, rows: dict[str, dict[str, Any]], row: dict[str, Any], reason: str) -> None:
        """One step along the row's script, after the answer showed where it was."""
        upcoming = self.script.get(row["id"])
        if not upcoming:
            return
        step = upcoming.pop(0)
        if step == GONE:
            del rows[row["id"]]
            return
        row["state"] = step
        if step in ("error", "build_failed"):
            row["errorReason"] = reason


# Variables of the developer's shell that would change what a Daytona session does.
CLEARED = [
    *("DAYTONA_API_URL", "DAYTONA_API_KEY", "DAYTONA_ORGANIZATION_ID", "DAYTONA_SNAPSHOT_NAME"),
    *("DAYTONA_SANDBOX_TIMEOUT", "DAYTONA_SANDBOX_AUTO_STOP", "DAYTONA_SANDBOX_AUTO_DELETE"),
    *("ITERATE_USER", "APP_STAGE", "DAYTONA_SNAPSHOT_PREFIX", "GIT_SHA", "SANDBOX_BUILD_CONTEXT"),
    *("PIPELINE_REPORT", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS"),
]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for key in CLEARED:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DAYTONA_API_KEY", KEY)
    monkeypatch.setenv("SANDBOX_BUILD_CONTEXT", str(tmp_path))  # not a git repo: no sha label
    report = tmp_path / "report.json"
    monkeypatch.setenv("PIPELINE_REPORT", str(report))
    return report
