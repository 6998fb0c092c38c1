"""Starting and stopping the emulator: the in-process runner and `python -m daytona_emulator`."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from daytona_emulator.config import ApiKey, EmulatorConfig
from daytona_emulator.server import EmulatorServer

pytestmark = pytest.mark.emulator

# `python -m daytona_emulator` as from a checkout: the package sits in emulator/ (an install of
# the workspace puts it on the path anywhere).
EMULATOR_DIR = Path(__file__).resolve().parents[3] / "emulator"


def accepts_connections(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_runner_serves_then_frees_its_port() -> None:
    config = EmulatorConfig(api_keys=(ApiKey(key="k1"),))
    with EmulatorServer(config) as server:
        port = server.port
        assert server.base_url == f"http://127.0.0.1:{port}/api"
        assert server.api_key == "k1"
        response = httpx.get(f"{server.base_url}/snapshots", headers={"Authorization": "Bearer k1"})
        assert response.json()["total"] == 0

    assert not accepts_connections(port)
    with pytest.raises(RuntimeError):
        _ = server.port


def test_runner_generates_a_key_when_none_is_configured() -> None:
    with EmulatorServer() as server:
        response = httpx.get(
            f"{server.base_url}/snapshots", headers={"Authorization": f"Bearer {server.api_key}"}
        )
    assert server.api_key.startswith("dtn_")
    assert response.status_code == 200


def test_cli_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "daytona_emulator", "--help"],
        cwd=EMULATOR_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "--registry-auth" not in done.stdout  # no credentials of its own: entries only
    assert "--registry-mirror HOST=TARGET" in done.stdout
    assert "--api-key KEY" in done.stdout
    assert "--frozen-clock" in done.stdout


def test_cli_refuses_malformed_registry_mirror() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "daytona_emulator", "--registry-mirror", "no-target"],
        cwd=EMULATOR_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "expected HOST=TARGET_HOST:PORT" in done.stderr


def test_cli_serves_the_api() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daytona_emulator",
            "--port",
            "0",
            "--api-key",
            "demo-key",
            "--registry-mirror",
            "ghcr.io=127.0.0.1:5000",
            "--frozen-clock",
        ],
        cwd=EMULATOR_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline().strip()
        assert banner.startswith("Daytona emulator on http://127.0.0.1:")
        base_url = banner.rsplit(" ", 1)[1]
        with httpx.Client(base_url=base_url, trust_env=False) as client:
            allowed = client.get("/snapshots", headers={"Authorization": "Bearer demo-key"})
            refused = client.get("/snapshots", headers={"Authorization": "Bearer other"})
            root = base_url.removesuffix("/api")
            before = client.get(f"{root}/_emulator/clock").json()
            after = client.post(f"{root}/_emulator/clock/advance", json={"seconds": 90}).json()
        assert allowed.status_code == 200
        assert refused.status_code == 401
        assert before["frozen"] is True
        assert after["monotonic"] == pytest.approx(before["monotonic"] + 90)
    finally:
        process.terminate()
        process.wait(timeout=10)
