"""`nox -s snapshot_stage`: a new <stage>--<YYYYMMDD-HHMMSS> (UTC) snapshot of the commit's image,
which the app's "newest snapshot of the stage" look-up then hands out."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.adapters.daytona.client import DaytonaClient
from pipeline.adapters.daytona.snapshots import PollPolicy
from pipeline.rules.snapshot_names import sha_image, stage_snapshot_name
from pipeline.sessions.daytona_common import Now, commit, stage, utcnow
from pipeline.sessions.options import parser
from pipeline.sessions.snapshot_daytona import SnapshotJob, make, snapshot_options, spec
from pipeline.settings.build import BuildSettings, load
from pipeline.settings.daytona import SnapshotSettings


def snapshot_stage(
    argv: Sequence[str],
    *,
    client: DaytonaClient | None = None,
    poll: PollPolicy | None = None,
    now: Now = utcnow,
) -> None:
    """Make a new <stage>--<YYYYMMDD-HHMMSS> snapshot (stage: dev-$ITERATE_USER or APP_STAGE)."""
    cli = parser("snapshot_stage", "Make <stage>--<YYYYMMDD-HHMMSS> (UTC) from the commit's image.")
    cli.add_argument(
        "--prefix", help="stage (default: DAYTONA_SNAPSHOT_PREFIX, dev-$ITERATE_USER, APP_STAGE)"
    )
    snapshot_options(cli)
    args = cli.parse_args(argv)
    settings = load(SnapshotSettings)
    build = load(BuildSettings)
    name, source = stage(args.prefix)
    image = args.image or settings.image
    if image is None:
        sha, dirty = commit(build)
        image = sha_image(build.image_repository, sha, dirty)
    wanted = spec(args, settings, stage_snapshot_name(name, now()), image)
    plan = (f"stage:      {name} (from {source})",)
    job = SnapshotJob.from_args(args, settings, wanted, plan=plan)
    make(job, build, client=client, poll=poll)
