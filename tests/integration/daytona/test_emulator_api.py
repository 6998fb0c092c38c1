"""The emulator's snapshot API over plain HTTP: shapes, validation, listing, lookups, lifecycle."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from daytona_emulator.server import EmulatorServer
from daytona_emulator.wire import iso
from tests.helpers.emulator import (
    OTHER_ORG_KEY,
    SANDBOX_ONLY_KEY,
    admin_client,
    api_client,
    daytona_emulator,
    wait_for_state,
)

__all__ = ["daytona_emulator"]  # imported for pytest, which finds fixtures by name

pytestmark = pytest.mark.emulator

ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
IMAGE = "ghcr.io/acme/app:sha-abc"
PER_SANDBOX_HINT = (
    "Need higher resource limits per-sandbox? Contact us at support@daytona.io "
    "and let us know about your use case."
)


@pytest.fixture
def client(daytona_emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with api_client(daytona_emulator) as http:
        yield http


def create(client: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/snapshots", json={"name": name, "imageName": IMAGE, **fields})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def force_state(server: EmulatorServer, snapshot_id: str, state: str) -> None:
    with admin_client(server) as admin:
        response = admin.post(f"/_emulator/snapshots/{snapshot_id}/state", json={"state": state})
    assert response.status_code == 200, response.text


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"path", "timestamp", "statusCode", "error", "message"}
    assert body["statusCode"] == status
    assert ISO_MS_Z.match(body["timestamp"])
    message: str = body["message"]
    return message


# Shapes


def test_create_answers_200_with_a_complete_snapshot_dto(client: httpx.Client) -> None:
    body = create(client, "shape")

    assert uuid.UUID(body["id"]).version == 4
    assert body["name"] == "shape"
    assert body["imageName"] == IMAGE
    assert body["state"] == "pending"
    assert body["general"] is False
    # Daytona's column defaults when the body leaves resources out; integers stay integers.
    assert (body["cpu"], body["mem"], body["disk"], body["gpu"]) == (1, 1, 3, 0)
    assert all(type(body[key]) is int for key in ("cpu", "mem", "disk", "gpu"))
    for nullable in ("size", "entrypoint", "errorReason", "lastUsedAt", "sourceSandboxId"):
        assert nullable in body
        assert body[nullable] is None
    assert ISO_MS_Z.match(body["createdAt"])
    assert ISO_MS_Z.match(body["updatedAt"])
    assert "buildInfo" not in body  # undefined for image snapshots, so omitted
    assert body["regionIds"] == ["us"]
    assert body["sandboxClass"] == "container"


def test_requested_resources_and_entrypoint_are_stored(client: httpx.Client) -> None:
    body = create(client, "sized", cpu=2, memory=4, disk=8, entrypoint=["sleep", "", "infinity"])

    assert (body["cpu"], body["mem"], body["disk"]) == (2, 4, 8)
    assert body["entrypoint"] == ["sleep", "infinity"]  # empty parts are dropped


def test_error_body_has_daytona_shape(client: httpx.Client) -> None:
    response = client.get("/snapshots/nope?x=1")

    message = error_of(response, 404)
    body = response.json()
    assert body["error"] == "Not Found"
    assert body["path"] == "/api/snapshots/nope?x=1"
    assert message == "Snapshot with name nope not found"


# Validation of POST /snapshots, messages and order (spec §6)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "name must be a string"),
        (
            {"name": 5, "imageName": 3, "cpu": "2", "gpu": 2},
            "name must be a string, imageName must be a string, "
            "cpu must be a number conforming to the specified constraints, "
            "cpu must not be less than 0, gpu must not be greater than 1",
        ),
        (
            {"name": "<b>x</b>", "imageName": IMAGE},
            "name must not contain HTML tags, URLs, or control characters",
        ),
        ({"name": "x", "imageName": IMAGE, "memory": -1}, "memory must not be less than 0"),
        ({"name": "x", "imageName": IMAGE, "entrypoint": "sleep"}, "entrypoint must be an array"),
        ({"name": "x", "buildInfo": "FROM x"}, "buildInfo must be an object"),
        (
            {"name": "x", "imageName": IMAGE, "sandboxClass": "vm"},
            "sandboxClass must be one of the following values: linux-vm, container, windows",
        ),
        ({"name": "x"}, "Must specify an image name when not using a build info entry"),
        (
            {"name": "x", "imageName": ""},
            "Must specify an image name when not using a build info entry",
        ),
        (
            {"name": "x", "imageName": IMAGE, "buildInfo": {"dockerfileContent": "FROM a:1"}},
            "Cannot specify an image name when using a build info entry",
        ),
        (
            {"name": "x", "entrypoint": ["sh"], "buildInfo": {"dockerfileContent": "FROM a:1"}},
            "Cannot specify an entrypoint when using a build info entry",
        ),
        (
            {"name": "bad name", "imageName": IMAGE},
            "Invalid snapshot name format. May contain letters, digits, dots, colons, and dashes",
        ),
        (
            {"name": "x", "imageName": "ubuntu"},
            "Image name must include a tag (e.g., ubuntu:22.04) or digest (@sha256:...)",
        ),
        (
            {"name": "x", "imageName": "ubuntu:"},
            "Image name must include a tag (e.g., ubuntu:22.04) or digest (@sha256:...)",
        ),
        ({"name": "x", "imageName": "ubuntu:latest"}, 'Images with tag ":latest" are not allowed'),
        (
            {"name": "x", "imageName": "ubuntu@sha256:abc"},
            "Invalid digest format. Must be image@sha256:64_hex_characters",
        ),
        (
            {"name": "x", "imageName": "ghcr.io/a b:1"},
            "Invalid image name format. Must be lowercase, may contain digits, dots, dashes, "
            "and single slashes between components",
        ),
        (
            {"name": "x", "imageName": IMAGE, "cpu": 5},
            f"CPU request 5 exceeds maximum allowed per sandbox (4).\n{PER_SANDBOX_HINT}",
        ),
        (
            {"name": "x", "imageName": IMAGE, "memory": 16},
            f"Memory request 16GB exceeds maximum allowed per sandbox (8GB).\n{PER_SANDBOX_HINT}",
        ),
        (
            {"name": "x", "imageName": IMAGE, "disk": 10.5},
            f"Disk request 10.5GB exceeds maximum allowed per sandbox (10GB).\n{PER_SANDBOX_HINT}",
        ),
        ({"name": "x", "imageName": IMAGE, "gpu": 1}, "GPU quota exceeded. Maximum allowed: 0."),
    ],
)
def test_create_validation_messages(
    client: httpx.Client, body: dict[str, Any], message: str
) -> None:
    assert error_of(client.post("/snapshots", json=body), 400) == message


def test_digest_image_names_are_accepted(client: httpx.Client) -> None:
    create(client, "pinned", imageName=f"ghcr.io/acme/app:sha-1@sha256:{'a' * 64}")


def test_unknown_region_is_404(client: httpx.Client) -> None:
    response = client.post("/snapshots", json={"name": "x", "imageName": IMAGE, "regionId": "mars"})
    assert error_of(response, 404) == "Region not found"


def test_invalid_json_is_400_even_before_authentication(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    headers = {"Content-Type": "application/json"}
    response = client.post("/snapshots", content=b"{bad", headers=headers)
    with httpx.Client(base_url=daytona_emulator.base_url, trust_env=False) as anonymous:
        unauthenticated = anonymous.post("/snapshots", content=b"{bad", headers=headers)

    assert "in JSON at position 1" in error_of(response, 400)
    assert "in JSON at position 1" in error_of(unauthenticated, 400)


def test_name_is_checked_before_image(client: httpx.Client) -> None:
    response = client.post("/snapshots", json={"name": "a b", "imageName": "ubuntu"})
    assert error_of(response, 400).startswith("Invalid snapshot name format")


def test_limits_are_checked_before_quota_and_quota_before_duplicate(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    create(client, "only")
    daytona_emulator.knobs.limits.snapshot_quota = 1

    duplicate = client.post("/snapshots", json={"name": "only", "imageName": IMAGE})
    too_big = client.post("/snapshots", json={"name": "only", "imageName": IMAGE, "cpu": 9})

    assert error_of(duplicate, 400) == "Snapshot quota exceeded. Maximum allowed: 1"
    assert error_of(too_big, 400).startswith("CPU request 9 exceeds")


def test_failed_snapshots_do_not_count_against_the_quota(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    first = create(client, "first")
    daytona_emulator.knobs.limits.snapshot_quota = 1
    force_state(daytona_emulator, first["id"], "error")

    create(client, "second")


def test_duplicate_name_is_409(client: httpx.Client) -> None:
    create(client, "twice")

    response = client.post("/snapshots", json={"name": "twice", "imageName": IMAGE})

    assert (
        error_of(response, 409) == 'Snapshot with name "twice" already exists for this organization'
    )
    assert response.json()["error"] == "Conflict"


# Lookups


def test_get_by_name_and_by_id(client: httpx.Client) -> None:
    created = create(client, "lookup")

    assert client.get("/snapshots/lookup").json()["id"] == created["id"]
    assert client.get(f"/snapshots/{created['id']}").json()["name"] == "lookup"
    assert client.get(f"/snapshots/{created['id'].upper()}").json()["name"] == "lookup"


def test_unknown_uuid_reads_as_unknown_name(client: httpx.Client) -> None:
    missing = str(uuid.uuid4())
    assert error_of(client.get(f"/snapshots/{missing}"), 404) == (
        f"Snapshot with name {missing} not found"
    )


def test_percent_encoded_names_route_to_one_parameter(client: httpx.Client) -> None:
    created = create(client, "acme/app:1")

    response = client.get("/snapshots/acme%2Fapp%3A1")

    assert response.status_code == 200, response.text
    assert response.json()["id"] == created["id"]
    assert error_of(client.get("/snapshots/acme%2Fother"), 404) == (
        "Snapshot with name acme/other not found"
    )


def test_organizations_are_isolated(daytona_emulator: EmulatorServer, client: httpx.Client) -> None:
    mine = create(client, "shared-name")
    with api_client(daytona_emulator, OTHER_ORG_KEY) as other:
        assert other.get("/snapshots").json()["total"] == 0
        assert error_of(other.get("/snapshots/shared-name"), 404) == (
            "Snapshot with name shared-name not found"
        )
        assert error_of(other.get(f"/snapshots/{mine['id']}"), 404) == (
            f"Snapshot with ID or name {mine['id']} not found"
        )
        # Names are unique per organization only.
        assert (
            other.post("/snapshots", json={"name": "shared-name", "imageName": IMAGE}).status_code
            == 200
        )


# Listing


def test_list_defaults(daytona_emulator: EmulatorServer, client: httpx.Client) -> None:
    daytona_emulator.freeze_clock()
    for name in ("one", "two", "three"):
        create(client, name)
        daytona_emulator.advance_clock(0.002)  # distinct createdAt milliseconds

    body = client.get("/snapshots").json()

    assert (body["total"], body["page"], body["totalPages"]) == (3, 1, 1)
    assert all(type(body[key]) is int for key in ("total", "page", "totalPages"))
    # Default sort is lastUsedAt desc (all null here), then createdAt desc.
    assert [item["name"] for item in body["items"]] == ["three", "two", "one"]


def test_list_of_nothing(client: httpx.Client) -> None:
    assert client.get("/snapshots").json() == {"items": [], "total": 0, "page": 1, "totalPages": 0}


def test_pagination(daytona_emulator: EmulatorServer, client: httpx.Client) -> None:
    daytona_emulator.freeze_clock()
    for index in range(5):
        create(client, f"page-{index}")
        daytona_emulator.advance_clock(0.002)

    third = client.get("/snapshots", params={"limit": 2, "page": 3}).json()
    beyond = client.get("/snapshots", params={"limit": 2, "page": 4}).json()

    assert [item["name"] for item in third["items"]] == ["page-0"]
    assert (third["total"], third["page"], third["totalPages"]) == (5, 3, 3)
    assert beyond["items"] == []
    assert (beyond["total"], beyond["page"]) == (5, 4)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"page": "0"}, "page must not be less than 1"),
        ({"page": "abc"}, "page must be an integer number, page must not be less than 1"),
        ({"limit": "201"}, "limit must not be greater than 200"),
        ({"limit": "1.5"}, "limit must be an integer number"),
        (
            {"limit": "x"},
            "limit must be an integer number, limit must not be less than 1, "
            "limit must not be greater than 200",
        ),
        (
            {"sort": "size"},
            "sort must be one of the following values: name, state, lastUsedAt, createdAt",
        ),
        ({"order": "up"}, "order must be one of the following values: asc, desc"),
        (
            {"page": "0", "sort": "size"},
            "page must not be less than 1, "
            "sort must be one of the following values: name, state, lastUsedAt, createdAt",
        ),
    ],
)
def test_list_query_validation(client: httpx.Client, params: dict[str, str], message: str) -> None:
    assert error_of(client.get("/snapshots", params=params), 400) == message


def test_limit_200_is_allowed(client: httpx.Client) -> None:
    assert client.get("/snapshots", params={"limit": 200}).status_code == 200


def test_name_filter_is_a_case_insensitive_substring(client: httpx.Client) -> None:
    for name in ("ci-img-abc", "CI-IMG-def", "other", "ci-imgXabc"):
        create(client, name)

    names = {i["name"] for i in client.get("/snapshots", params={"name": "img-"}).json()["items"]}
    # `_` is an ILIKE wildcard, exactly as in Daytona's Postgres query.
    wildcard = {
        i["name"] for i in client.get("/snapshots", params={"name": "img_abc"}).json()["items"]
    }

    assert names == {"ci-img-abc", "CI-IMG-def"}
    assert wildcard == {"ci-img-abc", "ci-imgXabc"}


def test_sort_and_order(daytona_emulator: EmulatorServer, client: httpx.Client) -> None:
    daytona_emulator.knobs.timings.pending_seconds = 60  # "bravo" stays pending
    daytona_emulator.freeze_clock()
    ids = {}
    for name in ("bravo", "alpha", "charlie"):
        ids[name] = create(client, name)["id"]
        daytona_emulator.advance_clock(0.002)
    force_state(daytona_emulator, ids["charlie"], "active")
    force_state(daytona_emulator, ids["alpha"], "error")

    def names(**params: str) -> list[str]:
        return [i["name"] for i in client.get("/snapshots", params=params).json()["items"]]

    assert names(sort="name", order="asc") == ["alpha", "bravo", "charlie"]
    assert names(sort="name") == ["charlie", "bravo", "alpha"]
    assert names(sort="createdAt", order="asc") == ["bravo", "alpha", "charlie"]
    # States sort in Daytona's enum order: pending < active < error.
    assert names(sort="state", order="asc") == ["bravo", "charlie", "alpha"]


def test_general_snapshots_are_listed_last_and_counted() -> None:
    from daytona_emulator.config import EmulatorConfig

    config = EmulatorConfig(general_snapshots=("daytonaio/sandbox:0.5.0",))
    with EmulatorServer(config) as server, api_client(server) as http:
        own = http.post("/snapshots", json={"name": "mine", "imageName": IMAGE}).json()
        # "daytonaio/…" < "mine" by name, yet general snapshots always come last.
        listed = http.get("/snapshots", params={"sort": "name", "order": "asc"}).json()
        general = http.get("/snapshots/daytonaio%2Fsandbox%3A0.5.0").json()
        deleted = http.delete(f"/snapshots/{general['id']}")

    assert listed["total"] == 2
    assert [item["name"] for item in listed["items"]] == ["mine", "daytonaio/sandbox:0.5.0"]
    assert general["general"] is True
    assert own["general"] is False
    assert error_of(deleted, 403) == "You cannot delete a general snapshot"


# Delete, activate, deactivate


def test_delete_takes_a_uuid(client: httpx.Client) -> None:
    create(client, "by-name")

    assert (
        error_of(client.delete("/snapshots/by-name"), 400) == "Validation failed (uuid is expected)"
    )
    # The access guard runs first: an unknown name is a 404, not a 400.
    assert (
        error_of(client.delete("/snapshots/no-such"), 404) == "Snapshot with name no-such not found"
    )


def test_delete_goes_through_removing_then_the_row_and_name_are_gone(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    daytona_emulator.knobs.timings.removal_seconds = 0.3
    daytona_emulator.freeze_clock()
    created = create(client, "doomed")

    response = client.delete(f"/snapshots/{created['id']}")

    assert response.status_code == 200
    assert response.content == b""
    assert client.get("/snapshots/doomed").json()["state"] == "removing"
    # The name stays reserved while the row exists.
    assert client.post("/snapshots", json={"name": "doomed", "imageName": IMAGE}).status_code == 409
    daytona_emulator.advance_clock(0.29)
    assert client.get("/snapshots/doomed").json()["state"] == "removing"
    daytona_emulator.advance_clock(0.02)  # past the 0.3 dwell, whatever the float sum's ulp
    assert client.get("/snapshots/doomed").status_code == 404
    create(client, "doomed")


def test_deactivate_and_activate(daytona_emulator: EmulatorServer, client: httpx.Client) -> None:
    daytona_emulator.knobs.timings.pending_seconds = 60  # keep it observable in `pending`
    snapshot_id = create(client, "toggle")["id"]
    force_state(daytona_emulator, snapshot_id, "active")

    assert error_of(client.post(f"/snapshots/{snapshot_id}/activate"), 400) == (
        f"Snapshot {snapshot_id} is already active"
    )
    first = client.post(f"/snapshots/{snapshot_id}/deactivate")
    again = client.post(f"/snapshots/{snapshot_id}/deactivate")
    assert (first.status_code, first.content, again.status_code) == (204, b"", 204)
    assert client.get("/snapshots/toggle").json()["state"] == "inactive"

    activated = client.post(f"/snapshots/{snapshot_id}/activate")

    assert activated.status_code == 200
    assert activated.json()["state"] == "pending"
    assert error_of(client.post(f"/snapshots/{snapshot_id}/activate"), 400) == (
        f"Snapshot {snapshot_id} cannot be activated - it is in pending state"
    )
    assert error_of(client.post("/snapshots/toggle/activate"), 400) == (
        "Validation failed (uuid is expected)"
    )


def test_activation_cooldown(daytona_emulator: EmulatorServer, client: httpx.Client) -> None:
    daytona_emulator.knobs.timings.activation_cooldown_seconds = 60
    snapshot_id = create(client, "cooling")["id"]
    assert client.post(f"/snapshots/{snapshot_id}/deactivate").status_code == 204

    response = client.post(f"/snapshots/{snapshot_id}/activate")

    assert error_of(response, 400) == (
        "Snapshot deactivation is still in progress. Please try again in a few minutes."
    )


def test_activation_cooldown_ends_with_the_clock(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    daytona_emulator.knobs.timings.activation_cooldown_seconds = 600  # Daytona's 10 minutes
    daytona_emulator.freeze_clock()
    snapshot_id = create(client, "cooled")["id"]
    assert client.post(f"/snapshots/{snapshot_id}/deactivate").status_code == 204

    daytona_emulator.advance_clock(599)
    early = client.post(f"/snapshots/{snapshot_id}/activate")
    daytona_emulator.advance_clock(1)
    late = client.post(f"/snapshots/{snapshot_id}/activate")

    assert error_of(early, 400).startswith("Snapshot deactivation is still in progress.")
    assert late.status_code == 200, late.text
    assert late.json()["state"] == "pending"


def test_state_follows_the_clock_not_the_number_of_gets(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    daytona_emulator.knobs.timings.pending_seconds = 0.4
    daytona_emulator.freeze_clock()
    create(client, "clocked")

    seen = {client.get("/snapshots/clocked").json()["state"] for _ in range(15)}
    assert seen == {"pending"}
    daytona_emulator.advance_clock(0.39)
    assert client.get("/snapshots/clocked").json()["state"] == "pending"
    # 0.02, not 0.01: the frozen clock counts from the host's monotonic time, where 0.39 + 0.01
    # can sum to an ulp short of the 0.4 dwell.
    daytona_emulator.advance_clock(0.02)
    # ghcr.io is unreachable offline: after the dwell the pull fails with that reason.
    body = client.get("/snapshots/clocked").json()
    assert body["state"] == "error"
    assert "registry unreachable" in body["errorReason"]
    assert "ghcr.io" in body["errorReason"]


def test_timestamps_come_from_the_clock(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    clock = daytona_emulator.freeze_clock()
    created = create(client, "stamped")
    daytona_emulator.advance_clock(3600)  # pending (0.3 s) -> error, then an hour passes
    later = client.get("/snapshots/stamped").json()
    missing = client.get("/snapshots/nope").json()

    start = clock.now() - timedelta(seconds=3600)
    assert created["createdAt"] == created["updatedAt"] == iso(start)
    assert later["state"] == "error"
    assert later["updatedAt"] == iso(start + timedelta(seconds=0.3))  # when it left `pending`
    assert missing["timestamp"] == iso(clock.now())


def test_the_clock_through_the_admin_api(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    with admin_client(daytona_emulator) as admin:
        running = admin.get("/_emulator/clock").json()
        refused = admin.post("/_emulator/clock/advance", json={"seconds": 1})
        frozen = admin.post("/_emulator/clock/freeze").json()
        create(client, "timed")
        advanced = admin.post("/_emulator/clock/advance", json={"seconds": 0.3})
        backwards = admin.post("/_emulator/clock/advance", json={"seconds": -1})
        admin.post("/_emulator/reset")
        after_reset = admin.get("/_emulator/clock").json()

    assert running["frozen"] is False
    assert error_of(refused, 409) == "The clock is not frozen: POST /_emulator/clock/freeze first"
    assert frozen["frozen"] is True
    assert advanced.status_code == 200
    assert advanced.json()["monotonic"] == pytest.approx(frozen["monotonic"] + 0.3)
    assert advanced.json()["now"] == iso(
        datetime.fromisoformat(frozen["now"]) + timedelta(seconds=0.3)
    )
    assert backwards.status_code == 422
    assert after_reset["frozen"] is False


# Build logs


def test_image_snapshots_have_no_build_info(client: httpx.Client) -> None:
    snapshot_id = create(client, "pulled")["id"]

    response = client.get(f"/snapshots/{snapshot_id}/build-logs-url")

    assert error_of(response, 404) == f"Snapshot {snapshot_id} has no build info"


def test_build_info_snapshots_build_and_stream_logs(client: httpx.Client) -> None:
    dockerfile = "FROM debian:12\nRUN echo hi\n"
    response = client.post(
        "/snapshots", json={"name": "built", "buildInfo": {"dockerfileContent": dockerfile}}
    )
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["imageName"] == ""
    assert created["buildInfo"]["snapshotRef"].startswith("daytona-")
    assert created["buildInfo"]["dockerfileContent"] == dockerfile

    url = client.get(f"/snapshots/{created['id']}/build-logs-url").json()["url"]
    logs = client.get(url, params={"follow": "true"}).text

    assert "FROM debian:12" in logs
    assert client.get("/snapshots/built").json()["state"] == "active"
    assert wait_for_state(client, "built", ["active"])["ref"].endswith(":daytona")


# Auth and routing


def test_missing_or_unknown_key_is_401(daytona_emulator: EmulatorServer) -> None:
    anonymous = httpx.get(f"{daytona_emulator.base_url}/snapshots")
    with api_client(daytona_emulator, "dtn_unknown") as stranger:
        unknown = stranger.get("/snapshots")

    assert error_of(anonymous, 401) == "Invalid credentials"
    assert error_of(unknown, 401) == "Invalid credentials"
    assert unknown.json()["error"] == "Unauthorized"


def test_key_without_snapshot_permissions_is_403_before_validation(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    snapshot_id = create(client, "guarded")["id"]
    with api_client(daytona_emulator, SANDBOX_ONLY_KEY) as limited:
        assert error_of(limited.post("/snapshots", json={}), 403) == "Access denied"
        assert error_of(limited.delete(f"/snapshots/{snapshot_id}"), 403) == "Access denied"
        # Reads need no permission; the key's organization is the same.
        assert limited.get("/snapshots/guarded").status_code == 200


def test_organization_header_is_accepted(client: httpx.Client) -> None:
    response = client.get("/snapshots", headers={"X-Daytona-Organization-ID": str(uuid.uuid4())})
    assert response.status_code == 200


def test_socket_io_is_not_served(daytona_emulator: EmulatorServer) -> None:
    response = httpx.get(f"{daytona_emulator.base_url}/socket.io/", params={"EIO": "4"})
    assert error_of(response, 404) == "Cannot GET /api/socket.io/?EIO=4"


def test_unknown_method_is_404_like_express(client: httpx.Client) -> None:
    assert error_of(client.put("/snapshots"), 404) == "Cannot PUT /api/snapshots"


def test_trailing_slash_is_ignored(client: httpx.Client) -> None:
    create(client, "slashed")
    assert client.get("/snapshots/").json()["total"] == 1
