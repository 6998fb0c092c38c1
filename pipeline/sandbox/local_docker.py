"""The local-docker provider: sandbox containers from the image, with the host checkout synced in.

Containers carry labels so a cleanup finds exactly what this provider made; port 3000 (the
sandbox daemon) is published on a free 127.0.0.1 port; health is polled with a deadline and a
failure shows the service logs.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.errors import ConfigError, SandboxError
from pipeline.settings.build import BuildSettings, _Base, load
from pipeline.waiting import SYSTEM_CLOCK, Clock, Interval, PollTimeout, poll

if TYPE_CHECKING:
    from python_on_whales import Container, DockerClient

LABEL = "dev.iterate.sandbox-pipeline"
DAEMON_PORT = 3000
PNPM_STORE_VOLUME = "iterate-pnpm-store"  # the default of LOCAL_DOCKER_PNPM_VOLUME
PNPM_STORE_PATH = "/home/iterate/.local/share/pnpm/store"
SERVICES = ("daemon", "egress-proxy", "opencode")
# Docker's own rule for volume names; it also keeps a path (a bind mount) out of this setting.
_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


class LocalDockerSettings(_Base):
    image_name: str | None = Field(None, validation_alias="LOCAL_DOCKER_IMAGE_NAME")
    repo_checkout: Path | None = Field(None, validation_alias="LOCAL_DOCKER_REPO_CHECKOUT")
    git_dir: Path | None = Field(None, validation_alias="LOCAL_DOCKER_GIT_DIR")
    common_dir: Path | None = Field(None, validation_alias="LOCAL_DOCKER_COMMON_DIR")
    health_timeout: float = Field(120, gt=0, validation_alias="LOCAL_DOCKER_HEALTH_TIMEOUT")
    # Shared by every sandbox so pnpm installs are warm; the tests use a volume of their own.
    pnpm_volume: str = Field(PNPM_STORE_VOLUME, validation_alias="LOCAL_DOCKER_PNPM_VOLUME")

    @field_validator("pnpm_volume")
    @classmethod
    def _volume_name(cls, value: str) -> str:
        if not _VOLUME_NAME.fullmatch(value):
            raise ValueError(
                "a Docker volume name: letters, digits, '_', '.' and '-', "
                "starting with a letter or digit"
            )
        return value


class SyncMounts(BaseModel):
    model_config = ConfigDict(frozen=True)

    checkout: Path
    git_dir: Path
    common_dir: Path

    def volumes(self) -> list[tuple[str, str, str]]:
        # All three read-only: entry.sh only copies from them, and a writable host .git would let
        # code in the sandbox plant a hook or core.fsmonitor that runs on the host's next git call.
        return [
            (str(self.checkout), "/host/repo-checkout", "ro"),
            (str(self.git_dir), "/host/gitdir", "ro"),
            (str(self.common_dir), "/host/commondir", "ro"),
        ]


class Sandbox(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    image: str
    url: str  # the daemon, published on 127.0.0.1
    synced: bool


def image_candidates(settings: LocalDockerSettings, repository: str) -> list[str]:
    """LOCAL_DOCKER_IMAGE_NAME, else <repo>:local, then <repo>:main."""
    if settings.image_name:
        return [settings.image_name]
    return [f"{repository}:local", f"{repository}:main"]


def pick_image(candidates: list[str], exists: Callable[[str], bool]) -> str | None:
    """The first candidate the engine has (each is asked about once)."""
    return next((image for image in candidates if exists(image)), None)


def sync_mounts(settings: LocalDockerSettings, env: Mapping[str, str]) -> SyncMounts:
    """Mounts for dev sync; unset paths default from the checkout's git facts (worktrees too)."""
    from pipeline.git.facts import read_git_facts

    if settings.repo_checkout and settings.git_dir and settings.common_dir:
        paths = (settings.repo_checkout, settings.git_dir, settings.common_dir)
    else:
        facts = read_git_facts(settings.repo_checkout or Path.cwd(), env)
        paths = (
            settings.repo_checkout or facts.work_tree,
            settings.git_dir or facts.git_dir,
            settings.common_dir or facts.common_dir,
        )
    for variable, path in zip(
        ("LOCAL_DOCKER_REPO_CHECKOUT", "LOCAL_DOCKER_GIT_DIR", "LOCAL_DOCKER_COMMON_DIR"),
        paths,
        strict=True,
    ):
        if not path.is_dir():
            raise ConfigError(f"{variable}={path} is not a directory", f"point {variable} at one")
    return SyncMounts(
        checkout=paths[0].resolve(), git_dir=paths[1].resolve(), common_dir=paths[2].resolve()
    )


def client(build: BuildSettings | None = None) -> DockerClient:
    from pipeline.docker.buildx import docker_client

    return docker_client((build or load(BuildSettings)).docker_host)


def image_exists(docker: DockerClient, reference: str) -> bool:
    return bool(docker.image.exists(reference))


