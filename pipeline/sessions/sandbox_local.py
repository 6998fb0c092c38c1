"""`sandbox_up` / `sandbox_down`: sandbox containers on the local engine, for people and tests."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline import console
from pipeline.sandbox import local_docker
from pipeline.sessions.options import parser
from pipeline.settings.build import BuildSettings, load


def sandbox_up(argv: Sequence[str]) -> None:
    cli = parser("sandbox_up", "Start a sandbox from the local image and wait until healthy.")
    cli.add_argument("--name", help="container name (default: sandbox-<random>)")
    cli.add_argument("--no-sync", action="store_true", help="run what is baked into the image")
    args = cli.parse_args(argv)
    if args.dry_run:
        settings = load(local_docker.LocalDockerSettings)
        image = settings.image_name or f"{load(BuildSettings).image_repository}:local (or :main)"
        mounts = "none" if args.no_sync else local_docker.sync_mounts(settings, {}).volumes()
        console.step(
            f"would start {image} with dev-sync mounts {mounts} "
            f"and the pnpm store volume {settings.pnpm_volume}"
        )
        return
    console.step("starting a sandbox container")
    sandbox = local_docker.start(name=args.name, sync=not args.no_sync)
    console.step(f"{sandbox.name} is healthy: {sandbox.url}/api/health ({sandbox.image})")
    console.output(sandbox.name)


def sandbox_down(argv: Sequence[str]) -> None:
    cli = parser("sandbox_down", "Remove a sandbox container, or all of them with --all.")
    cli.add_argument("name", nargs="?", help="container name printed by sandbox_up")
    cli.add_argument("--all", action="store_true", help="every container the pipeline made")
    args = cli.parse_args(argv)
    if not args.name and not args.all:
        cli.error("give a NAME or --all")
    if args.dry_run:
        console.step(f"would remove {'all pipeline sandboxes' if args.all else args.name}")
        return
    if args.all:
        removed = local_docker.cleanup()
        console.step(f"removed {len(removed)} sandbox container(s): {', '.join(removed) or '-'}")
    else:
        local_docker.stop(args.name)
        console.step(f"removed {args.name}")
