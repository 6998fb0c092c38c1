"""Daytona sandboxes against the emulator with real containers: create (lost answers, blips, a
taken name, a refused snapshot), the waits for started and for gone, deletes refused during a
state change, `running_sandbox` (exec, preview, always removed), and the `sandbox_daytona`
command end to end. The emulator's request log is the witness; its fault knobs make the blips.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from daytona_emulator.knobs import SandboxOutcome
from pipeline.daytona.sandboxes import (
    NameTaken,
    SandboxSpec,
    SandboxWaits,
    create_sandbox,
    launch_sandbox,
    preview_headers,
    running_sandbox,
    stop_and_delete,
    wait_started,
)
from pipeline.daytona.snapshots import ensure_snapshot
from pipeline.errors import DaytonaError, DeadlineExceeded, PipelineError
from pipeline.rules.daytona_models import CreateSandbox, Sandbox
from pipeline.rules.sandbox_rules import CREATED_BY, CREATED_BY_LABEL, GIT_SHA_LABEL
from pipeline.rules.snapshot_names import SnapshotSpec
from pipeline.sessions.daytona_common import Seams
from pipeline.sessions.sandbox_daytona import sandbox_daytona
from pipeline.waiting import SYSTEM_CLOCK, Interval, RetryPolicy
from tests.helpers.clock import FakeClock
from tests.helpers.daytona_wire import clean_env
from tests.helpers.emulated_daytona import (
    PAGE,
    SANDBOX_POLL,
    World,
    daytona,
    daytona_emulator_with_registry,
)
from tests.helpers.emulator import EMULATOR_KEY, api_client

__all__ = ["clean_env", "daytona", "daytona_emulator_with_registry"]  # fixtures, used by name

SNAPSHOT = "prd--20261123-120000"
WAITS = SandboxWaits(start_s=60, interval=SANDBOX_POLL, clock=SYSTEM_CLOCK)  # containers: real
DEFAULT = RetryPolicy(60)  # what the sessions use: a minute of backoff with jitter


@pytest.fixture
def sandboxes(daytona: World, engine: None) -> World:
    """The world with snapshot SNAPSHOT active, on the emulator's real clock."""
    daytona.settings(pending_seconds=0.02, pulling_seconds=0.02)
    daytona.add_snapshot(SNAPSHOT)
    daytona.forget_requests()
    return daytona


def request_for(name: str = "sbx-1", snapshot: str = SNAPSHOT, **extra: Any) -> CreateSandbox:
    return CreateSandbox(
        snapshot=snapshot,
        name=name,
        labels={"team": "ci", CREATED_BY_LABEL: CREATED_BY},
        auto_stop_interval=0,
        auto_delete_interval=-1,
        **extra,
    )


def listed(world: World) -> list[str]:
    """Names of the sandboxes Daytona still lists (deleted ones are renamed and gone)."""
    with world.client() as api:
        return sorted(s.name for s in api.iter_sandboxes())


# --- create: never a blind second POST ---------------------------------------------------------


def test_create_after_a_lost_answer_looks_the_name_up_first(sandboxes: World) -> None:
    sandboxes.fault(kind="drop_after", method="POST", path_prefix="/api/sandbox")
    created = create_sandbox(sandboxes.client(), request_for())
    assert created.name == "sbx-1"
    assert sandboxes.log == ["POST /sandbox", "GET /sandbox/sbx-1"]


def test_create_after_a_5xx_that_did_nothing_posts_once_more(sandboxes: World) -> None:
    sandboxes.fault(kind="error", status=500, method="POST", path_prefix="/api/sandbox")
    create_sandbox(sandboxes.client(), request_for())
    assert sandboxes.log == ["POST /sandbox", "GET /sandbox/sbx-1", "POST /sandbox"]


def test_a_sandbox_create_through_a_blip(sandboxes: World) -> None:
    sandboxes.fault(kind="error", status=503, count=2, method="POST", path_prefix="/api/sandbox")
    clock = FakeClock()
    created = create_sandbox(sandboxes.client(retry=DEFAULT, clock=clock), request_for())
    assert created.name == "sbx-1"
    assert sandboxes.log == ["POST /sandbox", "GET /sandbox/sbx-1"] * 2 + ["POST /sandbox"]
    first, second = clock.sleeps
    assert 1 <= first <= 2 and 2 <= second <= 3


