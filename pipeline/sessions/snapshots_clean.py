from __future__ import annotations

from collections.abc import Iterator, Sequence

from pipeline import console
from pipeline.daytona.client import DaytonaClient
from pipeline.rules.retention import RetentionPlan, plan_retention
from pipeline.rules.snapshot_names import match_prefix
from pipeline.sessions.daytona_common import LIVE, Seams, clean_up, stage
from pipeline.sessions.options import add_setting_flag, parser
from pipeline.settings.daytona import RetentionOptions


def snapshots_clean(argv: Sequence[str], seams: Seams = LIVE) -> None:
    cli = parser("snapshots_clean")
    cli.add_argument(
        "--prefix",
        action="append",
        help="stage or prefix to clean; repeatable (default: the current stage)",
    )
    add_setting_flag(cli, "--keep", RetentionOptions, "always keep this many newest")
    add_setting_flag(cli, "--days", RetentionOptions, "always keep snapshots younger than this")
    cli.add_argument("--yes", action="store_true", help="delete what the plan says")
    args = cli.parse_args(argv)
    prefixes = [match_prefix(p) for p in (args.prefix or [stage(None)[0]])]
    rules = (
        f"keep the newest {args.keep}, anything younger than {args.days:g} days and the newest "
        "active one; delete the rest"
    )
    if args.dry_run:
        for matched in prefixes:
            console.say(f"would list snapshots starting with {matched!r}: {rules}")
        console.say("dry run: Daytona was not contacted; run without --dry-run to see the plan")
        return

    def plans(api: DaytonaClient) -> Iterator[tuple[str, RetentionPlan]]:
        for matched in prefixes:
            snapshots = api.iter_snapshots(matched)
            plan = plan_retention(
                snapshots, matched, keep=args.keep, days=args.days, now=seams.now()
            )
            yield f"retention plan for {matched}", plan

    clean_up(
        seams,
        "snapshots",
        plans,
        DaytonaClient.delete_snapshot,
        yes=args.yes,
        section="snapshots_clean",
        fix="re-run; snapshots in use by sandboxes may need those stopped first",
    )
