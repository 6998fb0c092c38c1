"""Daytona sandboxes: the client's sandbox calls on `httpx.MockTransport` (paths, bodies,
retries, no blind POST retry, error mapping, key hygiene), the lifecycle rules, and what the
`sandbox_daytona` command decides before Daytona is asked. The lifecycles and the command
against Daytona's behaviour run on the emulator:
tests/integration/daytona/test_daytona_sandbox_emulator.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.daytona.client import DaytonaClient, StateChangeInProgress
from pipeline.daytona.sandboxes import (
    SandboxHandle,
    SandboxWaits,
    create_sandbox,
    preview_headers,
    stop_and_delete,
)
from pipeline.daytona.transport import OutcomeUnknown
from pipeline.errors import ConfigError, DaytonaAuthError, DaytonaError
from pipeline.rules.daytona_models import CreateSandbox, PortPreview, Sandbox
from pipeline.rules.sandbox_rules import (
    CREATED_BY,
    CREATED_BY_LABEL,
    GIT_SHA_LABEL,
    create_failure_fix,
    gone_verdict,
    new_sandbox_name,
    pipeline_labels,
    plan_cleanup,
    start_verdict,
)
from pipeline.rules.snapshot_names import Action
from pipeline.sessions.daytona_common import Seams
from pipeline.sessions.sandbox_daytona import sandbox_daytona
from pipeline.settings.build import load
from pipeline.settings.daytona import SandboxSettings
from tests.helpers.daytona_wire import (
    KEY,
    TOOLBOX,
    URL,
    Handler,
    clean_env,
    error_body,
    flaky,
    mock_client,
)
from tests.helpers.daytona_wire import sandbox_wire as wire

__all__ = ["clean_env"]  # a fixture, used by name


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


def test_get_stop_delete_paths() -> None:
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
    api.stop_sandbox("id-1")
    assert api.delete_sandbox("id-1") is True
    assert api.delete_sandbox("gone") is False
    assert seen == [
        "GET /api/sandbox/a%2Fb",  # one path segment, like the generated client
        "GET /api/sandbox/gone",
        "POST /api/sandbox/id-1/stop",
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
    assert SandboxHandle(api, sandbox).logs(lines=5) == "hi\n"
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
    ("state", "action"),
    [
        ("started", Action.DONE),
        ("creating", Action.WAIT),
        ("starting", Action.WAIT),
        ("pulling_snapshot", Action.WAIT),
        ("some_new_state", Action.WAIT),  # like the SDK: unknown is not final; the deadline ends it
        ("error", Action.FAIL),
        ("build_failed", Action.FAIL),
        ("destroying", Action.FAIL),
        ("stopped", Action.FAIL),
    ],
)
def test_start_verdicts(state: str, action: Action) -> None:
    assert start_verdict(sandbox(state=state)).action is action


def test_verdicts_for_missing_and_deleted_sandboxes() -> None:
    assert start_verdict(None).action is Action.FAIL
    assert gone_verdict(None).action is Action.DONE
    assert gone_verdict(sandbox(state="destroyed")).action is Action.DONE
    assert gone_verdict(sandbox(state="destroying")).action is Action.WAIT
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


def test_fixes() -> None:
    assert "DAYTONA_SNAPSHOT_NAME" in create_failure_fix(
        "Snapshot x not found. Did you add it through the Daytona Dashboard?"
    )
    assert "snapshot_daytona" in create_failure_fix("Snapshot x is inactive")
    assert "--cleanup" in create_failure_fix("Sandbox quota exceeded. Maximum allowed: 10")
    assert "entrypoint" in create_failure_fix("Sandbox failed to start: exited (0)")


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


def test_a_stop_that_ends_between_the_409_and_the_next_read_is_deleted_on_the_next_try() -> None:
    # Seen once in a full run: the 409 came while stopping, and by the read after it the stop had
    # ended ("stopped", settled). That is a reason to delete again, not to give up.
    stopping = httpx.Response(200, json=wire("x", "stopping", desiredState="stopped", id="i"))
    stopped = httpx.Response(200, json=wire("x", "stopped", desiredState="stopped", id="i"))
    gone = httpx.Response(404, json=error_body(404, "Sandbox x not found"))
    conflict = httpx.Response(409, json=error_body(409, "Sandbox state change in progress"))
    answers = {
        "GET": [stopping, stopping, stopped, gone],
        "DELETE": [conflict, httpx.Response(200)],
    }
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        """Each method's answers in turn, its last one repeated."""
        calls.append(request.method)
        left = answers[request.method]
        return left.pop(0) if len(left) > 1 else left[0]

    http = client(handler)
    assert stop_and_delete(http, "x", SandboxWaits(teardown_s=30, clock=http.clock)) is True
    assert calls.count("DELETE") == 2 and calls[-1] == "GET"


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
    seams = Seams(client=client(nothing))
    sandbox_daytona(["--dry-run", "--env", "SECRET_FOR_SANDBOX", "--label", "a=b"], seams)
    sandbox_daytona(["--dry-run", "--down", "sbx-1"], seams)
    sandbox_daytona(["--dry-run", "--cleanup", "--yes"], seams)
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
        sandbox_daytona([*argv, "--dry-run"], Seams(client=client(lambda _: httpx.Response(500))))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_up_without_any_snapshot_of_the_stage(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ITERATE_USER", "Jonas")

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/snapshots", request.url
        assert request.url.params["name"] == "dev-jonas--"
        return httpx.Response(200, json={"items": [], "total": 0, "page": 1, "totalPages": 0})

    with pytest.raises(DaytonaError, match="no active snapshot starts with 'dev-jonas--'"):
        sandbox_daytona([], Seams(client=client(handler)))


def test_preview_model_rejects_a_missing_token() -> None:
    with pytest.raises(ValueError, match="token"):
        PortPreview.model_validate({"sandboxId": "x", "url": "https://x"})
