"""The Daytona httpx client against `httpx.MockTransport`: headers, retries, error mapping,
no blind POST retry, the key kept out of every output; and the wait/ensure/latest logic on the
shared in-memory fake (tests/helpers/fake_daytona.py), on a fake clock."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pipeline.daytona.client import (
    BUILD_LOGS_HTTP_TIMEOUT,
    CreateConflict,
    DaytonaClient,
    OutcomeUnknown,
    RetryPolicy,
    retry_after_seconds,
)
from pipeline.daytona.latest import LatestCache, latest_snapshot
from pipeline.daytona.snapshots import (
    PollPolicy,
    SnapshotSpec,
    ensure_snapshot,
    failure_fix,
)
from pipeline.errors import ConfigError, DaytonaAuthError, DaytonaError, DeadlineExceeded
from pipeline.rules.daytona_models import CreateSnapshot
from pipeline.settings.build import load
from pipeline.settings.daytona import DaytonaSettings, SnapshotSettings
from pipeline.waiting import FakeClock
from tests.helpers.fake_daytona import (
    FAST,
    KEY,
    FakeDaytona,
    Handler,
    error_body,
    flaky,
    mock_client,
)
from tests.helpers.fake_daytona import snapshot_wire as wire

POLL = PollPolicy(initial=0.005, factor=1.5, maximum=0.02)


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
            200, json={"items": [wire("prd--1")], "total": 1, "page": 2, "totalPages": 1}
        )

    page = client(handler).list_snapshots(page=2, limit=50, name="prd--")
    assert dict(seen[0].url.params) == {
        "page": "2",
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

    request = CreateSnapshot(name="n", image_name="r:t", cpu=2, memory=4, disk=10)
    assert client(handler).create_snapshot(request).state == "pending"
    assert bodies == [{"name": "n", "imageName": "r:t", "cpu": 2, "memory": 4, "disk": 10}]
    spec = SnapshotSpec("n", "r:t", 1, 2, 3, ("sleep", "infinity"))
    assert spec.request().body()["entrypoint"] == ["sleep", "infinity"]


def test_delete_and_build_logs_url_tolerate_404() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("build-logs-url"):
            return httpx.Response(404, json=error_body(404, "Snapshot x has no build info"))
        return httpx.Response(404 if "gone" in request.url.path else 200)

    api = client(handler)
    assert api.delete_snapshot("live") is True
    assert api.delete_snapshot("gone") is False
    assert api.build_logs_url("x") is None


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
    retry = RetryPolicy(wait_initial=0.001, retry_after_max=0.05)
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
            CreateSnapshot(name="n", image_name="r:t", cpu=1, memory=1, disk=1)
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
    client(handler).create_snapshot(
        CreateSnapshot(name="n", image_name="r:t", cpu=1, memory=1, disk=1)
    )
    assert calls == ["POST /api/snapshots"] * 2


def test_create_conflict() -> None:
    message = 'Snapshot with name "n" already exists for this organization'
    handler, _ = flaky([], httpx.Response(409, json=error_body(409, message)))
    with pytest.raises(CreateConflict, match="already exists"):
        client(handler).create_snapshot(
            CreateSnapshot(name="n", image_name="r:t", cpu=1, memory=1, disk=1)
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
            CreateSnapshot(name="n", image_name="r:t", cpu=1, memory=1, disk=1)
        )
    text = str(caught.value)
    assert "403 Access denied" in text and "write:snapshots" in text and hint in text


def test_other_errors_show_status_and_message() -> None:
    message = "Snapshot quota exceeded. Maximum allowed: 100"
    handler, _ = flaky([], httpx.Response(400, json=error_body(400, message)))
    with pytest.raises(DaytonaError) as caught:
        client(handler).create_snapshot(
            CreateSnapshot(name="n", image_name="r:t", cpu=1, memory=1, disk=1)
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
        repr(api._http.auth),
        repr(settings),
        str(settings),
        *capsys.readouterr(),
    ]
    assert "***" in str(caught.value)
    for text in shown:
        assert KEY not in text
    assert KEY not in str(dict(api._http.headers))  # added per request by the Auth, not stored


def test_no_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAYTONA_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="DAYTONA_API_KEY is not set"):
        DaytonaClient.from_settings(load(DaytonaSettings))


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


# --- ensure / wait / latest on an in-memory fake ------------------------------------------


SPEC = SnapshotSpec("iterate-sandbox-1", "ghcr.io/iterate/sandbox:sha-1", 2, 4, 10)


def ensure(fake: FakeDaytona, timeout: float = 5, **kwargs: Any) -> Any:
    return ensure_snapshot(fake.client(), SPEC, timeout=timeout, poll=POLL, **kwargs)


def test_ensure_creates_and_waits(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeDaytona()
    checked: list[bool] = []
    outcome = ensure(fake, check_image=lambda: checked.append(True))
    assert outcome.action == "created" and outcome.snapshot.state == "active"
    assert fake.posts() == 1 and checked == [True]
    err = capsys.readouterr().err
    assert "pending → pulling" in err and "pulling → active" in err


def test_ensure_is_a_no_op_for_an_active_snapshot() -> None:
    fake = FakeDaytona()
    fake.add_snapshot(SPEC.name, ["active"], imageName=SPEC.image)
    checked: list[bool] = []
    outcome = ensure(fake, check_image=lambda: checked.append(True))
    assert outcome.action == "existing"
    assert fake.log == [f"GET /snapshots/{SPEC.name}"] and checked == []


def test_a_lost_create_response_is_looked_up_not_reposted() -> None:
    fake = FakeDaytona()

    def create_then_drop(request: httpx.Request) -> httpx.Response | None:
        fake.handle(request)  # the server did create it...
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    fake.fail_next = [lambda _: None, create_then_drop]
    outcome = ensure(fake)
    assert outcome.snapshot.state == "active"
    assert fake.posts() == 1


def test_a_500_on_create_that_did_nothing_is_created_once_more() -> None:
    fake = FakeDaytona()
    fake.fail_next = [
        lambda _: None,
        lambda _: httpx.Response(500, json=error_body(500, "An unexpected error occurred.")),
    ]
    outcome = ensure(fake)
    assert outcome.action == "created" and fake.posts() == 2
    assert fake.log[:3] == [
        f"GET /snapshots/{SPEC.name}",
        "POST /snapshots",
        f"GET /snapshots/{SPEC.name}",
    ]


def test_a_409_means_waiting_for_the_other_run() -> None:
    fake = FakeDaytona()

    def other_run_wins(request: httpx.Request) -> httpx.Response | None:
        fake.add_snapshot(SPEC.name, ["pending", "active"], imageName=SPEC.image)
        return None

    fake.fail_next = [lambda _: None, other_run_wins]
    outcome = ensure(fake)
    assert outcome.action == "waited" and outcome.snapshot.state == "active"


def test_a_quota_400_from_losing_the_race_means_waiting() -> None:
    # Daytona checks quota before duplicates: the loser of a race may get 400, not 409.
    fake = FakeDaytona()

    def other_run_wins_at_full_quota(request: httpx.Request) -> httpx.Response:
        fake.add_snapshot(SPEC.name, ["pending", "active"], imageName=SPEC.image)
        return httpx.Response(
            400, json=error_body(400, "Snapshot quota exceeded. Maximum allowed: 1")
        )

    fake.fail_next = [lambda _: None, other_run_wins_at_full_quota]
    outcome = ensure(fake)
    assert outcome.action == "waited" and outcome.snapshot.state == "active"


def test_a_real_400_on_create_is_raised() -> None:
    fake = FakeDaytona()
    quota = httpx.Response(400, json=error_body(400, "Snapshot quota exceeded. Maximum allowed: 1"))
    fake.fail_next = [lambda _: None, lambda _: quota]
    with pytest.raises(DaytonaError, match="400 Snapshot quota exceeded"):
        ensure(fake)
    assert fake.posts() == 1


@pytest.mark.parametrize("state", ["error", "build_failed"])
def test_a_failed_snapshot_ends_with_the_reason(state: str) -> None:
    fake = FakeDaytona({SPEC.name: ["pending", state]})
    with pytest.raises(DaytonaError) as caught:
        ensure(fake)
    text = str(caught.value)
    assert f"is in state {state}: manifest unknown: manifest unknown (at runner r1)" in text
    assert "snapshot_push" in text and "\n" not in text


def test_an_existing_failed_snapshot_is_reported_and_kept_without_force() -> None:
    fake = FakeDaytona()
    fake.add_snapshot(SPEC.name, ["error"], imageName=SPEC.image, errorReason="unauthorized: no")
    with pytest.raises(DaytonaError, match=r"unauthorized: no.*registry entry"):
        ensure(fake)
    assert fake.posts() == 0 and not any(e.startswith("DELETE") for e in fake.log)


def test_force_replaces_a_failed_snapshot() -> None:
    fake = FakeDaytona()
    old = fake.add_snapshot(SPEC.name, ["error"], imageName=SPEC.image, errorReason="boom")
    outcome = ensure(fake, force=True)
    assert outcome.action == "replaced" and outcome.snapshot.id != old["id"]
    assert f"DELETE /snapshots/{old['id']}" in fake.log and fake.posts() == 1


def test_an_inactive_snapshot_is_activated() -> None:
    fake = FakeDaytona()
    row = fake.add_snapshot(SPEC.name, ["inactive"], imageName=SPEC.image)
    outcome = ensure(fake)
    assert outcome.action == "activated" and outcome.snapshot.state == "active"
    assert f"POST /snapshots/{row['id']}/activate" in fake.log


def test_an_activation_race_is_not_an_error() -> None:
    fake = FakeDaytona()
    row = fake.add_snapshot(SPEC.name, ["inactive"], imageName=SPEC.image)

    def other_run_activated_first(request: httpx.Request) -> httpx.Response:
        row["state"] = "pending"
        fake.script[row["id"]] = ["active"]
        message = f"Snapshot {row['id']} cannot be activated - it is in pending state"
        return httpx.Response(400, json=error_body(400, message))

    fake.fail_next = [lambda _: None, other_run_activated_first]
    outcome = ensure(fake)
    assert outcome.action == "waited" and outcome.snapshot.state == "active"


def test_an_activation_refused_for_an_inactive_snapshot_is_raised() -> None:
    fake = FakeDaytona()
    fake.add_snapshot(SPEC.name, ["inactive"], imageName=SPEC.image)
    cooldown = "Snapshot deactivation is still in progress. Please try again in a few minutes."
    fake.fail_next = [lambda _: None, lambda _: httpx.Response(400, json=error_body(400, cooldown))]
    with pytest.raises(DaytonaError, match="still in progress"):
        ensure(fake)


def test_a_removing_snapshot_is_waited_out_then_created() -> None:
    fake = FakeDaytona()
    fake.add_snapshot(SPEC.name, ["removing", "removing", "GONE"], imageName=SPEC.image)
    outcome = ensure(fake)
    assert outcome.action == "created" and fake.posts() == 1


def test_the_deadline_is_one_line() -> None:
    fake = FakeDaytona({SPEC.name: ["pending"] * 10_000})
    with pytest.raises(DeadlineExceeded) as caught:
        ensure(fake, timeout=0.3)
    assert 0.3 <= fake.clock.now < 0.3 + POLL.maximum  # no pause reaches past the deadline
    text = str(caught.value)
    assert "still pending after 0.3 s" in text and "DAYTONA_SNAPSHOT_TIMEOUT" in text
    assert "\n" not in text and caught.value.exit_code == 6


def test_failure_fixes() -> None:
    assert "registry entry" in failure_fix("unauthorized: authentication required")
    assert "snapshot_push" in failure_fix("manifest unknown")
    assert "SANDBOX_SNAPSHOT_CPU" in failure_fix("Snapshot size (25.00GB) exceeds maximum")
    assert "--force" in failure_fix(None)


def test_latest_snapshot_pages_only_as_needed_and_caches() -> None:
    fake = FakeDaytona()
    base = datetime(2026, 11, 23, tzinfo=UTC)
    for minute in range(5):  # newest: the server's substring filter matches, the prefix does not
        fake.add_snapshot(
            f"old-prd--{minute}",
            ["active"],
            createdAt=(base + timedelta(minutes=50 - minute)).isoformat(),
        )
    fake.add_snapshot("prd--old", ["active"], createdAt=base.isoformat())
    fake.add_snapshot("prd--new", ["error"], createdAt=(base + timedelta(minutes=60)).isoformat())
    for page in range(3):  # older pages that must never be read
        fake.add_snapshot(
            f"prd--older-{page}",
            ["active"],
            createdAt=(base - timedelta(days=1 + page)).isoformat(),
        )
    now = [0.0]
    cache = LatestCache(clock=lambda: now[0])
    api = fake.client()
    assert latest_snapshot("prd", api, cache=cache, page_size=3) == "prd--old"
    lists = [e for e in fake.log if e == "GET /snapshots"]
    assert len(lists) == 3  # page 3 holds prd--old; pages 4 and 5 are not read
    assert latest_snapshot("prd", api, cache=cache, page_size=3) == "prd--old"
    assert fake.log.count("GET /snapshots") == 3  # cached
    now[0] = 299.0
    assert latest_snapshot("prd--", api, cache=cache, page_size=3) == "prd--old"
    assert fake.log.count("GET /snapshots") == 3  # same matched prefix, still fresh
    now[0] = 300.0
    latest_snapshot("prd", api, cache=cache, page_size=3)
    assert fake.log.count("GET /snapshots") == 6  # expired


def test_latest_snapshot_never_caches_dev_prefixes_or_misses() -> None:
    fake = FakeDaytona()
    cache = LatestCache(clock=lambda: 0.0)
    api = fake.client()
    assert latest_snapshot("dev-jonas", api, cache=cache) is None
    fake.add_snapshot("dev-jonas--20261123-100000", ["active"])
    assert latest_snapshot("dev-jonas", api, cache=cache) == "dev-jonas--20261123-100000"
    fake.add_snapshot(
        "dev-jonas--20261123-110000", ["active"], createdAt="2026-11-23T11:00:00.000Z"
    )
    assert latest_snapshot("dev-jonas", api, cache=cache) == "dev-jonas--20261123-110000"
    assert fake.log.count("GET /snapshots") == 3


def test_retries_and_polls_log_no_warnings(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # nox shows the root logger: a warning per retry or poll would drown the progress lines,
    # which go to the console instead.
    fake = FakeDaytona()
    fake.fail_next = [lambda _: httpx.Response(503, json=error_body(503, "down"))]
    with caplog.at_level("DEBUG"):
        ensure(fake)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "retry 1 after" in capsys.readouterr().err


def test_build_logs_url_waits_longer_than_the_servers_hold() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"url": "https://proxy.test/snapshots/x/build-logs"})

    assert client(handler).build_logs_url("x") == "https://proxy.test/snapshots/x/build-logs"
    # Daytona may hold this request 30 s while it waits for a build runner.
    assert seen[0].extensions["timeout"]["read"] == BUILD_LOGS_HTTP_TIMEOUT > 30
