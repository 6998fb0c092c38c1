"""Daytona blips end well: the schedule every retried call follows (backoff with jitter inside a
time budget, Retry-After honoured and capped), a create whose answer was lost never sent again
blindly, and the flag limits that come from the settings models. On a fake clock (no real
sleeping); the blips over real HTTP, against the emulator, are in
tests/integration/daytona/test_daytona_snapshots.py and test_daytona_snapshot_faults.py."""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx
import pytest
import tenacity

from pipeline.daytona.snapshots import ensure_snapshot
from pipeline.errors import ConfigError
from pipeline.rules.daytona_http import DEFAULT_RETRY_TIMEOUT
from pipeline.rules.snapshot_names import SnapshotSpec
from pipeline.sessions.daytona_common import connect
from pipeline.sessions.options import add_setting_flag
from pipeline.sessions.sandbox_daytona import sandbox_daytona
from pipeline.sessions.snapshot_daytona import snapshot_daytona
from pipeline.sessions.snapshots_clean import snapshots_clean
from pipeline.settings.build import ReportSettings, env_names, load
from pipeline.settings.daytona import DaytonaSettings, SnapshotSettings, StageSettings
from pipeline.waiting import GaveUp, Interval, RetryPolicy, retry
from tests.helpers.clock import FakeClock
from tests.helpers.daytona_wire import KEY, error_body, mock_client, snapshot_wire

POLL = Interval(first_s=0.5, factor=1.5, max_s=5)
SPEC = SnapshotSpec(
    name="iterate-sandbox-1", image="ghcr.io/iterate/sandbox:sha-1", cpu=2, memory=4, disk=10
)
DEFAULT = RetryPolicy(DEFAULT_RETRY_TIMEOUT)  # what the sessions use: a minute of backoff
NO_JITTER = RetryPolicy(60, tenacity.wait_exponential_jitter(max=15, jitter=0))


class Busy(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("busy")
        self.retry_after = retry_after


def after(tries: int, retry_after: float | None = None) -> tenacity.RetryCallState:
    """What tenacity knows after `tries` failed tries, the last one answered with Retry-After."""
    state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
    state.attempt_number = tries
    error = Busy(retry_after)
    state.set_exception((Busy, error, None))
    return state


# --- the schedule (pure) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "tries", "elapsed", "retry_after", "pause"),
    [
        (NO_JITTER, 1, 0, None, 1.0),
        (NO_JITTER, 2, 1, None, 2.0),
        (NO_JITTER, 3, 3, None, 4.0),
        (NO_JITTER, 5, 20, None, 15.0),  # 16 capped at the backoff's max
        (NO_JITTER, 5, 59.5, None, 0.5),  # never past the budget: the last try at its end
        (NO_JITTER, 9, 60, None, None),  # budget spent
        (RetryPolicy(60, attempts=3), 3, 0, None, None),  # tries spent
        (DEFAULT, 1, 0, 7.0, 7.0),  # Retry-After as the server said
        (DEFAULT, 1, 0, 3600.0, 60.0),  # capped at retry_after_max
        (DEFAULT, 1, 10, 55.0, None),  # not allowed to try again within the budget
    ],
)
def test_retry_pause(
    policy: RetryPolicy, tries: int, elapsed: float, retry_after: float | None, pause: float | None
) -> None:
    assert policy.pause(after(tries, retry_after), elapsed) == pause


def test_jitter_adds_up_to_a_second() -> None:
    pauses = {DEFAULT.pause(after(2), elapsed=1) for _ in range(50)}
    assert all(pause is not None and 2 <= pause <= 3 for pause in pauses) and len(pauses) > 1


def test_the_default_budget_spans_tens_of_seconds() -> None:
    clock = FakeClock()

    def always_busy() -> None:
        raise Busy()

    with pytest.raises(GaveUp) as caught:
        retry(always_busy, DEFAULT, on=Busy, clock=clock)
    assert clock.now == DEFAULT.timeout == 60 and caught.value.tries >= 6


# --- Retry-After on a create whose outcome is unknown ----------------------------------------
# (the emulator's 5xx faults carry no Retry-After: this one answer is made here)


def test_retry_after_on_a_503_create_is_honoured() -> None:
    """The next create waits what the server asked for, after the look-up found nothing."""
    calls: list[str] = []

    def daytona(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        posts = calls.count("POST")
        if request.method == "GET" and posts < 2:
            return httpx.Response(404, json=error_body(404, "not found"))
        if request.method == "GET":
            return httpx.Response(200, json=snapshot_wire(SPEC.name, imageName=SPEC.image))
        if posts == 1:
            busy = error_body(503, "busy")
            return httpx.Response(503, headers={"Retry-After": "7"}, json=busy)
        return httpx.Response(200, json=snapshot_wire(SPEC.name, "pending", imageName=SPEC.image))

    clock = FakeClock()
    ensure_snapshot(mock_client(daytona, retry=DEFAULT, clock=clock), SPEC, timeout=1200)
    assert clock.sleeps[0] == 7 and calls.count("POST") == 2


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
    add_setting_flag(cli, "--cpu", SnapshotSettings, "vCPUs")
    assert "vCPUs (SANDBOX_SNAPSHOT_CPU, 2)" in " ".join(cli.format_help().split())
    assert cli.parse_args([]).cpu is None  # the variable's value is used then
    assert cli.parse_args(["--cpu", "3"]).cpu == 3


def test_the_retry_budget_comes_from_daytona_retry_timeout(
    session_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAYTONA_RETRY_TIMEOUT", "12.5")
    with connect(load(DaytonaSettings)) as api:
        assert api.retry.timeout == 12.5
    monkeypatch.delenv("DAYTONA_RETRY_TIMEOUT")
    with connect(load(DaytonaSettings)) as api:
        assert api.retry.timeout == 60