def test_a_taken_name_is_an_error_and_the_other_sandbox_is_left_alone(sandboxes: World) -> None:
    sandboxes.add_sandbox("sbx-1", SNAPSHOT, labels={"team": "someone-else"})
    sandboxes.forget_requests()
    with pytest.raises(NameTaken) as caught:
        launch_sandbox(sandboxes.client(), request_for(), WAITS)
    assert "--down sbx-1" in str(caught.value)
    assert sandboxes.count("POST /sandbox") == 1
    assert not any(e.startswith(("DELETE", "POST /sandbox/")) for e in sandboxes.log)


def test_a_400_on_create_names_the_fix(sandboxes: World) -> None:
    with pytest.raises(DaytonaError) as caught:
        create_sandbox(sandboxes.client(), request_for(snapshot="nope"))
    text = str(caught.value)
    assert (
        "Daytona answered 400 Snapshot nope not found" in text and "DAYTONA_SNAPSHOT_NAME" in text
    )
    assert sandboxes.count("POST /sandbox") == 1


# --- waits ----------------------------------------------------------------------------------


def creating(world: World, name: str = "x") -> Sandbox:
    """A sandbox as `POST /sandbox` answers when Daytona does not wait for started."""
    world.settings(sandbox_start_wait_seconds=0)
    return Sandbox.model_validate(world.add_sandbox(name, SNAPSHOT))


def test_wait_started_follows_the_states(
    sandboxes: World, capsys: pytest.CaptureFixture[str]
) -> None:
    row = creating(sandboxes)
    assert row.state == "creating"
    started = wait_started(sandboxes.client(), row, WAITS)
    assert started.state == "started"
    assert "creating → started" in capsys.readouterr().err


def test_an_error_state_ends_the_wait_with_the_reason(sandboxes: World) -> None:
    reason = "Failed to start sandbox container:\nexit code 1"
    sandboxes.server.knobs.add_sandbox_outcome(
        SandboxOutcome(snapshot_pattern=SNAPSHOT, outcome="error", reason=reason)
    )
    with pytest.raises(DaytonaError) as caught:
        wait_started(sandboxes.client(), creating(sandboxes), WAITS)
    text = str(caught.value)
    assert "sandbox x: it is in state error: Failed to start sandbox container: exit code 1" in text
    assert "entrypoint" in text and "\n" not in text


def test_the_deadline_is_one_line_and_sleeps_are_bounded_by_it(sandboxes: World) -> None:
    sandboxes.server.knobs.add_sandbox_outcome(
        SandboxOutcome(snapshot_pattern=SNAPSHOT, outcome="stuck_creating")
    )
    row = creating(sandboxes)
    clock = FakeClock()
    slow = SandboxWaits(start_s=20, interval=Interval(first_s=1, factor=2, max_s=8), clock=clock)
    with pytest.raises(DeadlineExceeded) as caught:
        wait_started(sandboxes.client(), row, slow)
    assert clock.sleeps == [1, 2, 4, 8, 5]  # backoff, and the last pause stops at the deadline
    text = str(caught.value)
    assert text.startswith(f"sandbox x ({row.id}) is still creating after 20 s")
    assert "DAYTONA_SANDBOX_TIMEOUT" in text and "--down x" in text and "\n" not in text


# --- stop, delete, gone -----------------------------------------------------------------------


def test_stop_and_delete_stops_deletes_and_waits_for_404(sandboxes: World) -> None:
    sid = sandboxes.add_sandbox("x", SNAPSHOT)["id"]
    sandboxes.forget_requests()
    assert stop_and_delete(sandboxes.client(), "x", WAITS) is True
    log = sandboxes.log
    assert log[0] == "GET /sandbox/x"
    assert [e for e in log if not e.startswith("GET")] == [
        f"POST /sandbox/{sid}/stop",
        f"DELETE /sandbox/{sid}",
    ]
    assert log[-1] == f"GET /sandbox/{sid}" and sandboxes.get(f"/sandbox/{sid}") is None
    assert stop_and_delete(sandboxes.client(), "x", WAITS) is False  # nothing left: no error


