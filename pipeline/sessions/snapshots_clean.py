"""`nox -s snapshots_clean`: retention for a prefix's snapshots. Prints the plan (keep the newest
N, anything younger than D days, and the newest active one); deletes only with --yes."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from pipeline import console
from pipeline.daytona.client import DaytonaClient
from pipeline.rules.retention import plan_retention
from pipeline.rules.snapshot_names import match_prefix
from pipeline.sessions.daytona_common import Deletions, Now, daytona_client, stage, utcnow
from pipeline.sessions.daytona_options import add_setting_flag
from pipeline.sessions.options import parser
from pipeline.settings.daytona import RetentionOptions


def snapshots_clean(
    argv: Sequence[str],
    *,
    client: DaytonaClient | None = None,
    now: Now = utcnow,
) -> None:
    cli = parser(
        "snapshots_clean",
        "Retention for a prefix's snapshots; prints the plan, deletes only with --yes.",
    )
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
    deletions = Deletions("snapshots")
    with daytona_client(client) as api:
        for matched in prefixes:
            plan = plan_retention(
                api.iter_snapshots(matched), matched, keep=args.keep, days=args.days, now=now()
            )
            with console.group(f"retention plan for {matched}"):
                for line in plan.describe():
                    console.say(line)
            if args.yes:
                for snapshot in plan.to_delete:
                    deletions.attempt(snapshot.name, partial(api.delete_snapshot, snapshot.id))
    deletions.finish(
        args.yes,
        "snapshots_clean",
        "re-run; snapshots in use by sandboxes may need those stopped first",
    )
