"""Daytona's wire format for unit tests of the client on `httpx.MockTransport` (one request,
one answer: headers, paths, bodies, error mapping, retries). Anything with Daytona's behaviour
behind it (states, names, races) runs against the emulator: tests/helpers/emulated_daytona.py.

- `mock_client(handler)`: a `DaytonaClient` on the handler with fast retries and a `FakeClock`,
  so nothing sleeps in real time; `clock.sleeps` shows every pause.
- `flaky(failures, final)`: a handler that fails as listed, then answers `final`.
- `snapshot_wire` / `sandbox_wire` / `error_body`: bodies as Daytona sends them.
- `clean_env`: a fixture that clears the developer's Daytona variables and sets a key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from tenacity import wait_exponential_jitter

from pipeline.daytona.client import DaytonaClient
from pipeline.rules.sandbox_rules import CREATED_BY, CREATED_BY_LABEL
from pipeline.waiting import RetryPolicy
from tests.helpers.clock import FakeClock

KEY = "dtn_" + "s3cr3t" * 8
URL = "https://daytona.test/api"
TOOLBOX = "https://proxy.daytona.test/toolbox"
FAST = RetryPolicy(5, wait_exponential_jitter(multiplier=0.001, max=0.005, jitter=0), attempts=4)
Handler = Callable[[httpx.Request], httpx.Response]


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
