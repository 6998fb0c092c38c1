"""Sandbox containers on the local engine, for people and tests (`start`)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path

from pipeline import console
from pipeline.docker.cli import Docker, find_docker
from pipeline.sandbox import local_docker
from pipeline.sandbox.local_docker import Sandbox, SandboxSpec
from pipeline.sessions.options import parser
from pipeline.settings.build import BuildSettings, load
from pipeline.settings.local import LocalDockerSettings


def docker() -> Docker:
    return find_docker(load(BuildSettings).docker)


def spec(name: str | None = None, sync: bool = True) -> SandboxSpec:
    settings, build = load(LocalDockerSettings), load(BuildSettings)
    mounts = None
    if sync:
        mounts = local_docker.sync_mounts(
            settings.repo_checkout, settings.git_dir, settings.common_dir, Path.cwd()
        )
    return SandboxSpec(
        name=name or f"sandbox-{secrets.token_hex(4)}",
        images=local_docker.image_candidates(settings.image_name, build.image_repository),
        sync=mounts,
        pnpm_volume=settings.pnpm_volume,
        health_timeout_s=settings.health_timeout,
    )


def start(name: str | None = None, sync: bool = True) -> Sandbox:
    return local_docker.start(docker(), spec(name, sync))


def sandbox_up(argv: Sequence[str]) -> None:
    cli = parser("sandbox_up")
    cli.add_argument("--name", help="container name (default: sandbox-<random>)")
    cli.add_argument("--no-sync", action="store_true", help="run what is baked into the image")
    args = cli.parse_args(argv)
    planned = spec(args.name, sync=not args.no_sync)
    if args.dry_run:
        mounts = (
            [f"{m.source}:{m.target}:{m.mode}" for m in planned.sync] if planned.sync else "none"
        )
        console.step(
            f"would start {' or '.join(planned.images)} as {planned.name} with dev-sync mounts "
            f"{mounts} and the pnpm store volume {planned.pnpm_volume}"
        )
        return
    console.step("starting a sandbox container")
    sandbox = local_docker.start(docker(), planned)
    console.step(f"{sandbox.name} is healthy: {sandbox.url}/api/health ({sandbox.image})")
    console.output(sandbox.name)


def sandbox_down(argv: Sequence[str]) -> None:
    cli = parser("sandbox_down")
    cli.add_argument("name", nargs="?", help="container name printed by sandbox_up")
    cli.add_argument("--all", action="store_true", help="every container the pipeline made")
    args = cli.parse_args(argv)
    if not args.name and not args.all:
        cli.error("give a NAME or --all")
    if args.dry_run:
        console.step(f"would remove {'all pipeline sandboxes' if args.all else args.name}")
        return
    if args.all:
        removed = local_docker.cleanup(docker())
        console.step(f"removed {len(removed)} sandbox container(s): {', '.join(removed) or '-'}")
    else:
        local_docker.stop(docker(), args.name)
        console.step(f"removed {args.name}")
