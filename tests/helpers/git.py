"""git for tests: run it in a folder with a fixed identity, as a user would on the CLI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git(cwd: Path, *args: str, **env: str) -> str:
    """`git ARGS` in `cwd` (extra environment variables as keywords); its stdout, stripped."""
    return subprocess.run(
        ["git", "-c", "user.email=t@e.invalid", "-c", "user.name=t", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env} if env else None,
    ).stdout.strip()
