"""Containers in the engine: run, look at, list by label, read logs, exec, remove.

Environment values given to a container travel as `--env NAME` with the value in the docker
CLI's own environment, so a secret never shows in argv (`ps`, audit logs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.docker import cli
from pipeline.docker.cli import Docker, repeated
from pipeline.errors import EngineError

RUN_TIMEOUT_S = 120.0  # `docker run --detach` returns once the container started


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    running: bool
    exit_code: int
    labels: dict[str, str] = field(default_factory=dict)
    # "3000/tcp" -> [("127.0.0.1", "49153"), ...]
    ports: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def from_inspect(cls, document: dict[str, Any]) -> Container:
        state = document.get("State") or {}
        ports = ((document.get("NetworkSettings") or {}).get("Ports")) or {}
        return cls(
            id=str(document["Id"]),
            name=str(document.get("Name") or "").lstrip("/"),
            running=bool(state.get("Running")),
            exit_code=int(state.get("ExitCode") or 0),
            labels=dict((document.get("Config") or {}).get("Labels") or {}),
            ports={
                port: [(str(b.get("HostIp")), str(b.get("HostPort"))) for b in bindings or []]
                for port, bindings in ports.items()
            },
        )


@dataclass(frozen=True)
class Mount:
    source: str  # a host path or a volume name
    target: str
    mode: str = "rw"


def run(  # returns the container's id
    docker: Docker,
    image: str,
    *,
    name: str,
    env: Mapping[str, str] = {},
    labels: Mapping[str, str] = {},
    publish: Sequence[str] = (),  # docker's -p form, e.g. "127.0.0.1::3000"
    mounts: Sequence[Mount] = (),
) -> str:
    args = ["run", "--detach", "--name", name, *repeated("--env", env)]
    args += repeated("--label", (f"{key}={value}" for key, value in labels.items()))
    args += repeated("--publish", publish)
    args += repeated("--volume", (f"{m.source}:{m.target}:{m.mode}" for m in mounts))
    doing = f"starting a container from {image}"
    return docker.checked(*args, image, env=env, timeout_s=RUN_TIMEOUT_S, doing=doing).strip()


def inspect(docker: Docker, name: str) -> Container | None:
    document = cli.inspect(docker, "container", name)
    return None if document is None else Container.from_inspect(document)


def labelled(docker: Docker, label: str) -> list[str]:
    out = docker.checked(
        "container", "ls", "--all", "--filter", f"label={label}", "--format", "{{.Names}}",
        doing="listing containers",
    )  # fmt: skip
    return sorted(line.strip() for line in out.splitlines() if line.strip())


def remove(docker: Docker, names: Sequence[str]) -> None:
    """Force-remove containers (their anonymous volumes stay: a named store is shared)."""
    if names:
        docker.checked("container", "rm", "--force", *names, doing="removing containers")


def logs(docker: Docker, name: str, tail: int) -> str:
    done = docker.run("container", "logs", "--tail", str(tail), name)
    if done.code:
        raise EngineError(f"no logs of {name}: {done.last_line()}", "check `docker ps -a`")
    return "\n".join(part for part in (done.out, done.err) if part)


def execute(docker: Docker, name: str, command: Sequence[str], timeout_s: float = 60.0) -> str:
    # Only tests and service_logs (which words its own failure) run it: engine_failure's wording.
    doing = f"running `{' '.join(command)}` in {name}"
    return docker.checked("container", "exec", name, *command, timeout_s=timeout_s, doing=doing)
