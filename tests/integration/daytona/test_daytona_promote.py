"""`snapshot_stage -- --from <snapshot>`: rollback without a build, against the emulator, which
fails digest references as Daytona does: a snapshot registered by digest (as this pipeline once
did) is rolled back to through a `:pinned-<hex>` tag made in the registry for that digest. The
rules behind it are in tests/unit/test_snapshot_promote.py."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import DaytonaError
from pipeline.sessions.daytona_common import Seams
from pipeline.sessions.snapshot_stage import snapshot_stage
from pipeline.settings.build import BuildSettings, ReportSettings, env_names
from pipeline.settings.daytona import DaytonaSettings, SnapshotSettings, StageSettings
from tests.helpers.emulated_daytona import POLL, World, daytona, daytona_emulator_with_registry
from tests.helpers.emulator import EMULATOR_KEY, push_tiny_image

__all__ = ["daytona", "daytona_emulator_with_registry"]  # fixtures, used by name

SHA = "0123456789abcdef0123456789abcdef01234567"
NOW = datetime(2026, 11, 24, 9, 30, 0, tzinfo=UTC)
MADE = "prd--20261124-093000"


@dataclass
class Stage:
    world: World
    report: Path
    repository: str  # in the local registry
    digest: str  # of the image pushed there as :sha-<SHA>

    @property
    def pinned(self) -> str:
        return f"{self.repository}@{self.digest}"

    @property
    def pinned_tag(self) -> str:
        return f"{self.repository}:pinned-{self.digest.removeprefix('sha256:')}"

    def run(self, *argv: str) -> None:
        client = self.world.client()
        snapshot_stage(list(argv), Seams(client=client, interval=POLL, now=lambda: NOW))


@pytest.fixture
def stage(daytona: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Stage:
    classes = (BuildSettings, ReportSettings, DaytonaSettings, SnapshotSettings, StageSettings)
    for name in env_names(*classes):
        monkeypatch.delenv(name, raising=False)
    pushed = push_tiny_image(daytona.registry, f"iterate/promote-{uuid.uuid4().hex[:10]}", "x")
    repository = pushed.reference.rsplit(":", 1)[0]
    report = tmp_path / "report.json"
    values = {
        "DAYTONA_API_URL": daytona.server.base_url,
        "DAYTONA_API_KEY": EMULATOR_KEY,
        "SANDBOX_IMAGE_REPOSITORY": repository,
        "REGISTRY_USERNAME": daytona.registry.username,
        "REGISTRY_PASSWORD": daytona.registry.password,
        "APP_STAGE": "prd",
        "PIPELINE_REPORT": str(report),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    daytona.freeze()
    return Stage(daytona, report, repository, pushed.digest)


def test_rolling_back_to_a_snapshot_makes_a_new_stage_snapshot_of_its_image(
    stage: Stage, capsys: pytest.CaptureFixture[str]
) -> None:
    world = stage.world
    old = world.add_snapshot("prd--20261101-000000", image=stage.pinned)
    world.add_snapshot("prd--20261120-000000", image=f"{stage.repository}:sha-{SHA}")
    world.forget_requests()
    stage.run("--from", old["name"], "--skip-image-check")  # the digest is checked all the same
    made = world.get(f"/snapshots/{MADE}")
    assert made is not None and made["state"] == "active"
    # Daytona gets a tag that names the digest, and says it pulled that digest
    assert made["imageName"] == stage.pinned_tag
    assert made["ref"].endswith(f"daytona-{stage.digest.removeprefix('sha256:')}:daytona")
    name = stage.repository.split("/", 1)[1]
    assert f"pinned-{stage.digest.removeprefix('sha256:')}" in world.registry.tags(name)
    assert world.posts() == 1
    err = capsys.readouterr().err
    assert f"from:       snapshot {old['name']}: its image {stage.pinned}" in err
    assert f"tag:        {stage.pinned_tag} is made for {stage.digest}" in err
    assert err.index("from:       snapshot") < err.index(f"creating {MADE}")
    section = json.loads(stage.report.read_text())["snapshot"]
    assert section["promoted_from"] == f"snapshot {old['name']}"
    assert section["image"] == stage.pinned_tag and section["image_digest"] == stage.digest


def test_dry_run_of_a_rollback_only_reads_daytona(
    stage: Stage, capsys: pytest.CaptureFixture[str]
) -> None:
    old = stage.world.add_snapshot("prd--20261101-000000", image=stage.pinned)
    stage.world.forget_requests()
    stage.run("--from", old["name"], "--dry-run")
    assert stage.world.log == [f"GET /snapshots/{old['name']}"]
    err = capsys.readouterr().err
    assert f"name:       {MADE}" in err and stage.pinned in err and stage.pinned_tag in err
    assert "dry run: Daytona was only read for the plan; nothing changed" in err
    assert not stage.report.exists()


def test_a_rollback_to_a_missing_or_failed_snapshot_changes_nothing(stage: Stage) -> None:
    world = stage.world
    with pytest.raises(DaytonaError, match="no snapshot is named prd--20261101-000000"):
        stage.run("--from", "prd--20261101-000000")
    broken = world.add_snapshot(
        "prd--20261102-000000", "error", image=stage.pinned, error_reason="boom"
    )
    world.add_snapshot("built", image="")  # made from a Dockerfile: no image name
    world.forget_requests()
    with pytest.raises(DaytonaError, match=r"in state error \(boom\); its image never worked"):
        stage.run("--from", broken["name"])
    with pytest.raises(DaytonaError, match="has no image name"):
        stage.run("--from", "built")
    assert world.posts() == 0


def test_a_rollback_with_other_resources_warns(
    stage: Stage, capsys: pytest.CaptureFixture[str]
) -> None:
    stage.world.add_snapshot("prd--1", image=stage.pinned, cpu=8)
    stage.run("--from", "prd--1", "--dry-run")
    assert "prd--1 had 8 vCPU, 4 GB memory, 10 GB disk; the new snapshot gets 2 vCPU" in (
        capsys.readouterr().err
    )
