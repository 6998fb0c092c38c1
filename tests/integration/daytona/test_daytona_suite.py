"""The Daytona integration suite: a sandbox from the sandbox image's snapshot, proven healthy.

With DAYTONA_SNAPSHOT_NAME set it uses that snapshot on the Daytona that DAYTONA_API_URL and
DAYTONA_API_KEY name (real Daytona included). Otherwise it builds and pushes the image of the
current sha (or of the commit SANDBOX_ITERATE_REPO_REF names) to the local registry and creates
its snapshot through the pipeline, against the emulator. The checks are the same code either
way. The sandbox is always stopped and deleted, also on failure, and a failure shows the
sandbox's service logs.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from daytona_emulator import EmulatorServer
from pipeline.daytona.client import DaytonaClient
from pipeline.daytona.sandboxes import (
    SandboxHandle,
    SandboxSpec,
    SandboxWaits,
    preview_headers,
    running_sandbox,
)
from pipeline.registry.server import LocalRegistry
from tests.conftest import run_pipeline
from tests.helpers.emulator import daytona_emulator_with_registry  # noqa: F401
from tests.helpers.host_engine import TEST_IMAGE_NAMESPACE
from tests.integration.image.test_local_docker import CLIS, SERVICES

# Its Daytona fixtures are requested at run time (they depend on DAYTONA_SNAPSHOT_NAME), so the
# marker that selects it for `nox -s test_daytona` is set here rather than derived.
pytestmark = pytest.mark.emulator

START_TIMEOUT_S = 300
REPO_PATH = "/home/iterate/src/github.com/iterate/iterate"


@dataclass(frozen=True)
class Target:
    client: DaytonaClient
    snapshot: str
    sha: str


def _sha_of(image: str) -> str:
    match = re.search(r":sha-([0-9a-f]{40})", image)
    assert match, f"the snapshot's image {image!r} has no sha- tag"
    return match[1]


@pytest.fixture
def target(request: pytest.FixtureRequest, tmp_path: Path, engine: None) -> Iterator[Target]:
    named = os.environ.get("DAYTONA_SNAPSHOT_NAME")
    if named:
        client = DaytonaClient(
            os.environ["DAYTONA_API_URL"], SecretStr(os.environ["DAYTONA_API_KEY"])
        )
        snapshot = client.get_snapshot(named)
        assert snapshot is not None, f"DAYTONA_SNAPSHOT_NAME={named} does not exist"
        yield Target(client, named, _sha_of(snapshot.image_name or ""))
        return
    emulator: EmulatorServer = request.getfixturevalue("daytona_emulator_with_registry")
    registry: LocalRegistry = request.getfixturevalue("registry")
    report = tmp_path / "report.json"
    # The base this machine can have, chosen so that no developer's tag is written or removed.
    base: str | None = request.getfixturevalue("sandbox_build_base")
    # run_pipeline drops the pipeline's variables from this environment; a ref to build
    # (SANDBOX_ITERATE_REPO_REF=<branch> nox -s test_daytona) is passed on explicitly.
    ref = os.environ.get("SANDBOX_ITERATE_REPO_REF")
    env = {
        **({"SANDBOX_BASE_IMAGE": base} if base else {}),
        **({"SANDBOX_ITERATE_REPO_REF": ref} if ref else {}),
        # The test namespace: what the engine keeps after the push is swept at the end.
        "SANDBOX_IMAGE_REPOSITORY": f"{registry.host}/{TEST_IMAGE_NAMESPACE}sandbox",
        "REGISTRY_USERNAME": registry.username,
        "REGISTRY_PASSWORD": registry.password,
        "DAYTONA_API_URL": emulator.base_url,
        "DAYTONA_API_KEY": emulator.api_key,
        "PIPELINE_REPORT": str(report),
        "PUSH": "1",
    }
    docker_config = tmp_path / "docker-config"
    built = run_pipeline("snapshot_local", env=env, docker_config=docker_config, timeout=1800)
    assert built.returncode == 0, built.output[-4000:]
    made = run_pipeline("snapshot_daytona", env=env, docker_config=docker_config, timeout=600)
    assert made.returncode == 0, made.output[-4000:]
    result = json.loads(report.read_text())
    assert result["snapshot"]["state"] == "active"
    client = DaytonaClient(emulator.base_url, SecretStr(emulator.api_key))
    yield Target(client, result["snapshot"]["name"], result["build"]["sha"])


@pytest.fixture
def sandbox(target: Target) -> Iterator[SandboxHandle]:
    spec = SandboxSpec(snapshot=target.snapshot, labels={"suite": "test_daytona"})
    with running_sandbox(target.client, spec, SandboxWaits(start_s=START_TIMEOUT_S)) as handle:
        yield handle


def _run(handle: SandboxHandle, command: str) -> str:
    done = handle.exec(f"bash -lc {json.dumps(command)}", timeout=60)
    assert done.exit_code == 0, (
        f"{command!r} exited {done.exit_code}: {done.result}\n{handle.logs()}"
    )
    return done.result


def test_sandbox_from_the_snapshot_is_healthy(target: Target, sandbox: SandboxHandle) -> None:
    preview = sandbox.preview(3000)
    health: dict[str, object] = {}
    for _ in range(60):  # the daemon comes up a second or two after the container
        try:
            response = httpx.get(
                f"{preview.url}/api/health", headers=preview_headers(preview), timeout=5
            )
            if response.status_code == 200:
                health = response.json()
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    assert health.get("ok") is True, f"no health through the preview URL\n{sandbox.logs()}"
    assert health["gitSha"] == target.sha
    unauthenticated = httpx.get(f"{preview.url}/api/health", timeout=5)
    assert unauthenticated.status_code in (401, 403, 307)

    deadline = time.monotonic() + 60  # supervisor says STARTING for a few seconds after boot
    status = _run(sandbox, "pidnap status")
    while time.monotonic() < deadline and not all(
        re.search(rf"^{re.escape(s)}\s+RUNNING", status, re.MULTILINE) for s in SERVICES
    ):
        time.sleep(1)
        status = _run(sandbox, "pidnap status")
    for service in SERVICES:
        assert re.search(rf"^{re.escape(service)}\s+RUNNING", status, re.MULTILINE), (
            f"{service} not running:\n{status}\n{sandbox.logs()}"
        )
    for cli in CLIS:
        assert re.search(r"\d+\.\d+", _run(sandbox, f"{cli} --version 2>&1")), cli
    head = _run(sandbox, f"git -C {REPO_PATH} rev-parse HEAD").strip()
    assert head == target.sha
