"""The layers of docs/architecture.md, held by reading every module's syntax tree:

- rules import nothing but rules and errors (pure decisions);
- the rooms that reach the outside world (docker, git, registry, daytona, fastpath, base_image,
  sandbox, background) import no settings, sessions or jobs: they take values;
- the emulator imports nothing from pipeline (a test double with its own reading of Daytona);
- only pipeline/docker starts the docker CLI or opens the engine's socket, and only
  pipeline/git/runner.py starts git;
- only settings read the environment (the exceptions below pass it on, and say why).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "pipeline"
ROOMS = ("docker", "git", "registry", "daytona", "fastpath", "base_image", "sandbox", "background")
ABOVE_ROOMS = ("pipeline.settings", "pipeline.sessions", "pipeline.build", "pipeline.app")
# Reading os.environ outside settings/, each for a reason other than configuration.
ENVIRONMENT_READERS = {
    "pipeline/__main__.py": "hands the process environment to the replay, before any import",
    "pipeline/build/record.py": "hands the process environment to the replay's observation",
    "pipeline/process_group.py": "passes the environment on to a child, with additions",
    "pipeline/background/builds.py": "passes the environment on; the lock hand-over variable",
    "pipeline/sessions/background.py": "passes the environment on to the background build",
    "pipeline/sessions/sandbox_daytona.py": "--env NAME: a variable the user names on purpose",
}


def modules(folder: Path) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(folder.rglob("*.py")):
        yield str(path.relative_to(ROOT)), ast.parse(path.read_text(), str(path))


def imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in packages)


def strings_starting_argv(tree: ast.Module) -> set[str]:
    """The first element of every list or tuple literal that is a string (argv's program)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
    return found


def attribute_names(tree: ast.Module) -> set[str]:
    return {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}


def which_calls(tree: ast.Module) -> set[str]:
    """Programs looked up with shutil.which("...")."""
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "which"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value))
    return found


def test_rules_import_only_rules_and_errors() -> None:
    for path, tree in modules(PIPELINE / "rules"):
        ours = {name for name in imported(tree) if under(name, "pipeline")}
        wrong = {n for n in ours if not under(n, "pipeline.rules", "pipeline.errors")}
        assert not wrong, f"{path} imports {sorted(wrong)}"


@pytest.mark.parametrize("room", ROOMS)
def test_rooms_take_values_not_settings(room: str) -> None:
    for path, tree in modules(PIPELINE / room):
        wrong = {name for name in imported(tree) if under(name, *ABOVE_ROOMS)}
        assert not wrong, f"{path} imports {sorted(wrong)}"


def test_the_emulator_imports_nothing_from_pipeline() -> None:
    for path, tree in modules(ROOT / "emulator"):
        wrong = {name for name in imported(tree) if under(name, "pipeline")}
        assert not wrong, f"{path} imports {sorted(wrong)}"


def test_only_the_docker_room_starts_docker_or_opens_the_engine() -> None:
    for path, tree in modules(PIPELINE):
        if path.startswith("pipeline/docker/"):
            continue
        assert "docker" not in strings_starting_argv(tree), f"{path} builds a docker argv"
        assert "docker" not in which_calls(tree), f"{path} looks for the docker CLI"
        assert not any(under(n, "python_on_whales") for n in imported(tree)), path
        assert "AF_UNIX" not in attribute_names(tree), f"{path} opens a unix socket"


def test_only_the_git_runner_starts_git() -> None:
    for path, tree in modules(PIPELINE):
        if path == "pipeline/git/runner.py":
            continue
        assert "git" not in strings_starting_argv(tree), f"{path} builds a git argv"


def test_only_settings_read_the_environment() -> None:
    readers = set()
    for path, tree in modules(PIPELINE):
        if path.startswith("pipeline/settings/"):
            continue
        names = attribute_names(tree)
        if "environ" in names or "getenv" in names:
            readers.add(path)
    assert readers == set(ENVIRONMENT_READERS)


def test_the_checks_see_what_they_look_for() -> None:
    """Each check above finds the thing it forbids when it is there."""
    tree = ast.parse(
        "import os, shutil, socket\nfrom pipeline.settings.build import X\n"
        "a = ['docker', 'ps']\nb = ('git', 'status')\nshutil.which('docker')\n"
        "socket.AF_UNIX\nos.environ.get('X')\n"
    )
    assert under("pipeline.settings.build.X", *ABOVE_ROOMS)
    assert any(under(n, *ABOVE_ROOMS) for n in imported(tree))
    assert {"docker", "git"} <= strings_starting_argv(tree)
    assert which_calls(tree) == {"docker"}
    assert {"AF_UNIX", "environ"} <= attribute_names(tree)
