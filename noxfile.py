"""Sessions of sandbox-pipeline. `nox -l` lists them; the README says more.

Sessions run in the interpreter that runs nox (venv_backend="none"): scripts/setup.sh puts nox
and the project into .venv, so no session creates or checks a virtualenv on the fast path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

nox.options.sessions = ["lint", "unit"]
nox.options.default_venv_backend = "none"
nox.options.error_on_external_run = False


def _run(session: nox.Session, name: str) -> None:
    """Run one pipeline command; a PipelineError becomes one line, no traceback."""
    try:
        from pipeline.errors import PipelineError
        from pipeline.sessions import resolve

        command = resolve(name)
    except ModuleNotFoundError as error:
        session.error(
            f"{error.name} is not installed for {sys.executable} — fix: run scripts/setup.sh "
            "and use .venv/bin/nox (or `pip install -e .` into nox's environment)"
        )
    try:
        command(session.posargs)
    except PipelineError as error:
        if os.environ.get("PIPELINE_TRACEBACK"):
            raise
        for line in error.details:
            session.log(f"    {line}")
        session.error(f"{error} [exit code {error.exit_code} with python -m pipeline {name}]")


def _pytest(session: nox.Session, *args: str) -> None:
    # pytest's exit code 5 (nothing collected) fails the session like any other non-zero code.
    session.run(sys.executable, "-m", "pytest", *args, *session.posargs, external=True)


@nox.session(default=True)
def lint(session: nox.Session) -> None:
    """Lint and type-check: ruff check, ruff format --check, mypy --strict."""
    session.run(sys.executable, "-m", "ruff", "check", ".", external=True)
    session.run(sys.executable, "-m", "ruff", "format", "--check", ".", external=True)
    session.run(
        sys.executable, "-m", "mypy", "pipeline", "daytona_emulator", "noxfile.py", external=True
    )


@nox.session(default=True)
def unit(session: nox.Session) -> None:
    """Unit tests: pure decisions and adapters, no engine, registry or emulator needed."""
    _pytest(session, "-m", "not engine and not registry and not emulator and not sandbox_image")


@nox.session(default=False)
def test_engine(session: nox.Session) -> None:
    """Build-core integration tests on the real engine, buildx and a local registry."""
    _pytest(session, "-m", "(engine or registry) and not emulator and not sandbox_image")


@nox.session(default=False)
def test_local_docker(session: nox.Session) -> None:
    """Sandbox tier: the real image from the offline base, booted and checked end to end."""
    _pytest(session, "-m", "sandbox_image and not emulator")


@nox.session(default=False)
def test_daytona(session: nox.Session) -> None:
    """Daytona tier: emulator faithfulness (Daytona's SDK), snapshot client and sandbox suite."""
    _pytest(session, "-m", "emulator")


@nox.session(default=False)
def snapshot_local(session: nox.Session) -> None:
    """Build the sandbox image from this checkout as :local and :sha-<sha>; PUSH=1 also pushes."""
    _run(session, "snapshot_local")


@nox.session(default=False)
def snapshot_push(session: nox.Session) -> None:
    """CI on main: build and push :main and :sha-<sha> with the registry cache; clean tree only."""
    _run(session, "snapshot_push")


@nox.session(default=False)
def doctor(session: nox.Session) -> None:
    """Check engine, buildx, cache export and registry credentials; one line per problem."""
    _run(session, "doctor")


@nox.session(default=False)
def registry(session: nox.Session) -> None:
    """Serve a local OCI registry with htpasswd auth on 127.0.0.1 (offline demos)."""
    _run(session, "registry")


@nox.session(default=False)
def sandbox_up(session: nox.Session) -> None:
    """Start a sandbox container from the local image, checkout synced in; waits for health."""
    _run(session, "sandbox_up")


@nox.session(default=False)
def sandbox_down(session: nox.Session) -> None:
    """Remove a sandbox container (`-- NAME`) or every one the pipeline made (`-- --all`)."""
    _run(session, "sandbox_down")


@nox.session(default=False)
def snapshot_daytona(session: nox.Session) -> None:
    """Register the commit's pushed image as Daytona snapshot iterate-sandbox-<sha> (idempotent)."""
    _run(session, "snapshot_daytona")


@nox.session(default=False)
def snapshot_stage(session: nox.Session) -> None:
    """Make a Daytona snapshot <stage>--<YYYYMMDD-HHMMSS> (dev-$ITERATE_USER or APP_STAGE)."""
    _run(session, "snapshot_stage")


@nox.session(default=False)
def snapshot_latest(session: nox.Session) -> None:
    """Print the newest active Daytona snapshot of a stage or prefix (stdout)."""
    _run(session, "snapshot_latest")


@nox.session(default=False)
def snapshots_clean(session: nox.Session) -> None:
    """Show the retention plan for a prefix's Daytona snapshots; delete only with --yes."""
    _run(session, "snapshots_clean")


@nox.session(default=False)
def sandbox_daytona(session: nox.Session) -> None:
    """Start a Daytona sandbox from the latest (or a named) snapshot; print its preview URL."""
    _run(session, "sandbox_daytona")


@nox.session(default=False)
def base_image(session: nox.Session) -> None:
    """Make the Node 24 Debian base image offline (mmdebstrap + npm's node) for BASE_IMAGE."""
    _run(session, "base_image")
