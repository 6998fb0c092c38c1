"""Every emulator knob takes effect, through the in-process handle and the `/_emulator` API."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from daytona_emulator.knobs import FaultRule, OutcomeKind, SnapshotOutcome
from daytona_emulator.server import EmulatorServer
from tests.helpers.emulator import admin_client, api_client, daytona_emulator, wait_for_state

__all__ = ["daytona_emulator"]  # imported for pytest, which finds fixtures by name

pytestmark = pytest.mark.emulator

IMAGE = "ghcr.io/acme/app:sha-abc"


@pytest.fixture
def client(daytona_emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with api_client(daytona_emulator) as http:
        yield http


@pytest.fixture
def admin(daytona_emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with admin_client(daytona_emulator) as http:
        yield http


def post_snapshot(client: httpx.Client, name: str) -> httpx.Response:
    return client.post("/snapshots", json={"name": name, "imageName": IMAGE})


def test_error_fault_answers_5xx_for_the_next_n_matching_requests(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    daytona_emulator.knobs.add_fault(FaultRule(kind="error", count=2, method="POST", status=503))

    listed = client.get("/snapshots")  # another method: untouched
    first, second, third = (post_snapshot(client, "flaky") for _ in range(3))

    assert listed.status_code == 200
    assert (first.status_code, second.status_code) == (503, 503)
    body = first.json()
    assert (body["statusCode"], body["error"]) == (503, "Service Unavailable")
    assert body["path"] == "/api/snapshots"
    assert third.status_code == 200  # the fault did not create anything: no 409
    assert client.get("/snapshots").json()["total"] == 1


def test_error_fault_by_path_prefix(daytona_emulator: EmulatorServer, client: httpx.Client) -> None:
    daytona_emulator.knobs.add_fault(
        FaultRule(kind="error", count=None, path_prefix="/api/snapshots/watched", message="boom")
    )

    other = client.get("/snapshots/other")
    watched = [client.get("/snapshots/watched") for _ in range(3)]

    assert other.status_code == 404
    assert [r.status_code for r in watched] == [500, 500, 500]  # count=None: until cleared
    assert watched[0].json()["message"] == "boom"
    daytona_emulator.knobs.clear_faults()
    assert client.get("/snapshots/watched").status_code == 404


def test_rate_limit_fault_sends_retry_after(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    daytona_emulator.knobs.add_fault(FaultRule(kind="rate_limit", count=1, retry_after=7))

    limited = client.get("/snapshots")
    after = client.get("/snapshots")

    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "7"
    assert limited.headers["Retry-After-authenticated"] == "7"
    assert limited.json()["error"] == "Too Many Requests"
    assert after.status_code == 200


def test_delay_fault_slows_the_response(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    daytona_emulator.knobs.add_fault(FaultRule(kind="delay", seconds=0.4, method="GET"))

    started = time.monotonic()
    slow = client.get("/snapshots")
    slow_seconds = time.monotonic() - started
    started = time.monotonic()
    client.get("/snapshots")
    fast_seconds = time.monotonic() - started

    assert slow.status_code == 200
    assert slow_seconds >= 0.4
    assert fast_seconds < 0.2


def test_delay_fault_trips_client_timeouts(daytona_emulator: EmulatorServer) -> None:
    daytona_emulator.knobs.add_fault(FaultRule(kind="delay", seconds=1.0))
    with api_client(daytona_emulator) as client, pytest.raises(httpx.ReadTimeout):
        client.get("/snapshots", timeout=0.2)


def test_drop_fault_closes_without_answering_or_acting(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    daytona_emulator.knobs.add_fault(FaultRule(kind="drop", method="POST"))

    with pytest.raises(httpx.RemoteProtocolError):
        post_snapshot(client, "lost")

    assert client.get("/snapshots/lost").status_code == 404
    dropped = daytona_emulator.knobs.requests()[0]
    assert (dropped.method, dropped.status, dropped.fault) == ("POST", None, "drop")
    assert post_snapshot(client, "lost").status_code == 200


def test_drop_after_fault_acts_then_loses_the_response(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    daytona_emulator.knobs.add_fault(FaultRule(kind="drop_after", method="POST"))

    with pytest.raises(httpx.RemoteProtocolError):
        post_snapshot(client, "created-anyway")

    assert client.get("/snapshots/created-anyway").status_code == 200
    assert post_snapshot(client, "created-anyway").status_code == 409


def test_faults_through_the_admin_api(
    daytona_emulator: EmulatorServer, client: httpx.Client, admin: httpx.Client
) -> None:
    added = admin.post("/_emulator/faults", json={"kind": "error", "count": 1, "status": 502})
    assert added.status_code == 201
    assert admin.get("/_emulator/faults").json()[0]["kind"] == "error"

    assert client.get("/snapshots").status_code == 502
    assert client.get("/snapshots").status_code == 200
    assert admin.get("/_emulator/faults").json()[0]["applied"] == 1
    assert admin.delete("/_emulator/faults").status_code == 204
    assert admin.get("/_emulator/faults").json() == []
    refused = admin.post("/_emulator/faults", json={"kind": "error", "status": 404})
    assert refused.status_code == 422


def test_admin_routes_are_never_faulted_or_logged(
    daytona_emulator: EmulatorServer, admin: httpx.Client
) -> None:
    daytona_emulator.knobs.add_fault(FaultRule(kind="error", count=None))

    assert admin.get("/_emulator/requests").status_code == 200
    assert daytona_emulator.knobs.requests() == []


def test_request_log_shows_what_clients_sent(
    daytona_emulator: EmulatorServer, client: httpx.Client, admin: httpx.Client
) -> None:
    client.get("/snapshots", params={"limit": 5})
    client.get("/snapshots/a%2Fb")

    log = admin.get("/_emulator/requests").json()

    assert [(r["method"], r["path"], r["query"], r["status"]) for r in log] == [
        ("GET", "/api/snapshots", "limit=5", 200),
        ("GET", "/api/snapshots/a%2Fb", "", 404),
    ]
    assert not any(r["method"] == "POST" for r in log)
    assert admin.delete("/_emulator/requests").status_code == 204
    assert admin.get("/_emulator/requests").json() == []


def test_stuck_pending_outcome(daytona_emulator: EmulatorServer, client: httpx.Client) -> None:
    daytona_emulator.knobs.timings.pending_seconds = 0.05
    daytona_emulator.knobs.add_outcome(
        SnapshotOutcome(name_pattern="stuck-*", outcome="stuck_pending")
    )
    daytona_emulator.freeze_clock()

    post_snapshot(client, "stuck-1")
    post_snapshot(client, "free-1")
    daytona_emulator.advance_clock(0.05)
    assert client.get("/snapshots/free-1").json()["state"] == "error"  # unreachable ghcr.io
    daytona_emulator.advance_clock(3600)

    assert client.get("/snapshots/stuck-1").json()["state"] == "pending"


@pytest.mark.parametrize("outcome", ["error", "build_failed"])
def test_failing_outcomes(
    daytona_emulator: EmulatorServer, client: httpx.Client, outcome: OutcomeKind
) -> None:
    daytona_emulator.knobs.add_outcome(
        SnapshotOutcome(
            name_pattern="doomed-?",
            outcome=outcome,
            reason="Snapshot size (25.00GB) exceeds maximum allowed size of 20GB",
        )
    )

    post_snapshot(client, "doomed-1")
    body = wait_for_state(client, "doomed-1", ["error", "build_failed"])

    assert body["state"] == outcome
    assert body["errorReason"] == "Snapshot size (25.00GB) exceeds maximum allowed size of 20GB"


def test_outcomes_through_the_admin_api(
    daytona_emulator: EmulatorServer, client: httpx.Client, admin: httpx.Client
) -> None:
    response = admin.post(
        "/_emulator/outcomes",
        json={
            "name_pattern": "x",
            "outcome": "error",
            "reason": "unauthorized: authentication required",
        },
    )
    assert response.status_code == 201
    assert len(admin.get("/_emulator/outcomes").json()) == 1

    post_snapshot(client, "x")

    assert wait_for_state(client, "x", ["error"])["errorReason"] == (
        "unauthorized: authentication required"
    )
    assert admin.delete("/_emulator/outcomes").status_code == 204
    assert daytona_emulator.knobs.outcomes() == []


def test_settings_through_the_admin_api(
    daytona_emulator: EmulatorServer, client: httpx.Client, admin: httpx.Client
) -> None:
    daytona_emulator.freeze_clock()
    patched = admin.patch(
        "/_emulator/settings",
        json={"timings": {"pending_seconds": 30}, "limits": {"snapshot_quota": 1}},
    )
    assert patched.status_code == 200
    assert patched.json()["limits"]["snapshot_quota"] == 1

    post_snapshot(client, "one")
    daytona_emulator.advance_clock(29.9)  # the default dwell (0.3 s) would have ended it
    assert client.get("/snapshots/one").json()["state"] == "pending"
    assert (
        post_snapshot(client, "two").json()["message"]
        == "Snapshot quota exceeded. Maximum allowed: 1"
    )
    invalid = admin.patch("/_emulator/settings", json={"timings": {"pending_seconds": -1}})
    assert invalid.status_code == 422
    assert admin.get("/_emulator/settings").json()["timings"]["pending_seconds"] == 30


def test_reset_forgets_everything(
    daytona_emulator: EmulatorServer, client: httpx.Client, admin: httpx.Client
) -> None:
    post_snapshot(client, "kept")
    daytona_emulator.knobs.add_fault(FaultRule(kind="error", count=None, method="DELETE"))
    daytona_emulator.knobs.add_outcome(SnapshotOutcome(name_pattern="*", outcome="stuck_pending"))
    daytona_emulator.knobs.timings.pending_seconds = 99

    assert admin.post("/_emulator/reset").status_code == 204

    assert client.get("/snapshots").json()["total"] == 0
    assert daytona_emulator.knobs.faults() == []
    assert daytona_emulator.knobs.outcomes() == []
    assert daytona_emulator.knobs.timings.pending_seconds == 0.3
    assert [r.path for r in daytona_emulator.knobs.requests()] == ["/api/snapshots"]
