"""Sessions of sandbox-pipeline. `nox -l` lists them; the README says more.

Works from any nox (pipx, uvx, a venv holding only nox): each session installs what it needs
into its own venv under .nox/ from uv.lock (uv when present, else virtualenv + pip pinned to the
same lock), reuses that venv, and skips the install when nothing it installs has changed.
Command sessions then run `python -m pipeline NAME`, which prints one line per failure and exits
with the failure's own code (README: "When things go wrong").
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

if sys.version_info >= (3, 11):  # noqa: UP036 (the user's nox may run on an older Python)
    import tomllib
else:  # a nox installed on an older Python; nox itself depends on tomli there
    import tomli as tomllib

import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["lint", "unit"]
# One kind of venv whatever nox runs them (a pipx nox without uv, .venv's nox with it): nox
# would otherwise remake a uv-made venv for a nox without uv. Installs use uv when there is one.
nox.options.default_venv_backend = "virtualenv"
nox.options.reuse_venv = "yes"

ROOT = Path(__file__).resolve().parent
EMULATOR = ROOT / "emulator"
LOCK = ROOT / "uv.lock"
# What decides a session's packages: when none of these changed, the install step is skipped.
INSTALL_INPUTS = (ROOT / "pyproject.toml", LOCK, EMULATOR / "pyproject.toml")
# When nox is interrupted it sends the pipeline SIGTERM at once (Ctrl-C in a terminal reaches
# both; SIGINT to nox alone reaches only nox), then gives it this long to cancel the build in
# the engine and clean up before SIGKILL (nox's default is 0.2 s).
TERMINATE_TIMEOUT_S = 30.0
SYSTEM_PYTHON = "/usr/bin/python3"
UNIT_MARKERS = "not engine and not registry and not emulator and not sandbox_image"
MIN_PYTHON = (3, 11)  # pyproject.toml's requires-python


def _session_python() -> str | None:
    """The interpreter of the sessions' venvs: nox's own when it is new enough (None), else the
    newest python3.1x on PATH (a pipx nox on Ubuntu 22.04 runs on 3.10)."""
    if sys.version_info >= MIN_PYTHON:
        return None
    for minor in range(14, MIN_PYTHON[1] - 1, -1):
        found = shutil.which(f"python3.{minor}")
        if found and _runs(found):  # a pyenv shim is on PATH even where it cannot run
            return found
    return None


def _venv_python_version(venv: Path) -> tuple[int, ...] | None:
    try:
        config = (venv / "pyvenv.cfg").read_text()
    except OSError:
        return None
    for line in config.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version_info", "version"):
            try:
                return tuple(int(part) for part in value.strip().split(".")[:2])
            except ValueError:
                return None
    return None


def _runs(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", ""], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


SESSION_PYTHON = _session_python()


def _uv() -> str | None:
    """uv on PATH, or the one installed beside nox (`pipx install 'nox[uv]'`)."""
    found = shutil.which(os.environ.get("UV") or "uv")
    if found:
        return found
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found,unused-ignore]

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return None


def _quiet_without_uv() -> None:
    """A nox without uv looks for it before every command and says `uv binary not found.` each
    time; the answer is known here (installs use pip then), so it is given to nox up front."""
    if _uv() is not None:
        return
    try:
        import nox.virtualenv as venvs
        from packaging.version import Version

        venvs.HAS_UV, venvs.UV, venvs.UV_VERSION = False, "uv", Version("0")
    except ImportError:  # another nox's layout: it may speak, nothing breaks
        return


_quiet_without_uv()


def _fingerprint(session: nox.Session, groups: tuple[str, ...]) -> str:
    # Not which installer: uv and pip install the same pinned versions into the same venv.
    digest = hashlib.sha256(",".join(groups).encode())
    for path in INSTALL_INPUTS:
        digest.update(path.read_bytes() if path.exists() else b"-")
    return digest.hexdigest()


def _install(session: nox.Session, *groups: str) -> None:
    """The project (editable) plus the named dependency groups, pinned by uv.lock."""
    if sys.version_info < MIN_PYTHON and SESSION_PYTHON is None:
        session.error(
            f"nox runs on Python {sys.version.split()[0]} and no python3.11 or newer is on "
            "PATH — fix: install one (apt-get install python3.11), or run a nox installed "
            "with it (pipx install --python python3.12 nox)"
        )
    venv = getattr(session.virtualenv, "location", None)
    if not venv:
        session.error("this session needs its own venv: run it without --no-venv")
    made_with = _venv_python_version(Path(venv))
    if made_with is not None and made_with < MIN_PYTHON:
        session.error(
            f"{venv} was made with Python {'.'.join(map(str, made_with))}, older than the "
            f"project needs — fix: rerun with `nox -s {session.name} --reuse-venv=no`"
        )
    stamp = Path(venv) / ".sandbox-pipeline-installed"
    want = _fingerprint(session, groups)
    if stamp.exists() and stamp.read_text() == want:
        return
    uv = _uv()
    if uv is not None:
        session.run_install(
            uv,
            "sync",
            "--locked",
            "--inexact",  # keeps virtualenv's pip, for a nox without uv after this one
            "--quiet",
            "--no-default-groups",
            *(f"--group={group}" for group in groups),
            # The system's trust store, so a proxy that re-signs TLS works as it does for git.
            env={"UV_PROJECT_ENVIRONMENT": venv, "UV_NATIVE_TLS": "1"},
            external=True,
            silent=True,
        )
    else:
        _pip_install(session, groups)
    stamp.write_text(want)


def _pip_install(session: nox.Session, groups: tuple[str, ...]) -> None:
    """Without uv: pip, constrained to the versions uv.lock records (so both paths agree)."""
    constraints = Path(session.create_tmp()) / "uv-lock-constraints.txt"
    lock = tomllib.loads(LOCK.read_text())
    pins = [
        f"{package['name']}=={package['version']}"
        for package in lock.get("package", [])
        if "registry" in package.get("source", {})
    ]
    constraints.write_text("\n".join(pins) + "\n")
    requirements = [
        requirement
        for requirement in nox.project.dependency_groups(
            nox.project.load_toml(ROOT / "pyproject.toml"), *groups
        )
        if not requirement.startswith("daytona-emulator")
    ]
    extra = ["-e", str(EMULATOR)] if EMULATOR.exists() and groups else []
    session.install("-c", str(constraints), "-e", str(ROOT), *extra, *requirements, silent=True)


def _checkout_module(name: str) -> ModuleType:
    """A module of this checkout's own `pipeline` package, whatever else nox's interpreter has
    installed under that name (sys.path is left alone)."""
    path = (ROOT / Path(*name.split("."))).with_suffix(".py")
    spec = importlib.util.spec_from_file_location(f"_sandbox_{name.replace('.', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while they are made
    spec.loader.exec_module(module)
    return module


CATALOG = _checkout_module("pipeline.catalog")


def _pipeline(session: nox.Session, name: str) -> None:
    """Run one pipeline command in the session's venv; its exit code says what failed."""
    replayed = _replay(session) if name == "snapshot_local" else None
    if replayed:
        return
    env = {}
    if replayed is False:  # the child need not observe again what was just found changed
        from pipeline.fastpath.replay import TRIED_VARIABLE

        env[TRIED_VARIABLE] = "1"
    _install(session)
    session.run(
        "python",
        "-m",
        "pipeline",
        name,
        *session.posargs,
        interrupt_timeout=0.0,
        terminate_timeout=TERMINATE_TIMEOUT_S,
        env=env,
    )


