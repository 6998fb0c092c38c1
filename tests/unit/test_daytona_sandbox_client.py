"""Daytona sandboxes: the client's sandbox calls on `httpx.MockTransport` (paths, bodies,
retries, no blind POST retry, error mapping, key hygiene), the lifecycle rules and waits on an
in-memory fake, and the `sandbox_daytona` command (the emulator runs are in
tests/integration/daytona/test_daytona_sandbox_emulator.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.daytona.client import (
    DaytonaClient,
    OutcomeUnknown,
    StateChangeInProgress,
)
from pipeline.daytona.sandbox_lifecycle import (
    NameTaken,
    SandboxWaits,
    create_sandbox,
    launch_sandbox,
    stop_and_delete,
    wait_started,
)
from pipeline.daytona.sandboxes import (
    SandboxSpec,
    preview_headers,
    running_sandbox,
    service_logs,
)
from pipeline.daytona.snapshots import PollPolicy
from pipeline.errors import (
    ConfigError,
    DaytonaAuthError,
    DaytonaError,
    DeadlineExceeded,
)
from pipeline.rules.daytona_models import CreateSandbox, PortPreview, Sandbox
from pipeline.rules.sandbox_rules import (
    CREATED_BY,
    CREATED_BY_LABEL,
    GIT_SHA_LABEL,
    Step,
    create_failure_fix,
    gone_verdict,
    log_details,
    new_sandbox_name,
    pipeline_labels,
    plan_cleanup,
    start_verdict,
)
from pipeline.sessions.sandbox_daytona import sandbox_daytona
from pipeline.settings.build import load
from pipeline.settings.daytona import SandboxSettings
from pipeline.waiting import FakeClock
from tests.helpers.fake_daytona import (
    KEY,
    TOOLBOX,
    URL,
    FakeDaytona,
    Handler,
    clean_env,
    error_body,
    flaky,
    mock_client,
)
from tests.helpers.fake_daytona import sandbox_wire as wire

__all__ = ["clean_env"]  # a fixture, used by name

POLL = PollPolicy(initial=0.001, factor=1.5, maximum=0.005)
WAITS = SandboxWaits(start_s=5, poll=POLL)


def client(handler: Handler, org: str | None = None) -> DaytonaClient:
    return mock_client(handler, org)


def request_for(name: str = "sbx-1", **extra: Any) -> CreateSandbox:
    return CreateSandbox(
        snapshot="prd--20261123-120000",
        name=name,
        env=extra.pop("env", {"GREETING": "hello"}),
        labels=pipeline_labels({"team": "ci"}),
        auto_stop_interval=60,
        auto_delete_interval=0,
        **extra,
    )


# --- requests -------------------------------------------------------------------------------


def test_create_sends_daytonas_fields() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=wire("sbx-1", "creating"))

    sandbox = client(handler).create_sandbox(request_for(public=True))
    assert sandbox.state == "creating" and sandbox.toolbox_proxy_url == TOOLBOX
    request = seen[0]
    assert (request.method, request.url.path) == ("POST", "/api/sandbox")
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["X-Daytona-Source"] == "sandbox-pipeline"
    assert json.loads(request.content) == {
        "snapshot": "prd--20261123-120000",
        "name": "sbx-1",
        "env": {"GREETING": "hello"},  # Daytona's field; the SDK's parameter is env_vars
        "labels": {"team": "ci", CREATED_BY_LABEL: CREATED_BY},
        "public": True,
        "autoStopInterval": 60,
        "autoDeleteInterval": 0,
    }
    # Daytona answers POST /sandbox only once the sandbox started (or 30 s passed).
    assert request.extensions["timeout"]["read"] >= 60


def test_get_start_stop_delete_paths() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.raw_path.decode()}")
        if "gone" in request.url.path:
            return httpx.Response(
                404, json=error_body(404, "Sandbox with ID or name gone not found")
            )
        return httpx.Response(200, json=wire("a/b"))

    api = client(handler)
    assert api.get_sandbox("a/b") is not None
    assert api.get_sandbox("gone") is None
    api.start_sandbox("id-1")
    api.stop_sandbox("id-1")
    api.stop_sandbox("id-1", force=True)
    assert api.delete_sandbox("id-1") is True
    assert api.delete_sandbox("gone") is False
    assert seen == [
        "GET /api/sandbox/a%2Fb",  # one path segment, like the generated client
        "GET /api/sandbox/gone",
        "POST /api/sandbox/id-1/start",
        "POST /api/sandbox/id-1/stop",
        "POST /api/sandbox/id-1/stop?force=true",
        "DELETE /api/sandbox/id-1",
        "DELETE /api/sandbox/gone",
    ]


def test_list_filters_by_labels_and_follows_the_cursor() -> None:
    seen: list[httpx.QueryParams] = []
    pages = {None: ([wire("a"), wire("b")], "2"), "2": ([wire("c")], None)}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params)
        items, cursor = pages[request.url.params.get("cursor")]
        return httpx.Response(200, json={"items": items, "nextCursor": cursor})

    found = list(client(handler).iter_sandboxes({CREATED_BY_LABEL: CREATED_BY}, limit=2))
    assert [s.name for s in found] == ["a", "b", "c"]
    assert json.loads(seen[0]["labels"]) == {CREATED_BY_LABEL: CREATED_BY}
    assert seen[0]["limit"] == "2" and "cursor" not in seen[0] and seen[1]["cursor"] == "2"


def test_list_accepts_the_older_bare_array() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[wire("a"), wire("b")])

    assert [s.name for s in client(handler).iter_sandboxes()] == ["a", "b"]


def test_preview_url_and_its_token_stay_secret() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/sandbox/id-1/ports/3000/preview-url"
        return httpx.Response(
            200, json={"sandboxId": "id-1", "url": "https://3000-id-1.proxy.test", "token": "tok3n"}
        )

    preview = client(handler).preview_url("id-1", 3000)
    assert preview.url == "https://3000-id-1.proxy.test"
    assert preview_headers(preview) == {"X-Daytona-Preview-Token": "tok3n"}
    assert "tok3n" not in repr(preview) and "tok3n" not in str(preview.model_dump())


def test_execute_goes_to_the_toolbox_like_the_sdk() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"exitCode": 3, "result": "out\nerr\n"})

    result = client(handler).execute(
        TOOLBOX + "/", "id-1", "ls /nope", cwd="/tmp", env={"A": "1"}, timeout=20
    )
    assert (result.exit_status, result.result) == (3, "out\nerr\n")
    request = seen[0]
    assert str(request.url) == f"{TOOLBOX}/id-1/process/execute"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert json.loads(request.content) == {
        "command": "ls /nope",
        "timeout": 20,
        "cwd": "/tmp",
        "envs": {"A": "1"},
    }
    assert request.extensions["timeout"]["read"] > 20  # the command's own timeout, plus margin


def test_execute_asks_for_the_toolbox_url_when_the_sandbox_has_none() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path.endswith("/toolbox-proxy-url"):
            return httpx.Response(200, json={"url": TOOLBOX})
        return httpx.Response(200, json={"code": 0, "result": "hi\n"})  # older daemons: `code`

    api = client(handler)
    sandbox = Sandbox.model_validate(wire("x", id="id-1", toolboxProxyUrl=""))
    assert service_logs(api, sandbox, lines=5) == "hi\n"
    assert seen == [f"{URL}/sandbox/id-1/toolbox-proxy-url", f"{TOOLBOX}/id-1/process/execute"]


def test_execute_refuses_a_toolbox_url_that_is_not_http() -> None:
    api = client(lambda _: httpx.Response(500))
    with pytest.raises(DaytonaError, match="no usable toolbox URL"):
        api.execute("file:///etc", "id-1", "true")


# --- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(503, json=error_body(503, "down")),
        httpx.Response(429, headers={"Retry-After": "0"}, json=error_body(429, "slow down")),
        httpx.ReadTimeout("read timed out"),
    ],
)
def test_reads_are_retried(failure: httpx.Response | Exception) -> None:
    handler, calls = flaky([failure, failure], httpx.Response(200, json=wire("x")))
    assert client(handler).get_sandbox("x") is not None
    assert len(calls) == 3


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json=error_body(500, "An unexpected error occurred.")),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
    ],
)
def test_create_and_exec_are_never_blindly_retried(failure: httpx.Response | Exception) -> None:
    handler, calls = flaky([failure] * 3, httpx.Response(200, json=wire("x")))
    api = client(handler)
    with pytest.raises(OutcomeUnknown):
        api.create_sandbox(request_for())
    with pytest.raises(OutcomeUnknown):
        api.execute(TOOLBOX, "id-1", "rm -rf /tmp/once")
    assert calls == ["POST /api/sandbox", "POST /toolbox/id-1/process/execute"]


def test_a_create_that_never_reached_daytona_is_sent_again() -> None:
    handler, calls = flaky([httpx.ConnectError("refused")], httpx.Response(200, json=wire("x")))
    client(handler).create_sandbox(request_for())
    assert calls == ["POST /api/sandbox"] * 2


# --- errors and secrets ---------------------------------------------------------------------


def test_403_names_the_sandbox_permissions() -> None:
    handler, _ = flaky([], httpx.Response(403, json=error_body(403, "Access denied")))
    with pytest.raises(DaytonaAuthError) as caught:
        client(handler).create_sandbox(request_for())
    text = str(caught.value)
    assert "403 Access denied" in text and "write:sandboxes" in text
    assert "write:snapshots" not in text and "\n" not in text


def test_the_key_and_env_values_never_show(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    secret_env = "env-" + "v4lue" * 6
    echo = httpx.Response(401, json=error_body(401, f"bad token Bearer {KEY}"))
    handler, _ = flaky([httpx.Response(503, text=f"upstream said {KEY}")], echo)
    api = client(handler)
    request = request_for(env={"TOKEN": secret_env})
    with caplog.at_level("DEBUG"), pytest.raises(DaytonaAuthError) as caught:
        create_sandbox(api, request)
    shown = [
        str(caught.value),
        repr(caught.value),
        repr(request),
        str(request),
        repr(api),
        caplog.text,
        *capsys.readouterr(),
    ]
    for text in shown:
        assert KEY not in text and secret_env not in text
    assert "***" in str(caught.value)


# --- the rules --------------------------------------------------------------------------------


def sandbox(name: str = "x", state: str = "started", **extra: Any) -> Sandbox:
    return Sandbox.model_validate(wire(name, state, **extra))


@pytest.mark.parametrize(
    ("state", "step"),
    [
        ("started", Step.DONE),
        ("creating", Step.WAIT),
        ("starting", Step.WAIT),
        ("pulling_snapshot", Step.WAIT),
        ("some_new_state", Step.WAIT),  # like the SDK: unknown is not final; the deadline ends it
        ("error", Step.FAIL),
        ("build_failed", Step.FAIL),
        ("destroying", Step.FAIL),
        ("stopped", Step.FAIL),
    ],
)
def test_start_verdicts(state: str, step: Step) -> None:
    assert start_verdict(sandbox(state=state)).step is step


def test_verdicts_for_missing_and_deleted_sandboxes() -> None:
    assert start_verdict(None).step is Step.FAIL
    assert gone_verdict(None).step is Step.DONE
    assert gone_verdict(sandbox(state="destroyed")).step is Step.DONE
    assert gone_verdict(sandbox(state="destroying")).step is Step.WAIT
    failed = sandbox(state="error", desiredState="destroyed", errorReason="disk\nbusy")
    assert gone_verdict(failed).why == "deleting it failed: disk busy"


def test_labels_and_names() -> None:
    labels = pipeline_labels({"team": "ci", CREATED_BY_LABEL: "someone"}, git_sha="ab" * 20)
    assert labels == {"team": "ci", CREATED_BY_LABEL: CREATED_BY, GIT_SHA_LABEL: "ab" * 20}
    when = datetime(2026, 11, 23, 12, 0, 5, tzinfo=UTC)
    assert new_sandbox_name(when, "a1b2c3") == "sbx-20261123-120005-a1b2c3"
    with pytest.raises(ValueError, match="aware"):
        new_sandbox_name(datetime(2026, 1, 1), "x")


def test_cleanup_plan_takes_only_ours_and_old_enough() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    old = sandbox("old", createdAt="2026-11-23T09:00:00.000Z")
    young = sandbox("young", createdAt="2026-11-23T11:50:00.000Z")
    unknown_age = sandbox("unknown", createdAt=None)
    foreign = sandbox("foreign", labels={"team": "app"})
    leaving = sandbox("leaving", "destroying")
    items = [young, foreign, old, leaving, unknown_age]
    plan = plan_cleanup(items, now=now, older_than=timedelta(hours=1))
    assert [s.name for s in plan.to_delete] == ["old"]
    assert sorted(s.name for s in plan.kept) == ["unknown", "young"]
    assert "1 to delete, 2 kept" in plan.describe()[-1]
    everything = plan_cleanup(items, now=now, older_than=timedelta(0))
    assert sorted(s.name for s in everything.to_delete) == ["old", "unknown", "young"]


def test_fixes_and_log_details() -> None:
    assert "DAYTONA_SNAPSHOT_NAME" in create_failure_fix(
        "Snapshot x not found. Did you add it through the Daytona Dashboard?"
    )
    assert "snapshot_daytona" in create_failure_fix("Snapshot x is inactive")
    assert "--cleanup" in create_failure_fix("Sandbox quota exceeded. Maximum allowed: 10")
    assert "entrypoint" in create_failure_fix("Sandbox failed to start: exited (0)")
    assert log_details("a\n\n  b  \nc\n", max_lines=2) == ("  b", "c")


# --- the lifecycle on an in-memory fake -----------------------------------------------------


def test_create_after_a_lost_answer_looks_the_name_up_first() -> None:
    fake = FakeDaytona()

    def create_then_drop(request: httpx.Request) -> httpx.Response:
        fake.handle(request)  # the server did create it...
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    fake.fail_next = [create_then_drop]
    created = create_sandbox(fake.client(), request_for())
    assert created.name == "sbx-1"
    assert fake.log == ["POST /sandbox", "GET /sandbox/sbx-1"]


def test_create_after_a_5xx_that_did_nothing_posts_once_more() -> None:
    fake = FakeDaytona()
    fake.fail_next = [lambda _: httpx.Response(500, json=error_body(500, "oops"))]
    create_sandbox(fake.client(), request_for())
    assert fake.log == ["POST /sandbox", "GET /sandbox/sbx-1", "POST /sandbox"]


def test_a_taken_name_is_an_error_and_the_other_sandbox_is_left_alone() -> None:
    fake = FakeDaytona()
    fake.add_sandbox("sbx-1", ["started"], labels={"team": "someone-else"})
    with pytest.raises(NameTaken) as caught:
        launch_sandbox(fake.client(), request_for(), WAITS)
    assert "--down sbx-1" in str(caught.value)
    assert fake.count("POST /sandbox") == 1
    assert not any(e.startswith(("DELETE", "POST /sandbox/")) for e in fake.log)


def test_a_400_on_create_names_the_fix() -> None:
    refused = httpx.Response(
        400,
        json=error_body(
            400, "Snapshot nope not found. Did you add it through the Daytona Dashboard?"
        ),
    )
    fake = FakeDaytona(fail_next=[lambda _: refused])
    with pytest.raises(DaytonaError) as caught:
        create_sandbox(fake.client(), request_for())
    text = str(caught.value)
    assert (
        "Daytona answered 400 Snapshot nope not found" in text and "DAYTONA_SNAPSHOT_NAME" in text
    )
    assert fake.count("POST /sandbox") == 1


def test_wait_started_follows_the_states(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeDaytona()
    row = fake.add_sandbox("x", ["creating", "starting", "started"])
    started = wait_started(fake.client(), Sandbox.model_validate(row), WAITS)
    assert started.state == "started"
    assert "creating → starting" in capsys.readouterr().err


def test_an_error_state_ends_the_wait_with_the_reason() -> None:
    fake = FakeDaytona()
    row = fake.add_sandbox("x", ["creating", "error"])
    with pytest.raises(DaytonaError) as caught:
        wait_started(fake.client(), Sandbox.model_validate(row), WAITS)
    text = str(caught.value)
    assert "sandbox x: it is in state error: Failed to start sandbox container: exit code 1" in text
    assert "entrypoint" in text and "\n" not in text


def test_the_deadline_is_one_line_and_sleeps_are_bounded_by_it() -> None:
    fake = FakeDaytona()
    row = fake.add_sandbox("x", ["creating"] * 1000)
    clock = FakeClock()
    slow = SandboxWaits(start_s=20, poll=PollPolicy(initial=1, factor=2, maximum=8), clock=clock)
    with pytest.raises(DeadlineExceeded) as caught:
        wait_started(fake.client(), Sandbox.model_validate(row), slow)
    assert clock.sleeps == [1, 2, 4, 8, 5]  # backoff, and the last pause stops at the deadline
    text = str(caught.value)
    assert text.startswith(f"sandbox x ({row['id']}) is still creating after 20 s")
    assert "DAYTONA_SANDBOX_TIMEOUT" in text and "--down x" in text and "\n" not in text


def test_stop_and_delete_stops_deletes_and_waits_for_404() -> None:
    fake = FakeDaytona()
    row = fake.add_sandbox("x", ["started"])
    assert stop_and_delete(fake.client(), "x", WAITS) is True
    sid = row["id"]
    assert fake.log[0] == "GET /sandbox/x"
    assert [e for e in fake.log if not e.startswith("GET")] == [
        f"POST /sandbox/{sid}/stop",
        f"DELETE /sandbox/{sid}",
    ]
    assert fake.log[-1] == f"GET /sandbox/{sid}" and fake.sandbox(sid) is None
    assert stop_and_delete(fake.client(), "x", WAITS) is False  # nothing left: no error


def test_an_ephemeral_sandbox_is_gone_after_its_stop_without_delete() -> None:
    fake = FakeDaytona()
    row = fake.add_sandbox("x", ["started"])

    def stop_destroys(request: httpx.Request) -> httpx.Response | None:
        if not request.url.path.endswith("/stop"):
            return None
        row["state"], row["desiredState"] = "destroying", "destroyed"
        fake.script[row["id"]] = ["GONE"]
        return httpx.Response(200, json=row)

    fake.fail_next = [lambda _: None, stop_destroys]
    assert stop_and_delete(fake.client(), "x", WAITS)
    assert not any(e.startswith("DELETE") for e in fake.log)


def test_a_delete_refused_during_a_state_change_is_tried_again() -> None:
    fake = FakeDaytona(refuse_delete_while_settling=400)
    fake.add_sandbox("x", ["starting", "starting", "starting", "started"])
    assert stop_and_delete(fake.client(), "x", WAITS)
    assert fake.count(f"DELETE /sandbox/{next(iter(fake.script))}") >= 2


def test_a_409_during_a_state_change_is_waited_out() -> None:
    # Daytona's own answer to a delete while a start or stop is in flight.
    fake = FakeDaytona(refuse_delete_while_settling=409)
    row = fake.add_sandbox("x", ["starting", "starting", "starting", "started"])
    assert stop_and_delete(fake.client(), "x", WAITS)
    assert fake.count(f"DELETE /sandbox/{row['id']}") >= 2 and fake.sandbox("x") is None


@pytest.mark.parametrize(
    "after",
    [
        httpx.Response(200, json=wire("x", "destroying", desiredState="destroyed")),
        httpx.Response(404, json=error_body(404, "Sandbox x not found")),  # renamed DESTROYED_x_…
    ],
)
def test_a_409_on_delete_of_a_sandbox_on_its_way_out_is_success(after: httpx.Response) -> None:
    # A repeated DELETE (our own retry after a lost answer) gets 409 from Daytona.
    conflict = httpx.Response(409, json=error_body(409, "Sandbox state change in progress"))
    handler, calls = flaky([conflict], after)
    assert client(handler).delete_sandbox("x") is True
    assert calls == ["DELETE /api/sandbox/x", "GET /api/sandbox/x"]


def test_a_409_on_delete_of_a_sandbox_still_changing_is_an_error() -> None:
    conflict = httpx.Response(409, json=error_body(409, "Sandbox state change in progress"))
    handler, _ = flaky([conflict], httpx.Response(200, json=wire("x", "starting")))
    with pytest.raises(StateChangeInProgress) as caught:
        client(handler).delete_sandbox("x")
    assert "409 Sandbox state change in progress" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_running_sandbox_removes_it_when_the_block_raises() -> None:
    fake = FakeDaytona()
    api = fake.client()

    def failing_test() -> None:
        spec = SandboxSpec(snapshot="prd--1", env={"A": "1"}, labels={"suite": "e2e"})
        with running_sandbox(api, spec, WAITS) as sb:
            assert sb.sandbox.state == "started"
            assert sb.sandbox.labels == {"suite": "e2e", CREATED_BY_LABEL: CREATED_BY}
            assert sb.logs() == "log line\n"
            assert sb.preview(3000).url.startswith("https://3000-")
            raise RuntimeError("test failed")

    with pytest.raises(RuntimeError, match="test failed"):
        failing_test()
    assert fake.sandboxes == {}
    assert fake.count("POST /sandbox") == 1
    assert any(e.startswith("DELETE") for e in fake.log)


def test_running_sandbox_removes_a_sandbox_that_failed_to_start() -> None:
    fake = FakeDaytona(start_states=["creating", "error"])
    with (
        pytest.raises(DaytonaError, match="state error"),
        running_sandbox(fake.client(), SandboxSpec(snapshot="prd--1"), WAITS),
    ):
        pytest.fail("the block must not run")
    assert fake.sandboxes == {} and any(e.startswith("DELETE") for e in fake.log)


def test_running_sandbox_raises_a_teardown_failure_only_when_the_block_passed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = FakeDaytona()
    locked = httpx.Response(400, json=error_body(400, "Sandbox is locked"))

    def refuse_delete(request: httpx.Request) -> httpx.Response | None:
        return locked if request.method == "DELETE" else None

    api = fake.client()

    def block(error: Exception | None) -> None:
        with running_sandbox(api, SandboxSpec(snapshot="prd--1"), WAITS):
            fake.fail_next = [refuse_delete] * 20
            if error is not None:
                raise error

    with pytest.raises(DaytonaError, match="Sandbox is locked"):
        block(None)
    fake.fail_next = []
    with pytest.raises(KeyError, match="the block's own error"):
        block(KeyError("the block's own error"))
    assert "could not remove sandbox" in capsys.readouterr().err


# --- the command (MockTransport) ------------------------------------------------------------


def test_settings_defaults(clean_env: Path) -> None:
    settings = load(SandboxSettings)
    assert (settings.snapshot, settings.timeout) == (None, 300)
    assert (settings.auto_stop, settings.auto_delete) == (60, 0)


def test_dry_run_touches_nothing(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def nothing(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"dry run sent {request.method} {request.url}")

    monkeypatch.setenv("APP_STAGE", "prd")
    monkeypatch.setenv("SECRET_FOR_SANDBOX", "do-not-print")
    api = client(nothing)
    sandbox_daytona(["--dry-run", "--env", "SECRET_FOR_SANDBOX", "--label", "a=b"], client=api)
    sandbox_daytona(["--dry-run", "--down", "sbx-1"], client=api)
    sandbox_daytona(["--dry-run", "--cleanup", "--yes"], client=api)
    err = capsys.readouterr().err
    assert "the newest active one starting with 'prd--' (stage from APP_STAGE)" in err
    assert "env:        SECRET_FOR_SANDBOX" in err and "do-not-print" not in err
    assert "a=b" in err and f"{CREATED_BY_LABEL}={CREATED_BY}" in err
    assert "would stop sandbox sbx-1" in err and "would list sandboxes labelled" in err
    assert not clean_env.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--yes"], "--yes only applies to --cleanup"),
        (["--port", "70000"], "--port: must be a TCP port"),
        (["--down", "x", "--cleanup"], "not allowed with argument"),
        (["--env", "NOT_SET_ANYWHERE_123"], "NOT_SET_ANYWHERE_123 is not set here"),
        (["--label", "novalue"], "'novalue' is not KEY=VALUE"),
        (["--auto-delete", "-2"], "must be -1 (never)"),
        (["--snapshot", "s", "--name", "Bad/Name"], "--name 'Bad/Name' is not valid"),
        ([], "no stage for the snapshot name"),
    ],
)
def test_bad_options_are_one_config_error(clean_env: Path, argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        sandbox_daytona([*argv, "--dry-run"], client=client(lambda _: httpx.Response(500)))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_up_starts_from_a_named_snapshot_prints_the_url_and_reports(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DAYTONA_SNAPSHOT_NAME", "custom-snap")
    monkeypatch.setenv("DAYTONA_SANDBOX_AUTO_STOP", "15")
    fake = FakeDaytona()
    posted: list[dict[str, Any]] = []

    def record(request: httpx.Request) -> None:
        if request.method == "POST" and request.url.path == "/api/sandbox":
            posted.append(json.loads(request.content))

    fake.fail_next = [lambda r: record(r)] * 10
    sandbox_daytona(
        ["--name", "sbx-mine", "--port", "8080", "--public"], client=fake.client(), poll=POLL
    )
    out, err = capsys.readouterr()
    row = fake.sandbox("sbx-mine")
    assert row is not None and out == f"https://3000-{row['id']}.p\n"
    assert posted[0]["snapshot"] == "custom-snap" and posted[0]["autoStopInterval"] == 15
    assert posted[0]["public"] is True and posted[0]["autoDeleteInterval"] == 0
    assert f"GET /sandbox/{row['id']}/ports/8080/preview-url" in fake.log
    assert "--down sbx-mine" in err
    section = json.loads(clean_env.read_text())["sandbox"]
    assert section["name"] == "sbx-mine" and section["id"] == row["id"]
    assert section["preview_url"] == out.strip() and section["port"] == 8080
    assert "token" not in json.dumps(section)


def test_up_without_any_snapshot_of_the_stage(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ITERATE_USER", "Jonas")

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/snapshots", request.url
        assert request.url.params["name"] == "dev-jonas--"
        return httpx.Response(200, json={"items": [], "total": 0, "page": 1, "totalPages": 0})

    with pytest.raises(DaytonaError, match="no active snapshot starts with 'dev-jonas--'"):
        sandbox_daytona([], client=client(handler))


def test_down_and_cleanup(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeDaytona()
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    fake.add_sandbox("old-1", ["started"], createdAt="2026-11-23T09:00:00.000Z")
    fake.add_sandbox("old-2", ["stopped"], createdAt="2026-11-23T10:00:00.000Z")
    fake.add_sandbox("young", ["started"], createdAt="2026-11-23T11:59:00.000Z")
    fake.add_sandbox(
        "theirs", ["started"], labels={"team": "app"}, createdAt="2026-11-22T00:00:00.000Z"
    )

    def list_by_label(request: httpx.Request) -> httpx.Response | None:
        if request.method != "GET" or request.url.path != "/api/sandbox":
            return None
        wanted = json.loads(request.url.params["labels"])
        items = [r for r in fake.sandboxes.values() if wanted.items() <= r["labels"].items()]
        return httpx.Response(200, json={"items": items, "nextCursor": None})

    api = fake.client()
    fake.fail_next = [list_by_label]
    sandbox_daytona(["--cleanup", "--older-than", "60"], client=api, poll=POLL, now=lambda: now)
    err = capsys.readouterr().err
    assert "delete old-1" in err and "delete old-2" in err and "keep   young" in err
    assert "theirs" not in err and "pass --yes" in err
    assert not any(e.startswith(("DELETE", "POST")) for e in fake.log)

    fake.fail_next = [list_by_label]
    sandbox_daytona(
        ["--cleanup", "--older-than", "60", "--yes"], client=api, poll=POLL, now=lambda: now
    )
    assert sorted(r["name"] for r in fake.sandboxes.values()) == ["theirs", "young"]
    assert json.loads(clean_env.read_text())["sandboxes_clean"]["deleted"] == ["old-1", "old-2"]

    sandbox_daytona(["--down", "young"], client=api, poll=POLL)
    assert [r["name"] for r in fake.sandboxes.values()] == ["theirs"]
    sandbox_daytona(["--down", "young"], client=api, poll=POLL)
    assert "no sandbox young: nothing to remove" in capsys.readouterr().err


def test_preview_model_rejects_a_missing_token() -> None:
    with pytest.raises(ValueError, match="token"):
        PortPreview.model_validate({"sandboxId": "x", "url": "https://x"})
