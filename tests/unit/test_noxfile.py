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
