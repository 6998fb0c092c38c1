"""`ensure_snapshot` and `latest_snapshot` against the emulator, on its own clock: creates, waits,
lost answers, races, failures, activation, replacement, retries after blips, deadlines, and the
prefix look-up with its cache. The emulator's request log is the witness ("one POST", "no
DELETE"); its fault knobs make the blips; the client's pauses move the emulator's time.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from daytona_emulator import SnapshotOutcome
from daytona_emulator.knobs import SettingsPatch
from pipeline.daytona.latest import LatestCache, latest_snapshot
from pipeline.daytona.snapshots import Outcome, ensure_snapshot
from pipeline.errors import DaytonaError, DeadlineExceeded
from pipeline.rules.snapshot_names import SnapshotSpec
from pipeline.sessions.daytona_common import Seams
from pipeline.sessions.snapshot_daytona import snapshot_daytona
from pipeline.settings.build import ReportSettings, env_names
from pipeline.settings.daytona import DaytonaSettings, SnapshotSettings, StageSettings
from pipeline.waiting import RetryPolicy
from tests.helpers.emulated_daytona import (
    FAST,
    POLL,
    World,
    daytona,
    daytona_emulator_with_registry,
)
from tests.helpers.emulator import EMULATOR_KEY, api_client

__all__ = ["daytona", "daytona_emulator_with_registry"]  # fixtures, used by name

NAME = "iterate-sandbox-1"
DEFAULT = RetryPolicy(60)  # what the sessions use: a minute of backoff with jitter


def spec(world: World, cpu: int = 2) -> SnapshotSpec:
    return SnapshotSpec(name=NAME, image=world.image, cpu=cpu, memory=4, disk=10)


def ensure(
    world: World,
    timeout: float = 60,
    *,
    retry: RetryPolicy = FAST,
    wanted: SnapshotSpec | None = None,
    **kwargs: Any,
) -> Outcome:
    client = world.client(retry=retry)
    return ensure_snapshot(client, wanted or spec(world), timeout=timeout, interval=POLL, **kwargs)


def once(path: str, method: str, act: Any) -> Any:
    """A `before` hook: `act()` just before the first `method path` request leaves."""
    done: list[bool] = []

    def hook(request: httpx.Request) -> None:
        if not done and request.method == method and request.url.path == f"/api{path}":
            done.append(True)
            act()

    return hook


# --- create and wait --------------------------------------------------------------------------


def test_ensure_creates_and_waits(daytona: World, capsys: pytest.CaptureFixture[str]) -> None:
    daytona.freeze()
    checked: list[bool] = []
    outcome = ensure(daytona, check_image=lambda: checked.append(True))
    assert outcome.action == "created" and outcome.snapshot.state == "active"
    assert daytona.posts() == 1 and checked == [True]
    err = capsys.readouterr().err
    assert "pending → pulling" in err and "pulling → active" in err


def test_ensure_is_a_no_op_for_an_active_snapshot(daytona: World) -> None:
    daytona.freeze()
    daytona.add_snapshot(NAME)
    daytona.forget_requests()
    checked: list[bool] = []
    outcome = ensure(daytona, check_image=lambda: checked.append(True))
    assert outcome.action == "existing"
    assert daytona.log == [f"GET /snapshots/{NAME}"] and checked == []


def test_a_lost_create_response_is_looked_up_not_reposted(daytona: World) -> None:
    daytona.freeze()
    daytona.fault(kind="drop_after", method="POST", path_prefix="/api/snapshots")
    outcome = ensure(daytona)
    assert outcome.snapshot.state == "active"
    assert daytona.posts() == 1


def test_a_500_on_create_that_did_nothing_is_created_once_more(daytona: World) -> None:
    daytona.freeze()
    daytona.fault(kind="error", status=500, method="POST", path_prefix="/api/snapshots")
    outcome = ensure(daytona)
    assert outcome.action == "created" and daytona.posts() == 2
    assert daytona.log[:3] == [
        f"GET /snapshots/{NAME}",
        "POST /snapshots",
        f"GET /snapshots/{NAME}",
    ]


def test_a_409_means_waiting_for_the_other_run(daytona: World) -> None:
    daytona.freeze()
    other_run_wins = once("/snapshots", "POST", lambda: daytona.add_snapshot(NAME, "pending"))
    outcome = ensure_snapshot(
        daytona.client(before=other_run_wins), spec(daytona), timeout=60, interval=POLL
    )
    assert outcome.action == "waited" and outcome.snapshot.state == "active"
    assert daytona.statuses("POST") == [200, 409]  # theirs, then ours


def test_a_quota_400_from_losing_the_race_means_waiting(daytona: World) -> None:
    # Daytona checks quota before duplicates: the loser of a race may get 400, not 409.
    daytona.freeze()
    daytona.server.knobs.update_settings(SettingsPatch(limits={"snapshot_quota": 1}))
    other_run_wins = once("/snapshots", "POST", lambda: daytona.add_snapshot(NAME, "pending"))
    outcome = ensure_snapshot(
        daytona.client(before=other_run_wins), spec(daytona), timeout=60, interval=POLL
    )
    assert outcome.action == "waited" and outcome.snapshot.state == "active"
    assert daytona.statuses("POST") == [200, 400]


def test_a_real_400_on_create_is_raised(daytona: World) -> None:
    daytona.server.knobs.update_settings(SettingsPatch(limits={"snapshot_quota": 0}))
    with pytest.raises(DaytonaError, match="400 Snapshot quota exceeded"):
        ensure(daytona)
    assert daytona.posts() == 1


@pytest.mark.parametrize("state", ["error", "build_failed"])
def test_a_failed_snapshot_ends_with_the_reason(daytona: World, state: str) -> None:
    daytona.freeze()
    reason = "manifest unknown: manifest unknown\n(at runner r1)"
    daytona.server.knobs.add_outcome(
        SnapshotOutcome(name_pattern=NAME, outcome=state, reason=reason)  # type: ignore[arg-type]
    )
    with pytest.raises(DaytonaError) as caught:
        ensure(daytona)
    text = str(caught.value)
    assert f"is in state {state}: manifest unknown: manifest unknown (at runner r1)" in text
    assert "snapshot_push" in text and "\n" not in text


def test_an_existing_failed_snapshot_is_reported_and_kept_without_force(daytona: World) -> None:
    daytona.add_snapshot(NAME, "error", error_reason="unauthorized: no")
    daytona.forget_requests()
    with pytest.raises(DaytonaError, match=r"unauthorized: no.*registry entry"):
        ensure(daytona)
    assert daytona.posts() == 0 and not any(e.startswith("DELETE") for e in daytona.log)


def test_force_replaces_a_failed_snapshot(daytona: World) -> None:
    daytona.freeze()
    old = daytona.add_snapshot(NAME, "error", error_reason="boom")
    daytona.forget_requests()
    outcome = ensure(daytona, force=True)
    assert outcome.action == "replaced" and outcome.snapshot.id != old["id"]
    assert f"DELETE /snapshots/{old['id']}" in daytona.log and daytona.posts() == 1


def test_an_inactive_snapshot_is_activated(daytona: World) -> None:
    daytona.freeze()
    row = daytona.add_snapshot(NAME, "inactive")
    outcome = ensure(daytona)
    assert outcome.action == "activated" and outcome.snapshot.state == "active"
    assert f"POST /snapshots/{row['id']}/activate" in daytona.log


def test_an_activation_race_is_not_an_error(daytona: World) -> None:
    daytona.freeze()
    row = daytona.add_snapshot(NAME, "inactive")
    activate = f"/snapshots/{row['id']}/activate"

    def other_run_activates() -> None:
        with api_client(daytona.server) as http:
            http.post(activate).raise_for_status()

    client = daytona.client(before=once(activate, "POST", other_run_activates))
    outcome = ensure_snapshot(client, spec(daytona), timeout=60, interval=POLL)
    assert outcome.action == "waited" and outcome.snapshot.state == "active"
    assert daytona.statuses("POST")[-2:] == [200, 400]  # theirs, then ours ("in pending state")


def test_an_activation_refused_for_an_inactive_snapshot_is_raised(daytona: World) -> None:
    # Daytona refuses activation for ten minutes after a deactivation.
    daytona.settings(activation_cooldown_seconds=600)
    row = daytona.add_snapshot(NAME)
    with api_client(daytona.server) as http:
        assert http.post(f"/snapshots/{row['id']}/deactivate").status_code == 204
    with pytest.raises(DaytonaError, match="still in progress"):
        ensure(daytona)


def test_a_removing_snapshot_is_waited_out_then_created(daytona: World) -> None:
    daytona.freeze()
    row = daytona.add_snapshot(NAME)
    with api_client(daytona.server) as http:
        http.delete(f"/snapshots/{row['id']}").raise_for_status()
    daytona.forget_requests()
    outcome = ensure(daytona)
    assert outcome.action == "created" and daytona.posts() == 1


def test_the_deadline_is_one_line(daytona: World) -> None:
    clock = daytona.freeze()
    daytona.server.knobs.add_outcome(SnapshotOutcome(name_pattern=NAME, outcome="stuck_pending"))
    with pytest.raises(DeadlineExceeded) as caught:
        ensure(daytona, timeout=0.3)
    # no pause reaches past the deadline (the fake clock counts from the host's monotonic
    # time, so start + 0.3 - start may be 0.3 less an ulp)
    assert 0.3 - 1e-9 <= clock.now < 0.3 + POLL.first_s
    text = str(caught.value)
    assert "still pending after 0.3 s" in text and "DAYTONA_SNAPSHOT_TIMEOUT" in text
    assert "\n" not in text and caught.value.exit_code == 6


def test_retries_and_polls_log_no_warnings(
    daytona: World, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # nox shows the root logger: a warning per retry or poll would drown the progress lines,
    # which go to the console instead.
    daytona.freeze()
    daytona.fault(kind="error", status=503, message="down", method="GET")
    with caplog.at_level("DEBUG"):
        ensure(daytona)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "retry 1 after" in capsys.readouterr().err


# --- blips: backoff with jitter inside the budget, never a second create blindly ------------


def test_three_503s_on_create_are_retried_with_backoff_after_a_look_up(daytona: World) -> None:
    clock = daytona.freeze()
    daytona.fault(kind="error", status=503, count=3, method="POST", path_prefix="/api/snapshots")
    outcome = ensure(daytona, timeout=1200, retry=DEFAULT)
    assert outcome.action == "created" and outcome.snapshot.state == "active"
    assert daytona.posts() == 4
    looks = [e for e in daytona.log if e in ("POST /snapshots", f"GET /snapshots/{NAME}")]
    assert looks[:8] == [f"GET /snapshots/{NAME}", "POST /snapshots"] * 4
    first, second, third = clock.sleeps[:3]  # the pauses before the 2nd, 3rd, 4th create
    assert 1 <= first <= 2 and 2 <= second <= 3 and 4 <= third <= 5
    assert outcome.duration_s < 30


def test_an_outage_gives_up_within_the_budget_in_one_line(daytona: World) -> None:
    clock = daytona.freeze()
    daytona.fault(
        kind="error",
        status=503,
        message="Service Unavailable",
        count=None,
        method="POST",
        path_prefix="/api/snapshots",
    )
    with pytest.raises(DaytonaError) as caught:
        ensure(daytona, timeout=1200, retry=RetryPolicy(30))
    text = str(caught.value)
    assert "503 Service Unavailable" in text and "\n" not in text and caught.value.exit_code == 8
    assert f"(gave up after {daytona.posts()} tries in 30 s)" in text
    assert clock.now == 30  # the budget, not a moment longer
    assert daytona.posts() == len(clock.sleeps) + 1 >= 5  # a pause before each new create
    # A look-up before the first create and after each one: it may have landed after all.
    assert daytona.count(f"GET /snapshots/{NAME}") == daytona.posts() + 1


def test_retry_after_on_a_429_create_is_honoured(daytona: World) -> None:
    clock = daytona.freeze()
    daytona.fault(kind="rate_limit", retry_after=7, method="POST", path_prefix="/api/snapshots")
    ensure(daytona, retry=DEFAULT)
    assert clock.sleeps[0] == 7 and daytona.posts() == 2


def test_a_lost_create_is_reported_as_created(daytona: World) -> None:
    daytona.freeze()
    daytona.fault(kind="drop_after", method="POST", path_prefix="/api/snapshots")
    outcome = ensure(daytona)
    assert outcome.action == "created" and daytona.posts() == 1


def test_a_lost_replace_is_reported_as_replaced(daytona: World) -> None:
    daytona.freeze()
    daytona.add_snapshot(NAME, "error", error_reason="boom")
    daytona.forget_requests()
    daytona.fault(kind="drop_after", method="POST", path_prefix="/api/snapshots")
    outcome = ensure(daytona, force=True)
    assert outcome.action == "replaced" and daytona.posts() == 1


def test_a_snapshot_with_other_resources_is_refused_and_force_replaces_it(daytona: World) -> None:
    daytona.freeze()
    old = daytona.add_snapshot(NAME)  # 2 vCPU, 4 GB, 10 GB
    daytona.forget_requests()
    bigger = spec(daytona, cpu=999)
    with pytest.raises(DaytonaError) as caught:
        ensure(daytona, wanted=bigger)
    text = str(caught.value)
    assert (
        f"snapshot {NAME}: it exists with 2 vCPU, 4 GB memory, 10 GB disk, "
        "not the requested 999 vCPU, 4 GB memory, 10 GB disk" in text
    )
    assert "--force" in text and "\n" not in text
    assert daytona.posts() == 0 and not any(e.startswith("DELETE") for e in daytona.log)
    outcome = ensure(daytona, wanted=bigger, force=True)
    assert outcome.action == "replaced" and outcome.snapshot.id != old["id"]
    assert outcome.snapshot.cpu == 999


@pytest.fixture
def session_env(daytona: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in env_names(SnapshotSettings, DaytonaSettings, StageSettings, ReportSettings):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAYTONA_API_URL", daytona.server.base_url)
    monkeypatch.setenv("DAYTONA_API_KEY", EMULATOR_KEY)
    monkeypatch.setenv("SANDBOX_SNAPSHOT_NAME", NAME)
    monkeypatch.setenv("SANDBOX_IMAGE", daytona.image)
    report = tmp_path / "report.json"
    monkeypatch.setenv("PIPELINE_REPORT", str(report))
    return report


def test_snapshot_daytona_refuses_other_resources_in_one_line(
    daytona: World, session_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daytona.add_snapshot(NAME)
    monkeypatch.setenv("SANDBOX_SNAPSHOT_CPU", "999")
    with pytest.raises(DaytonaError) as caught:
        snapshot_daytona(["--skip-image-check"], Seams(client=daytona.client(), interval=POLL))
    assert "not the requested 999 vCPU" in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.exit_code == 8 and not session_env.exists()
    monkeypatch.setenv("SANDBOX_SNAPSHOT_CPU", "2")
    snapshot_daytona(["--skip-image-check"], Seams(client=daytona.client(), interval=POLL))
    assert json.loads(session_env.read_text())["snapshot"]["action"] == "existing"


# --- the newest snapshot of a prefix ---------------------------------------------------------


def test_latest_snapshot_pages_only_as_needed_and_caches(daytona: World) -> None:
    daytona.freeze()
    # Made oldest first, a minute apart: createdAt orders them as named.
    for page in (2, 1, 0):  # older pages that must never be read
        daytona.add_snapshot(f"prd--older-{page}")
        daytona.advance(60)
    daytona.add_snapshot("prd--old")
    for minute in (4, 3, 2, 1, 0):  # newer: the server's substring filter matches them
        daytona.advance(60)
        daytona.add_snapshot(f"old-prd--{minute}")
    daytona.advance(60)
    daytona.add_snapshot("prd--new", "error")
    daytona.forget_requests()
    now = [0.0]
    cache = LatestCache(clock=lambda: now[0])
    api = daytona.client()
    assert latest_snapshot("prd", api, cache=cache, page_size=3) == "prd--old"
    assert daytona.count("GET /snapshots") == 3  # page 3 holds prd--old; 4 and 5 are not read
    assert latest_snapshot("prd", api, cache=cache, page_size=3) == "prd--old"
    assert daytona.count("GET /snapshots") == 3  # cached
    now[0] = 299.0
    assert latest_snapshot("prd--", api, cache=cache, page_size=3) == "prd--old"
    assert daytona.count("GET /snapshots") == 3  # same matched prefix, still fresh
    now[0] = 300.0
    latest_snapshot("prd", api, cache=cache, page_size=3)
    assert daytona.count("GET /snapshots") == 6  # expired


def test_latest_snapshot_never_caches_dev_prefixes_or_misses(daytona: World) -> None:
    daytona.freeze()
    cache = LatestCache(clock=lambda: 0.0)
    api = daytona.client()
    assert latest_snapshot("dev-jonas", api, cache=cache) is None
    daytona.add_snapshot("dev-jonas--20261123-100000")
    assert latest_snapshot("dev-jonas", api, cache=cache) == "dev-jonas--20261123-100000"
    daytona.advance(60)
    daytona.add_snapshot("dev-jonas--20261123-110000")
    assert latest_snapshot("dev-jonas", api, cache=cache) == "dev-jonas--20261123-110000"
    assert daytona.count("GET /snapshots") == 3


def test_the_app_finds_the_newest_snapshot_from_the_environment(
    daytona: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.app import latest_snapshot as app_latest

    monkeypatch.setenv("DAYTONA_API_URL", daytona.server.base_url)
    monkeypatch.setenv("DAYTONA_API_KEY", EMULATOR_KEY)
    monkeypatch.delenv("DAYTONA_ORGANIZATION_ID", raising=False)
    daytona.add_snapshot("stg--20261123-100000")
    assert app_latest("stg", cache=LatestCache()) == "stg--20261123-100000"