def start(
    *,
    name: str | None = None,
    sync: bool = True,
    env: Mapping[str, str] | None = None,
    docker: DockerClient | None = None,
) -> Sandbox:
    """Start a sandbox container and wait until its daemon reports healthy."""
    settings, build = load(LocalDockerSettings), load(BuildSettings)
    docker = docker or client(build)
    candidates = image_candidates(settings, build.image_repository)
    image = pick_image(candidates, lambda ref: image_exists(docker, ref))
    if image is None:
        raise SandboxError(
            f"image {' or '.join(candidates)} is not in the local engine",
            "build it with `nox -s snapshot_local`, or set LOCAL_DOCKER_IMAGE_NAME",
        )
    mounts = sync_mounts(settings, os.environ) if sync else None
    name = name or f"sandbox-{secrets.token_hex(4)}"
    container = docker.container.run(
        image,
        name=name,
        detach=True,
        envs=dict(env or {}),
        labels={LABEL: "1", f"{LABEL}.synced": str(sync).lower()},
        publish=[(f"127.0.0.1:{0}", DAEMON_PORT)],
        volumes=[*(mounts.volumes() if mounts else []), (settings.pnpm_volume, PNPM_STORE_PATH)],
    )
    try:
        url = f"http://127.0.0.1:{_published_port(container)}"
        wait_healthy(container, url, settings.health_timeout)
    except BaseException:
        # Nothing half-done: a sandbox that never became healthy is removed.
        container.remove(force=True, volumes=False)
        raise
    return Sandbox(name=name, image=image, url=url, synced=sync)


def _published_port(container: Container) -> int:
    container.reload()  # type: ignore[no-untyped-call]
    bindings = (container.network_settings.ports or {}).get(f"{DAEMON_PORT}/tcp") or []
    for binding in bindings:
        if binding.get("HostIp") in ("127.0.0.1", "0.0.0.0"):  # noqa: S104
            return int(binding["HostPort"])
    raise SandboxError(f"port {DAEMON_PORT} of {container.name} was not published", "report this")


class _Health(BaseModel):
    """One look at a starting sandbox: healthy (with the body), exited, or not yet (why)."""

    state: Literal["healthy", "exited", "waiting"]
    reason: str
    body: dict[str, object] = Field(default_factory=dict)


def _look(container: Container, url: str) -> _Health:
    container.reload()  # type: ignore[no-untyped-call]
    if not container.state.running:
        return _Health(
            state="exited", reason=f"the container exited with code {container.state.exit_code}"
        )
    try:
        response = httpx.get(f"{url}/api/health", timeout=2)
    except httpx.HTTPError as error:
        return _Health(state="waiting", reason=type(error).__name__)
    if response.status_code == 200:
        return _Health(state="healthy", reason="ok", body=response.json())
    return _Health(state="waiting", reason=f"HTTP {response.status_code}")


def wait_healthy(
    container: Container, url: str, timeout_s: float, clock: Clock = SYSTEM_CLOCK
) -> dict[str, object]:
    try:
        seen = poll(
            lambda: _look(container, url),
            lambda health: health.state != "waiting",
            timeout_s=timeout_s,
            interval=Interval(first_s=0.1, factor=1.5, max_s=1.0),
            clock=clock,
        )
    except PollTimeout as timeout:
        seen = timeout.last
    if seen.state == "healthy":
        return seen.body
    raise SandboxError(
        f"sandbox {container.name} did not become healthy within {timeout_s:g} s ({seen.reason})",
        "read the service logs above; raise LOCAL_DOCKER_HEALTH_TIMEOUT if it is just slow",
        details=tuple(service_logs(container)),
    )


def service_logs(container: Container, lines: int = 30) -> list[str]:
    """The container's own output and the tail of every service log, for failure messages."""
    from python_on_whales.exceptions import DockerException

    out = [f"--- docker logs {container.name}"]
    try:
        out += str(container.logs(tail=lines)).splitlines()
    except DockerException as error:
        out.append(f"(no logs: {error.return_code})")
    try:
        text = container.execute(
            ["sh", "-c", f'for f in /var/log/*/*.log; do echo "--- $f"; tail -n {lines} "$f"; done']
        )
        out += str(text).splitlines()
    except DockerException:
        out.append("(service logs unavailable: the container is not running)")
    return out


def execute(name: str, command: list[str], docker: DockerClient | None = None) -> str:
    docker = docker or client()
    return str(docker.container.execute(name, command))


def stop(name: str, docker: DockerClient | None = None) -> None:
    docker = docker or client()
    container = docker.container.inspect(name)
    if (container.config.labels or {}).get(LABEL) != "1":
        raise SandboxError(
            f"container {name} was not made by the sandbox pipeline", "remove it yourself"
        )
    container.remove(force=True)


def cleanup(docker: DockerClient | None = None, prefix: str = "") -> list[str]:
    """Remove every container this provider made whose name starts with `prefix`; returns
    their names (sorted)."""
    docker = docker or client()
    found = docker.container.list(all=True, filters=[("label", f"{LABEL}=1")])
    # Names read before removal (python-on-whales inspects lazily); matched here, not with
    # docker's `name=` filter, which matches anywhere in the name.
    names = sorted(c.name for c in found if c.name.startswith(prefix))
    if names:
        docker.container.remove(names, force=True)
    return names
