"""The Daytona httpx client against `httpx.MockTransport`: headers, retries, error mapping,
no blind POST retry, the key kept out of every output, settings. What Daytona does behind the
answers (ensure, waits, races, latest) is tested against the emulator:
tests/integration/daytona/test_daytona_snapshots.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from pipeline.daytona.client import DaytonaClient
from pipeline.daytona.transport import CreateConflict, OutcomeUnknown
from pipeline.errors import ConfigError, DaytonaAuthError, DaytonaError
from pipeline.rules.daytona_http import retry_after_seconds
from pipeline.rules.daytona_models import CreateSnapshot
from pipeline.rules.snapshot_names import SnapshotSpec, failure_fix
from pipeline.sessions.daytona_common import connect
from pipeline.settings.build import load
from pipeline.settings.daytona import DaytonaSettings, SnapshotSettings
from pipeline.waiting import RetryPolicy
from tests.helpers.clock import FakeClock
from tests.helpers.daytona_wire import FAST, KEY, Handler, error_body, flaky, mock_client
from tests.helpers.daytona_wire import snapshot_wire as wire


def client(
    handler: Handler,
    org: str | None = None,
    retry: RetryPolicy = FAST,
    clock: FakeClock | None = None,
) -> DaytonaClient:
    return mock_client(handler, org, retry=retry, clock=clock)


# --- requests -------------------------------------------------------------------------------


def test_headers_auth_and_paths() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404, json=error_body(404, "Snapshot with name x not found"))

    assert client(handler, org="org-1").get_snapshot("a/b:1") is None
    request = seen[0]
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["X-Daytona-Source"] == "sandbox-pipeline"
    assert request.headers["X-Daytona-Organization-ID"] == "org-1"
    assert request.headers["Accept"] == "application/json"
    assert request.url.raw_path == b"/api/snapshots/a%2Fb%3A1"  # one path segment, like the SDK
    client(handler).get_snapshot("x")
    assert "X-Daytona-Organization-ID" not in seen[1].headers


def test_list_sends_paging_and_sort() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"items": [wire("prd--1")], "total": 1, "page": 1, "totalPages": 1}
        )

    page = next(client(handler).snapshot_pages("prd--", limit=50))
    assert dict(seen[0].url.params) == {
        "page": "1",
        "limit": "50",
        "name": "prd--",
        "sort": "createdAt",
        "order": "desc",
    }
    assert page.items[0].name == "prd--1" and page.total_pages == 1


def test_iter_snapshots_pages_to_the_end() -> None:
    pages = {1: [wire("a"), wire("b")], 2: [wire("c")]}

    def handler(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page"])
        return httpx.Response(
            200, json={"items": pages[number], "total": 3, "page": number, "totalPages": 2}
        )

    assert [s.name for s in client(handler).iter_snapshots("x", limit=2)] == ["a", "b", "c"]


def test_create_sends_the_wire_body() -> None:
    bodies: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=wire("n", "pending"))

    request = CreateSnapshot(name="n", image="r:t", cpu=2, memory=4, disk=10)
    assert client(handler).create_snapshot(request).state == "pending"
    assert bodies == [{"name": "n", "imageName": "r:t", "cpu": 2, "memory": 4, "disk": 10}]
    spec = SnapshotSpec(
        name="n", image="r:t", cpu=1, memory=2, disk=3, entrypoint=("sleep", "infinity")
    )
    assert spec.body()["entrypoint"] == ["sleep", "infinity"]


def test_delete_tolerates_404() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404 if "gone" in request.url.path else 200)

    api = client(handler)
    assert api.delete_snapshot("live") is True
    assert api.delete_snapshot("gone") is False


# --- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json=error_body(500, "An unexpected error occurred.")),
        httpx.Response(502, text="<html>bad gateway</html>"),
        httpx.Response(503, json=error_body(503, "down")),
        httpx.Response(429, json=error_body(429, "ThrottlerException: Too Many Requests")),
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
)
def test_reads_are_retried(
    failure: httpx.Response | Exception, capsys: pytest.CaptureFixture[str]
) -> None:
    handler, calls = flaky([failure, failure], httpx.Response(200, json=wire("n")))
    assert client(handler).get_snapshot("n") is not None
    assert calls == ["GET /api/snapshots/n"] * 3
    assert "retry 2 after" in capsys.readouterr().err


def test_retries_end_with_status_and_message() -> None:
    handler, calls = flaky(
        [httpx.Response(503, json=error_body(503, "maintenance"))] * 10, httpx.Response(200)
    )
    with pytest.raises(DaytonaError) as caught:
        client(handler).get_snapshot("n")
    assert len(calls) == FAST.attempts
    assert "503 maintenance" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_429_honours_retry_after() -> None:
    limited = httpx.Response(
        429, headers={"Retry-After-authenticated": "0.3"}, json=error_body(429, "Too Many Requests")
    )
    handler, calls = flaky([limited], httpx.Response(200, json=wire("n")))
    clock = FakeClock()
    client(handler, clock=clock).get_snapshot("n")
    assert clock.sleeps == [0.3]
    assert len(calls) == 2


def test_retry_after_is_capped() -> None:
    limited = httpx.Response(429, headers={"Retry-After": "3600"})
    handler, _ = flaky([limited], httpx.Response(200, json=wire("n")))
    clock = FakeClock()
    retry = RetryPolicy(60, retry_after_max=0.05)
    client(handler, retry=retry, clock=clock).get_snapshot("n")
    assert clock.sleeps == [0.05]


NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, None),
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"retry-after": "-3"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After-authenticated": "12"}, 12.0),
        ({"Retry-After": "2", "Retry-After-sandbox-create": "9"}, 9.0),
        ({"Retry-After": "Mon, 23 Nov 2026 12:00:30 GMT"}, 30.0),
        ({"Retry-After": "Mon, 23 Nov 2026 11:00:00 GMT"}, 0.0),
        ({"X-RateLimit-Reset-authenticated": "40"}, None),
    ],
)
def test_retry_after_seconds(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(httpx.Headers(headers), NOW) == seconds


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json=error_body(500, "An unexpected error occurred.")),
        httpx.Response(503, json=error_body(503, "down")),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
    ],
)
def test_create_is_never_blindly_retried(failure: httpx.Response | Exception) -> None:
    handler, calls = flaky([failure] * 3, httpx.Response(200, json=wire("n")))
    with pytest.raises(OutcomeUnknown):
        client(handler).create_snapshot(
            CreateSnapshot(name="n", image="r:t", cpu=1, memory=1, disk=1)
        )
    assert calls == ["POST /api/snapshots"]


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(429, headers={"Retry-After": "0"}, json=error_body(429, "slow down")),
        httpx.ConnectError("connection refused"),  # never reached the server
    ],
)
def test_create_is_retried_when_it_surely_did_nothing(failure: httpx.Response | Exception) -> None:
    handler, calls = flaky([failure], httpx.Response(200, json=wire("n", "pending")))
    client(handler).create_snapshot(CreateSnapshot(name="n", image="r:t", cpu=1, memory=1, disk=1))
    assert calls == ["POST /api/snapshots"] * 2


def test_create_conflict() -> None:
    message = 'Snapshot with name "n" already exists for this organization'
    handler, _ = flaky([], httpx.Response(409, json=error_body(409, message)))
    with pytest.raises(CreateConflict, match="already exists"):
        client(handler).create_snapshot(
            CreateSnapshot(name="n", image="r:t", cpu=1, memory=1, disk=1)
        )


# --- errors and secrets ---------------------------------------------------------------------


def test_401_names_the_key_variable() -> None:
    handler, calls = flaky([], httpx.Response(401, json=error_body(401, "Invalid credentials")))
    with pytest.raises(DaytonaAuthError) as caught:
        client(handler).get_snapshot("n")
    text = str(caught.value)
    assert "401 Invalid credentials" in text and "DAYTONA_API_KEY" in text
    assert caught.value.exit_code == 9
    assert len(calls) == 1  # auth failures are not retried


@pytest.mark.parametrize(
    ("org", "hint"),
    [
        (None, "set DAYTONA_ORGANIZATION_ID"),
        ("org-1", "DAYTONA_ORGANIZATION_ID is an organization"),
    ],
)
def test_403_names_permissions_and_organization(org: str | None, hint: str) -> None:
    handler, _ = flaky([], httpx.Response(403, json=error_body(403, "Access denied")))
    with pytest.raises(DaytonaAuthError) as caught:
        client(handler, org=org).create_snapshot(
            CreateSnapshot(name="n", image="r:t", cpu=1, memory=1, disk=1)
        )
    text = str(caught.value)
    assert "403 Access denied" in text and "write:snapshots" in text and hint in text


def test_other_errors_show_status_and_message() -> None:
    message = "Snapshot quota exceeded. Maximum allowed: 100"
    handler, _ = flaky([], httpx.Response(400, json=error_body(400, message)))
    with pytest.raises(DaytonaError) as caught:
        client(handler).create_snapshot(
            CreateSnapshot(name="n", image="r:t", cpu=1, memory=1, disk=1)
        )
    assert f"creating snapshot n: Daytona answered 400 {message}" == str(caught.value)
    assert not isinstance(caught.value, DaytonaAuthError)


def test_a_non_json_error_body_is_shown_briefly() -> None:
    handler, _ = flaky([], httpx.Response(400, text="<html>\n<b>nope</b>\n</html>"))
    with pytest.raises(DaytonaError, match="400 <html> <b>nope</b> </html>"):
        client(handler).get_snapshot("n")


def test_an_unexpected_answer_is_a_clear_error() -> None:
    handler, _ = flaky([], httpx.Response(200, text="<html>login</html>"))
    with pytest.raises(DaytonaError, match=r"not a Snapshot.*DAYTONA_API_URL"):
        client(handler).get_snapshot("n")


def test_the_key_never_shows(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy that echoes the request (key included) in its error must not leak it either.
    echo = httpx.Response(401, json=error_body(401, f"bad token Bearer {KEY}"))
    handler, _ = flaky([httpx.Response(503, text=f"upstream said {KEY}")] * 2, echo)
    api = client(handler)
    with pytest.raises(DaytonaAuthError) as caught:
        api.get_snapshot("n")
    monkeypatch.setenv("DAYTONA_API_KEY", KEY)
    settings = load(DaytonaSettings)
    shown = [
        str(caught.value),
        repr(caught.value),
        caught.value.cause,
        caught.value.fix,
        repr(api),
        str(api.__dict__),
        repr(api.http.auth),
        repr(settings),
        str(settings),
        *capsys.readouterr(),
    ]
    assert "***" in str(caught.value)
    for text in shown:
        assert KEY not in text
    assert KEY not in str(dict(api.http.headers))  # added per request by the Auth, not stored


def test_no_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAYTONA_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="DAYTONA_API_KEY is not set"):
        connect(load(DaytonaSettings))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DAYTONA_API_URL": "app.daytona.io"}, "DAYTONA_API_URL='app.daytona.io' is not valid"),
        ({"SANDBOX_SNAPSHOT_CPU": "0"}, "SANDBOX_SNAPSHOT_CPU"),
        ({"SANDBOX_SNAPSHOT_NAME": "Bad/Name"}, "SANDBOX_SNAPSHOT_NAME='Bad/Name' is not valid"),
        ({"SANDBOX_IMAGE": "ghcr.io/x/y:latest"}, "floating tags"),
        ({"DAYTONA_SNAPSHOT_TIMEOUT": "soon"}, "DAYTONA_SNAPSHOT_TIMEOUT='soon' is not valid"),
    ],
)
def test_bad_settings_are_one_line(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings_class = DaytonaSettings if "DAYTONA_API_URL" in env else SnapshotSettings
    with pytest.raises(ConfigError) as caught:
        load(settings_class)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_snapshot_settings_defaults_and_entrypoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in (
        "SANDBOX_SNAPSHOT_CPU",
        "SANDBOX_SNAPSHOT_MEMORY",
        "SANDBOX_SNAPSHOT_DISK",
        "DAYTONA_SNAPSHOT_TIMEOUT",
        "SANDBOX_SNAPSHOT_NAME",
        "SANDBOX_IMAGE",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SANDBOX_SNAPSHOT_ENTRYPOINT", "sleep 'in finity'")
    settings = load(SnapshotSettings)
    assert (settings.cpu, settings.memory, settings.disk, settings.timeout) == (2, 4, 10, 1200)
    assert settings.entrypoint == ("sleep", "in finity")


def test_failure_fixes() -> None:
    assert "registry entry" in failure_fix("unauthorized: authentication required")
    assert "snapshot_push" in failure_fix("manifest unknown")
    assert "SANDBOX_SNAPSHOT_CPU" in failure_fix("Snapshot size (25.00GB) exceeds maximum")
    assert "--force" in failure_fix(None)
