"""Daytona blips end well: 5xx and connection errors are retried with backoff and jitter inside a
time budget, Retry-After is honoured, and no second create is sent while the first may have
landed. Also what a run reports after a lost create, over a snapshot with other resources, and
the flag limits that come from the settings models. Unit tests run on a fake clock (no real
sleeping); tests/integration/daytona/test_daytona_snapshot_faults.py sends the same faults
over real HTTP."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import httpx
import pytest

from pipeline.daytona.client import DaytonaClient, RetryPolicy
from pipeline.daytona.sandbox_lifecycle import create_sandbox
from pipeline.daytona.snapshots import PollPolicy, SnapshotSpec, ensure_snapshot
from pipeline.errors import ConfigError, DaytonaError
from pipeline.rules.daytona_http import retry_pause
from pipeline.rules.daytona_models import CreateSandbox
from pipeline.sessions.daytona_options import add_setting_flag
from pipeline.sessions.sandbox_daytona import sandbox_daytona
from pipeline.sessions.snapshot_daytona import snapshot_daytona
from pipeline.sessions.snapshots_clean import snapshots_clean
from pipeline.settings.build import ReportSettings, env_names, load
from pipeline.settings.daytona import DaytonaSettings, SnapshotSettings, StageSettings
from tests.helpers.fake_daytona import KEY, FakeDaytona, Hook, error_body

POLL = PollPolicy(initial=0.5, factor=1.5, maximum=5)
SPEC = SnapshotSpec("iterate-sandbox-1", "ghcr.io/iterate/sandbox:sha-1", 2, 4, 10)
DEFAULT = RetryPolicy()  # what the sessions use: a minute of backoff with jitter
UNAVAILABLE = httpx.Response(503, json=error_body(503, "Service Unavailable"))


def refuse_posts(times: int | None, answer: httpx.Response = UNAVAILABLE) -> list[Hook]:
    """Hooks for `fail_next`: the first `times` POSTs (None: all) get `answer`, nothing changes."""
    seen = [0]

    def hook(request: httpx.Request) -> httpx.Response | None:
        if request.method != "POST" or (times is not None and seen[0] >= times):
            return None
        seen[0] += 1
        return answer

    return [hook] * 1000


# --- the schedule (pure) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "retry", "elapsed", "retry_after", "draw", "pause"),
    [
        (DEFAULT, 1, 0, None, 0, 1.0),
        (DEFAULT, 2, 1, None, 0, 2.0),
        (DEFAULT, 3, 3, None, 0, 4.0),
        (DEFAULT, 5, 20, None, 0, 15.0),  # 16 capped at wait_max
        (DEFAULT, 2, 1, None, 0.5, 2.5),  # jitter: up to wait_jitter on top
        (DEFAULT, 5, 59.5, None, 0, 0.5),  # never past the budget: the last try at its end
        (DEFAULT, 9, 60, None, 0, None),  # budget spent
        (RetryPolicy(attempts=3), 3, 0, None, 0, None),  # tries spent
        (DEFAULT, 1, 0, 7.0, 0.9, 7.0),  # Retry-After as the server said
        (DEFAULT, 1, 0, 3600.0, 0, 60.0),  # capped at retry_after_max
        (DEFAULT, 1, 10, 55.0, 0, None),  # not allowed to try again within the budget
    ],
)
def test_retry_pause(
    policy: RetryPolicy,
    retry: int,
    elapsed: float,
    retry_after: float | None,
    draw: float,
    pause: float | None,
) -> None:
    assert retry_pause(policy, retry, elapsed=elapsed, retry_after=retry_after, draw=draw) == pause


def test_the_default_budget_spans_tens_of_seconds() -> None:
    elapsed, tries = 0.0, 1
    while (pause := retry_pause(DEFAULT, tries, elapsed=elapsed)) is not None:
        elapsed, tries = elapsed + pause, tries + 1
    assert elapsed == DEFAULT.timeout == 60 and tries >= 6


# --- a create through a blip (fake Daytona, fake clock) --------------------------------------


def test_three_503s_on_create_are_retried_with_backoff_after_a_look_up() -> None:
    fake = FakeDaytona(fail_next=refuse_posts(3))
    outcome = ensure_snapshot(fake.client(retry=DEFAULT), SPEC, timeout=1200, poll=POLL)
    assert outcome.action == "created" and outcome.snapshot.state == "active"
    assert fake.posts() == 4
    posts_and_looks = [
        e for e in fake.log if e in ("POST /snapshots", f"GET /snapshots/{SPEC.name}")
    ]
    assert posts_and_looks[:8] == [f"GET /snapshots/{SPEC.name}", "POST /snapshots"] * 4
    first, second, third = fake.clock.sleeps[:3]  # the pauses before the 2nd, 3rd, 4th create
    assert 1 <= first < 2 and 2 <= second < 3 and 4 <= third < 5
    assert outcome.duration_s < 30


def test_an_outage_gives_up_within_the_budget_in_one_line() -> None:
    fake = FakeDaytona(fail_next=refuse_posts(None))
    api = fake.client(retry=RetryPolicy(timeout=30))
    with pytest.raises(DaytonaError) as caught:
        ensure_snapshot(api, SPEC, timeout=1200, poll=POLL)
    text = str(caught.value)
    assert "503 Service Unavailable" in text and "\n" not in text and caught.value.exit_code == 8
    assert f"(gave up after {fake.posts()} tries in 30 s)" in text
    assert fake.clock.now == 30  # the budget, not a moment longer
    assert fake.posts() == len(fake.clock.sleeps) + 1 >= 5  # a pause before each new create
    # A look-up before the first create and after each one: it may have landed after all.
    assert fake.count(f"GET /snapshots/{SPEC.name}") == fake.posts() + 1


def test_retry_after_on_a_503_create_is_honoured() -> None:
    busy = httpx.Response(503, headers={"Retry-After": "7"}, json=error_body(503, "busy"))
    fake = FakeDaytona(fail_next=refuse_posts(1, busy))
    ensure_snapshot(fake.client(retry=DEFAULT), SPEC, timeout=1200, poll=POLL)
    assert fake.clock.sleeps[0] == 7 and fake.posts() == 2


def test_a_sandbox_create_through_a_blip() -> None:
    fake = FakeDaytona(fail_next=refuse_posts(2))
    request = CreateSandbox(snapshot="prd--1", name="sbx-1")
    created = create_sandbox(fake.client(retry=DEFAULT), request)
    assert created.name == "sbx-1"
    assert fake.log == ["POST /sandbox", "GET /sandbox/sbx-1"] * 2 + ["POST /sandbox"]
    first, second = fake.clock.sleeps
    assert 1 <= first < 2 and 2 <= second < 3


# --- what a run reports ----------------------------------------------------------------------


def drop_answer_of_create(fake: FakeDaytona) -> Hook:
    def hook(request: httpx.Request) -> httpx.Response | None:
        if request.method != "POST" or request.url.path != "/api/snapshots":
            return None
        fake.handle(request)  # the server did create it...
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    return hook


def test_a_lost_create_is_reported_as_created() -> None:
    fake = FakeDaytona()
    fake.fail_next = [drop_answer_of_create(fake)] * 10
    outcome = ensure_snapshot(fake.client(), SPEC, timeout=60, poll=POLL)
    assert outcome.action == "created" and fake.posts() == 1


def test_a_lost_replace_is_reported_as_replaced() -> None:
    fake = FakeDaytona()
    fake.add_snapshot(SPEC.name, ["error"], imageName=SPEC.image, errorReason="boom")
    fake.fail_next = [drop_answer_of_create(fake)] * 20
    outcome = ensure_snapshot(fake.client(), SPEC, timeout=60, poll=POLL, force=True)
    assert outcome.action == "replaced" and fake.posts() == 1


def test_a_snapshot_with_other_resources_is_refused_and_force_replaces_it() -> None:
    fake = FakeDaytona()
    old = fake.add_snapshot(SPEC.name, ["active"], imageName=SPEC.image)  # 2 vCPU, 4 GB, 10 GB
    bigger = SnapshotSpec(SPEC.name, SPEC.image, 999, 4, 10)
    with pytest.raises(DaytonaError) as caught:
        ensure_snapshot(fake.client(), bigger, timeout=60, poll=POLL)
    text = str(caught.value)
    assert (
        f"snapshot {SPEC.name}: it exists with 2 vCPU, 4 GB memory, 10 GB disk, "
        "not the requested 999 vCPU, 4 GB memory, 10 GB disk" in text
    )
    assert "--force" in text and "\n" not in text
    assert fake.posts() == 0 and not any(e.startswith("DELETE") for e in fake.log)
    outcome = ensure_snapshot(fake.client(), bigger, timeout=60, poll=POLL, force=True)
    assert outcome.action == "replaced" and outcome.snapshot.id != old["id"]
    assert outcome.snapshot.cpu == 999


@pytest.fixture
def session_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in env_names(SnapshotSettings, DaytonaSettings, StageSettings, ReportSettings):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAYTONA_API_KEY", KEY)
    monkeypatch.setenv("SANDBOX_SNAPSHOT_NAME", SPEC.name)
    monkeypatch.setenv("SANDBOX_IMAGE", SPEC.image)
    report = tmp_path / "report.json"
    monkeypatch.setenv("PIPELINE_REPORT", str(report))
    return report


def test_snapshot_daytona_refuses_other_resources_in_one_line(
    session_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDaytona()
    fake.add_snapshot(SPEC.name, ["active"], imageName=SPEC.image)
    monkeypatch.setenv("SANDBOX_SNAPSHOT_CPU", "999")
    with pytest.raises(DaytonaError) as caught:
        snapshot_daytona(["--skip-image-check"], client=fake.client(), poll=POLL)
    assert "not the requested 999 vCPU" in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.exit_code == 8 and not session_env.exists()
    monkeypatch.setenv("SANDBOX_SNAPSHOT_CPU", "2")
    snapshot_daytona(["--skip-image-check"], client=fake.client(), poll=POLL)
    assert json.loads(session_env.read_text())["snapshot"]["action"] == "existing"


# --- flags and variables: one limit each -----------------------------------------------------


@pytest.mark.parametrize(
    ("command", "argv", "message"),
    [
        (snapshot_daytona, ["--cpu", "0"], "argument --cpu: must be at least 1"),
        (snapshot_daytona, ["--memory", "x"], "argument --memory: 'x' is not a whole number"),
        (snapshot_daytona, ["--timeout", "0"], "argument --timeout: must be more than 0"),
        (snapshot_daytona, ["--timeout", "inf"], "argument --timeout: must be a finite number"),
        (snapshot_daytona, ["--timeout", "soon"], "argument --timeout: 'soon' is not a number"),
        (snapshots_clean, ["--keep", "-1"], "argument --keep: must not be negative"),
        (snapshots_clean, ["--days", "nan"], "argument --days: must be a finite number"),
        (sandbox_daytona, ["--port", "0"], "argument --port: must be a TCP port (1-65535)"),
        (sandbox_daytona, ["--auto-stop", "-1"], "argument --auto-stop: must not be negative"),
        (sandbox_daytona, ["--older-than", "-5"], "argument --older-than: must not be negative"),
    ],
)
def test_flags_take_their_limits_from_the_models(
    session_env: Path, command: object, argv: list[str], message: str
) -> None:
    assert callable(command)
    with pytest.raises(ConfigError) as caught:
        command([*argv, "--dry-run"])
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DAYTONA_SNAPSHOT_TIMEOUT", "inf"),
        ("DAYTONA_HTTP_TIMEOUT", "nan"),
        ("DAYTONA_RETRY_TIMEOUT", "0"),
    ],
)
def test_the_same_limits_hold_for_the_variables(
    session_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"{variable}='{value}' is not valid"):
        load(SnapshotSettings if variable == "DAYTONA_SNAPSHOT_TIMEOUT" else DaytonaSettings)


def test_flag_help_names_the_variable_and_its_default() -> None:
    cli = argparse.ArgumentParser()
    add_setting_flag(cli, "--cpu", SnapshotSettings, "cpu", "vCPUs")
    assert "vCPUs (SANDBOX_SNAPSHOT_CPU, 2)" in " ".join(cli.format_help().split())
    assert cli.parse_args([]).cpu is None  # the variable's value is used then
    assert cli.parse_args(["--cpu", "3"]).cpu == 3


def test_the_retry_budget_comes_from_daytona_retry_timeout(
    session_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAYTONA_RETRY_TIMEOUT", "12.5")
    with DaytonaClient.from_settings(load(DaytonaSettings)) as api:
        assert api.retry.timeout == 12.5
    monkeypatch.delenv("DAYTONA_RETRY_TIMEOUT")
    with DaytonaClient.from_settings(load(DaytonaSettings)) as api:
        assert api.retry.timeout == 60
