from __future__ import annotations

from collections.abc import Sequence

from pipeline import console
from pipeline.rules.snapshot_names import match_prefix
from pipeline.sessions.daytona_common import LIVE, STAGE_DEFAULT, Seams, newest, stage
from pipeline.sessions.options import parser


def snapshot_latest(argv: Sequence[str], seams: Seams = LIVE) -> None:
    cli = parser("snapshot_latest")
    cli.add_argument(
        "--prefix",
        help=f"stage like prd (matches prd--…) or a prefix ending in '-' {STAGE_DEFAULT}",
    )
    args = cli.parse_args(argv)
    matched = match_prefix(args.prefix or stage(None)[0])
    if args.dry_run:
        console.say(
            f"would ask Daytona for active snapshots starting with {matched!r}, newest first"
        )
        return
    with seams.daytona() as api:
        console.output(newest(api, matched, "check the prefix"))
