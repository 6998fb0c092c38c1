"""The emulator's sandbox API over plain HTTP, where no container is involved: the rules Daytona
checks before a runner is asked, scripted failures, lookups, listing, and the proxy's auth.

Sandboxes here come from snapshots forced `active` (no registry) and either fail by a scripted
outcome or hang in `creating`, so no test in this file needs a Docker engine.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from daytona import CreateSandboxFromSnapshotParams, Daytona, DaytonaConfig
from daytona.common.errors import DaytonaBadRequestError, DaytonaConflictError

from daytona_emulator.knobs import FaultRule, SandboxOutcome
from daytona_emulator.server import EmulatorServer
from tests.helpers.emulator import (
    OTHER_ORG_KEY,
    SANDBOX_ONLY_KEY,
    admin_client,
    api_client,
    daytona_emulator,
)

__all__ = ["daytona_emulator"]  # imported for pytest, which finds fixtures by name

pytestmark = [
    pytest.mark.emulator,
    pytest.mark.filterwarnings("ignore:Polling-only mode:DeprecationWarning"),
]

IMAGE = "ghcr.io/acme/app:sha-abc"
REASON = "Failed to pull image: manifest unknown"


@pytest.fixture
def client(daytona_emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with api_client(daytona_emulator) as http:
        yield http


def snapshot(
    server: EmulatorServer, client: httpx.Client, name: str, state: str = "active"
) -> dict[str, Any]:
    """A snapshot put straight into `state`, as the registry probe would have left it."""
    created = client.post("/snapshots", json={"name": name, "imageName": IMAGE, "cpu": 2})
    assert created.status_code == 200, created.text
    with admin_client(server) as admin:
        forced = admin.post(
            f"/_emulator/snapshots/{created.json()['id']}/state", json={"state": state}
        )
    assert forced.status_code == 200, forced.text
    body: dict[str, Any] = forced.json()
    return body


def failing(server: EmulatorServer, client: httpx.Client, name: str = "broken") -> None:
    snapshot(server, client, name)
    server.knobs.add_sandbox_outcome(
        SandboxOutcome(snapshot_pattern=name, outcome="error", reason=REASON)
    )


def hanging(server: EmulatorServer, client: httpx.Client, name: str = "slow") -> dict[str, Any]:
    """A sandbox that stays `creating`; the server answers once its short wait is over."""
    snapshot(server, client, name)
    server.knobs.add_sandbox_outcome(
        SandboxOutcome(snapshot_pattern=name, outcome="stuck_creating")
    )
    server.knobs.timings.sandbox_start_wait_seconds = 0.05
    created = client.post("/sandbox", json={"snapshot": name})
    assert created.status_code == 200, created.text
    body: dict[str, Any] = created.json()
    return body


def message(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    text: str = response.json()["message"]
    return text


def test_resources_cannot_come_with_a_snapshot(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    snapshot(daytona_emulator, client, "base")
    response = client.post("/sandbox", json={"snapshot": "base", "cpu": 2, "memory": 4})
    assert message(response, 400) == "Cannot specify Sandbox resources when using a snapshot"
    # `0` is not "specifying" for Daytona's truthiness test; the sandbox then hangs here.
    daytona_emulator.knobs.add_sandbox_outcome(
        SandboxOutcome(snapshot_pattern="base", outcome="stuck_creating")
    )
    daytona_emulator.knobs.timings.sandbox_start_wait_seconds = 0
    assert client.post("/sandbox", json={"snapshot": "base", "cpu": 0}).status_code == 200


def test_unknown_snapshot(client: httpx.Client) -> None:
    response = client.post("/sandbox", json={"snapshot": "nope"})
    assert message(response, 400) == (
        "Snapshot nope not found. Did you add it through the Daytona Dashboard?"
    )
    missing = str(uuid.uuid4())
    assert message(client.post("/sandbox", json={"snapshot": missing}), 400).startswith(
        f"Snapshot {missing} not found."
    )


def test_snapshot_must_be_active(daytona_emulator: EmulatorServer, client: httpx.Client) -> None:
    snapshot(daytona_emulator, client, "asleep", state="inactive")
    assert message(client.post("/sandbox", json={"snapshot": "asleep"}), 400) == (
        "Snapshot asleep is inactive"
    )
    pending = snapshot(daytona_emulator, client, "young", state="pending")
    # By id too; the message names the snapshot the way the caller did.
    response = client.post("/sandbox", json={"snapshot": pending["id"]})
    assert message(response, 400) == f"Snapshot {pending['id']} is pending"


def test_other_rules_before_any_runner(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    snapshot(daytona_emulator, client, "base")
    assert message(client.post("/sandbox", json={"snapshot": "base", "target": "eu"}), 404) == (
        "Region not found"
    )
    volumes = [{"volumeId": "data", "mountPath": "/data"}]
    assert message(client.post("/sandbox", json={"snapshot": "base", "volumes": volumes}), 404) == (
        "Volume 'data' not found"
    )
    assert message(client.post("/sandbox", json={"snapshot": "base", "env": {"A": 1}}), 400) == (
        "each value in env must be a string"
    )
    daytona_emulator.knobs.limits.max_cpu_per_sandbox = 1
    assert message(client.post("/sandbox", json={"snapshot": "base"}), 403).startswith(
        "CPU request 2 exceeds maximum allowed per sandbox (1)."
    )
    anonymous = httpx.post(f"{daytona_emulator.base_url}/sandbox", json={"snapshot": "base"})
    assert message(anonymous, 401) == "Invalid credentials"


def test_a_sandbox_that_fails_to_start(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    failing(daytona_emulator, client)
    daytona_emulator.freeze_clock()
    response = client.post("/sandbox", json={"snapshot": "broken", "name": "doomed"})
    assert message(response, 400) == f"Sandbox failed to start: {REASON}"

    # The row stays, in `error`, until deleted; then it is gone (404) once destroyed.
    row = client.get("/sandbox/doomed").json()
    assert (row["state"], row["errorReason"], row["recoverable"]) == ("error", REASON, False)
    deleted = client.delete(f"/sandbox/{row['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["state"] in ("destroying", "destroyed")
    assert client.get(f"/sandbox/{row['id']}").json()["state"] == "destroying"
    daytona_emulator.advance_clock(daytona_emulator.knobs.timings.sandbox_destroy_seconds)
    gone = client.get(f"/sandbox/{row['id']}")
    assert message(gone, 404) == f"Sandbox with ID or name {row['id']} not found"


def test_the_sdk_reports_a_failed_start(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    failing(daytona_emulator, client)
    daytona = Daytona(
        DaytonaConfig(
            api_key=daytona_emulator.api_key,
            api_url=daytona_emulator.base_url,
            use_deprecated_polling=True,
        )
    )
    with pytest.raises(DaytonaBadRequestError) as raised:
        daytona.create(CreateSandboxFromSnapshotParams(snapshot="broken"), timeout=10)
    assert str(raised.value) == f"Failed to create sandbox: Sandbox failed to start: {REASON}"


def test_sandbox_shape_and_state_changes_in_progress(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    body = hanging(daytona_emulator, client)
    assert body["state"] == "creating"
    assert body["desiredState"] == "started"
    assert body["snapshot"] == "slow"
    assert body["name"] == body["id"]
    assert (body["cpu"], body["gpu"], body["memory"], body["disk"]) == (2, 0, 1, 3)
    assert all(isinstance(body[key], int) for key in ("cpu", "gpu", "memory", "disk"))
    assert body["user"] == "daytona"
    assert (body["env"], body["labels"], body["public"]) == ({}, {}, False)
    assert body["toolboxProxyUrl"] == f"{daytona_emulator.root_url}/toolbox"
    assert (body["autoStopInterval"], body["autoDeleteInterval"]) == (15, -1)
    for key in ("errorReason", "networkAllowList", "domainAllowList", "daemonVersion"):
        assert key in body
        assert body[key] is None

    sandbox_id = body["id"]
    # Daytona's `StateChangeInProgressError`: 409 for every change while one is in flight.
    for refused in (
        client.post(f"/sandbox/{sandbox_id}/stop"),
        client.post(f"/sandbox/{sandbox_id}/start"),
        client.delete(f"/sandbox/{sandbox_id}"),
    ):
        assert message(refused, 409) == "Sandbox state change in progress"
        assert refused.json()["error"] == "Conflict"
    assert client.get(f"/sandbox/{sandbox_id}/toolbox-proxy-url").json() == {
        "url": f"{daytona_emulator.root_url}/toolbox"
    }


def test_names_lookups_and_organizations(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    snapshot(daytona_emulator, client, "slow")
    daytona_emulator.knobs.add_sandbox_outcome(
        SandboxOutcome(snapshot_pattern="slow", outcome="stuck_creating")
    )
    daytona_emulator.knobs.timings.sandbox_start_wait_seconds = 0
    first = client.post("/sandbox", json={"snapshot": "slow", "name": "box"}).json()
    assert message(client.post("/sandbox", json={"snapshot": "slow", "name": "box"}), 409) == (
        "Sandbox with name box already exists"
    )
    assert client.get("/sandbox/box").json()["id"] == first["id"]
    assert client.get(f"/sandbox/{first['id']}").json()["name"] == "box"
    assert message(client.get("/sandbox/nothing"), 404) == (
        "Sandbox with ID or name nothing not found"
    )
    with api_client(daytona_emulator, OTHER_ORG_KEY) as other:
        assert other.get(f"/sandbox/{first['id']}").status_code == 404
    # A key limited to sandboxes may create them (it lacks only the snapshot permissions).
    with api_client(daytona_emulator, SANDBOX_ONLY_KEY) as limited:
        assert limited.post("/sandbox", json={"snapshot": "slow"}).status_code == 200


def test_list_pages_with_a_cursor_and_filters(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    snapshot(daytona_emulator, client, "slow")
    daytona_emulator.knobs.add_sandbox_outcome(
        SandboxOutcome(snapshot_pattern="slow", outcome="stuck_creating")
    )
    daytona_emulator.knobs.timings.sandbox_start_wait_seconds = 0
    for index in range(3):
        labels = {"team": "a" if index < 2 else "b"}
        created = client.post(
            "/sandbox", json={"snapshot": "slow", "name": f"box-{index}", "labels": labels}
        )
        assert created.status_code == 200

    first = client.get("/sandbox", params={"limit": 2}).json()
    assert [item["name"] for item in first["items"]] == ["box-2", "box-1"]  # newest first
    assert first["nextCursor"] is not None
    assert "env" not in first["items"][0]  # a `SandboxListItem`
    rest = client.get("/sandbox", params={"limit": 2, "cursor": first["nextCursor"]}).json()
    assert ([item["name"] for item in rest["items"]], rest["nextCursor"]) == (["box-0"], None)
    team_a = client.get("/sandbox", params={"labels": '{"team": "a"}'}).json()
    assert sorted(item["name"] for item in team_a["items"]) == ["box-0", "box-1"]
    assert client.get("/sandbox", params={"states": "started"}).json()["items"] == []
    assert message(client.get("/sandbox", params={"limit": 0}), 400) == (
        "limit must not be less than 1"
    )


def test_preview_url_and_proxy_auth(daytona_emulator: EmulatorServer, client: httpx.Client) -> None:
    body = hanging(daytona_emulator, client)
    sandbox_id = body["id"]
    assert message(client.get(f"/sandbox/{sandbox_id}/ports/0/preview-url"), 400) == "Invalid port"
    preview = client.get(f"/sandbox/{sandbox_id}/ports/3000/preview-url").json()
    assert preview["sandboxId"] == sandbox_id
    assert preview["url"] == f"{daytona_emulator.root_url}/_preview/{sandbox_id}/3000"
    assert len(preview["token"]) == 32

    missing = httpx.get(preview["url"])
    assert missing.status_code == 401
    assert set(missing.json()) == {"statusCode", "message", "code", "timestamp", "path", "method"}
    assert missing.json()["message"].startswith("missing authentication")
    wrong = httpx.get(preview["url"], headers={"X-Daytona-Preview-Token": "nope"})
    assert wrong.json()["message"] == "authentication failed:\nAuth key header is invalid"
    # Authenticated, but nothing runs yet: the proxy has nowhere to send it.
    allowed = httpx.get(preview["url"], headers={"X-Daytona-Preview-Token": preview["token"]})
    assert allowed.status_code == 502
    by_query = httpx.get(preview["url"], params={"DAYTONA_SANDBOX_AUTH_KEY": preview["token"]})
    assert by_query.status_code == 502
    with api_client(daytona_emulator, OTHER_ORG_KEY) as other:
        assert other.get(preview["url"]).status_code == 401

    toolbox = f"{body['toolboxProxyUrl']}/{sandbox_id}/process/execute"
    assert httpx.post(toolbox, json={"command": "echo"}).status_code == 401
    assert client.post(toolbox, json={"command": "echo"}).status_code == 502


def test_faults_apply_to_sandbox_routes(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    daytona_emulator.knobs.add_fault(
        FaultRule(kind="error", path_prefix="/api/sandbox", status=503)
    )
    assert client.post("/sandbox", json={"snapshot": "x"}).status_code == 503
    assert message(client.post("/sandbox", json={"snapshot": "x"}), 400).startswith("Snapshot x")
    assert [r.fault for r in daytona_emulator.knobs.requests()] == ["error", None]


def test_sandbox_outcomes_through_the_admin_api(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    with admin_client(daytona_emulator) as admin:
        added = admin.post(
            "/_emulator/sandbox-outcomes",
            json={"snapshot_pattern": "broken*", "outcome": "error", "reason": REASON},
        )
        assert added.status_code == 201
        assert admin.get("/_emulator/sandbox-outcomes").json() == [added.json()]
        snapshot(daytona_emulator, client, "broken-1")
        assert message(client.post("/sandbox", json={"snapshot": "broken-1"}), 400).endswith(REASON)
        assert admin.get("/_emulator/sandbox-containers").json() == []
        assert admin.delete("/_emulator/sandbox-outcomes").status_code == 204
    assert daytona_emulator.knobs.sandbox_outcomes() == []


def test_a_delete_frees_the_name_at_once_and_a_second_delete_is_a_409(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    failing(daytona_emulator, client)
    clock = daytona_emulator.freeze_clock()
    assert client.post("/sandbox", json={"snapshot": "broken", "name": "doomed"}).status_code == 400
    sandbox_id = client.get("/sandbox/doomed").json()["id"]

    deleted = client.delete("/sandbox/doomed")

    assert deleted.status_code == 200, deleted.text
    epoch_ms = int(clock.now().timestamp() * 1000)
    assert deleted.json()["name"] == f"DESTROYED_doomed_{epoch_ms}"  # getSoftDeleteName
    assert deleted.json()["state"] == "destroying"
    again = client.delete(f"/sandbox/{sandbox_id}")
    assert message(again, 409) == "Sandbox state change in progress"
    # The old name is free at once: it finds nothing, and a new sandbox may take it.
    assert message(client.delete("/sandbox/doomed"), 404) == (
        "Sandbox with ID or name doomed not found"
    )
    assert client.get(f"/sandbox/{sandbox_id}").json()["state"] == "destroying"
    reused = client.post("/sandbox", json={"snapshot": "broken", "name": "doomed"})
    assert message(reused, 400) == f"Sandbox failed to start: {REASON}"  # not a 409 on the name
    assert client.get("/sandbox/doomed").json()["id"] != sandbox_id

    daytona_emulator.advance_clock(daytona_emulator.knobs.timings.sandbox_destroy_seconds)

    assert message(client.get(f"/sandbox/{sandbox_id}"), 404) == (
        f"Sandbox with ID or name {sandbox_id} not found"
    )
    assert client.delete(f"/sandbox/{sandbox_id}").status_code == 404


def test_an_errored_sandbox_cannot_start_or_stop(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    failing(daytona_emulator, client)
    assert client.post("/sandbox", json={"snapshot": "broken", "name": "sick"}).status_code == 400

    for action in ("start", "stop"):
        refused = client.post(f"/sandbox/sick/{action}")
        assert message(refused, 400) == "Sandbox is in an errored state"


def test_the_sdk_meets_the_409_of_a_second_delete(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    failing(daytona_emulator, client)
    daytona_emulator.freeze_clock()  # it stays `destroying` until the clock moves
    assert client.post("/sandbox", json={"snapshot": "broken", "name": "twice"}).status_code == 400
    daytona = Daytona(
        DaytonaConfig(
            api_key=daytona_emulator.api_key,
            api_url=daytona_emulator.base_url,
            use_deprecated_polling=True,
        )
    )
    sandbox = daytona.get("twice")

    sandbox.delete()
    with pytest.raises(DaytonaConflictError) as conflict:
        sandbox.delete()

    assert conflict.value.status_code == 409
    assert str(conflict.value) == "Failed to remove sandbox: Sandbox state change in progress"