def _replay(session: nox.Session) -> bool | None:
    """An unchanged `snapshot_local` ends here, in nox's own interpreter: when nothing its last
    decision read has changed, that decision holds (pipeline/fastpath/replay.py, standard
    library only). Starting the venv's Python would cost more than raw buildx's own check.
    True: replayed; False: tried, the full path decides; None: not tried here."""
    if session.posargs or sys.version_info < (3, 10):
        return None
    try:
        replay = _checkout_replay()
    except Exception:  # an odd interpreter: the venv's Python decides instead
        return None
    return replay(session.posargs, os.environ, session.log)


def _checkout_replay() -> Callable[..., bool]:
    """The replay of this checkout's `pipeline`, never another installed under that name: the
    checkout goes first on sys.path, and a `pipeline` imported from elsewhere means no replay."""
    if str(ROOT) not in sys.path[:1]:
        sys.path.insert(0, str(ROOT))
    import pipeline

    if Path(pipeline.__file__).resolve().parent != ROOT / "pipeline":
        raise ImportError(f"another pipeline package is imported: {pipeline.__file__}")
    from pipeline.fastpath.replay import replay

    return replay


def _pytest(session: nox.Session, *args: str) -> None:
    _install(session, "test")
    # pytest's exit code 5 (nothing collected) fails the session like any other non-zero code.
    session.run("python", "-m", "pytest", *args, *session.posargs, interrupt_timeout=10.0)


def _session(name: str, *, python: str | None = SESSION_PYTHON) -> Callable[..., None]:
    """Register `function` as nox session `name`, described and defaulted as the catalog says."""
    entry = next(entry for entry in CATALOG.SESSIONS if entry.name == name)

    def register(function: Callable[[nox.Session], None]) -> None:
        function.__doc__ = entry.plain
        nox.session(name=name, default=entry.default, python=python)(function)

    return register


@_session("lint")
def lint(session: nox.Session) -> None:
    _install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "pipeline", "emulator/daytona_emulator", "noxfile.py")
    # The benchmarks call pipeline's API: a rename there must fail here, not at the next bench run.
    # They import tests' helpers, which are typed for pytest's runtime only: silence those.
    session.run("mypy", "--follow-imports=silent", "bench")


@_session("unit")
def unit(session: nox.Session) -> None:
    _pytest(session, "-m", UNIT_MARKERS)


@_session("unit_system_python", python=SYSTEM_PYTHON)
def unit_system_python(session: nox.Session) -> None:
    _pytest(session, "-m", UNIT_MARKERS)


@_session("test_engine")
def test_engine(session: nox.Session) -> None:
    # Two workers: most of this tier waits on the engine (`-- -n 0` runs it in one process).
    _pytest(session, "-n", "2", "-m", "(engine or registry) and not emulator and not sandbox_image")


@_session("test_local_docker")
def test_local_docker(session: nox.Session) -> None:
    _pytest(session, "-m", "sandbox_image and not emulator")


@_session("test_daytona")
def test_daytona(session: nox.Session) -> None:
    _pytest(session, "-m", "emulator")


@_session("bench")
def bench(session: nox.Session) -> None:
    _install(session, "test")
    args = list(session.posargs)
    script = "bench/build_bench.py"
    if args[:1] == ["fingerprint"]:
        script, args = "bench/fingerprint_bench.py", args[1:]
    session.run("python", script, *args)


def _command_session(name: str) -> None:
    def session_function(session: nox.Session) -> None:
        _pipeline(session, name)

    session_function.__name__ = name
    _session(name)(session_function)


# Every command session: `nox -s NAME -- --help` shows its options, `-- --dry-run` its plan.
for _name in CATALOG.COMMANDS:
    _command_session(_name)
