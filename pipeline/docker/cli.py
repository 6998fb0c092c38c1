"""The docker CLI: the one argv builder and the one way to run it.

Every docker command of the pipeline is built here (`docker [--config D] [--host H] ARGS`, the
prefix python-on-whales would build; a unit test holds them equal) and runs through the one
process-group runner (pipeline/process_group.py), so each has a timeout, Ctrl-C and SIGTERM stop
it with everything it started, and nothing but python, git and docker must be on PATH. Argv is
never printed: error messages say what failed in words.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.docker.endpoint import Location
from pipeline.errors import DOCKER_CLI_FIX, EngineError
from pipeline.process_group import Finished, GroupProcess, LineSink, Ran, Stdin, run

QUERY_TIMEOUT_S = 30.0  # inspect, tag, info, buildx inspect, image rm
ENGINE_DOWN = "Cannot connect to the Docker daemon"
ENGINE_FIX = "start it (scripts/setup-engine.sh) or point DOCKER_HOST at a running engine"


@dataclass(frozen=True)
class Docker:
    """The docker CLI, which engine it talks to, and which config folder it uses."""

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

    def with_config(self, config: Path | None) -> Docker:
        return replace(self, config=config)

    def run(
        self,
        *args: str | Path,
        timeout_s: float = QUERY_TIMEOUT_S,
        stdin: Stdin = None,
        env: Mapping[str, str] | None = None,
    ) -> Finished:
        """A short command; code -1 when it did not finish within `timeout_s`. `env`: variables
        added for the command (`docker run --env NAME` reads the value from there)."""
        return run(self.argv(*args), timeout_s, stdin=stdin, env=env, cancelled=f"docker {args[0]}")

    def start(self, *args: str | Path, stdin: Stdin = None) -> GroupProcess:
        """A command whose output is streamed (`GroupProcess.finish`), e.g. a build."""
        return GroupProcess(self.argv(*args), stdin=stdin)

    def stream(self, args: list[str], timeout_s: float, on_line: LineSink, cancelled: str) -> Ran:
        return self.start(*args).finish(timeout_s, on_line, cancelled)

    def checked(self, *args: str | Path, doing: str, timeout_s: float = QUERY_TIMEOUT_S) -> str:
        """Run a command that must succeed; its stdout, or EngineError saying what failed."""
        done = self.run(*args, timeout_s=timeout_s)
        if done.code == 0:
            return done.out
        raise engine_failure(done, doing)


def engine_failure(done: Finished, doing: str) -> EngineError:
    """The error for a docker command that failed: the engine down, a timeout, or its words."""
    if done.timed_out:
        return EngineError(
            f"docker did not finish {doing} in time",
            "check that the engine answers (`docker info`) and restart it if it hangs",
        )
    if ENGINE_DOWN in done.err:
        return EngineError("the Docker engine does not answer", ENGINE_FIX)
    return EngineError(f"docker failed {doing}: {done.last_line()}", "check `docker info`")


def find_docker(location: Location, config: Path | None = None) -> Docker:
    """The docker CLI on PATH; EngineError in one line when there is none."""
    binary = shutil.which("docker")
    if binary is None:
        raise EngineError("the docker CLI is not on PATH", DOCKER_CLI_FIX)
    return Docker(binary, location, config)
