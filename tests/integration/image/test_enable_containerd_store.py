"""scripts/enable-containerd-store.sh reconfigures an engine only on a GitHub-hosted runner.

Run against engines of the tests' own: one without the containerd image store (the script must
refuse, off GitHub and on a self-hosted runner, and leave /etc/docker/daemon.json alone) and one
with it (nothing to do). The rewriting branch itself runs only on GitHub's runners (ci.yml).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers.engines import OwnEngine

SCRIPT = ROOT / "scripts" / "enable-containerd-store.sh"
DAEMON_JSON = Path("/etc/docker/daemon.json")


def run(engine: OwnEngine, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "RUNNER_ENVIRONMENT")
    }
    return subprocess.run(
        ["bash", str(SCRIPT)],
        env={**clean, **engine.env(), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def fingerprint() -> str:
    return hashlib.sha256(DAEMON_JSON.read_bytes()).hexdigest() if DAEMON_JSON.exists() else "-"


@pytest.mark.parametrize(
    "where",
    [{}, {"GITHUB_ACTIONS": "true", "RUNNER_ENVIRONMENT": "self-hosted"}, {"CI": "true"}],
    ids=["laptop", "self-hosted-runner", "ci-elsewhere"],
)
def test_an_engine_off_githubs_runners_is_left_alone(
    own_engine_no_containerd_store: OwnEngine, where: dict[str, str]
) -> None:
    before = fingerprint()
    done = run(own_engine_no_containerd_store, **where)
    assert done.returncode == 1, done.stderr
    assert "not on a GitHub-hosted runner, so this engine is left as it is — fix:" in done.stderr
    assert fingerprint() == before
    status = own_engine_no_containerd_store.docker("info", "--format", "{{json .DriverStatus}}")
    assert "io.containerd.snapshotter.v1" not in status.stdout


def test_an_engine_with_the_store_needs_nothing(own_engine: OwnEngine) -> None:
    done = run(own_engine, GITHUB_ACTIONS="true", RUNNER_ENVIRONMENT="github-hosted")
    assert done.returncode == 0, done.stderr
    assert "already uses the containerd image store" in done.stderr


def test_an_engine_that_does_not_answer_is_never_restarted(tmp_path: Path) -> None:
    """Even on a GitHub-hosted runner: a socket that does not answer (or not to this user) is no
    reason to rewrite daemon.json and restart anything."""
    before = fingerprint()
    done = subprocess.run(
        ["bash", str(SCRIPT)],
        env={
            **os.environ,
            "DOCKER_HOST": f"unix://{tmp_path}/absent.sock",
            "GITHUB_ACTIONS": "true",
            "RUNNER_ENVIRONMENT": "github-hosted",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "docker info does not answer" in done.stderr
    assert fingerprint() == before
