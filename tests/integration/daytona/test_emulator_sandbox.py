"""Sandboxes on the real engine, driven by Daytona's own Python SDK (0.226.1).

Each test pushes a runnable busybox image to the local registry, registers it as a snapshot,
and creates sandboxes from it: real containers, a real `docker exec` behind
`sandbox.process.exec`, a real HTTP server behind the preview URL. The fixture's reset removes
every container the emulator made, also when a test fails; the teardown below checks that.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from daytona import (
    CreateSandboxFromSnapshotParams,
    Daytona,
    DaytonaConfig,
    Sandbox,
    SandboxState,
)
from daytona.common.errors import DaytonaBadRequestError, DaytonaTimeoutError
from python_on_whales import DockerClient
from python_on_whales.exceptions import NoSuchContainer

from daytona_emulator.config import EmulatorConfig, Timings
from daytona_emulator.sandbox_runtime import INSTANCE_LABEL, SANDBOX_LABEL
from daytona_emulator.server import EmulatorServer
from pipeline.registry.server import LocalRegistry
from tests.helpers.emulator import (
    admin_client,
    api_client,
    daytona_emulator,
    daytona_emulator_with_registry,
    push_busybox_image,
    set_registry_entry,
    wait_for_state,
)
from tests.helpers.host_engine import TEST_IMAGE_NAMESPACE

__all__ = ["daytona_emulator", "daytona_emulator_with_registry"]  # fixtures, found by name

pytestmark = [
    pytest.mark.emulator,
    pytest.mark.filterwarnings("ignore:Polling-only mode:DeprecationWarning"),
]

PAGE = "hello from inside the sandbox\n"
HTTPD = ["httpd", "-f", "-p", "3000", "-h", "/www"]
DOCKER = DockerClient()


def own_containers(emulator: EmulatorServer) -> list[str]:
    label = f"{INSTANCE_LABEL}={emulator.state.runtime.instance_id}"
    return [str(c.id) for c in DOCKER.container.list(all=True, filters=[("label", label)])]


@pytest.fixture
def emulator(
    engine: None, daytona_emulator_with_registry: EmulatorServer
) -> Iterator[EmulatorServer]:
    server = daytona_emulator_with_registry
    server.knobs.timings.pending_seconds = 0.02
    server.knobs.timings.pulling_seconds = 0.02
    yield server
    server.reset()
    assert own_containers(server) == []


def active_snapshot(
    emulator: EmulatorServer,
    registry: LocalRegistry,
    name: str,
    entrypoint: list[str] | None = None,
) -> None:
    image = push_busybox_image(
        registry,
        f"{TEST_IMAGE_NAMESPACE}emulator/{name}",
        "v1",
        entrypoint=entrypoint,
        files={"www/index.html": PAGE},
    )
    with api_client(emulator) as client:
        created = client.post("/snapshots", json={"name": name, "imageName": image.reference})
        assert created.status_code == 200, created.text
        assert wait_for_state(client, name, ["active", "error"])["state"] == "active"


def state_of(sandbox: Sandbox) -> SandboxState | None:
    # A function call, so type checkers do not keep an earlier `assert` on the field.
    return sandbox.state


def sdk(emulator: EmulatorServer) -> Daytona:
    # Polling mode skips the Socket.IO attempt (the emulator would 404 it anyway, rule E10).
    return Daytona(
        DaytonaConfig(
            api_key=emulator.api_key, api_url=emulator.base_url, use_deprecated_polling=True
        )
    )


def test_sandbox_from_a_snapshot_through_the_sdk(
    emulator: EmulatorServer, registry: LocalRegistry
) -> None:
    active_snapshot(emulator, registry, "web", entrypoint=HTTPD)
    daytona = sdk(emulator)

    sandbox = daytona.create(
        CreateSandboxFromSnapshotParams(
            snapshot="web", name="web-1", env_vars={"GREETING": "hello"}, labels={"team": "ci"}
        ),
        timeout=30,
    )

    assert sandbox.state == SandboxState.STARTED
    assert (sandbox.name, sandbox.snapshot, sandbox.cpu, sandbox.memory) == ("web-1", "web", 1, 1)
    assert sandbox.labels == {"team": "ci", "code-toolbox-language": "python"}
    container = DOCKER.container.inspect(f"daytona-emulator-{sandbox.id}")
    assert container.state.running
    assert container.config.labels is not None
    assert container.config.labels["team"] == "ci"
    assert container.config.labels[SANDBOX_LABEL] == sandbox.id
    assert container.config.hostname == sandbox.id
    assert container.host_config.nano_cpus == 1_000_000_000  # the snapshot's cpu: 1
    assert container.host_config.memory == 1024**3  # and mem: 1 (GB)

    hi = sandbox.process.exec("echo hi")
    assert (hi.exit_code, hi.result) == (0, "hi\n")
    mixed = sandbox.process.exec("echo out; echo err >&2; exit 3")
    assert (mixed.exit_code, mixed.result) == (3, "out\nerr\n")
    env = sandbox.process.exec('echo "$GREETING $DAYTONA_SANDBOX_ID $EXTRA"', env={"EXTRA": "x"})
    assert env.result == f"hello {sandbox.id} x\n"
    assert sandbox.process.exec("pwd", cwd="/www").result == "/www\n"
    assert sandbox.get_work_dir() == "/"

    link = sandbox.get_preview_link(3000)
    page = httpx.get(f"{link.url}/index.html", headers={"X-Daytona-Preview-Token": link.token})
    assert (page.status_code, page.text) == (200, PAGE)
    assert httpx.get(f"{link.url}/index.html").status_code == 401

    sandbox.stop()
    assert state_of(sandbox) == SandboxState.STOPPED
    assert not DOCKER.container.inspect(container.id).state.running
    with pytest.raises(DaytonaBadRequestError) as again:
        sandbox.stop()
    assert str(again.value) == "Failed to stop sandbox: Sandbox is not in a stoppable state"
    assert httpx.get(link.url, headers={"X-Daytona-Preview-Token": link.token}).status_code == 502

    sandbox.start()
    assert state_of(sandbox) == SandboxState.STARTED
    fresh = sandbox.get_preview_link(3000)
    assert fresh.token != link.token  # Daytona issues a new token on every start
    headers = {"X-Daytona-Preview-Token": fresh.token}
    assert httpx.get(f"{fresh.url}/index.html", headers=headers).text == PAGE
    stale = httpx.get(fresh.url, headers={"X-Daytona-Preview-Token": link.token})
    assert stale.status_code == 401
    sandbox.set_public(True)  # public previews need no token at all
    assert httpx.get(f"{fresh.url}/index.html").text == PAGE

    sandbox.delete(wait=True)
    with api_client(emulator) as client:
        assert client.get(f"/sandbox/{sandbox.id}").status_code == 404
    with pytest.raises(NoSuchContainer):
        DOCKER.container.inspect(container.id)


def test_exec_timeout_kills_the_command_and_ephemeral_sandboxes_go_on_stop(
    emulator: EmulatorServer, registry: LocalRegistry
) -> None:
    # No entrypoint anywhere: Daytona (and the emulator) run `sleep infinity`.
    active_snapshot(emulator, registry, "idle")
    sandbox = sdk(emulator).create(
        CreateSandboxFromSnapshotParams(snapshot="idle", auto_delete_interval=0), timeout=30
    )

    with pytest.raises(DaytonaTimeoutError) as raised:
        sandbox.process.exec("sleep 60; echo never", timeout=1)
    assert "Command execution timed out after 1 seconds." in str(raised.value)
    processes = sandbox.process.exec("ps -o args").result
    assert "sleep 60" not in processes
    assert "sleep infinity" in processes

    sandbox.stop()  # autoDeleteInterval 0: the stop destroys it
    deadline = time.monotonic() + 10
    with api_client(emulator) as client:
        while client.get(f"/sandbox/{sandbox.id}").status_code != 404:
            assert time.monotonic() < deadline, "the ephemeral sandbox was not destroyed"
            time.sleep(0.05)
    assert own_containers(emulator) == []


def test_a_failed_pull_is_an_error_and_a_reset_removes_containers(
    emulator: EmulatorServer, registry: LocalRegistry
) -> None:
    active_snapshot(emulator, registry, "idle")
    with api_client(emulator) as client:
        running = client.post("/sandbox", json={"snapshot": "idle"})
        assert running.status_code == 200, running.text
        assert running.json()["state"] == "started"
        assert len(own_containers(emulator)) == 1

        # The organization's registry credentials went stale after the snapshot was pulled.
        set_registry_entry(emulator, registry.host, registry.username, "wrong")
        failed = client.post("/sandbox", json={"snapshot": "idle", "name": "stale"})
        assert failed.status_code == 400
        assert failed.json()["message"].startswith(
            f"Sandbox failed to start: Failed to log in to {registry.host}:"
        )
        assert client.get("/sandbox/stale").json()["state"] == "error"
        assert len(own_containers(emulator)) == 1

        emulator.reset()
        assert own_containers(emulator) == []
        assert client.get(f"/sandbox/{running.json()['id']}").status_code == 404


def test_stopping_the_server_removes_its_containers(engine: None, registry: LocalRegistry) -> None:
    config = EmulatorConfig(timings=Timings(pending_seconds=0.02, pulling_seconds=0.02))
    server = EmulatorServer(config).start()
    try:
        organization = server.api_keys[0].organization_id
        set_registry_entry(
            server, registry.host, registry.username, registry.password, organization
        )
        active_snapshot(server, registry, "idle")
        with api_client(server) as client:
            assert client.post("/sandbox", json={"snapshot": "idle"}).json()["state"] == "started"
        assert len(own_containers(server)) == 1
    finally:
        server.stop()
    assert own_containers(server) == []


def test_idle_sandboxes_stop_and_stopped_ones_go_as_the_clock_says(
    emulator: EmulatorServer, registry: LocalRegistry
) -> None:
    active_snapshot(emulator, registry, "idle")
    emulator.freeze_clock()
    with api_client(emulator) as client, admin_client(emulator) as admin:
        body = {"snapshot": "idle", "autoStopInterval": 1, "autoDeleteInterval": 2}
        created = client.post("/sandbox", json=body)
        assert created.status_code == 200, created.text
        sandbox_id = created.json()["id"]

        def state() -> str:
            found = client.get(f"/sandbox/{sandbox_id}")
            return str(found.json()["state"]) if found.status_code == 200 else "gone"

        emulator.advance_clock(59)
        assert state() == "started"
        # Toolbox use is activity: the minute starts again.
        executed = client.post(
            f"{created.json()['toolboxProxyUrl']}/{sandbox_id}/process/execute",
            json={"command": "echo busy"},
        )
        assert executed.json() == {"exitCode": 0, "result": "busy\n"}
        emulator.advance_clock(59)
        assert state() == "started"
        emulator.advance_clock(1)  # a minute without activity: stopped, container and all
        assert state() == "stopped"
        assert not DOCKER.container.inspect(f"daytona-emulator-{sandbox_id}").state.running

        advanced = admin.post("/_emulator/clock/advance", json={"seconds": 119})
        assert advanced.status_code == 200
        assert state() == "stopped"
        emulator.advance_clock(1)  # two minutes after the stop: deleted
        assert state() == "destroying"
        emulator.advance_clock(emulator.knobs.timings.sandbox_destroy_seconds)
        assert state() == "gone"
    assert own_containers(emulator) == []


def test_a_registry_entry_lends_its_credentials_to_the_pull(
    engine: None, daytona_emulator: EmulatorServer, registry: LocalRegistry
) -> None:
    """No emulator-wide credentials: only the organization's entry opens the registry, for the
    snapshot's inspection and for the sandbox's `docker pull` alike."""
    image = push_busybox_image(registry, f"{TEST_IMAGE_NAMESPACE}emulator/private", "v1")
    daytona_emulator.freeze_clock()
    with api_client(daytona_emulator) as client:
        entry = client.post(
            "/docker-registry",
            json={
                "name": "local",
                "url": registry.host,
                "username": registry.username,
                "password": registry.password,
            },
        )
        assert entry.status_code == 201, entry.text
        created = client.post("/snapshots", json={"name": "private", "imageName": image.reference})
        assert created.status_code == 200, created.text
        daytona_emulator.advance_clock(60)
        assert wait_for_state(client, "private", ["active"], timeout=0)["state"] == "active"

        sandbox = client.post("/sandbox", json={"snapshot": "private"})

        assert sandbox.status_code == 200, sandbox.text
        assert sandbox.json()["state"] == "started"
        assert len(own_containers(daytona_emulator)) == 1
    daytona_emulator.reset()
    assert own_containers(daytona_emulator) == []
