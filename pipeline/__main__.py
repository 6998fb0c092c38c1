"""`python -m pipeline COMMAND [options]`: the sessions' commands with distinct exit codes.

nox exits 1 for any failed session; scripts that need to tell failures apart call this instead
(`PipelineError.exit_code`: 2 config, 3 engine, 4 git, 5 build, 6 deadline, 7 registry, ...).
"""

from __future__ import annotations

import os
import sys

from pipeline.errors import PipelineError
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
    try:
        resolve(name)(rest)
    except PipelineError as error:
        if os.environ.get("PIPELINE_TRACEBACK"):
            raise
        for line in error.details:
            print(f"    {line}", file=sys.stderr)
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
