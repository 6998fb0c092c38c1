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

import httpx
import pytest
from pydantic import SecretStr

from daytona_emulator import EmulatorServer, FaultRule
from daytona_emulator.knobs import SettingsPatch
from pipeline.daytona.client import DaytonaClient
from pipeline.errors import ConfigError, DaytonaAuthError, DaytonaError
from pipeline.registry.server import LocalRegistry
from pipeline.sessions.daytona_common import Seams
from pipeline.sessions.daytona_registry import daytona_registry
from pipeline.sessions.snapshot_daytona import snapshot_daytona
from pipeline.settings.build import BuildSettings, ReportSettings, env_names
from pipeline.settings.daytona import (
    DaytonaSettings,
    RegistryEntrySettings,
    SnapshotSettings,
    StageSettings,
)
from pipeline.waiting import Interval
from tests.helpers.emulated_daytona import FAST, Before
from tests.helpers.emulator import (
    EMULATOR_KEY,
    EMULATOR_ORG_ID,
    SANDBOX_ONLY_KEY,
    api_client,
    daytona_emulator,
    push_tiny_image,
)

__all__ = ["daytona_emulator"]  # a fixture, used by name

POLL = Interval(first_s=0.05, factor=1.5, max_s=0.2)
SETTINGS = (BuildSettings, ReportSettings, DaytonaSettings, SnapshotSettings, StageSettings)


@dataclass
class World:
    emulator: EmulatorServer
    registry: LocalRegistry
    image: str  # private: the registry refuses anonymous pulls
    report: Path
    monkeypatch: pytest.MonkeyPatch

    def client(
        self, key: str = EMULATOR_KEY, before: Callable[[httpx.Request], None] | None = None
    ) -> DaytonaClient:
        transport = Before(before) if before else None
        return DaytonaClient(
            self.emulator.base_url, SecretStr(key), retry=FAST, transport=transport
        )

    def run(self, command: Callable[..., None], *argv: str, **kwargs: Any) -> None:
        key = kwargs.pop("key", EMULATOR_KEY)
        with self.client(key, kwargs.pop("before", None)) as api:
            command(list(argv), Seams(client=api, **kwargs))

    def snapshot(self, *argv: str) -> None:
        self.run(snapshot_daytona, "--skip-image-check", *argv, interval=POLL)

    def entries(self) -> list[dict[str, Any]]:
        with api_client(self.emulator) as http:
            response = http.get("/docker-registry")
            response.raise_for_status()
            found: list[dict[str, Any]] = response.json()
            return found

    def add_entry(self, url: str, password: str, name: str = "by hand") -> str:
        body = {"name": name, "url": url, "username": self.registry.username}
        with api_client(self.emulator) as http:
            response = http.post("/docker-registry", json={**body, "password": password})
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

    def password_of(self, entry_id: str) -> str:
        """What Daytona stores for an entry and pulls with, but never returns: read from the
        emulator's own table, the only place that has it."""
        entries = self.emulator.state.registries.of(EMULATOR_ORG_ID)
        return next(entry.password for entry in entries if entry.id == entry_id)

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


# --- what the session does with Daytona's entries (GHCR as the registry; nothing pulled) ------

PASSWORD = "ghp_" + "r3ad0nly" * 5
GHCR_REPOSITORY = "ghcr.io/iterate/sandbox"


@pytest.fixture
def ghcr(world: World) -> World:
    """The world with SANDBOX_IMAGE_REPOSITORY on ghcr.io and a read-only token; the emulator's
    clock only moves when a test says, so entries made one after another have distinct ages."""
    world.monkeypatch.setenv("SANDBOX_IMAGE_REPOSITORY", GHCR_REPOSITORY)
    world.monkeypatch.setenv("DAYTONA_REGISTRY_USERNAME", "reader")
    world.monkeypatch.setenv("DAYTONA_REGISTRY_PASSWORD", PASSWORD)
    world.emulator.freeze_clock()
    return world


def test_a_first_run_creates_the_entry_and_a_second_updates_it_in_place(
    ghcr: World, capsys: pytest.CaptureFixture[str]
) -> None:
    ghcr.run(daytona_registry)
    assert ghcr.writes() == ["POST /api/docker-registry 201"]
    (made,) = ghcr.entries()
    assert (made["url"], made["name"], made["username"]) == ("ghcr.io", "ghcr.io", "reader")
    assert ghcr.password_of(made["id"]) == PASSWORD
    section = json.loads(ghcr.report.read_text())["daytona_registry"]
    assert section == {
        "registry": "ghcr.io",
        "id": made["id"],
        "url": "ghcr.io",
        "username": "reader",
        "action": "created",
        "deleted": [],
    }
    first = capsys.readouterr()

    ghcr.emulator.knobs.clear_requests()
    rotated = PASSWORD + "-rotated"
    ghcr.monkeypatch.setenv("DAYTONA_REGISTRY_PASSWORD", rotated)
    ghcr.run(daytona_registry)
    assert ghcr.writes() == [f"PATCH /api/docker-registry/{made['id']} 200"]  # nothing new
    assert [e["id"] for e in ghcr.entries()] == [made["id"]]
    assert ghcr.password_of(made["id"]) == rotated
    assert json.loads(ghcr.report.read_text())["daytona_registry"]["action"] == "updated"
    second = capsys.readouterr()
    files = [ghcr.report, ghcr.report.with_name("outputs"), ghcr.report.with_name("summary")]
    for text in (*first, *second, *(path.read_text() for path in files)):
        assert PASSWORD not in text and rotated not in text
    assert "password:   from DAYTONA_REGISTRY_PASSWORD (never shown)" in first.err


