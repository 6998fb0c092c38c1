"""The Daytona sessions end to end against the emulator and a real local OCI registry.

Every test talks to 127.0.0.1 only. The emulator's request log is the witness for "no POST",
"one snapshot", "nothing deleted".
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from tenacity import wait_exponential_jitter

from daytona_emulator import EmulatorServer, FaultRule, SnapshotOutcome
from daytona_emulator.knobs import SettingsPatch
from pipeline.daytona.client import DaytonaClient
from pipeline.daytona.latest import LatestCache, latest_snapshot
from pipeline.daytona.snapshots import ensure_snapshot
from pipeline.errors import (
    ConfigError,
    DaytonaAuthError,
    DaytonaError,
    DeadlineExceeded,
    PipelineError,
    RegistryError,
)
from pipeline.registry.server import LocalRegistry
from pipeline.rules.snapshot_names import SnapshotSpec
from pipeline.sessions.daytona_common import Seams
from pipeline.sessions.snapshot_daytona import snapshot_daytona
from pipeline.sessions.snapshot_latest import snapshot_latest
from pipeline.sessions.snapshot_stage import snapshot_stage
from pipeline.sessions.snapshots_clean import snapshots_clean
from pipeline.waiting import Interval, RetryPolicy
from tests.helpers.emulator import (
    EMULATOR_KEY,
    SANDBOX_ONLY_KEY,
    daytona_emulator,
    daytona_emulator_with_registry,
    push_tiny_image,
    set_registry_entry,
)
from tests.helpers.git import git as _git

__all__ = ["daytona_emulator", "daytona_emulator_with_registry"]  # fixtures, used by name

FAST = RetryPolicy(10, wait_exponential_jitter(multiplier=0.01, max=0.05, jitter=0), attempts=4)
POLL = Interval(first_s=0.05, factor=1.5, max_s=0.2)
NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
CLEARED = [
    *("DAYTONA_API_URL", "DAYTONA_API_KEY", "DAYTONA_ORGANIZATION_ID", "DAYTONA_HTTP_TIMEOUT"),
    *("SANDBOX_SNAPSHOT_NAME", "SANDBOX_IMAGE", "SANDBOX_SNAPSHOT_CPU", "SANDBOX_SNAPSHOT_MEMORY"),
    *("SANDBOX_SNAPSHOT_DISK", "SANDBOX_SNAPSHOT_ENTRYPOINT", "DAYTONA_SNAPSHOT_TIMEOUT"),
    *("ITERATE_USER", "APP_STAGE", "DAYTONA_SNAPSHOT_PREFIX", "GIT_SHA"),
    *(
        "SANDBOX_IMAGE_REPOSITORY",
        "SANDBOX_BUILD_CONTEXT",
        "REGISTRY_USERNAME",
        "REGISTRY_PASSWORD",
    ),
    *("GITHUB_ACTOR", "GITHUB_TOKEN", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS"),
    "PIPELINE_REPORT",
]


@dataclass
class World:
    emulator: EmulatorServer
    registry: LocalRegistry
    repo: Path
    sha: str
    repository: str  # image repository in the local registry, unique per test
    report: Path
    outputs: Path

    def client(self, key: str = EMULATOR_KEY) -> DaytonaClient:
        return DaytonaClient(self.emulator.base_url, SecretStr(key), retry=FAST)

    def push(self, tag: str | None = None) -> str:
        name = self.repository.split("/", 1)[1]
        return push_tiny_image(self.registry, name, tag or f"sha-{self.sha}").reference

    @property
    def sha_name(self) -> str:
        return f"iterate-sandbox-{self.sha}"

    def requests(self, method: str | None = None) -> list[str]:
        return [
            f"{r.method} {r.path} {r.status}"
            for r in self.emulator.knobs.requests()
            if method is None or r.method == method
        ]

    def run(self, command: Callable[..., None], *argv: str, **kwargs: Any) -> None:
        with self.client() as api:
            command(list(argv), Seams(client=api, **kwargs))


@pytest.fixture
def world(
    daytona_emulator_with_registry: EmulatorServer,
    registry: LocalRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    for key in CLEARED:
        monkeypatch.delenv(key, raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README").write_text("x\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.email=ci@example.invalid", "-c", "user.name=ci", "commit", "-qm", "x")
    repository = f"{registry.host}/iterate/sandbox-{uuid.uuid4().hex[:10]}"
    report, outputs = tmp_path / "report.json", tmp_path / "github_output"
    env = {
        "DAYTONA_API_URL": daytona_emulator_with_registry.base_url,
        "DAYTONA_API_KEY": EMULATOR_KEY,
        "SANDBOX_BUILD_CONTEXT": str(repo),
        "SANDBOX_IMAGE_REPOSITORY": repository,
        "REGISTRY_USERNAME": registry.username,
        "REGISTRY_PASSWORD": registry.password,
        "PIPELINE_REPORT": str(report),
        "GITHUB_OUTPUT": str(outputs),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # Faster than the emulator's defaults; the fixture's reset restores them after the test.
    daytona_emulator_with_registry.knobs.update_settings(
        SettingsPatch(
            timings={"pending_seconds": 0.05, "pulling_seconds": 0.1, "removal_seconds": 0.3}
        )
    )
    return World(
        daytona_emulator_with_registry,
        registry,
        repo,
        _git(repo, "rev-parse", "HEAD"),
        repository,
        report,
        outputs,
    )


def make(world: World, *argv: str) -> None:
    world.run(snapshot_daytona, *argv, interval=POLL)


def test_create_then_active_and_reported(world: World) -> None:
    image = world.push()
    make(world)
    with world.client() as api:
        snapshot = api.get_snapshot(world.sha_name)
    assert snapshot is not None and snapshot.state == "active"
    assert snapshot.image_name == image
    assert (snapshot.cpu, snapshot.mem, snapshot.disk) == (2, 4, 10)
    section = json.loads(world.report.read_text())["snapshot"]
    assert section["name"] == world.sha_name and section["state"] == "active"
    assert section["action"] == "created" and section["id"] == snapshot.id
    assert section["image"] == image and section["duration_s"] >= 0
    assert f"name={world.sha_name}" in world.outputs.read_text().splitlines()
    assert world.requests("POST") == ["POST /api/snapshots 200"]


def test_a_rerun_is_a_no_op_without_post(world: World) -> None:
    world.push()
    make(world)
    before = world.requests()
    started = time.monotonic()
    make(world)
    assert time.monotonic() - started < 1
    # (The request log is written after each answer; compare counts, not a cleared log.)
    assert world.requests("POST") == ["POST /api/snapshots 200"]
    assert world.requests()[-1] == f"GET /api/snapshots/{world.sha_name} 200"
    assert len(world.requests()) - len(before) <= 2  # one GET, plus maybe the last poll's log
    assert json.loads(world.report.read_text())["snapshot"]["action"] == "existing"


def test_a_dirty_tree_gets_dirty_names(world: World) -> None:
    (world.repo / "README").write_text("changed\n")
    image = world.push(f"sha-{world.sha}-dirty")
    make(world)
    with world.client() as api:
        snapshot = api.get_snapshot(f"{world.sha_name}-dirty")
    assert snapshot is not None and snapshot.image_name == image


def test_git_sha_names_the_commit(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (world.repo / "README").write_text("changed\n")
    other = "ab" * 20
    monkeypatch.setenv("GIT_SHA", other)
    make(world, "--dry-run")
    err = capsys.readouterr().err
    assert f"name:       iterate-sandbox-{other}\n" in err  # not -dirty: not this tree's commit
    assert f"image:      {world.repository}:sha-{other}\n" in err
    monkeypatch.setenv("GIT_SHA", world.sha)
    make(world, "--dry-run")
    assert f"name:       {world.sha_name}-dirty\n" in capsys.readouterr().err


def test_concurrent_runs_make_one_snapshot(world: World) -> None:
    image = world.push()
    spec = SnapshotSpec(name=world.sha_name, image=image, cpu=2, memory=4, disk=10)
    results: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with world.client() as api:
                outcome = ensure_snapshot(api, spec, timeout=20, interval=POLL)
                results.append(outcome.snapshot.id)
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and len(results) == 4 and len(set(results)) == 1
    created = [r for r in world.requests("POST") if r.endswith(" 200")]
    assert created == ["POST /api/snapshots 200"]
    with world.client() as api:
        assert [s.name for s in api.iter_snapshots(world.sha_name)] == [world.sha_name]


def test_a_missing_image_fails_fast_before_any_post(world: World) -> None:
    started = time.monotonic()
    with pytest.raises(RegistryError) as caught:
        make(world)
    assert time.monotonic() - started < 3
    assert "does not exist" in str(caught.value) and "snapshot_push" in str(caught.value)
    assert world.requests("POST") == []


def test_a_pull_the_server_cannot_authenticate_ends_with_the_reason(
    world: World,
) -> None:
    world.push()
    set_registry_entry(world.emulator, world.registry.host, "someone", "wrong")
    with pytest.raises(DaytonaError) as caught:
        make(world)
    text = str(caught.value)
    assert "is in state error:" in text and "registry entry" in text and "\n" not in text
    assert "unauthorized" in text  # Daytona's errorReason, verbatim


@pytest.mark.parametrize("outcome", ["error", "build_failed"])
def test_failed_states_end_with_the_reason(world: World, outcome: str) -> None:
    world.push()
    reason = "Snapshot size (25.00GB) exceeds maximum allowed size of 20GB"
    world.emulator.knobs.add_outcome(
        SnapshotOutcome(name_pattern=world.sha_name, outcome=outcome, reason=reason)
    )
    with pytest.raises(DaytonaError) as caught:
        make(world)
    assert f"is in state {outcome}: {reason}" in str(caught.value)
    # A re-run reports the same failure and leaves it alone; --force replaces it.
    world.emulator.knobs.clear_requests()
    with pytest.raises(DaytonaError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        make(world)
    assert world.requests("POST") == [] and world.requests("DELETE") == []
    world.emulator.knobs.clear_outcomes()
    make(world, "--force")
    assert json.loads(world.report.read_text())["snapshot"]["action"] == "replaced"
    assert len(world.requests("DELETE")) == 1


def test_the_deadline_is_one_line(world: World) -> None:
    world.push()
    world.emulator.knobs.add_outcome(
        SnapshotOutcome(name_pattern=world.sha_name, outcome="stuck_pulling")
    )
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        make(world, "--timeout", "1")
    assert time.monotonic() - started < 3
    text = str(caught.value)
    assert text.startswith(f"snapshot {world.sha_name} is still pulling after 1 s")
    assert "\n" not in text


def test_5xx_and_429_are_retried(world: World) -> None:
    image = world.push()
    knobs = world.emulator.knobs
    knobs.add_fault(FaultRule(kind="error", status=503, count=2, method="GET"))
    knobs.add_fault(FaultRule(kind="rate_limit", retry_after=1, count=1, method="POST"))
    started = time.monotonic()
    make(world, "--image", image)
    assert time.monotonic() - started >= 1  # Retry-After honoured
    log = world.requests()
    assert log[:3] == [f"GET /api/snapshots/{world.sha_name} {s}" for s in (503, 503, 404)]
    assert world.requests("POST") == ["POST /api/snapshots 429", "POST /api/snapshots 200"]


def test_a_lost_create_response_is_not_posted_again(world: World) -> None:
    world.push()
    world.emulator.knobs.add_fault(FaultRule(kind="drop_after", method="POST", count=1))
    make(world)
    assert world.requests("POST") == ["POST /api/snapshots None"]  # created, answer lost
    assert json.loads(world.report.read_text())["snapshot"]["state"] == "active"


def test_a_bad_key_names_the_variable(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAYTONA_API_KEY", "dtn_not_a_key")
    with pytest.raises(DaytonaAuthError) as caught:
        snapshot_daytona(["--image", "127.0.0.1:1/x:1", "--name", "n", "--skip-image-check"])
    assert "401 Invalid credentials" in str(caught.value) and "DAYTONA_API_KEY" in str(caught.value)
    assert "dtn_not_a_key" not in str(caught.value)


def test_a_key_without_snapshot_permission(world: World) -> None:
    image = world.push()
    with world.client(SANDBOX_ONLY_KEY) as api, pytest.raises(DaytonaAuthError) as caught:
        snapshot_daytona([], Seams(client=api, interval=POLL))
    text = str(caught.value)
    assert "403" in text and "write:snapshots" in text and "DAYTONA_ORGANIZATION_ID" in text
    assert image  # the image check passed; Daytona refused


def test_an_inactive_snapshot_is_activated(world: World) -> None:
    world.push()
    make(world)
    with world.client() as api:
        snapshot = api.get_snapshot(world.sha_name)
        assert snapshot is not None
        api.http.post(f"/snapshots/{snapshot.id}/deactivate").raise_for_status()
        assert api.get_snapshot(world.sha_name).state == "inactive"  # type: ignore[union-attr]
    make(world)
    assert json.loads(world.report.read_text())["snapshot"]["action"] == "activated"


def test_dry_run_touches_nothing(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    make(world, "--dry-run")
    world.run(snapshot_stage, "--dry-run", "--prefix", "prd", interval=POLL)
    assert world.requests() == []
    err = capsys.readouterr().err
    assert f"name:       {world.sha_name}" in err and "dry run" in err
    assert "prd--" in err


def test_overrides_and_bad_options(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    image = world.push("v1")
    monkeypatch.setenv("SANDBOX_SNAPSHOT_NAME", "custom-name")
    monkeypatch.setenv("SANDBOX_IMAGE", image)
    monkeypatch.setenv("SANDBOX_SNAPSHOT_CPU", "1")
    make(world, "--memory", "2", "--disk", "3")
    with world.client() as api:
        snapshot = api.get_snapshot("custom-name")
    assert snapshot is not None and (snapshot.cpu, snapshot.mem, snapshot.disk) == (1, 2, 3)
    with pytest.raises(ConfigError, match="--name/SANDBOX_SNAPSHOT_NAME 'Bad/Name'"):
        make(world, "--name", "Bad/Name")
    with pytest.raises(ConfigError, match="--cpu: must be at least 1"):
        make(world, "--cpu", "0")
    with pytest.raises(ConfigError, match="unrecognized arguments: --bogus"):
        make(world, "--bogus")


# --- stage snapshots, latest, cache, clean ------------------------------------------------


def stage(world: World, when: datetime, *argv: str) -> str:
    world.run(snapshot_stage, *argv, interval=POLL, now=lambda: when)
    name: str = json.loads(world.report.read_text())["snapshot"]["name"]
    return name


def test_stage_names_follow_the_variables(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.push()
    with pytest.raises(ConfigError, match="ITERATE_USER"):
        stage(world, NOW)
    monkeypatch.setenv("APP_STAGE", "prd")
    assert stage(world, NOW) == "prd--20261123-120000"
    monkeypatch.setenv("ITERATE_USER", "Jonas")
    assert stage(world, NOW) == "dev-jonas--20261123-120000"
    monkeypatch.setenv("DAYTONA_SNAPSHOT_PREFIX", "preview-42")
    assert stage(world, NOW) == "preview-42--20261123-120000"
    assert stage(world, NOW, "--prefix", "stg") == "stg--20261123-120000"


def test_latest_and_its_cache(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.push()
    first = stage(world, NOW, "--prefix", "prd")
    stage(world, NOW, "--prefix", "prd-eu")  # another stage, newer, shares the substring
    world.emulator.knobs.add_outcome(SnapshotOutcome(name_pattern="prd--*-1300*", outcome="error"))
    with pytest.raises(DaytonaError):  # the newest prd snapshot failed: never handed out
        stage(world, NOW + timedelta(hours=1), "--prefix", "prd")
    capsys.readouterr()
    world.run(snapshot_latest, "--prefix", "prd")
    assert capsys.readouterr().out == f"{first}\n"

    now = [0.0]
    cache = LatestCache(clock=lambda: now[0])
    with world.client() as api:
        assert latest_snapshot("prd", api, cache=cache) == first
        second = stage(world, NOW + timedelta(minutes=5), "--prefix", "prd")
        assert latest_snapshot("prd", api, cache=cache) == first  # cached for 5 minutes
        now[0] = 301
        assert latest_snapshot("prd", api, cache=cache) == second
        # Developer prefixes are never cached.
        dev_first = stage(world, NOW, "--prefix", "dev-jonas")
        assert latest_snapshot("dev-jonas", api, cache=cache) == dev_first
        dev_second = stage(world, NOW + timedelta(minutes=1), "--prefix", "dev-jonas")
        assert latest_snapshot("dev-jonas", api, cache=cache) == dev_second


def test_latest_without_any_snapshot(world: World) -> None:
    with pytest.raises(DaytonaError, match="no active snapshot starts with 'nothing--'"):
        world.run(snapshot_latest, "--prefix", "nothing")


def test_clean_prints_the_plan_and_deletes_only_with_yes(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.push()
    names = [stage(world, NOW + timedelta(minutes=m), "--prefix", "prd") for m in range(4)]
    other = stage(world, NOW, "--prefix", "prd-eu")
    world.emulator.knobs.clear_requests()
    capsys.readouterr()
    world.run(snapshots_clean, "--prefix", "prd", "--keep", "1", "--days", "0")
    err = capsys.readouterr().err
    assert "3 to delete" in err and "pass --yes" in err
    assert world.requests("DELETE") == []
    time.sleep(0.05)  # the emulator logs a request just after answering it
    before = len(world.requests())
    world.run(
        snapshots_clean, "--prefix", "prd", "--keep", "1", "--days", "0", "--dry-run", "--yes"
    )
    assert len(world.requests()) == before  # a dry run does not even list
    assert "would list snapshots starting with 'prd--'" in capsys.readouterr().err

    world.run(snapshots_clean, "--prefix", "prd", "--keep", "1", "--days", "0", "--yes")
    assert len(world.requests("DELETE")) == 3
    with world.client() as api:
        left = {s.name: s.state for s in api.iter_snapshots("prd")}
    assert left[names[-1]] == "active" and left[other] == "active"
    assert all(left[n] == "removing" for n in names[:-1] if n in left)
    deleted = json.loads(world.report.read_text())["snapshots_clean"]["deleted"]
    assert sorted(deleted) == sorted(names[:-1])


def test_errors_are_pipeline_errors_with_one_line(world: World) -> None:
    with pytest.raises(PipelineError) as caught:
        world.run(snapshot_latest, "--prefix=--")
    assert "\n" not in str(caught.value)


def test_the_key_stays_out_of_logs_and_output(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    world.push()
    monkeypatch.setenv("DAYTONA_API_KEY", EMULATOR_KEY)
    world.emulator.knobs.add_fault(FaultRule(kind="error", status=502, count=1, method="GET"))
    with caplog.at_level("DEBUG"):  # httpx/httpcore debug logs included
        snapshot_daytona([], Seams(interval=POLL))  # the session's own client, from the environment
    out, err = capsys.readouterr()
    assert caplog.text and "retry 1 after" in err
    for text in (out, err, caplog.text, world.report.read_text(), world.outputs.read_text()):
        assert EMULATOR_KEY not in text