def test_an_ephemeral_sandbox_is_gone_after_its_stop_without_delete(sandboxes: World) -> None:
    sandboxes.add_sandbox("x", SNAPSHOT, auto_delete=0)  # Daytona destroys it at its stop
    sandboxes.forget_requests()
    assert stop_and_delete(sandboxes.client(), "x", WAITS)
    assert not any(e.startswith("DELETE") for e in sandboxes.log)


def test_a_409_during_a_state_change_is_waited_out(sandboxes: World) -> None:
    # Daytona's own answer to a delete while a start or stop is in flight: this stop takes a
    # second (httpd as PID 1 ignores SIGTERM until the engine kills it).
    sandboxes.settings(sandbox_stop_timeout_seconds=1)
    sid = sandboxes.add_sandbox("x", SNAPSHOT)["id"]
    with api_client(sandboxes.server) as http:
        assert http.post(f"/sandbox/{sid}/stop").json()["state"] == "stopping"
    assert stop_and_delete(sandboxes.client(), "x", WAITS)
    assert sandboxes.count(f"DELETE /sandbox/{sid}") >= 2 and listed(sandboxes) == []
    assert 409 in sandboxes.statuses("DELETE")


# --- running_sandbox ----------------------------------------------------------------------


def test_running_sandbox_removes_it_when_the_block_raises(sandboxes: World) -> None:
    api = sandboxes.client()

    def failing_test() -> None:
        # Never deleted by Daytona itself, so the DELETE below is running_sandbox's own.
        spec = SandboxSpec(
            snapshot=SNAPSHOT, env={"A": "1"}, labels={"suite": "e2e"}, auto_delete_interval=-1
        )
        with running_sandbox(api, spec, WAITS) as sb:
            assert sb.sandbox.state == "started"
            assert sb.sandbox.labels == {"suite": "e2e", CREATED_BY_LABEL: CREATED_BY}
            sb.exec("mkdir -p /var/log/app && echo 'log line' > /var/log/app/app.log")
            assert sb.logs() == "log line\n"
            assert sb.preview(3000).url.endswith(f"/{sb.sandbox.id}/3000")
            raise RuntimeError("test failed")

    with pytest.raises(RuntimeError, match="test failed"):
        failing_test()
    assert listed(sandboxes) == []
    assert sandboxes.count("POST /sandbox") == 1
    assert any(e.startswith("DELETE") for e in sandboxes.log)


def test_running_sandbox_removes_a_sandbox_that_failed_to_start(sandboxes: World) -> None:
    sandboxes.settings(sandbox_start_wait_seconds=0)  # the answer says `creating`; a wait follows
    sandboxes.server.knobs.add_sandbox_outcome(
        SandboxOutcome(snapshot_pattern=SNAPSHOT, outcome="error")
    )
    with (
        pytest.raises(DaytonaError, match="state error"),
        running_sandbox(sandboxes.client(), SandboxSpec(snapshot=SNAPSHOT), WAITS),
    ):
        pytest.fail("the block must not run")
    assert listed(sandboxes) == [] and any(e.startswith("DELETE") for e in sandboxes.log)


def test_running_sandbox_raises_a_teardown_failure_only_when_the_block_passed(
    sandboxes: World, capsys: pytest.CaptureFixture[str]
) -> None:
    api = sandboxes.client()

    def block(error: Exception | None) -> None:
        # Never deleted by Daytona itself: only running_sandbox's DELETE can remove it.
        with running_sandbox(api, SandboxSpec(snapshot=SNAPSHOT, auto_delete_interval=-1), WAITS):
            sandboxes.fault(kind="error", message="Sandbox is locked", count=None, method="DELETE")
            if error is not None:
                raise error

    with pytest.raises(DaytonaError, match="Sandbox is locked"):
        block(None)
    sandboxes.server.knobs.clear_faults()
    with pytest.raises(KeyError, match="the block's own error"):
        block(KeyError("the block's own error"))
    assert "could not remove sandbox" in capsys.readouterr().err


