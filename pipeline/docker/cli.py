"""The docker CLI: the one argv builder (`docker [--config D] [--host H] ARGS`) and the one way
to run it, through pipeline/process_group.py: each command has a timeout, and Ctrl-C or SIGTERM
stop it with everything it started. Argv is never printed: errors say what failed in words.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.docker.endpoint import Location
from pipeline.errors import DOCKER_CLI_FIX, EngineError
from pipeline.process_group import Finished, GroupProcess, Stdin, run

QUERY_TIMEOUT_S = 30.0  # inspect, tag, info, buildx inspect, image rm
ENGINE_DOWN = "Cannot connect to the Docker daemon"
ENGINE_FIX = "start it (scripts/setup-engine.sh) or point DOCKER_HOST at a running engine"


@dataclass(frozen=True)
class Docker:
    binary: str
    location: Location  # settings/build.py `BuildSettings.docker`
    config: Path | None = None  # --config: a temporary folder holding a push login

    def argv(self, *args: str | Path) -> list[str]:
        prefix = [self.binary]
        config = self.config or self.location.config
        if config is not None:
            prefix += ["--config", str(config)]
        if self.location.host is not None:
            prefix += ["--host", self.location.host]
        return [*prefix, *(str(arg) for arg in args)]

    def run(
        self,
        *args: str | Path,
        timeout_s: float = QUERY_TIMEOUT_S,
        stdin: Stdin = None,
        env: Mapping[str, str] | None = None,
    ) -> Finished:
        return run(self.argv(*args), timeout_s, stdin=stdin, env=env, cancelled=f"docker {args[0]}")

    def with_config(self, config: Path | None) -> Docker:
        return replace(self, config=config)

    def start(self, *args: str | Path) -> GroupProcess:
        return GroupProcess(self.argv(*args))

    def checked(
        self,
        *args: str | Path,
        doing: str,
        timeout_s: float = QUERY_TIMEOUT_S,
        stdin: Stdin = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        done = self.run(*args, timeout_s=timeout_s, stdin=stdin, env=env)
        if done.code == 0:
            return done.out
        raise engine_failure(done, doing)


def inspect(docker: Docker, kind: str, ref: str) -> dict[str, Any] | None:
    """`docker KIND inspect`'s document, None when there is no such object; EngineError when
    the engine cannot tell (a timeout or an engine that is down never means "missing")."""
    done = docker.run(kind, "inspect", "--format", "{{json .}}", ref)
    if done.code == 0:
        document: dict[str, Any] = json.loads(done.out)
        return document
    said = done.err.lower()
    missing = "no such" in said or (kind == "image" and "not found" in said)  # containerd
    if missing and not done.timed_out and ENGINE_DOWN not in done.err:
        return None
    raise engine_failure(done, f"looking up {ref if kind == 'image' else f'{kind} {ref}'}")


def repeated(flag: str, values: Iterable[str]) -> list[str]:
    return [part for value in values for part in (flag, value)]


def engine_failure(done: Finished, doing: str) -> EngineError:
    if done.timed_out:
        return EngineError(
            f"docker did not finish {doing} in time",
            "check that the engine answers (`docker info`) and restart it if it hangs",
        )
    if ENGINE_DOWN in done.err:
        return EngineError("the Docker engine does not answer", ENGINE_FIX)
    return EngineError(f"docker failed {doing}: {done.last_line()}", "check `docker info`")


def find_docker(location: Location, config: Path | None = None) -> Docker:
    binary = shutil.which("docker")
    if binary is None:
        raise EngineError("the docker CLI is not on PATH", DOCKER_CLI_FIX)
    return Docker(binary, location, config)
