"""Every session, declared once: the noxfile makes its nox sessions from this list, `nox -l` and
`python -m pipeline --help` show these summaries, and a test holds the README's session table
equal to it. Standard library only: the noxfile reads it in nox's own interpreter.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Session:
    name: str
    summary: str  # one line, Markdown: the README's table cell; `nox -l` and --help show it plain
    # the pipeline/sessions/ module whose function NAME is the command (`python -m pipeline
    # NAME`); None for the sessions the noxfile runs itself (lint, tests)
    module: str | None = None
    default: bool = False  # run by a bare `nox` (never anything that builds, pushes or creates)

    @property
    def plain(self) -> str:
        return self.summary.replace("`", "")

    @property
    def command(self) -> str | None:
        return self.module and f"pipeline.sessions.{self.module}:{self.name}"


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
        "build",
    ),
    Session(
        "snapshot_push",
        "CI on main: build and push `:sha-<sha>` once (reused when the registry has it); "
        "`-- --from <sha>` moves `:main` to that tested digest without building, never backwards. "
        "Refuses a dirty work tree.",
        "build",
    ),
    Session(
        "doctor",
        "Check engine, buildx, platforms, cache export and registry credentials; one line per "
        "problem.",
        "doctor",
    ),
    Session(
        "registry",
        "Serve a local OCI registry with htpasswd auth on 127.0.0.1 until Ctrl-C (offline demos).",
        "registry",
    ),
    Session(
        "sandbox_up",
        "Start a sandbox container from the local image, checkout synced in (read-only); waits "
        "for health.",
        "sandbox_local",
    ),
    Session(
        "sandbox_down",
        "Remove a sandbox container (`-- NAME`) or every one the pipeline made (`-- --all`).",
        "sandbox_local",
    ),
    Session(
        "snapshot_daytona",
        "Register the commit's pushed image as Daytona snapshot `iterate-sandbox-<sha>` "
        "(idempotent).",
        "snapshot_daytona",
    ),
    Session(
        "snapshot_stage",
        "Make a Daytona snapshot `<stage>--<YYYYMMDD-HHMMSS>`; `-- --from <sha or snapshot>` "
        "promotes or rolls back without a build.",
        "snapshot_stage",
    ),
    Session(
        "daytona_registry",
        "Give Daytona exactly one registry entry (pull credentials) for the image's registry; "
        "idempotent.",
        "daytona_registry",
    ),
    Session(
        "snapshot_latest",
        "Print the newest active Daytona snapshot of a stage or prefix (stdout).",
        "snapshot_latest",
    ),
    Session(
        "snapshots_clean",
        "Show the retention plan for a prefix's Daytona snapshots; delete only with `--yes`.",
        "snapshots_clean",
    ),
    Session(
        "sandbox_daytona",
        "Start a Daytona sandbox from the latest (or a named) snapshot; print its preview URL.",
        "sandbox_daytona",
    ),
    Session(
        "base_image",
        "Make the Node 24 Debian base image offline (mmdebstrap + npm's node) by hand.",
        "base_image",
    ),
)

COMMANDS = {session.name: session for session in SESSIONS if session.module}
