"""`python -m pipeline COMMAND [options]`: the sessions' commands with distinct exit codes.

nox exits 1 for any failed session; scripts that need to tell failures apart call this instead
(`PipelineError.exit_code`: 2 config, 3 engine, 4 git, 5 build, 6 deadline, 7 registry, ...,
11 doctor; 130 after Ctrl-C, 143 after SIGTERM: see pipeline/errors.py).
"""

from __future__ import annotations

import os
import sys

from pipeline.errors import DOCKER_CLI_FIX, EngineError, Interrupted, PipelineError
from pipeline.fastpath.replay import TRIED_VARIABLE, replay
from pipeline.sessions import COMMANDS, resolve


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m pipeline COMMAND [options]\n\ncommands:")
        for name in COMMANDS:
            print(f"  {name}")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(
            f"error: unknown command {name!r} — fix: one of {', '.join(COMMANDS)}", file=sys.stderr
        )
        return 2
    tried = os.environ.pop(TRIED_VARIABLE, None) is not None  # by nox's own interpreter
    if name == "snapshot_local" and not tried and replay(rest, os.environ, _step):
        return 0  # nothing it reads has changed since its last decision (fastpath/replay.py)
    try:
        resolve(name)(rest)
    except PipelineError as error:
        if os.environ.get("PIPELINE_TRACEBACK"):
            raise
        for line in error.details:
            print(f"    {line}", file=sys.stderr)
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as interrupt:
        done = interrupt.done if isinstance(interrupt, Interrupted) else ""
        print(f"interrupted{': ' + done if done else ''}", file=sys.stderr)
        return interrupt.exit_code if isinstance(interrupt, Interrupted) else 130
    except Exception as error:
        missing = _missing_tool(error)
        if missing is None or os.environ.get("PIPELINE_TRACEBACK"):
            raise
        print(f"error: {missing}", file=sys.stderr)
        return missing.exit_code
    return 0


def _step(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def _missing_tool(error: Exception) -> EngineError | None:
    """python-on-whales' ClientNotFoundError (a command it runs is not on PATH) as one line."""
    if type(error).__name__ != "ClientNotFoundError":
        return None
    text = str(error)
    tool = text.split("'")[1] if text.count("'") >= 2 else "docker"
    fix = DOCKER_CLI_FIX if tool == "docker" else f"install {tool} or put it on PATH"
    return EngineError(f"the {tool} command is not on PATH", fix)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
