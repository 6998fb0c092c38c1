"""Sessions of sandbox-pipeline. `nox -l` lists them; the README says more.

Works from any nox (pipx, uvx, a venv holding only nox): each session installs what it needs
into its own venv under .nox/ from uv.lock (uv when present, else virtualenv + pip pinned to the
same lock), reuses that venv, and skips the install when nothing it installs has changed.
Command sessions then run `python -m pipeline NAME`, which prints one line per failure and exits
with the failure's own code (README: "When things go wrong").
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):  # noqa: UP036 (the user's nox may run on an older Python)
    import tomllib
else:  # a nox installed on an older Python; nox itself depends on tomli there
    import tomli as tomllib

import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["lint", "unit"]
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"

ROOT = Path(__file__).resolve().parent
EMULATOR = ROOT / "emulator"
LOCK = ROOT / "uv.lock"
# What decides a session's packages: when none of these changed, the install step is skipped.
INSTALL_INPUTS = (ROOT / "pyproject.toml", LOCK, EMULATOR / "pyproject.toml")
# Long enough for `python -m pipeline` to cancel a build in the engine after Ctrl-C before nox
# escalates to SIGTERM/SIGKILL (nox's default is 0.3 s).
INTERRUPT_TIMEOUT_S = 30.0
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


def _fingerprint(session: nox.Session, groups: tuple[str, ...]) -> str:
    digest = hashlib.sha256(f"{session.venv_backend}:{','.join(groups)}".encode())
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
    if session.venv_backend == "uv":
        session.run_install(
            "uv",
            "sync",
            "--locked",
            "--quiet",
            "--no-default-groups",
            *(f"--group={group}" for group in groups),
            env={"UV_PROJECT_ENVIRONMENT": venv},
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
        interrupt_timeout=INTERRUPT_TIMEOUT_S,
        env=env,
    )


def _replay(session: nox.Session) -> bool | None:
    """An unchanged `snapshot_local` ends here, in nox's own interpreter: when nothing its last
    decision read has changed, that decision holds (pipeline/fastpath/replay.py, standard
    library only). Starting the venv's Python would cost more than raw buildx's own check.
    True: replayed; False: tried, the full path decides; None: not tried here."""
    if session.posargs or sys.version_info < (3, 10):
        return None
    if str(ROOT) not in sys.path:
        sys.path.append(str(ROOT))
    try:
        from pipeline.fastpath.replay import replay
    except Exception:  # an odd interpreter: the venv's Python decides instead
        return None
    return replay(session.posargs, os.environ, session.log)


def _pytest(session: nox.Session, *args: str) -> None:
    _install(session, "test")
    # pytest's exit code 5 (nothing collected) fails the session like any other non-zero code.
    session.run("python", "-m", "pytest", *args, *session.posargs, interrupt_timeout=10.0)


@nox.session(default=True, python=SESSION_PYTHON)
def lint(session: nox.Session) -> None:
    """Lint and type-check: ruff check, ruff format --check, mypy --strict."""
    _install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "pipeline", "emulator/daytona_emulator", "noxfile.py")


@nox.session(default=True, python=SESSION_PYTHON)
def unit(session: nox.Session) -> None:
    """Unit tests: pure decisions and adapters, no engine, registry or emulator needed."""
    _pytest(session, "-m", UNIT_MARKERS)


@nox.session(default=False, python=SYSTEM_PYTHON)
def unit_system_python(session: nox.Session) -> None:
    """Unit tests on /usr/bin/python3 (Debian bookworm's 3.11.2 lacks what later 3.11s have)."""
    _pytest(session, "-m", UNIT_MARKERS)


@nox.session(default=False, python=SESSION_PYTHON)
def test_engine(session: nox.Session) -> None:
    """Build-core integration tests on the real engine, buildx and a local registry."""
    _pytest(session, "-m", "(engine or registry) and not emulator and not sandbox_image")


@nox.session(default=False, python=SESSION_PYTHON)
def test_local_docker(session: nox.Session) -> None:
    """Sandbox tier: the real image, booted and checked end to end."""
    _pytest(session, "-m", "sandbox_image and not emulator")


@nox.session(default=False, python=SESSION_PYTHON)
def test_daytona(session: nox.Session) -> None:
    """Daytona tier: emulator faithfulness (Daytona's SDK), snapshot client and sandbox suite."""
    _pytest(session, "-m", "emulator")


def _command_session(name: str, doc: str) -> None:
    def session_function(session: nox.Session) -> None:
        _pipeline(session, name)

    session_function.__doc__ = doc
    session_function.__name__ = name
    nox.session(name=name, default=False, python=SESSION_PYTHON)(session_function)


# Every command session: `nox -s NAME -- --help` shows its options, `-- --dry-run` its plan.
COMMAND_SESSIONS = {
    "snapshot_local": "Build the sandbox image from this checkout as :local and :sha-<sha>; "
    "PUSH=1 also pushes.",
    "snapshot_push": "CI on main: build and push :main and :sha-<sha> with the registry cache; "
    "clean tree only.",
    "doctor": "Check engine, buildx, cache export and registry credentials; one line per problem.",
    "registry": "Serve a local OCI registry with htpasswd auth on 127.0.0.1 (offline demos).",
    "sandbox_up": "Start a sandbox container from the local image, checkout synced in; "
    "waits for health.",
    "sandbox_down": "Remove a sandbox container (`-- NAME`) or every one the pipeline made "
    "(`-- --all`).",
    "snapshot_daytona": "Register the commit's pushed image as Daytona snapshot "
    "iterate-sandbox-<sha> (idempotent).",
    "snapshot_stage": "Make a Daytona snapshot <stage>--<YYYYMMDD-HHMMSS> "
    "(dev-$ITERATE_USER or APP_STAGE).",
    "daytona_registry": "Give Daytona one registry entry (pull credentials) for the image's "
    "registry; idempotent.",
    "snapshot_latest": "Print the newest active Daytona snapshot of a stage or prefix (stdout).",
    "snapshots_clean": "Show the retention plan for a prefix's Daytona snapshots; "
    "delete only with --yes.",
    "sandbox_daytona": "Start a Daytona sandbox from the latest (or a named) snapshot; "
    "print its preview URL.",
    "base_image": "Make the Node 24 Debian base image offline (mmdebstrap + npm's node) "
    "for BASE_IMAGE.",
}
for _name, _doc in COMMAND_SESSIONS.items():
    _command_session(_name, _doc)
