"""Faithfulness check: Daytona's own Python SDK (0.226.1) works against the emulator."""

from __future__ import annotations

import time

import pytest
from daytona import (
    CreateSnapshotParams,
    Daytona,
    DaytonaConfig,
    Resources,
)
from daytona.common.errors import (
    DaytonaAuthenticationError,
    DaytonaBadRequestError,
    DaytonaConflictError,
    DaytonaConnectionError,
    DaytonaError,
    DaytonaForbiddenError,
    DaytonaNotFoundError,
)
from daytona_api_client import SnapshotState

from daytona_emulator.knobs import FaultRule
from daytona_emulator.server import EmulatorServer
from pipeline.registry.server import LocalRegistry
from tests.helpers.emulator import (
    SANDBOX_ONLY_KEY,
    admin_client,
    api_client,
    daytona_emulator,
    daytona_emulator_with_registry,
    push_tiny_image,
)

__all__ = ["daytona_emulator", "daytona_emulator_with_registry"]  # fixtures, found by name

pytestmark = [
    pytest.mark.emulator,
    pytest.mark.filterwarnings("ignore:Polling-only mode:DeprecationWarning"),
]


def sdk(server: EmulatorServer, key: str | None = None) -> Daytona:
    # Polling mode skips the Socket.IO attempt (the emulator would 404 it anyway, rule E10).
    return Daytona(
        DaytonaConfig(
            api_key=key or server.api_key, api_url=server.base_url, use_deprecated_polling=True
        )
    )


@pytest.mark.registry
def test_create_get_list_delete_through_the_sdk(
    daytona_emulator_with_registry: EmulatorServer, registry: LocalRegistry
) -> None:
    emulator = daytona_emulator_with_registry
    emulator.knobs.timings.removal_seconds = 0.2
    image = push_tiny_image(registry, "iterate/sandbox", "sha-sdk")
    daytona = sdk(emulator)
    logs: list[str] = []

    created = daytona.snapshot.create(
        CreateSnapshotParams(
            name="ci-img-sha-sdk",
            image=image.reference,
            resources=Resources(cpu=2, memory=4, disk=8),
        ),
        on_logs=logs.append,
    )

    assert created.state == SnapshotState.ACTIVE
    assert (created.cpu, created.mem, created.disk) == (2, 4, 8)
    assert created.image_name == image.reference
    assert created.size is not None
    assert created.size > 0
    assert logs[0] == "Creating snapshot ci-img-sha-sdk (SnapshotState.PENDING)"
    assert logs[-1] == "Created snapshot ci-img-sha-sdk (SnapshotState.ACTIVE)"

    fetched = daytona.snapshot.get("ci-img-sha-sdk")
    assert fetched.id == created.id
    assert daytona.snapshot.get(created.id).name == "ci-img-sha-sdk"

    page = daytona.snapshot.list(page=1, limit=10)
    assert (page.total, page.page, page.total_pages) == (1, 1, 1)
    assert [item.name for item in page.items] == ["ci-img-sha-sdk"]

    emulator.freeze_clock()  # the SDK's own polling is over; the removal waits for the clock
    emulator.knobs.clear_requests()
    daytona.snapshot.delete("ci-img-sha-sdk")
    # The SDK resolves a name first, then deletes by UUID, as in the spec's recording.
    assert [(r.method, r.path, r.status) for r in emulator.knobs.requests()] == [
        ("GET", "/api/snapshots/ci-img-sha-sdk", 200),
        ("DELETE", f"/api/snapshots/{created.id}", 200),
    ]
    assert daytona.snapshot.get("ci-img-sha-sdk").state == SnapshotState.REMOVING
    emulator.advance_clock(0.2)
    with pytest.raises(DaytonaNotFoundError) as gone:
        daytona.snapshot.get("ci-img-sha-sdk")
    assert str(gone.value) == "Failed to get snapshot: Snapshot with name ci-img-sha-sdk not found"


def test_duplicate_name_is_a_conflict_error(daytona_emulator: EmulatorServer) -> None:
    with api_client(daytona_emulator) as client:
        first = client.post("/snapshots", json={"name": "dup", "imageName": "ghcr.io/a/b:v1"})
    assert first.status_code == 200

    with pytest.raises(DaytonaConflictError) as conflict:
        sdk(daytona_emulator).snapshot.create(
            CreateSnapshotParams(name="dup", image="ghcr.io/acme/app:v1")
        )

    assert conflict.value.status_code == 409
    assert str(conflict.value) == (
        'Failed to create snapshot: Snapshot with name "dup" already exists for this organization'
    )


