"""`SANDBOX_ITERATE_REPO_REF=<ref> nox -s snapshot_stage` on the real engine, buildx, a local
registry and the emulator: the ref's `:sha-` image is built and pushed when the registry does not
have it yet (never `:main`), then snapshotted; a second run snapshots it without a build."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from tenacity import wait_exponential_jitter

from daytona_emulator import EmulatorServer
from daytona_emulator.knobs import SettingsPatch
from pipeline.daytona.client import DaytonaClient
from pipeline.errors import GitError
from pipeline.registry.server import LocalRegistry
from pipeline.sessions.daytona_common import Seams
from pipeline.sessions.snapshot_stage import snapshot_stage
from pipeline.settings.build import BuildSettings, ReportSettings, env_names
from pipeline.settings.daytona import DaytonaSettings, SnapshotSettings, StageSettings
from pipeline.waiting import Interval, RetryPolicy
from tests.conftest import FixtureRepo, make_fixture_repo
from tests.helpers.emulator import EMULATOR_KEY, daytona_emulator_with_registry

__all__ = ["daytona_emulator_with_registry"]  # a fixture, used by name

FAST = RetryPolicy(10, wait_exponential_jitter(multiplier=0.01, max=0.05, jitter=0), attempts=4)
POLL = Interval(first_s=0.05, factor=1.5, max_s=0.2)
T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
GIT = ("-c", "user.email=t@example.invalid", "-c", "user.name=t")


@pytest.fixture
def feature_repo(
    engine: None,
    registry: LocalRegistry,
    daytona_emulator_with_registry: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[FixtureRepo]:
    """A checkout on main (with uncommitted work) and a `feature` branch it has not checked out."""
    repo = make_fixture_repo(tmp_path / "repo", registry.host)
    repo.git("checkout", "-q", "-b", "feature")
    (repo.path / "feature.txt").write_text("feature\n")
    repo.git("add", "feature.txt")
    repo.git(*GIT, "commit", "-qm", "feature")
    repo.git("checkout", "-q", "main")
    (repo.path / "wip.txt").write_text("uncommitted work on main\n")
    names = env_names(BuildSettings, ReportSettings, DaytonaSettings, SnapshotSettings)
    for name in names + env_names(StageSettings):
        monkeypatch.delenv(name, raising=False)
    env = repo.env(
        SANDBOX_ITERATE_REPO_REF="feature",
        REGISTRY_USERNAME=registry.username,
        REGISTRY_PASSWORD=registry.password,
        DAYTONA_API_URL=daytona_emulator_with_registry.base_url,
        DAYTONA_API_KEY=EMULATOR_KEY,
        APP_STAGE="prd",
        PIPELINE_REPORT=str(tmp_path / "report.json"),
        DOCKER_CONFIG=str(tmp_path / "docker-config"),  # never the user's ~/.docker
        SANDBOX_BUILD_CA_BUNDLE="none",
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    daytona_emulator_with_registry.knobs.update_settings(
        SettingsPatch(timings={"pending_seconds": 0.05, "pulling_seconds": 0.1})
    )
    yield repo
    listed = subprocess.run(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repo.repository],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if listed:
        subprocess.run(["docker", "image", "rm", *listed], capture_output=True, check=False)


def _stage(server: EmulatorServer, minutes: int, *argv: str) -> None:
    with DaytonaClient(server.base_url, SecretStr(EMULATOR_KEY), retry=FAST) as api:
        snapshot_stage(
            list(argv),
            Seams(client=api, interval=POLL, now=lambda: T0 + timedelta(minutes=minutes)),
        )


def _posts(server: EmulatorServer) -> list[str]:
    return [r.path for r in server.knobs.requests() if r.method == "POST"]


def test_a_ref_is_built_and_pushed_once_then_snapshotted(
    feature_repo: FixtureRepo,
    registry: LocalRegistry,
    daytona_emulator_with_registry: EmulatorServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, repo = daytona_emulator_with_registry, feature_repo
    feature = repo.git("rev-parse", "feature")
    image = f"{repo.repository}:sha-{feature}"
    name = repo.repository.split("/", 1)[1]
    before = repo.git("status", "--porcelain")

    _stage(server, 0, "--dry-run")
    assert "a run builds and pushes" in capsys.readouterr().err
    assert registry.tags(name) == [] and _posts(server) == []

    _stage(server, 0)
    err = capsys.readouterr().err
    assert "is not in the registry yet: building and pushing feature" in err
    assert registry.tags(name) == ["buildcache", f"sha-{feature}"]  # a ref never moves :main
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["build"]["sha"] == feature and report["build"]["dirty"] is False
    assert report["snapshot"]["name"] == "prd--20261123-120000"
    assert report["snapshot"]["image"] == image and report["snapshot"]["state"] == "active"
    assert repo.git("status", "--porcelain") == before  # the checkout was never touched

    _stage(server, 10)
    err = capsys.readouterr().err
    assert f"{image} is in the registry: snapshotting it without a build" in err
    assert "docker buildx build" not in err
    assert json.loads((tmp_path / "report.json").read_text())["snapshot"]["image"] == image


def test_a_ref_that_names_no_commit_is_one_line_before_anything(
    feature_repo: FixtureRepo,
    daytona_emulator_with_registry: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SANDBOX_ITERATE_REPO_REF", "no-such-branch")
    with pytest.raises(GitError) as caught:
        _stage(daytona_emulator_with_registry, 0)
    assert "no-such-branch" in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.exit_code == 4
    assert _posts(daytona_emulator_with_registry) == []
