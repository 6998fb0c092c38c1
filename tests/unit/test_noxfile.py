"""The session surface: descriptions, defaults, and no side effects in a bare `nox`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def nox_list() -> dict[str, tuple[bool, str]]:
    done = subprocess.run(
        [sys.executable, "-m", "nox", "-l"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    sessions = {}
    for line in done.stdout.splitlines():
        if line[:2] in ("* ", "- ") and " -> " in line:
            name, description = line[2:].split(" -> ", 1)
            sessions[name] = (line.startswith("*"), description)
    return sessions


def test_every_session_has_a_description_and_bare_nox_is_safe() -> None:
    sessions = nox_list()
    assert {"lint", "unit", "snapshot_local", "snapshot_push", "doctor"} <= sessions.keys()
    assert all(description.strip() for _, description in sessions.values())
    defaults = {name for name, (default, _) in sessions.items() if default}
    assert defaults == {"lint", "unit"}


def test_every_session_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in nox_list():
        assert f"`{name}`" in readme, f"session {name} is missing from the README"


def test_help_works_through_nox() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nox", "-s", "snapshot_local", "--", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--dry-run" in done.stdout