def test_snapshot_sandbox_exec_preview_delete(sandboxes: World) -> None:
    # The snapshot made through the pipeline, from a real pull.
    with sandboxes.client(clock=SYSTEM_CLOCK) as api:
        spec = SnapshotSpec(name="web-1", image=sandboxes.image, cpu=1, memory=1, disk=3)
        snapshot = ensure_snapshot(api, spec, timeout=30, interval=SANDBOX_POLL).snapshot.name
        wanted = SandboxSpec(snapshot, env={"GREETING": "hi there"}, labels={"suite": "client"})
        with running_sandbox(api, wanted, WAITS) as sb:
            assert sb.sandbox.state == "started" and sb.sandbox.snapshot == snapshot
            assert sb.sandbox.labels[CREATED_BY_LABEL] == CREATED_BY

            result = sb.exec('echo "$GREETING"; echo oops >&2; exit 3')
            assert (result.exit_status, result.result) == (3, "hi there\noops\n")

            sb.exec(
                "mkdir -p /var/log/app && echo 'service started on :3000' > /var/log/app/app.log"
            )
            assert "service started on :3000" in sb.logs()

            preview = sb.preview(3000)
            with httpx.Client(trust_env=False, timeout=10) as web:
                assert web.get(preview.url).status_code == 401  # private: token needed
                page = web.get(preview.url + "/", headers=preview_headers(preview))
            assert page.status_code == 200 and page.text == PAGE
            sandbox_id = sb.sandbox.id
        # Stopped, deleted, and waited for: Daytona answers 404 now.
        assert api.get_sandbox(sandbox_id) is None
        assert api.get_sandbox(sb.sandbox.name) is None


def test_a_sandbox_that_fails_to_start_ends_with_the_reason_and_leaves_nothing(
    sandboxes: World,
) -> None:
    sandboxes.server.knobs.add_sandbox_outcome(
        SandboxOutcome(snapshot_pattern=SNAPSHOT, outcome="error", reason="OCI runtime exec failed")
    )
    with sandboxes.client() as api:
        with (
            pytest.raises(DaytonaError) as caught,
            running_sandbox(api, SandboxSpec(SNAPSHOT, name="sbx-broken"), WAITS),
        ):
            pytest.fail("the block must not run")
        assert "OCI runtime exec failed" in str(caught.value) and "\n" not in str(caught.value)
        assert api.get_sandbox("sbx-broken") is None
        assert list(api.iter_sandboxes({CREATED_BY_LABEL: CREATED_BY})) == []


# --- the command -----------------------------------------------------------------------------


