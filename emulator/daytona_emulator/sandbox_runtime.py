"""Sandboxes as real containers on a Docker engine: the emulator's stand-in for Daytona's runner.

Like the runner, it pulls the snapshot's image (linux/amd64, with the organization's registry
credentials, through the configured mirrors), then runs it with the snapshot's entrypoint and
resources, the sandbox's env and labels, and Daytona's own `DAYTONA_SANDBOX_*` variables.
Registry logins go to a Docker config directory of the emulator's own, so they never touch
`~/.docker`. Every container carries the instance label, so a reset or shutdown removes exactly
this emulator's containers and nobody else's.

Container operations are blocking CLI calls (python-on-whales): callers on the event loop run
them in worker threads. `exec` is async itself, because it needs a deadline and a kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from daytona_emulator.config import RegistryCredential, SandboxSettings
from daytona_emulator.pull_source import PullSource

if TYPE_CHECKING:
    from python_on_whales import DockerClient

INSTANCE_LABEL = "dev.iterate.daytona-emulator.instance"
SANDBOX_LABEL = "dev.iterate.daytona-emulator.sandbox"
# Daytona's runner labels every sandbox container with its organization.
ORGANIZATION_LABEL = "daytona.organization_id"
CONTAINER_PREFIX = "daytona-emulator-"

# Daytona's daemon runs a command with the first of zsh, bash or sh it finds, stdout and
# stderr into one buffer. The wrapper merges them inside the container (the engine copies two
# streams in no particular order), and first prints its own pid: the exec'd process leads its
# own process group, so a timeout can kill the command's whole tree inside the container
# (killing the docker CLI would not).
_SHELL_PICKER = (
    'printf "%s\\n" "$$"; '
    "for shell in zsh bash; do "
    'if command -v "$shell" >/dev/null 2>&1; then exec "$shell" -c "$1" 2>&1; fi; '
    "done; "
    'exec sh -c "$1" 2>&1'
)


class RuntimeFailure(Exception):
    """A container operation failed; `str()` is the text a sandbox's `errorReason` gets."""


class ExecTimeout(Exception):
    """The command outlived its timeout and was killed."""


@dataclass(frozen=True)
class ContainerSpec:
    sandbox_id: str
    organization_id: str
    snapshot_ref: str
    user: str
    entrypoint: list[str] | None  # None: the image's own
    env: Mapping[str, str]
    labels: Mapping[str, str]
    cpu: float
    memory_gb: float


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str  # stdout and stderr interleaved, as Daytona's daemon returns them


@dataclass(frozen=True)
class _Network:
    published: dict[int, int]  # container port -> port on 127.0.0.1
    address: str | None  # the container's own address on its network


def _describe(error: BaseException) -> str:
    """The docker CLI's own message when there is one (it is what Daytona's runner reports)."""
    stderr = getattr(error, "stderr", None)
    if isinstance(stderr, str) and stderr.strip():
        return stderr.strip()
    return str(error).strip() or type(error).__name__


@contextlib.contextmanager
def _failing_as(prefix: str) -> Iterator[None]:
    try:
        yield
    except RuntimeFailure:
        raise
    except Exception as error:  # a missing CLI or engine is a failed runner call, not a crash
        raise RuntimeFailure(f"{prefix}: {_describe(error)}") from error


