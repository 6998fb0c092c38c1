"""By hand, to force a rebuild or make another tag: `snapshot_local` makes the stand-in for
`node:24-bookworm` itself where the official image cannot be pulled. An image under the tag whose
recipe label matches is kept."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.base_image import rootfs as base_rootfs
from pipeline.console import output, say
from pipeline.docker import images
from pipeline.docker.cli import find_docker
from pipeline.rules.base_image_plan import DEFAULT_TAG, RECIPE_LABEL
from pipeline.sessions.options import parser
from pipeline.settings.build import BuildSettings, load


def base_image(argv: Sequence[str]) -> None:
    cli = parser("base_image")
    cli.add_argument("--tag", default=DEFAULT_TAG, help=f"image tag (default: {DEFAULT_TAG})")
    cli.add_argument("--force", action="store_true", help="rebuild even if the tag is current")
    args = cli.parse_args(argv)
    settings = load(BuildSettings)
    docker = find_docker(settings.docker)
    if args.dry_run:
        plan = base_rootfs.plan_here(args.tag)
        for line in plan.describe():
            say(line)
        existing = images.label(docker, args.tag, RECIPE_LABEL)
        current = existing == plan.recipe and not args.force
        say("would keep the existing image" if current else "would build")
        output(args.tag)
        return
    made = base_rootfs.make_base_image(
        docker,
        settings.offline_base_env,
        settings.cache_dir / "base-image",
        args.tag,
        force=args.force,
    )
    output(made)
