"""A stage's new snapshot (name in UTC) is what the app's "newest snapshot of the stage" look-up
hands out. `--from` (daytona/promotion.py) registers an image that exists already, so promoting
or rolling back is making it the stage's newest.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline import console
from pipeline.daytona.promotion import Promotion, from_commit, from_snapshot
from pipeline.errors import BuildError, ConfigError
from pipeline.registry.client import reader_for
from pipeline.registry.tags import put_tag
from pipeline.rules.image_ref import image_repository
from pipeline.rules.snapshot_names import (
    promote_source,
    resources_note,
    sha_image,
    stage_snapshot_name,
)
from pipeline.sessions.daytona_common import LIVE, STAGE_DEFAULT, Seams, commit, stage
from pipeline.sessions.options import parser
from pipeline.sessions.snapshot_daytona import SnapshotJob, make, snapshot_options
from pipeline.settings.build import BuildSettings, load
from pipeline.settings.daytona import SnapshotSettings


def snapshot_stage(argv: Sequence[str], seams: Seams = LIVE) -> None:
    cli = parser(
        "snapshot_stage",
        dry_run="print the plan and exit without changing anything (with --from, the registry "
        "and Daytona are read to find the image's digest)",
    )
    cli.add_argument("--prefix", help=f"stage {STAGE_DEFAULT}")
    cli.add_argument(
        "--from",
        dest="source",
        metavar="SHA_OR_SNAPSHOT",
        help="promote or roll back without a build: a commit (its pushed :sha-<sha> image) or "
        "an existing snapshot (the digest Daytona pulled for it), sent as a verified tag",
    )
    snapshot_options(cli)
    args = cli.parse_args(argv)
    if args.source and args.image:
        raise ConfigError("--from and --image both name the image", "give one of them")
    settings, build = load(SnapshotSettings), load(BuildSettings)
    name, where = stage(args.prefix)
    promotion = promote(args.source, build, seams) if args.source else None
    image = (
        promotion.image
        if promotion
        else args.image or settings.image or commit_image(build, dry_run=args.dry_run)
    )
    job = SnapshotJob.from_args(
        args,
        settings,
        stage_snapshot_name(name, seams.now()),
        image,
        plan=(f"stage:      {name} (from {where})", *(promotion.plan() if promotion else ())),
        promotion=promotion,
    )
    if promotion and promotion.snapshot and (note := resources_note(promotion.snapshot, job.spec)):
        console.warn(note)
    if promotion and promotion.make_tag and not args.dry_run:
        tag = promotion.image.rsplit(":", 1)[1]
        if put_tag(image_repository(promotion.image), promotion.digest, tag, build, may_move=False):
            console.step(f"made {promotion.image} for {promotion.digest} (no build)")
    make(job, build, seams)


def commit_image(build: BuildSettings, *, dry_run: bool) -> str:
    """The commit's `:sha-` image. For SANDBOX_ITERATE_REPO_REF it is built and pushed first
    when the registry does not have it yet (only its sha tag: a ref never moves `:main`)."""
    sha, dirty = commit(build)
    image = sha_image(build.image_repository, sha, dirty)
    if build.repo_ref is None:
        return image
    if dry_run:  # the registry is not read on a dry run
        console.step(
            f"SANDBOX_ITERATE_REPO_REF={build.repo_ref} is {sha}: a run builds and pushes "
            f"{image} first unless the registry has it"
        )
        return image
    with reader_for(image, build) as reader:
        found = reader.manifest()
        if found.status_code != 404:
            reader.ok(found)  # any answer but 200 or 404 is not "absent"
            console.step(f"{image} is in the registry: snapshotting it without a build")
            return image
    console.step(f"{image} is not in the registry yet: building and pushing {build.repo_ref}")
    from pipeline.build.run import run_build  # the build machinery only when it builds

    outcome = run_build("push", dry_run=False)
    if outcome is None or image not in outcome.tags:
        raise BuildError(
            f"the build of {build.repo_ref} did not push {image} "
            f"(it pushed {', '.join(outcome.tags) if outcome else 'nothing'})",
            f"rerun; if {build.repo_ref} moved meanwhile, the next run builds its new commit",
        )
    return image


def promote(text: str, build: BuildSettings, seams: Seams) -> Promotion:
    """The image `--from` names, by digest (reads only: the registry, and Daytona for a name)."""
    source = promote_source(text)
    console.step(f"Looking up the image of {source.describe()}")
    if source.kind == "commit":
        return from_commit(source, build.image_repository, build)
    with seams.daytona() as api:
        return from_snapshot(source, build, api)
