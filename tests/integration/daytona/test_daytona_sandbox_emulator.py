"""Daytona sandboxes against the emulator with real containers: snapshot → sandbox → exec →
preview → delete, a failed start, and the `sandbox_daytona` command end to end."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from daytona_emulator import EmulatorServer
from daytona_emulator.knobs import SandboxOutcome
from pipeline.daytona.client import (
    DaytonaClient,
    RetryPolicy,
)
from pipeline.daytona.sandbox_lifecycle import (
    SandboxWaits,
)
from pipeline.daytona.sandboxes import (
    SandboxSpec,
    preview_headers,
    running_sandbox,
)
from pipeline.daytona.snapshots import PollPolicy, SnapshotSpec, ensure_snapshot
from pipeline.errors import (
    DaytonaError,
    PipelineError,
)
from pipeline.registry.server import LocalRegistry
from pipeline.rules.sandbox_rules import (
    CREATED_BY,
    CREATED_BY_LABEL,
    GIT_SHA_LABEL,
)
from pipeline.sessions.sandbox_daytona import sandbox_daytona
from tests.helpers.emulator import (
    EMULATOR_KEY,
    daytona_emulator_with_registry,
    push_busybox_image,
)
from tests.helpers.fake_daytona import clean_env
from tests.helpers.host_engine import TEST_IMAGE_NAMESPACE

__all__ = ["clean_env", "daytona_emulator_with_registry"]  # fixtures, used by name

PAGE = "hello from the sandbox daemon stand-in\n"
HTTPD = ["httpd", "-f", "-p", "3000", "-h", "/www"]
EMU_RETRY = RetryPolicy(attempts=4, timeout=20, wait_initial=0.01, wait_max=0.05, wait_jitter=0)
EMU_POLL = PollPolicy(initial=0.05, factor=1.5, maximum=0.3)


@dataclass
class Emulated:
    emulator: EmulatorServer
    registry: LocalRegistry

    def client(self) -> DaytonaClient:
        return DaytonaClient(self.emulator.base_url, SecretStr(EMULATOR_KEY), retry=EMU_RETRY)

    def snapshot(self, name: str) -> str:
        """An active snapshot of a busybox image that serves a page on port 3000."""
        image = push_busybox_image(
            self.registry,
            f"{TEST_IMAGE_NAMESPACE}sandbox-client/{uuid.uuid4().hex[:10]}",
            "v1",
            entrypoint=HTTPD,
            files={"www/index.html": PAGE},
        )
        with self.client() as api:
            spec = SnapshotSpec(name, image.reference, 1, 1, 3)
            ensure_snapshot(api, spec, timeout=30, poll=EMU_POLL)
        return name


@pytest.fixture
def emulated(
    engine: None,
    daytona_emulator_with_registry: EmulatorServer,
    registry: LocalRegistry,
) -> Emulated:
    server = daytona_emulator_with_registry
    server.knobs.timings.pending_seconds = 0.02
    server.knobs.timings.pulling_seconds = 0.02
    return Emulated(server, registry)


@pytest.mark.emulator
def test_snapshot_sandbox_exec_preview_delete(emulated: Emulated) -> None:
    snapshot = emulated.snapshot("web-1")
    with emulated.client() as api:
        spec = SandboxSpec(snapshot, env={"GREETING": "hi there"}, labels={"suite": "client"})
        with running_sandbox(api, spec, SandboxWaits(start_s=60, poll=EMU_POLL)) as sb:
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
            sandbox_id = sb.id
        # Stopped, deleted, and waited for: Daytona answers 404 now.
        assert api.get_sandbox(sandbox_id) is None
        assert api.get_sandbox(sb.name) is None


@pytest.mark.emulator
def test_a_sandbox_that_fails_to_start_ends_with_the_reason_and_leaves_nothing(
    emulated: Emulated,
) -> None:
    snapshot = emulated.snapshot("web-broken")
    emulated.emulator.knobs.add_sandbox_outcome(
        SandboxOutcome(snapshot_pattern=snapshot, outcome="error", reason="OCI runtime exec failed")
    )
    with emulated.client() as api:
        with (
            pytest.raises(DaytonaError) as caught,
            running_sandbox(
                api,
                SandboxSpec(snapshot, name="sbx-broken"),
                SandboxWaits(start_s=30, poll=EMU_POLL),
            ),
        ):
            pytest.fail("the block must not run")
        assert "OCI runtime exec failed" in str(caught.value) and "\n" not in str(caught.value)
        assert api.get_sandbox("sbx-broken") is None
        assert list(api.iter_sandboxes({CREATED_BY_LABEL: CREATED_BY})) == []


@pytest.mark.emulator
def test_sandbox_daytona_end_to_end(
    emulated: Emulated,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DAYTONA_API_URL", emulated.emulator.base_url)
    monkeypatch.setenv("DAYTONA_API_KEY", EMULATOR_KEY)
    monkeypatch.setenv("APP_STAGE", "prd")
    monkeypatch.setenv("GIT_SHA", "cd" * 20)
    emulated.snapshot("prd--20261123-110000")
    newest = emulated.snapshot("prd--20261123-120000")
    capsys.readouterr()

    # The session's own client, from the environment; newest snapshot of the stage.
    sandbox_daytona(["--name", "sbx-e2e", "--label", "pr=42"], poll=EMU_POLL)
    out, err = capsys.readouterr()
    section = json.loads(clean_env.read_text())["sandbox"]
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
    with emulated.client() as api:
        found = api.get_sandbox("sbx-e2e")
        assert found is not None and found.state == "started"
        assert found.labels == {"pr": "42", CREATED_BY_LABEL: CREATED_BY, GIT_SHA_LABEL: "cd" * 20}
        assert (found.auto_stop_interval, found.auto_delete_interval) == (60, 0)
        token = api.preview_url(found.id, 3000).token.get_secret_value()
    assert token not in out + err + clean_env.read_text()
    assert EMULATOR_KEY not in out + err
    with httpx.Client(trust_env=False, timeout=10) as web:
        assert (
            web.get(section["preview_url"], headers={"X-Daytona-Preview-Token": token}).text == PAGE
        )

    # A second one, then the cleanup: the plan first, --yes deletes both.
    sandbox_daytona(["--snapshot", "prd--20261123-110000", "--name", "sbx-e2e-2"], poll=EMU_POLL)
    capsys.readouterr()
    sandbox_daytona(["--cleanup"], poll=EMU_POLL)
    err = capsys.readouterr().err
    assert "delete sbx-e2e " in err and "delete sbx-e2e-2 " in err and "2 to delete" in err
    sandbox_daytona(["--down", "sbx-e2e"], poll=EMU_POLL)
    with emulated.client() as api:
        assert api.get_sandbox("sbx-e2e") is None
        assert api.get_sandbox("sbx-e2e-2") is not None
    sandbox_daytona(["--cleanup", "--yes"], poll=EMU_POLL)
    with emulated.client() as api:
        assert list(api.iter_sandboxes({CREATED_BY_LABEL: CREATED_BY})) == []
    assert json.loads(clean_env.read_text())["sandboxes_clean"]["deleted"] == ["sbx-e2e-2"]


@pytest.mark.emulator
def test_the_command_fails_in_one_line_for_a_missing_snapshot(
    emulated: Emulated, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAYTONA_API_URL", emulated.emulator.base_url)
    monkeypatch.setenv("DAYTONA_API_KEY", EMULATOR_KEY)
    with pytest.raises(PipelineError) as caught:
        sandbox_daytona(["--snapshot", "no-such-snapshot"], poll=EMU_POLL)
    text = str(caught.value)
    assert "400 Snapshot no-such-snapshot not found" in text and "DAYTONA_SNAPSHOT_NAME" in text
    assert "\n" not in text
