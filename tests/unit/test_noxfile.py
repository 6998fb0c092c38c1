"""The session surface: descriptions, defaults, and no side effects in a bare `nox`."""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

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


def readme_sessions() -> dict[str, str]:
    """The README's session table: name -> what it does."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("\n## Sessions\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if len(cells) == 2 and cells[0].startswith("`") and cells[0].endswith("`"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_the_readme_session_table_is_the_catalog() -> None:
    """One declaration per session (pipeline/catalog.py): nox's list, `python -m pipeline`'s
    table and the README's table all come from it."""
    from pipeline.catalog import SESSIONS

    assert readme_sessions() == {session.name: session.summary for session in SESSIONS}
    assert {name: text for name, (_, text) in nox_list().items()} == {
        session.name: session.plain for session in SESSIONS
    }


def test_python_m_pipeline_lists_every_command_and_its_python() -> None:
    from pipeline.catalog import COMMANDS

    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0
    assert sys.executable in done.stdout  # which Python has the project installed
    for name, session in COMMANDS.items():
        assert f"{name}  " in done.stdout and session.plain in done.stdout


def test_help_works_through_nox(tmp_path: Path) -> None:
    # Venvs of its own: the user's .nox/ is never rebuilt by the tests.
    envdir = str(tmp_path / "nox")
    done = subprocess.run(
        [sys.executable, "-m", "nox", "--envdir", envdir, "-s", "snapshot_local", "--", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--dry-run" in done.stdout


@functools.cache  # loaded once: each load registers the sessions with nox again
def _noxfile() -> ModuleType:
    spec = importlib.util.spec_from_file_location("project_noxfile", ROOT / "noxfile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_nox_on_an_older_python_gets_venvs_of_a_newer_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pipx nox on Ubuntu 22.04 runs on 3.10; the project needs 3.11 (checked by hand with a
    nox on pyenv's 3.10.13: its venvs were made with python3.11, and its replay still ran)."""
    noxfile = _noxfile()
    assert noxfile.MIN_PYTHON == (3, 11)
    assert noxfile._session_python() is None  # this Python is new enough: nox's own
    monkeypatch.setattr(noxfile, "sys", SimpleNamespace(version_info=(3, 10, 13)))
    on_path = {"python3.13": "/shims/python3.13", "python3.11": "/usr/bin/python3.11"}
    monkeypatch.setattr(noxfile.shutil, "which", on_path.get)
    monkeypatch.setattr(noxfile, "_runs", lambda python: not python.startswith("/shims"))
    assert noxfile._session_python() == "/usr/bin/python3.11"  # the shim that cannot run: no
    monkeypatch.setattr(noxfile.shutil, "which", lambda name: None)
    assert noxfile._session_python() is None


def test_the_python_a_venv_was_made_with_is_read_from_its_config(tmp_path: Path) -> None:
    noxfile = _noxfile()
    assert noxfile._venv_python_version(tmp_path) is None
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\nversion_info = 3.10.13\n")
    assert noxfile._venv_python_version(tmp_path) == (3, 10)
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.12.1\n")
    assert noxfile._venv_python_version(tmp_path) == (3, 12)
