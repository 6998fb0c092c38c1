"""The release chain's Daytona end, against the emulator (which, as Daytona, fails digest
references and lends no credentials of its own) and a real local registry: SANDBOX_IMAGE_DIGEST
binds a snapshot to the built image (a re-pushed tag is refused before any POST, and Daytona's
`ref` must name it), and `snapshot_stage -- --from` promotes a commit's image or rolls a stage
back to the digest an earlier snapshot pulled, each sent as a verified tag, which
`snapshot_latest` then hands out."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from tenacity import wait_exponential_jitter

from daytona_emulator import EmulatorServer
from daytona_emulator.knobs import SettingsPatch
from pipeline.daytona.client import DaytonaClient
from pipeline.errors import ConfigError, DaytonaError, RegistryError
from pipeline.registry.server import LocalRegistry
from pipeline.sessions.daytona_common import Seams
from pipeline.sessions.snapshot_daytona import snapshot_daytona
from pipeline.sessions.snapshot_latest import snapshot_latest
from pipeline.sessions.snapshot_stage import snapshot_stage
from pipeline.settings.build import BuildSettings, ReportSettings, env_names
from pipeline.settings.daytona import DaytonaSettings, SnapshotSettings, StageSettings
from pipeline.waiting import Interval, RetryPolicy
from tests.helpers.emulator import (
    EMULATOR_KEY,
    PushedImage,
    daytona_emulator_with_registry,
    push_tiny_image,
)

__all__ = ["daytona_emulator_with_registry"]  # a fixture, used by name

FAST = RetryPolicy(10, wait_exponential_jitter(multiplier=0.01, max=0.05, jitter=0), attempts=4)
POLL = Interval(first_s=0.05, factor=1.5, max_s=0.2)
SHA_A = "a" * 40
SHA_B = "b" * 40
T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


@dataclass
class World:
    emulator: EmulatorServer
    registry: LocalRegistry
    repository: str
    report: Path
    monkeypatch: pytest.MonkeyPatch

    def client(self) -> DaytonaClient:
        return DaytonaClient(self.emulator.base_url, SecretStr(EMULATOR_KEY), retry=FAST)

    def run(self, command: Callable[..., None], *argv: str, **kwargs: Any) -> None:
        with self.client() as api:
            command(list(argv), Seams(client=api, **kwargs))

    def push(self, sha: str, *, as_index: bool = False) -> PushedImage:
        """`:sha-<sha>`; `as_index` gives the same content another digest (an index)."""
        name = self.repository.split("/", 1)[1]
        return push_tiny_image(self.registry, name, f"sha-{sha}", as_index=as_index)

    def stage(self, minutes: int, *argv: str) -> None:
        self.run(snapshot_stage, *argv, interval=POLL, now=lambda: T0 + timedelta(minutes=minutes))

    def section(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.report.read_text())["snapshot"]
        return found

    def posts(self) -> list[str]:
        return [
            f"{r.method} {r.path} {r.status}"
            for r in self.emulator.knobs.requests()
            if r.method == "POST"
        ]

    def image_of(self, name: str) -> str | None:
        with self.client() as api:
            found = api.get_snapshot(name)
        assert found is not None and found.state == "active"
        return found.image_name


@pytest.fixture
def world(
    daytona_emulator_with_registry: EmulatorServer,
    registry: LocalRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    for name in env_names(BuildSettings, ReportSettings, DaytonaSettings, SnapshotSettings):
        monkeypatch.delenv(name, raising=False)
    for name in env_names(StageSettings):
        monkeypatch.delenv(name, raising=False)
    repository = f"{registry.host}/iterate/release-{uuid.uuid4().hex[:10]}"
    report = tmp_path / "report.json"
    env = {
        "DAYTONA_API_URL": daytona_emulator_with_registry.base_url,
        "DAYTONA_API_KEY": EMULATOR_KEY,
        "SANDBOX_IMAGE_REPOSITORY": repository,
        "REGISTRY_USERNAME": registry.username,
        "REGISTRY_PASSWORD": registry.password,
        "APP_STAGE": "prd",
        "PIPELINE_REPORT": str(report),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    daytona_emulator_with_registry.knobs.update_settings(
        SettingsPatch(timings={"pending_seconds": 0.05, "pulling_seconds": 0.1})
    )
    return World(daytona_emulator_with_registry, registry, repository, report, monkeypatch)


# --- SANDBOX_IMAGE_DIGEST ---------------------------------------------------------------------


def test_the_built_digest_is_verified_and_reported(world: World) -> None:
    built = world.push(SHA_A)
    world.monkeypatch.setenv("SANDBOX_IMAGE", built.reference)
    world.monkeypatch.setenv("SANDBOX_IMAGE_DIGEST", built.digest)
    world.run(snapshot_daytona, "--name", "iterate-sandbox-digest", interval=POLL)
    section = world.section()
    assert section["image_digest"] == built.digest and section["state"] == "active"
    assert section["image"] == built.reference
    with world.client() as api:
        made = api.get_snapshot("iterate-sandbox-digest")
    assert made is not None and made.ref is not None
    assert made.ref.endswith(f"daytona-{built.digest.removeprefix('sha256:')}:daytona")


def test_an_existing_snapshot_counts_only_when_daytona_pulled_the_expected_digest(
    world: World,
) -> None:
    """Same name, same tag, but Daytona pulled another digest (the tag was pushed over before
    this pipeline kept :sha-<sha> immutable): not done, refused without --force."""
    first = world.push(SHA_A)
    world.monkeypatch.setenv("SANDBOX_IMAGE", first.reference)
    world.run(snapshot_daytona, "--name", "iterate-sandbox-again", interval=POLL)
    moved = world.push(SHA_A, as_index=True)
    world.monkeypatch.setenv("SANDBOX_IMAGE_DIGEST", moved.digest)
    posts = len(world.posts())
    with pytest.raises(DaytonaError) as caught:
        world.run(snapshot_daytona, "--name", "iterate-sandbox-again", interval=POLL)
    line = str(caught.value)
    assert f"Daytona pulled {first.digest}, not the expected {moved.digest}" in line
    assert "--force" in line and "\n" not in line and len(world.posts()) == posts
    world.run(snapshot_daytona, "--name", "iterate-sandbox-again", "--force", interval=POLL)
    assert world.section()["action"] == "replaced"


@pytest.mark.parametrize("session", ["snapshot_daytona", "snapshot_stage"])
@pytest.mark.parametrize("skip", [False, True])
def test_a_tag_pushed_again_after_the_build_is_refused_before_any_post(
    world: World, session: str, skip: bool
) -> None:
    built = world.push(SHA_A)
    moved = world.push(SHA_A, as_index=True)  # the same tag, pushed again with another digest
    assert moved.digest != built.digest
    world.monkeypatch.setenv("SANDBOX_IMAGE", built.reference)
    world.monkeypatch.setenv("SANDBOX_IMAGE_DIGEST", built.digest)
    argv = ["--skip-image-check"] if skip else []

    def run() -> None:
        if session == "snapshot_daytona":
            world.run(snapshot_daytona, *argv, "--name", "iterate-sandbox-digest", interval=POLL)
        else:
            world.stage(0, *argv)

    with pytest.raises(RegistryError) as caught:
        run()
    text = str(caught.value)
    assert built.digest in text and moved.digest in text and "\n" not in text
    assert world.posts() == [] and not world.report.exists()


# --- promotion and rollback -------------------------------------------------------------------


def test_two_releases_then_a_rollback_to_the_first(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = world.push(SHA_A), world.push(SHA_B, as_index=True)
    for minutes, pushed in ((0, first), (10, second)):
        world.monkeypatch.setenv("SANDBOX_IMAGE", pushed.reference)
        world.stage(minutes)
    world.monkeypatch.delenv("SANDBOX_IMAGE")
    capsys.readouterr()
    world.run(snapshot_latest)
    assert capsys.readouterr().out == "prd--20261123-121000\n"

    world.stage(20, "--from", "prd--20261123-120000")
    # the first snapshot's own tag still names the digest Daytona pulled for it: sent as is
    assert world.image_of("prd--20261123-122000") == first.reference
    assert world.section()["promoted_from"] == "snapshot prd--20261123-120000"
    assert world.section()["image_digest"] == first.digest
    err = capsys.readouterr().err
    assert (
        f"from:       snapshot prd--20261123-120000: Daytona pulled {first.digest} for it "
        f"(from {first.reference})"
    ) in err
    assert err.index("from:       snapshot") < err.index("creating prd--20261123-122000")
    world.run(snapshot_latest)
    assert capsys.readouterr().out == "prd--20261123-122000\n"
    assert len(world.posts()) == 3  # one snapshot per run, no build anywhere


def test_promoting_a_commit_registers_its_verified_tag(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    pushed = world.push(SHA_A, as_index=True)
    world.stage(0, "--from", SHA_A, "--dry-run")
    err = capsys.readouterr().err
    assert f"image:      {world.repository}:sha-{SHA_A}\n" in err
    assert f"digest:     {pushed.digest} (the tag must resolve to it" in err
    assert "dry run: the registry was only read for the plan; nothing changed" in err
    assert world.posts() == []

    world.stage(0, "--from", SHA_A)
    assert world.image_of("prd--20261123-120000") == f"{world.repository}:sha-{SHA_A}"
    assert world.section()["promoted_from"] == f"commit {SHA_A}"
    assert world.section()["image_digest"] == pushed.digest


def test_a_rollback_whose_tag_moved_goes_through_a_pinned_tag(world: World) -> None:
    """The snapshot rolled back to pulled `:sha-A` as D1; the tag now names D2. Daytona cannot
    be sent `repo@D1` (it fails digests), nor the moved tag: a `:pinned-<D1>` tag is made."""
    first = world.push(SHA_A)
    world.monkeypatch.setenv("SANDBOX_IMAGE", first.reference)
    world.stage(0)
    world.monkeypatch.delenv("SANDBOX_IMAGE")
    moved = world.push(SHA_A, as_index=True)
    assert moved.digest != first.digest
    world.stage(10, "--from", "prd--20261123-120000")
    pinned = f"{world.repository}:pinned-{first.digest.removeprefix('sha256:')}"
    assert world.image_of("prd--20261123-121000") == pinned
    assert world.section()["image_digest"] == first.digest
    with world.client() as api:
        made = api.get_snapshot("prd--20261123-121000")
    assert made is not None and made.ref is not None
    assert made.ref.endswith(f"daytona-{first.digest.removeprefix('sha256:')}:daytona")


def test_a_digest_reference_is_refused_before_daytona_hears_of_it(world: World) -> None:
    """Daytona accepts the POST and fails the snapshot minutes later (daytonaio/daytona#4532):
    the pipeline refuses the reference itself, in one line, before any POST."""
    pushed = world.push(SHA_A)
    pinned = f"{world.repository}@{pushed.digest}"
    with pytest.raises(ConfigError) as caught:
        world.run(snapshot_daytona, "--image", pinned, "--name", "by-digest", interval=POLL)
    assert "a tag, not a digest" in str(caught.value) and "4532" in str(caught.value)
    assert world.posts() == []


def test_promoting_a_commit_that_was_never_pushed_changes_nothing(world: World) -> None:
    with pytest.raises(RegistryError, match=f"sha-{SHA_B} does not exist"):
        world.stage(0, "--from", SHA_B)
    assert world.posts() == []
