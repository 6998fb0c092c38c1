"""`daytona_registry` against the emulator and a real local registry that needs credentials: a
snapshot of a private image fails until the entry exists, then pulls; a second run changes the
entry in place; duplicates go; the password shows nowhere.

The emulator holds no credentials of its own here (`daytona_emulator`, not `_with_registry`), so
the registry entry is the only way its pulls can authenticate, as on Daytona.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from daytona_emulator import EmulatorServer
from daytona_emulator.knobs import SettingsPatch
from pipeline.daytona.client import DaytonaClient, RetryPolicy
from pipeline.daytona.snapshots import PollPolicy
from pipeline.errors import DaytonaError
from pipeline.registry.server import LocalRegistry
from pipeline.sessions.daytona_registry import daytona_registry
from pipeline.sessions.snapshot_daytona import snapshot_daytona
from pipeline.settings.build import BuildSettings, ReportSettings, env_names
from pipeline.settings.daytona import (
    DaytonaSettings,
    RegistryEntrySettings,
    SnapshotSettings,
    StageSettings,
)
from tests.helpers.emulator import EMULATOR_KEY, api_client, daytona_emulator, push_tiny_image

__all__ = ["daytona_emulator"]  # a fixture, used by name

FAST = RetryPolicy(attempts=4, timeout=10, wait_initial=0.01, wait_max=0.05, wait_jitter=0)
POLL = PollPolicy(initial=0.05, factor=1.5, maximum=0.2)
SETTINGS = (BuildSettings, ReportSettings, DaytonaSettings, SnapshotSettings, StageSettings)


@dataclass
class World:
    emulator: EmulatorServer
    registry: LocalRegistry
    image: str  # private: the registry refuses anonymous pulls
    report: Path
    monkeypatch: pytest.MonkeyPatch

    def client(self) -> DaytonaClient:
        return DaytonaClient(self.emulator.base_url, SecretStr(EMULATOR_KEY), retry=FAST)

    def run(self, command: Callable[..., None], *argv: str, **kwargs: Any) -> None:
        with self.client() as api:
            command(list(argv), client=api, **kwargs)

    def snapshot(self, *argv: str) -> None:
        self.run(snapshot_daytona, "--skip-image-check", *argv, poll=POLL)

    def entries(self) -> list[dict[str, Any]]:
        with api_client(self.emulator) as http:
            response = http.get("/docker-registry")
            response.raise_for_status()
            found: list[dict[str, Any]] = response.json()
            return found

    def add_entry(self, url: str, password: str) -> str:
        body = {"name": "by hand", "url": url, "username": self.registry.username}
        with api_client(self.emulator) as http:
            response = http.post("/docker-registry", json={**body, "password": password})
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

    def writes(self) -> list[str]:
        return [
            f"{r.method} {r.path} {r.status}"
            for r in self.emulator.knobs.requests()
            if r.method != "GET" and r.path.startswith("/api/docker-registry")
        ]


@pytest.fixture
def world(
    daytona_emulator: EmulatorServer,
    registry: LocalRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    for name in env_names(*SETTINGS, RegistryEntrySettings):
        monkeypatch.delenv(name, raising=False)
    repository = f"{registry.host}/iterate/private-{uuid.uuid4().hex[:10]}"
    image = push_tiny_image(registry, repository.split("/", 1)[1], "sha-1").reference
    report = tmp_path / "report.json"
    env = {
        "DAYTONA_API_URL": daytona_emulator.base_url,
        "DAYTONA_API_KEY": EMULATOR_KEY,
        "SANDBOX_IMAGE_REPOSITORY": repository,
        "SANDBOX_IMAGE": image,
        "SANDBOX_SNAPSHOT_NAME": "iterate-sandbox-private",
        "DAYTONA_REGISTRY_USERNAME": registry.username,
        "DAYTONA_REGISTRY_PASSWORD": registry.password,
        "PIPELINE_REPORT": str(report),
        "GITHUB_OUTPUT": str(tmp_path / "outputs"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    daytona_emulator.knobs.update_settings(
        SettingsPatch(
            timings={"pending_seconds": 0.05, "pulling_seconds": 0.1, "removal_seconds": 0.2}
        )
    )
    return World(daytona_emulator, registry, image, report, monkeypatch)


def test_a_private_image_pulls_once_the_entry_exists(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(DaytonaError) as caught:
        world.snapshot()
    text = str(caught.value)
    # Docker's words for a Basic-auth registry asked without credentials.
    assert "is in state error:" in text and "no basic auth credentials" in text

    world.run(daytona_registry)
    (entry,) = world.entries()
    assert entry["url"] == world.registry.host and entry["username"] == world.registry.username
    assert "password" not in entry  # Daytona never returns it
    world.snapshot("--force")  # replaces the snapshot that failed
    with world.client() as api:
        made = api.get_snapshot("iterate-sandbox-private")
    assert made is not None and made.state == "active"

    files = [world.report, world.report.with_name("outputs"), world.report.with_name("summary")]
    for shown in (*capsys.readouterr(), *(path.read_text() for path in files)):
        assert world.registry.password not in shown
    section = json.loads(world.report.read_text())["daytona_registry"]
    assert section["id"] == entry["id"] and section["action"] == "created"


def test_a_second_run_updates_the_password_in_place(world: World) -> None:
    world.monkeypatch.setenv("DAYTONA_REGISTRY_PASSWORD", "a-wrong-password")
    world.run(daytona_registry)
    (first,) = world.entries()
    with pytest.raises(DaytonaError) as caught:
        world.snapshot()  # the entry is used, and its password is wrong
    text = str(caught.value)
    assert "is in state error:" in text and "unauthorized" in text
    assert "nox -s daytona_registry" in text and "\n" not in text

    world.monkeypatch.setenv("DAYTONA_REGISTRY_PASSWORD", world.registry.password)
    world.run(daytona_registry)
    assert [e["id"] for e in world.entries()] == [first["id"]]  # nothing new
    assert world.writes() == [
        "POST /api/docker-registry 201",
        f"PATCH /api/docker-registry/{first['id']} 200",
    ]
    world.snapshot("--force")  # the new password is the one Daytona pulls with now
    assert json.loads(world.report.read_text())["snapshot"]["state"] == "active"


def test_duplicates_are_reduced_to_the_oldest(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    oldest = world.add_entry(world.registry.host, "stale")
    newer = world.add_entry(f"http://{world.registry.host}/", "stale")
    scoped = world.add_entry(f"{world.registry.host}/iterate", world.registry.password)
    world.run(daytona_registry, "--dry-run")
    err = capsys.readouterr().err
    assert f"action:     update in place {oldest} " in err and f"delete:     {newer} " in err
    assert f"entry {scoped} " in err and "nothing changed" in err
    assert len(world.entries()) == 3

    world.run(daytona_registry)
    assert sorted(e["id"] for e in world.entries()) == sorted([oldest, scoped])
    assert json.loads(world.report.read_text())["daytona_registry"]["deleted"] == [newer]
    # The path-scoped entry also matches the image and holds the right password; delete it to
    # show that the kept host entry, now updated, is what makes the pull work.
    with api_client(world.emulator) as http:
        assert http.delete(f"/docker-registry/{scoped}").status_code == 204
    world.snapshot()
    assert json.loads(world.report.read_text())["snapshot"]["state"] == "active"
