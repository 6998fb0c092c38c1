"""The local-docker provider: sandbox containers from the image, with the host checkout synced in.
Labels let a cleanup find exactly what this provider made; a failed start shows the service logs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import httpx

from pipeline.docker import containers, images
from pipeline.docker.cli import Docker
from pipeline.docker.containers import Mount
from pipeline.errors import ConfigError, PipelineError, SandboxError
from pipeline.git.facts import locate
from pipeline.waiting import SYSTEM_CLOCK, Clock, Interval, PollTimeout, poll

LABEL = "dev.iterate.sandbox-pipeline"
DAEMON_PORT = 3000
PNPM_STORE_VOLUME = "iterate-pnpm-store"  # the default of LOCAL_DOCKER_PNPM_VOLUME
PNPM_STORE_PATH = "/home/iterate/.local/share/pnpm/store"
SYNC_VARIABLES = ("LOCAL_DOCKER_REPO_CHECKOUT", "LOCAL_DOCKER_GIT_DIR", "LOCAL_DOCKER_COMMON_DIR")


@dataclass(frozen=True)
class Sandbox:
    name: str
    image: str
    url: str  # the daemon, published on 127.0.0.1
    synced: bool


@dataclass(frozen=True)
class SandboxSpec:
    name: str
    images: list[str]  # the first the engine has is started
    sync: list[Mount] | None  # dev sync: the checkout and its git dirs (sync_mounts)
    pnpm_volume: str = PNPM_STORE_VOLUME
    health_timeout_s: float = 120.0
    env: Mapping[str, str] = field(default_factory=dict)


def image_candidates(image_name: str | None, repository: str) -> list[str]:
    return [image_name] if image_name else [f"{repository}:local", f"{repository}:main"]


def pick_image(candidates: list[str], exists: Callable[[str], bool]) -> str | None:
    return next((image for image in candidates if exists(image)), None)


def sync_mounts(
    checkout: Path | None, git_dir: Path | None, common_dir: Path | None, cwd: Path
) -> list[Mount]:
    """Mounts for dev sync; unset paths default from the checkout's git dirs (worktrees too)."""
    if checkout and git_dir and common_dir:
        paths = (checkout, git_dir, common_dir)
    else:
        where = locate(checkout or cwd)
        paths = (
            checkout or where.work_tree,
            git_dir or where.git_dir,
            common_dir or where.common_dir,
        )
    for variable, path in zip(SYNC_VARIABLES, paths, strict=True):
        if not path.is_dir():
            raise ConfigError(f"{variable}={path} is not a directory", f"point {variable} at one")
    # All three read-only: entry.sh only copies from them, and a writable host .git would let
    # code in the sandbox plant a hook or core.fsmonitor that runs on the host's next git call.
    targets = ("/host/repo-checkout", "/host/gitdir", "/host/commondir")
    return [
        Mount(str(path.resolve()), target, "ro")
        for path, target in zip(paths, targets, strict=True)
    ]


def start(docker: Docker, spec: SandboxSpec, clock: Clock = SYSTEM_CLOCK) -> Sandbox:
    found = images.inspect(docker, spec.images)
    image = pick_image(spec.images, lambda ref: found[ref] is not None)
    if image is None:
        raise SandboxError(
            f"image {' or '.join(spec.images)} is not in the local engine",
            "build it with `nox -s snapshot_local`, or set LOCAL_DOCKER_IMAGE_NAME",
        )
    synced = spec.sync is not None
    containers.run(
        docker,
        image,
        name=spec.name,
        env=spec.env,
        labels={LABEL: "1", f"{LABEL}.synced": str(synced).lower()},
        publish=[f"127.0.0.1::{DAEMON_PORT}"],
        mounts=[*(spec.sync or []), Mount(spec.pnpm_volume, PNPM_STORE_PATH)],
    )
    try:
        url = f"http://127.0.0.1:{_published_port(docker, spec.name)}"
        wait_healthy(docker, spec.name, url, spec.health_timeout_s, clock)
    except BaseException:
        # Nothing half-done: a sandbox that never became healthy is removed.
        containers.remove(docker, [spec.name])
        raise
    return Sandbox(name=spec.name, image=image, url=url, synced=synced)


def _published_port(docker: Docker, name: str) -> int:
    container = containers.inspect(docker, name)
    for host_ip, port in (container.ports.get(f"{DAEMON_PORT}/tcp") or []) if container else []:
        if host_ip in ("127.0.0.1", "0.0.0.0"):  # noqa: S104
            return int(port)
    raise SandboxError(f"port {DAEMON_PORT} of {name} was not published", "report this")


class _Health(NamedTuple):  # one look at a starting sandbox
    state: Literal["healthy", "exited", "waiting"]
    reason: str
    body: dict[str, object]


def _look(docker: Docker, name: str, url: str) -> _Health:
    container = containers.inspect(docker, name)
    if container is None or not container.running:
        code = container.exit_code if container else "gone"
        return _Health("exited", f"the container exited with code {code}", {})
    try:
        response = httpx.get(f"{url}/api/health", timeout=2)
    except httpx.HTTPError as error:
        return _Health("waiting", type(error).__name__, {})
    if response.status_code == 200:
        return _Health("healthy", "ok", response.json())
    return _Health("waiting", f"HTTP {response.status_code}", {})


def wait_healthy(
    docker: Docker, name: str, url: str, timeout_s: float, clock: Clock = SYSTEM_CLOCK
) -> dict[str, object]:
    try:
        seen = poll(
            lambda: _look(docker, name, url),
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
        f"sandbox {name} did not become healthy within {timeout_s:g} s ({seen.reason})",
        "read the service logs above; raise LOCAL_DOCKER_HEALTH_TIMEOUT if it is just slow",
        details=tuple(service_logs(docker, name)),
    )


def service_logs(docker: Docker, name: str, lines: int = 30) -> list[str]:
    """`docker logs` and the tail of every service log, for failure messages."""
    out = [f"--- docker logs {name}"]
    try:
        out += containers.logs(docker, name, lines).splitlines()
    except PipelineError as error:
        out.append(f"(no logs: {error.cause})")
    script = f'for f in /var/log/*/*.log; do echo "--- $f"; tail -n {lines} "$f"; done'
    try:
        out += containers.execute(docker, name, ["sh", "-c", script]).splitlines()
    except PipelineError:
        out.append("(service logs unavailable: the container is not running)")
    return out


def stop(docker: Docker, name: str) -> None:
    container = containers.inspect(docker, name)
    if container is None or container.labels.get(LABEL) != "1":
        raise SandboxError(
            f"container {name} was not made by the sandbox pipeline", "remove it yourself"
        )
    containers.remove(docker, [name])


def cleanup(docker: Docker, prefix: str = "") -> list[str]:
    """Remove the containers this provider made whose name starts with `prefix` (not docker's
    `name=` filter, which matches anywhere in the name); their names, sorted."""
    names = [name for name in containers.labelled(docker, f"{LABEL}=1") if name.startswith(prefix)]
    containers.remove(docker, names)
    return names
