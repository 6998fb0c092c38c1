"""Every session, declared once: the noxfile makes its nox sessions from this list, `nox -l` and
`python -m pipeline --help` show these summaries, and a test holds the README's session table
equal to it. Standard library only: the noxfile reads it in nox's own interpreter.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Session:
    name: str
    summary: str  # one line, Markdown: the README's table cell; `nox -l` shows it without `ticks`
    # "module:function" of a command session (`python -m pipeline NAME`); None for the sessions
    # the noxfile runs itself (lint, tests)
    command: str | None = None
    default: bool = False  # run by a bare `nox` (never anything that builds, pushes or creates)

    @property
    def plain(self) -> str:
        return self.summary.replace("`", "")


def _cmd(module: str, function: str) -> str:
    return f"pipeline.sessions.{module}:{function}"


SESSIONS = (
    Session(
        "lint", "Lint and type-check: ruff check, ruff format --check, mypy --strict.", default=True
    ),
    Session(
        "unit",
        "Unit tests: pure decisions and adapters, no engine, registry or emulator needed.",
        default=True,
    ),
    Session(
        "unit_system_python",
        "The unit tests on `/usr/bin/python3` (Debian bookworm's 3.11.2).",
    ),
    Session(
        "test_engine",
        "Build-core integration tests on the real engine, buildx and a local registry.",
    ),
    Session("test_local_docker", "Sandbox tier: the real image, booted and checked end to end."),
    Session(
        "test_daytona",
        "Daytona tier: emulator faithfulness (Daytona's SDK), snapshot client and sandbox suite.",
    ),
    Session(
        "bench",
        "Benchmarks (`bench/`): an unchanged build against raw buildx, the registry cache; "
        "`-- fingerprint` times the fingerprint alone.",
    ),
    Session(
        "snapshot_local",
        "Build the sandbox image from this checkout as `:local` and `:sha-<sha>`; `PUSH=1` also "
        "pushes. `-- --background` / `-- --status` for dev launchers.",
        _cmd("build", "snapshot_local"),
    ),
    Session(
        "snapshot_push",
        "CI on main: build and push `:sha-<sha>` once (reused when the registry has it); "
        "`-- --from <sha>` moves `:main` to that tested digest without building, never backwards.",
        _cmd("build", "snapshot_push"),
    ),
    Session(
        "doctor",
        "Check engine, buildx, platforms, cache export and registry credentials; one line per "
        "problem.",
        _cmd("doctor", "doctor"),
    ),
    Session(
        "registry",
        "Serve a local OCI registry with htpasswd auth on 127.0.0.1 (offline demos).",
        _cmd("registry", "registry"),
    ),
    Session(
        "sandbox_up",
        "Start a sandbox container from the local image, checkout synced in (read-only); waits "
        "for health.",
        _cmd("sandbox_local", "sandbox_up"),
    ),
    Session(
        "sandbox_down",
        "Remove a sandbox container (`-- NAME`) or every one the pipeline made (`-- --all`).",
        _cmd("sandbox_local", "sandbox_down"),
    ),
    Session(
        "snapshot_daytona",
        "Register the commit's pushed image as Daytona snapshot `iterate-sandbox-<sha>` "
        "(idempotent).",
        _cmd("snapshot_daytona", "snapshot_daytona"),
    ),
    Session(
        "snapshot_stage",
        "Make a Daytona snapshot `<stage>--<YYYYMMDD-HHMMSS>`; `-- --from <sha or snapshot>` "
        "promotes or rolls back without a build.",
        _cmd("snapshot_stage", "snapshot_stage"),
    ),
    Session(
        "daytona_registry",
        "Give Daytona exactly one registry entry (pull credentials) for the image's registry; "
        "idempotent.",
        _cmd("daytona_registry", "daytona_registry"),
    ),
    Session(
        "snapshot_latest",
        "Print the newest active Daytona snapshot of a stage or prefix (stdout).",
        _cmd("snapshot_latest", "snapshot_latest"),
    ),
    Session(
        "snapshots_clean",
        "Show the retention plan for a prefix's Daytona snapshots; delete only with `--yes`.",
        _cmd("snapshots_clean", "snapshots_clean"),
    ),
    Session(
        "sandbox_daytona",
        "Start a Daytona sandbox from the latest (or a named) snapshot; print its preview URL.",
        _cmd("sandbox_daytona", "sandbox_daytona"),
    ),
    Session(
        "base_image",
        "Make the Node 24 Debian base image offline (mmdebstrap + npm's node) by hand.",
        _cmd("base_image", "base_image"),
    ),
)

COMMANDS = {session.name: session for session in SESSIONS if session.command}