def test_duplicates_of_the_host_are_named_in_the_plan_then_deleted(
    ghcr: World, capsys: pytest.CaptureFixture[str]
) -> None:
    made = []
    for url, name in [
        ("ghcr.io/iterate", "scoped"),  # path-scoped and the oldest of all: never deleted
        ("ghcr.io", "ghcr"),
        ("https://ghcr.io", "newer"),
        ("ghcr.io/", "newest"),
        ("docker.io", "other"),
    ]:
        made.append(ghcr.add_entry(url, "old", name))
        ghcr.emulator.advance_clock(1)
    scoped, oldest, newer, newest, other = made
    ghcr.emulator.knobs.clear_requests()
    ghcr.run(daytona_registry)
    err = capsys.readouterr().err
    assert f"action:     update in place {oldest} ('ghcr'" in err
    assert f"delete:     {newer} " in err and f"delete:     {newest} " in err
    assert f"entry {scoped} " in err and "may pull with its credentials" in err
    entries = {e["id"]: e for e in ghcr.entries()}
    assert set(entries) == {oldest, scoped, other}
    assert entries[oldest]["name"] == "ghcr"  # a person's name is kept
    assert ghcr.password_of(oldest) == PASSWORD and ghcr.password_of(scoped) == "old"
    section = json.loads(ghcr.report.read_text())["daytona_registry"]
    assert sorted(section["deleted"]) == sorted([newer, newest])
    assert not any(w.startswith("POST") for w in ghcr.writes())


def test_dry_run_lists_and_changes_nothing(ghcr: World, capsys: pytest.CaptureFixture[str]) -> None:
    ghcr.add_entry("ghcr.io", "old")
    ghcr.emulator.advance_clock(1)
    ghcr.add_entry("ghcr.io", "old")
    ghcr.emulator.knobs.clear_requests()
    ghcr.run(daytona_registry, "--dry-run")
    assert [f"{r.method} {r.path}" for r in ghcr.emulator.knobs.requests()] == [
        "GET /api/docker-registry"
    ]
    err = capsys.readouterr().err
    assert "delete:     " in err and "nothing changed" in err
    assert not ghcr.report.exists()


def test_the_jobs_github_token_is_refused_and_the_push_token_warned_about(
    ghcr: World, capsys: pytest.CaptureFixture[str]
) -> None:
    ghcr.monkeypatch.setenv("GITHUB_TOKEN", PASSWORD)
    with pytest.raises(ConfigError, match="GITHUB_TOKEN, which expires"):
        ghcr.run(daytona_registry)
    assert ghcr.emulator.knobs.requests() == []
    ghcr.monkeypatch.delenv("GITHUB_TOKEN")
    ghcr.monkeypatch.setenv("REGISTRY_PASSWORD", PASSWORD)
    ghcr.run(daytona_registry)
    assert "is the push token (REGISTRY_PASSWORD)" in capsys.readouterr().err


def test_a_lost_create_answer_is_looked_up_not_posted_again(ghcr: World) -> None:
    ghcr.emulator.knobs.add_fault(  # the entry is made, but the answer never arrives
        FaultRule(kind="drop_after", method="POST", path_prefix="/api/docker-registry")
    )
    ghcr.run(daytona_registry)
    assert [w.split()[0] for w in ghcr.writes()].count("POST") == 1
    (made,) = ghcr.entries()
    assert ghcr.password_of(made["id"]) == PASSWORD


def test_a_lost_create_that_did_not_land_says_nothing_was_made(ghcr: World) -> None:
    ghcr.emulator.knobs.add_fault(
        FaultRule(kind="error", status=503, method="POST", path_prefix="/api/docker-registry")
    )
    with pytest.raises(DaytonaError, match=r"no entry for ghcr\.io was made"):
        ghcr.run(daytona_registry)
    assert ghcr.writes() == ["POST /api/docker-registry 503"] and ghcr.entries() == []


def test_a_concurrent_run_settles_on_one_entry(ghcr: World) -> None:
    theirs: list[str] = []

    def other_run_first(request: httpx.Request) -> None:
        # Another run listed nothing either, and its POST landed a moment before ours.
        if request.method == "POST" and not theirs:
            theirs.append(ghcr.add_entry("ghcr.io", "theirs"))
            ghcr.emulator.advance_clock(1)

    ghcr.run(daytona_registry, before=other_run_first)
    assert [e["id"] for e in ghcr.entries()] == theirs  # the older one stays, ours is gone
    assert ghcr.password_of(theirs[0]) == PASSWORD
    assert json.loads(ghcr.report.read_text())["daytona_registry"]["id"] == theirs[0]


def test_a_key_without_registry_permissions_names_them(ghcr: World) -> None:
    with pytest.raises(DaytonaAuthError, match="write:registries and delete:registries"):
        ghcr.run(daytona_registry, key=SANDBOX_ONLY_KEY)
    assert ghcr.writes() == ["POST /api/docker-registry 403"]
