"""A real OCI registry (CNCF distribution, Debian's `docker-registry`) on 127.0.0.1, standing in
for GHCR in tests, benchmarks and offline demos: htpasswd basic auth, deletes enabled."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pipeline.errors import EngineError
from pipeline.waiting import PollTimeout, poll

REGISTRY_BINARY = "docker-registry"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LocalRegistry:
    host: str
    username: str
    password: str = field(repr=False)
    root: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=(self.username, self.password), timeout=10)

    def tags(self, name: str) -> list[str]:
        """`name`: without the host."""
        with self.client() as client:
            response = client.get(f"/v2/{name}/tags/list")
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return sorted(response.json().get("tags") or [])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_registry(
    root: Path,
    *,
    username: str = "pipeline",
    password: str | None = None,
    port: int | None = None,
    ready_timeout: float = 15.0,
) -> LocalRegistry:
    binary = shutil.which(REGISTRY_BINARY)
    if binary is None:
        raise EngineError(
            f"`{REGISTRY_BINARY}` is not installed",
            "run scripts/setup-engine.sh (installs Debian's docker-registry)",
        )
    password = password or secrets.token_urlsafe(16)
    port = port or free_port()
    root.mkdir(parents=True, exist_ok=True)
    htpasswd = root / "htpasswd"
    hashed = subprocess.run(
        ["htpasswd", "-Bbin", username], input=password.encode(), capture_output=True, check=True
    ).stdout
    htpasswd.write_bytes(hashed)
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"auth:\n  htpasswd:\n    realm: sandbox-pipeline\n    path: {htpasswd}\n"
    )
    with (root / "registry.log").open("ab") as log:  # the child keeps its own copy
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    registry = LocalRegistry(
        host=f"127.0.0.1:{port}", username=username, password=password, root=root, process=process
    )

    def answers() -> bool:
        if process.poll() is not None:
            raise EngineError(
                f"the local registry exited at start (code {process.returncode})",
                f"see {root / 'registry.log'}",
            )
        # Our credentials, so that another server already on the port cannot pass for ours.
        try:
            with registry.client() as client:
                return client.get("/v2/", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        poll(answers, bool, timeout_s=ready_timeout, interval=0.05)
    except PollTimeout:
        registry.stop()
        raise EngineError(
            f"the local registry did not answer on {registry.host} within {ready_timeout:.0f} s",
            f"see {root / 'registry.log'}",
        ) from None
    return registry
