"""The pipeline's fatal errors: each has its own exit code (below; 12 is the offline base image's,
base_image/rootfs.py) and says how to fix what went wrong. Sessions print `str(error)`: one line,
cause then fix, no traceback (`PIPELINE_TRACEBACK=1` shows one).
"""

from __future__ import annotations

import signal

DOCKER_CLI_FIX = "install Docker's CLI (Debian: scripts/setup-engine.sh) or put `docker` on PATH"


class PipelineError(Exception):
    """A failure the user can act on."""

    exit_code = 1

    def __init__(self, cause: str, fix: str = "", details: tuple[str, ...] = ()) -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix
        # Context printed above the one-line error, e.g. the last lines of a build log.
        self.details = details

    def __str__(self) -> str:
        one_line = " ".join(self.cause.split())
        return f"{one_line} — fix: {self.fix}" if self.fix else one_line


class ConfigError(PipelineError):
    exit_code = 2  # a bad environment variable or argument


class EngineError(PipelineError):
    exit_code = 3  # the Docker engine or buildx cannot be used


class GitError(PipelineError):
    exit_code = 4  # the git repository cannot give the facts a build needs, or refuses the build


class BuildError(PipelineError):
    exit_code = 5  # `docker buildx build` failed


class DeadlineExceeded(PipelineError):
    exit_code = 6  # a build or a wait ran past its deadline


class RegistryError(PipelineError):
    exit_code = 7  # the registry refused credentials, a push, or does not have an image


class DaytonaError(PipelineError):
    exit_code = 8  # Daytona's API answered with an error, or a snapshot/sandbox failed


class DaytonaAuthError(DaytonaError):
    exit_code = 9  # Daytona refused the credentials (401/403)


class SandboxError(PipelineError):
    exit_code = 10  # a sandbox container did not become healthy


class DoctorFoundProblems(PipelineError):
    exit_code = 11  # `doctor` ran every check and at least one failed (its FAIL lines say which)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM arrived, and what the session had started was stopped first. A
    KeyboardInterrupt, so code that cleans up on Ctrl-C cleans up on this too; `done` says in a
    few words what was stopped ("build cancelled")."""

    def __init__(self, done: str = "", signum: int = signal.SIGINT) -> None:
        super().__init__(done)
        self.done = done
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)
