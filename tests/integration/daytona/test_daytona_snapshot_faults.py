"""Daytona blips over real HTTP: the emulator's fault knobs against the snapshot session."""

from __future__ import annotations

import uuid

import pytest
from pydantic import SecretStr
from tenacity import wait_exponential_jitter

from daytona_emulator import EmulatorServer, FaultRule
from pipeline.daytona.client import DaytonaClient
from pipeline.daytona.snapshots import ensure_snapshot
from pipeline.registry.server import LocalRegistry
from pipeline.rules.snapshot_names import SnapshotSpec
from pipeline.waiting import Interval, RetryPolicy
from tests.helpers.emulator import EMULATOR_KEY, daytona_emulator_with_registry, push_tiny_image

__all__ = ["daytona_emulator_with_registry"]  # a fixture, used by name

EMU_RETRY = RetryPolicy(20, wait_exponential_jitter(multiplier=0.05, max=0.2, jitter=0.05))
EMU_POLL = Interval(first_s=0.05, factor=1.5, max_s=0.2)


@pytest.fixture
def emulated(
    daytona_emulator_with_registry: EmulatorServer, registry: LocalRegistry
) -> tuple[EmulatorServer, SnapshotSpec]:
    server = daytona_emulator_with_registry
    server.knobs.timings.pending_seconds = 0.02
    server.knobs.timings.pulling_seconds = 0.02
    name = f"retry-{uuid.uuid4().hex[:10]}"
    image = push_tiny_image(registry, f"iterate/{name}", "v1").reference
    return server, SnapshotSpec(name=name, image=image, cpu=1, memory=1, disk=3)


def requests(server: EmulatorServer, name: str) -> list[str]:
    return [
        f"{r.method} {r.status}"
        for r in server.knobs.requests()
        if r.path in ("/api/snapshots", f"/api/snapshots/{name}")
        and (r.method == "POST" or r.path.endswith(name))
    ]


@pytest.mark.emulator
def test_three_503s_on_create_end_in_one_snapshot(
    emulated: tuple[EmulatorServer, SnapshotSpec],
) -> None:
    server, spec = emulated
    server.knobs.add_fault(
        FaultRule(kind="error", status=503, count=3, method="POST", path_prefix="/api/snapshots")
    )
    with DaytonaClient(server.base_url, SecretStr(EMULATOR_KEY), retry=EMU_RETRY) as api:
        outcome = ensure_snapshot(api, spec, timeout=30, interval=EMU_POLL)
        assert outcome.action == "created" and outcome.snapshot.state == "active"
        assert [s.name for s in api.iter_snapshots(spec.name)] == [spec.name]
    seen = requests(server, spec.name)
    assert seen[:8] == ["GET 404", "POST 503"] * 3 + ["GET 404", "POST 200"]


@pytest.mark.emulator
def test_a_lost_create_answer_is_reported_as_created(
    emulated: tuple[EmulatorServer, SnapshotSpec],
) -> None:
    server, spec = emulated
    server.knobs.add_fault(FaultRule(kind="drop_after", count=1, method="POST"))
    with DaytonaClient(server.base_url, SecretStr(EMULATOR_KEY), retry=EMU_RETRY) as api:
        outcome = ensure_snapshot(api, spec, timeout=30, interval=EMU_POLL)
    assert outcome.action == "created" and outcome.snapshot.state == "active"
    assert [r for r in requests(server, spec.name) if r.startswith("POST")] == ["POST None"]