class SandboxRuntime:
    def __init__(self, instance_id: str, settings: SandboxSettings) -> None:
        self.instance_id = instance_id
        self._settings = settings
        self._lock = threading.Lock()
        self._client: DockerClient | None = None
        self._config_dir: Path | None = None
        self._logins: set[tuple[str, str, str]] = set()
        self._networks: dict[str, _Network] = {}
        self._engine_cpus: int | None = None
        # Containers made and not yet removed: with none, a reset need not ask the engine.
        self._known: set[str] = set()

    @property
    def used(self) -> bool:
        """Whether any container work was ever asked for (only then is the engine touched)."""
        return self._client is not None

    def _docker(self) -> DockerClient:
        from python_on_whales import DockerClient

        with self._lock:
            if self._client is None:
                self._config_dir = Path(tempfile.mkdtemp(prefix="daytona-emulator-docker-"))
                self._client = DockerClient(
                    config=self._config_dir, host=self._settings.docker_host
                )
            return self._client

    def close(self) -> None:
        """Forget logins (the config directory holds them)."""
        with self._lock:
            if self._config_dir is not None:
                shutil.rmtree(self._config_dir, ignore_errors=True)
            self._client = None
            self._config_dir = None
            self._logins.clear()
            self._networks.clear()

    # Creating

    def run(self, spec: ContainerSpec, *, source: PullSource) -> str:
        """Pull the image and start the container; its id. Raises `RuntimeFailure`."""
        docker = self._docker()
        reference = self._pull(docker, source)
        name = f"{CONTAINER_PREFIX}{spec.sandbox_id}"
        entrypoint = spec.entrypoint or []
        env = {
            "DAYTONA_SANDBOX_ID": spec.sandbox_id,
            "DAYTONA_SANDBOX_SNAPSHOT": spec.snapshot_ref,
            "DAYTONA_SANDBOX_USER": spec.user,
            **spec.env,
        }
        labels = {
            **spec.labels,
            ORGANIZATION_LABEL: spec.organization_id,
            INSTANCE_LABEL: self.instance_id,
            SANDBOX_LABEL: spec.sandbox_id,
        }
        container_id: str | None = None
        try:
            with _failing_as("Failed to create sandbox container"):
                container = docker.container.run(
                    reference,
                    entrypoint[1:],
                    entrypoint=entrypoint[0] if entrypoint else None,
                    detach=True,
                    name=name,
                    hostname=spec.sandbox_id,
                    # An init as PID 1 forwards SIGTERM, so `sleep infinity` stops at once,
                    # as it does under Daytona's daemon.
                    init=True,
                    envs=env,
                    labels=labels,
                    cpus=min(spec.cpu, self._cpus(docker)) if spec.cpu > 0 else None,
                    memory=f"{max(6, math.ceil(spec.memory_gb * 1024))}m"
                    if spec.memory_gb > 0
                    else None,
                    publish=[("127.0.0.1:", port) for port in self._settings.published_ports],
                    platform=self._settings.platform,
                    pull="never",
                )
            container_id = str(getattr(container, "id", container))
            with self._lock:
                self._known.add(container_id)
            self._check_running(docker, container_id)
        except RuntimeFailure:
            # A failed `run` can leave a created container behind.
            self.remove(container_id or name)
            raise
        return container_id

    def _pull(self, docker: DockerClient, source: PullSource) -> str:
        if not source.reachable:
            # The same rule as the snapshot's registry probe (pull_source.py).
            raise RuntimeFailure(
                f"Failed to pull image {source.image}: registry {source.ref.domain} is unreachable "
                "from the emulator: use a 127.0.0.1 registry, or configure registry auth or a "
                "mirror"
            )
        if source.credential is not None:
            self._login(docker, source.target, source.credential)
        else:
            # Credentials removed since an earlier pull must not keep working from the config.
            self._logout(docker, source.target)
        with _failing_as(f"Failed to pull image {source.image}"):
            docker.image.pull(source.reference, quiet=True, platform=self._settings.platform)
        return source.reference

    def _login(self, docker: DockerClient, registry: str, credential: RegistryCredential) -> None:
        from python_on_whales.utils import run

        key = (registry, credential.username, credential.password)
        with self._lock:
            if key in self._logins:
                return
        with _failing_as(f"Failed to log in to {registry}"):
            # python-on-whales' own `login` lets the CLI's stderr escape; this keeps it.
            run(
                [
                    *docker.client_config.docker_cmd,
                    "login",
                    "--password-stdin",
                    "--username",
                    credential.username,
                    registry,
                ],
                input=credential.password.encode(),
            )
        with self._lock:
            self._logins.add(key)

    def _logout(self, docker: DockerClient, registry: str) -> None:
        with self._lock:
            stale = {key for key in self._logins if key[0] == registry}
            self._logins -= stale
        if stale:
            with contextlib.suppress(Exception):
                docker.logout(registry)

    def _cpus(self, docker: DockerClient) -> float:
        """The engine refuses `--cpus` above its own CPU count; Daytona's runners are bigger."""
        if self._engine_cpus is None:
            with _failing_as("Failed to ask the Docker engine for its CPUs"):
                self._engine_cpus = int(docker.system.info().n_cpu or 1)
        return float(self._engine_cpus)

    def _check_running(self, docker: DockerClient, container_id: str) -> None:
        with _failing_as("Failed to inspect sandbox container"):
            inspected = docker.container.inspect(container_id)
        state = inspected.state
        if not state.running:
            logs = ""
            with contextlib.suppress(Exception):
                logs = str(docker.container.logs(container_id, tail=5)).strip()
            raise RuntimeFailure(
                f"Sandbox container exited with code {state.exit_code}"
                + (f": {logs}" if logs else "")
            )
        settings = inspected.network_settings
        published: dict[int, int] = {}
        for key, bindings in (settings.ports or {}).items():
            port, _, protocol = str(key).partition("/")
            for binding in bindings or []:
                if protocol == "tcp" and binding.get("HostPort"):
                    published[int(port)] = int(binding["HostPort"])
                    break
        address = settings.ip_address or next(
            (n.ip_address for n in (settings.networks or {}).values() if n.ip_address), None
        )
        with self._lock:
            self._networks[container_id] = _Network(published=published, address=address)

    # Running ones

    def endpoint(self, container_id: str, port: int) -> Endpoint | None:
        """Where a container port is reached from here: published on 127.0.0.1, else direct."""
        with self._lock:
            network = self._networks.get(container_id)
        if network is None:
            return None
        if port in network.published:
            return Endpoint("127.0.0.1", network.published[port])
        return Endpoint(network.address, port) if network.address else None

    def start(self, container_id: str) -> None:
        docker = self._docker()
        with _failing_as("Failed to start sandbox container"):
            docker.container.start(container_id)
        # Published host ports are assigned anew on every start.
        self._check_running(docker, container_id)

    def stop(self, container_id: str, *, timeout: float, force: bool) -> None:
        docker = self._docker()
        with self._lock:
            self._networks.pop(container_id, None)
        with _failing_as("Failed to stop sandbox container"):
            if force:
                docker.container.kill(container_id)
            else:
                docker.container.stop(container_id, time=math.ceil(timeout))

    def remove(self, container: str) -> None:
        """Remove a container by id or name; one that is already gone is fine."""
        docker = self._docker()
        with self._lock:
            self._networks.pop(container, None)
            self._known.discard(container)
        with contextlib.suppress(Exception):
            docker.container.remove(container, force=True, volumes=True)

    def remove_all(self) -> list[str]:
        """Remove every container of this emulator instance; their ids."""
        with self._lock:
            if not self._known:
                return []
        docker = self._docker()
        with _failing_as("Failed to list sandbox containers"):
            containers = docker.container.list(
                all=True, filters=[("label", f"{INSTANCE_LABEL}={self.instance_id}")]
            )
        ids = [str(container.id) for container in containers]
        if ids:
            with _failing_as("Failed to remove sandbox containers"):
                docker.container.remove(ids, force=True, volumes=True)
        with self._lock:
            self._networks.clear()
            self._known.clear()
        return ids

    def containers(self) -> list[str]:
        """Ids of this instance's containers, running or not (for tests and diagnostics)."""
        if not self.used:
            return []
        docker = self._docker()
        with _failing_as("Failed to list sandbox containers"):
            found = docker.container.list(
                all=True, filters=[("label", f"{INSTANCE_LABEL}={self.instance_id}")]
            )
        return [str(container.id) for container in found]

    async def exec(
        self,
        container_id: str,
        command: str,
        *,
        cwd: str | None,
        env: Mapping[str, str],
        timeout: float | None,
    ) -> ExecResult:
        """Run `command` through a shell in the container, like Daytona's `/process/execute`."""
        docker_cmd = [str(part) for part in self._docker().client_config.docker_cmd]
        argv = [*docker_cmd, "exec"]
        if cwd:
            argv += ["--workdir", cwd]
        for key, value in env.items():
            argv += ["--env", f"{key}={value}"]
        argv += [container_id, "sh", "-c", _SHELL_PICKER, "daytona-exec", command]
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert process.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None

        def remaining() -> float | None:
            return max(0.0, deadline - loop.time()) if deadline is not None else None

        pid_line = b""
        try:
            pid_line = await asyncio.wait_for(process.stdout.readline(), remaining())
            rest = await asyncio.wait_for(process.stdout.read(), remaining())
            exit_code = await asyncio.wait_for(process.wait(), remaining())
        except TimeoutError:
            await self._kill_tree(docker_cmd, container_id, pid_line)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise ExecTimeout from None
        if not pid_line.strip().isdigit():
            # The shell never ran (no such cwd, no `sh`, container gone): Daytona's daemon
            # answers exit code -1 with the error text when it cannot start the command.
            return ExecResult(-1, (pid_line + rest).decode(errors="replace").strip())
        return ExecResult(exit_code, rest.decode(errors="replace"))

    @staticmethod
    async def _kill_tree(docker_cmd: list[str], container_id: str, pid_line: bytes) -> None:
        pid = pid_line.strip().decode(errors="replace")
        if not pid.isdigit():
            return
        killer = await asyncio.create_subprocess_exec(
            *docker_cmd,
            "exec",
            container_id,
            "sh",
            "-c",
            f"kill -9 -{pid} 2>/dev/null || kill -9 {pid}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(killer.wait(), 10)
