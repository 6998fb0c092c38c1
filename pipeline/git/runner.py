"""The one way the pipeline runs git: one environment policy, a timeout on every call.

The repository is always the one holding the folder a call names: variables that would point git
elsewhere are taken out (a ref export passes its own index explicitly). Git never prompts (a
fetch without credentials fails instead of waiting for a human) and takes no optional locks (a
`git status` of ours must not race the user's). Standard library only: the replay runs it in nox.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import GitError
from pipeline.process_group import Finished, run

TIMEOUT_S = 60.0
LONG_TIMEOUT_S = 300.0  # fetches and exports
LOCATION_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
)
_POLICY = {"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}


def git(
    cwd: Path, *args: str, timeout_s: float = TIMEOUT_S, env: Mapping[str, str] | None = None
) -> Finished:
    if shutil.which("git") is None:
        raise GitError("git is not on PATH", "install git (Debian: apt-get install git)")
    done = run(
        ["git", *args],
        timeout_s,
        cwd=cwd,
        env={**_POLICY, **(env or {})},
        unset=LOCATION_VARIABLES,
        cancelled=f"git {args[0]}",
    )
    if done.timed_out:
        raise GitError(
            f"`git {args[0]}` did not finish within {timeout_s:g} s in {cwd}",
            "check the repository (git fsck, a hung filesystem) and rerun",
        )
    return done
