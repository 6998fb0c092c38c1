"""`python -m pipeline COMMAND [options]`: the sessions' commands with distinct exit codes
(pipeline/errors.py). nox exits 1 for any failed session; scripts that need to tell failures
apart call this instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence

from pipeline import console
from pipeline.catalog import COMMANDS
from pipeline.errors import Interrupted, PipelineError
from pipeline.fastpath.replay import TRIED_VARIABLE, replay
from pipeline.process_group import cancel_when_orphaned, sigterm_interrupts


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m pipeline COMMAND [options]   (COMMAND -- --help for its options)")
        print(f"\nrun by {sys.executable}\n\ncommands:")
        width = max(map(len, COMMANDS))
        for name, session in COMMANDS.items():
            print(f"  {name:<{width}}  {session.plain}")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(
            f"error: unknown command {name!r} — fix: one of {', '.join(COMMANDS)}", file=sys.stderr
        )
        return 2
    tried = os.environ.pop(TRIED_VARIABLE, None) is not None  # by nox's own interpreter
    if name == "snapshot_local" and not tried and replay(rest, os.environ, console.step):
        return 0  # nothing it reads has changed since its last decision (fastpath/replay.py)
    traceback = False
    cancel_when_orphaned()
    try:
        with sigterm_interrupts():
            from pipeline.settings.build import ReportSettings, load

            reports = load(ReportSettings)
            console.WHERE.github = reports.github_actions  # where output goes
            traceback = reports.traceback
            _command(name)(rest)
    except PipelineError as error:
        if traceback:
            raise
        for line in error.details:
            print(f"    {line}", file=sys.stderr)
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as interrupt:
        done = interrupt.done if isinstance(interrupt, Interrupted) else ""
        print(f"interrupted{': ' + done if done else ''}", file=sys.stderr)
        return interrupt.exit_code if isinstance(interrupt, Interrupted) else 130
    return 0


def _command(name: str) -> Callable[[Sequence[str]], None]:
    module, _, attribute = str(COMMANDS[name].command).partition(":")
    command: Callable[[Sequence[str]], None] = getattr(importlib.import_module(module), attribute)
    return command


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