@pytest.fixture
def command_env(
    sandboxes: World, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[World, Path]:
    monkeypatch.setenv("DAYTONA_API_URL", sandboxes.server.base_url)
    monkeypatch.setenv("DAYTONA_API_KEY", EMULATOR_KEY)
    return sandboxes, clean_env


def test_up_starts_from_a_named_snapshot_prints_the_url_and_reports(
    command_env: tuple[World, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world, report = command_env
    world.add_snapshot("custom-snap")
    world.forget_requests()
    monkeypatch.setenv("DAYTONA_SNAPSHOT_NAME", "custom-snap")
    monkeypatch.setenv("DAYTONA_SANDBOX_AUTO_STOP", "15")
    argv = ["--name", "sbx-mine", "--port", "8080", "--public"]
    sandbox_daytona(argv, Seams(client=world.client(), interval=SANDBOX_POLL))
    out, err = capsys.readouterr()
    made = world.get("/sandbox/sbx-mine")
    assert made is not None and out == f"{world.server.root_url}/_preview/{made['id']}/8080\n"
    assert made["snapshot"] == "custom-snap" and made["autoStopInterval"] == 15
    assert made["public"] is True and made["autoDeleteInterval"] == 0
    assert f"GET /sandbox/{made['id']}/ports/8080/preview-url" in world.log
    assert "--down sbx-mine" in err
    section = json.loads(report.read_text())["sandbox"]
    assert section["name"] == "sbx-mine" and section["id"] == made["id"]
    assert section["preview_url"] == out.strip() and section["port"] == 8080
    assert "token" not in json.dumps(section)


def test_down_and_cleanup(
    command_env: tuple[World, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    world, report = command_env
    world.freeze()  # creation times that the cleanup's age rule can tell apart
    world.add_sandbox("theirs", SNAPSHOT, labels={"team": "app"})
    world.advance(3600)
    world.add_sandbox("old-1", SNAPSHOT)
    world.advance(3600)
    world.add_sandbox("old-2", SNAPSHOT, stop=True)
    world.advance(3540)
    world.add_sandbox("young", SNAPSHOT)
    world.advance(60)
    now = world.server.clock.now()
    world.forget_requests()

    def run(*argv: str) -> None:
        sandbox_daytona(
            list(argv), Seams(client=world.client(), interval=SANDBOX_POLL, now=lambda: now)
        )

    run("--cleanup", "--older-than", "60")
    err = capsys.readouterr().err
    assert "delete old-1" in err and "delete old-2" in err and "keep   young" in err
    assert "theirs" not in err and "pass --yes" in err
    assert not any(e.startswith(("DELETE", "POST")) for e in world.log)

    run("--cleanup", "--older-than", "60", "--yes")
    assert listed(world) == ["theirs", "young"]
    assert json.loads(report.read_text())["sandboxes_clean"]["deleted"] == ["old-1", "old-2"]

    run("--down", "young")
    assert listed(world) == ["theirs"]
    run("--down", "young")
    assert "no sandbox young: nothing to remove" in capsys.readouterr().err


def test_sandbox_daytona_end_to_end(
    command_env: tuple[World, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world, report = command_env
    monkeypatch.setenv("APP_STAGE", "prd")
    monkeypatch.setenv("GIT_SHA", "cd" * 20)
    with world.client(clock=SYSTEM_CLOCK) as api:
        for name in ("prd--20261123-110000", "prd--20261123-120001"):
            spec = SnapshotSpec(name=name, image=world.image, cpu=1, memory=1, disk=3)
            ensure_snapshot(api, spec, timeout=30, interval=SANDBOX_POLL)
    newest = "prd--20261123-120001"
    capsys.readouterr()

    # The session's own client, from the environment; newest snapshot of the stage.
    sandbox_daytona(["--name", "sbx-e2e", "--label", "pr=42"], Seams(interval=SANDBOX_POLL))
    out, err = capsys.readouterr()
    section = json.loads(report.read_text())["sandbox"]
    assert section["name"] == "sbx-e2e" and section["snapshot"] == newest
    assert out == section["preview_url"] + "\n"
    assert set(section) == {
        "name",
        "id",
        "snapshot",
        "state",
        "port",
        "preview_url",
        "public",
        "duration_s",
    }
    with world.client() as api:
        found = api.get_sandbox("sbx-e2e")
        assert found is not None and found.state == "started"
        assert found.labels == {"pr": "42", CREATED_BY_LABEL: CREATED_BY, GIT_SHA_LABEL: "cd" * 20}
        assert (found.auto_stop_interval, found.auto_delete_interval) == (60, 0)
        token = api.preview_url(found.id, 3000).token.get_secret_value()
    assert token not in out + err + report.read_text()
    assert EMULATOR_KEY not in out + err
    with httpx.Client(trust_env=False, timeout=10) as web:
        assert (
            web.get(section["preview_url"], headers={"X-Daytona-Preview-Token": token}).text == PAGE
        )

    # A second one, then the cleanup: the plan first, --yes deletes both.
    argv = ["--snapshot", "prd--20261123-110000", "--name", "sbx-e2e-2"]
    sandbox_daytona(argv, Seams(interval=SANDBOX_POLL))
    capsys.readouterr()
    sandbox_daytona(["--cleanup"], Seams(interval=SANDBOX_POLL))
    err = capsys.readouterr().err
    assert "delete sbx-e2e " in err and "delete sbx-e2e-2 " in err and "2 to delete" in err
    sandbox_daytona(["--down", "sbx-e2e"], Seams(interval=SANDBOX_POLL))
    with world.client() as api:
        assert api.get_sandbox("sbx-e2e") is None
        assert api.get_sandbox("sbx-e2e-2") is not None
    sandbox_daytona(["--cleanup", "--yes"], Seams(interval=SANDBOX_POLL))
    with world.client() as api:
        assert list(api.iter_sandboxes({CREATED_BY_LABEL: CREATED_BY})) == []
    assert json.loads(report.read_text())["sandboxes_clean"]["deleted"] == ["sbx-e2e-2"]


def test_the_command_fails_in_one_line_for_a_missing_snapshot(
    command_env: tuple[World, Path],
) -> None:
    with pytest.raises(PipelineError) as caught:
        sandbox_daytona(["--snapshot", "no-such-snapshot"], Seams(interval=SANDBOX_POLL))
    text = str(caught.value)
    assert "400 Snapshot no-such-snapshot not found" in text and "DAYTONA_SNAPSHOT_NAME" in text
    assert "\n" not in text