@pytest.mark.registry
def test_failed_pull_raises_with_the_reason(
    daytona_emulator_with_registry: EmulatorServer, registry: LocalRegistry
) -> None:
    reference = f"{registry.host}/iterate/sandbox:does-not-exist"

    with pytest.raises(DaytonaError) as failed:
        sdk(daytona_emulator_with_registry).snapshot.create(
            CreateSnapshotParams(name="broken", image=reference)
        )

    assert str(failed.value) == (
        "Failed to create snapshot: Failed to create snapshot broken, reason: "
        f"Error response from daemon: manifest for {reference} not found: "
        "manifest unknown: manifest unknown"
    )
    assert failed.value.status_code is None


def test_unknown_key_is_an_authentication_error(daytona_emulator: EmulatorServer) -> None:
    with pytest.raises(DaytonaAuthenticationError) as refused:
        sdk(daytona_emulator, "dtn_not_a_key").snapshot.list()

    assert refused.value.status_code == 401
    assert str(refused.value) == "Failed to list snapshots: Invalid credentials"


def test_sandbox_only_key_is_forbidden_to_create(daytona_emulator: EmulatorServer) -> None:
    with pytest.raises(DaytonaForbiddenError) as refused:
        sdk(daytona_emulator, SANDBOX_ONLY_KEY).snapshot.create(
            CreateSnapshotParams(name="nope", image="ghcr.io/acme/app:v1")
        )

    assert str(refused.value) == "Failed to create snapshot: Access denied"


def test_validation_is_a_bad_request_error(daytona_emulator: EmulatorServer) -> None:
    with pytest.raises(DaytonaBadRequestError) as invalid:
        sdk(daytona_emulator).snapshot.create(
            CreateSnapshotParams(name="latest", image="ghcr.io/acme/app:latest")
        )

    assert str(invalid.value) == (
        'Failed to create snapshot: Images with tag ":latest" are not allowed'
    )


def test_activate_through_the_sdk(daytona_emulator: EmulatorServer) -> None:
    daytona_emulator.knobs.timings.pending_seconds = 30  # observe `pending` after activation
    with api_client(daytona_emulator) as client, admin_client(daytona_emulator) as admin:
        created = client.post("/snapshots", json={"name": "idle", "imageName": "ghcr.io/a/b:v1"})
        snapshot_id = created.json()["id"]
        admin.post(f"/_emulator/snapshots/{snapshot_id}/state", json={"state": "inactive"})

    activated = sdk(daytona_emulator).snapshot.activate("idle")

    assert activated.id == snapshot_id
    assert activated.state == SnapshotState.PENDING


def test_sdk_transport_honours_retry_after_on_429(daytona_emulator: EmulatorServer) -> None:
    """SDK 0.226.1's urllib3 Retry(total=3) sleeps Retry-After and retries a 429 itself."""
    daytona_emulator.knobs.add_fault(FaultRule(kind="rate_limit", count=1, retry_after=1))

    started = time.monotonic()
    page = sdk(daytona_emulator).snapshot.list()

    assert page.total == 0
    assert time.monotonic() - started >= 1
    assert [r.status for r in daytona_emulator.knobs.requests()] == [429, 200]


def test_sdk_retries_a_dropped_request(daytona_emulator: EmulatorServer) -> None:
    daytona_emulator.knobs.add_fault(FaultRule(kind="drop", method="GET"))

    assert sdk(daytona_emulator).snapshot.list().total == 0
    assert [(r.status, r.fault) for r in daytona_emulator.knobs.requests()] == [
        (None, "drop"),
        (200, None),
    ]


def test_lost_create_response_then_retry_is_a_conflict(daytona_emulator: EmulatorServer) -> None:
    """Pain point 10: the server created the snapshot but the answer was lost. The main API
    client keeps urllib3's default Retry, which does not repeat a POST after a read error, so
    the caller sees a connection error, and its own retry meets a 409."""
    daytona_emulator.knobs.timings.pending_seconds = 30
    daytona_emulator.knobs.add_fault(FaultRule(kind="drop_after", method="POST"))
    daytona = sdk(daytona_emulator)
    params = CreateSnapshotParams(name="lost", image="ghcr.io/acme/app:v1")

    with pytest.raises(DaytonaConnectionError):
        daytona.snapshot.create(params)
    with pytest.raises(DaytonaConflictError):
        daytona.snapshot.create(params)

    assert [(r.method, r.status, r.fault) for r in daytona_emulator.knobs.requests()] == [
        ("POST", None, "drop_after"),
        ("POST", 409, None),
    ]
    assert daytona.snapshot.get("lost").state == SnapshotState.PENDING
