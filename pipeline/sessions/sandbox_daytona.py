from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from functools import partial

from pipeline import console
from pipeline.daytona.sandboxes import (
    SANDBOX_POLL,
    SandboxSpec,
    SandboxWaits,
    launch_sandbox,
    stop_and_delete,
)
from pipeline.errors import ConfigError, DaytonaError, PipelineError
from pipeline.report import publish
from pipeline.rules.daytona_models import PortPreview, Sandbox
from pipeline.rules.sandbox_rules import (
    CREATED_BY,
    CREATED_BY_LABEL,
    PIPELINE_LABELS,
    PREVIEW_TOKEN_HEADER,
    interval_words,
    plan_cleanup,
)
from pipeline.rules.snapshot_names import match_prefix, snapshot_name_problem
from pipeline.sessions.daytona_common import (
    LIVE,
    STAGE_DEFAULT,
    Seams,
    api_line,
    clean_up,
    git_sha_label,
    newest,
    stage,
)
from pipeline.sessions.options import add_setting_flag, parser
from pipeline.settings.build import ReportSettings, load
from pipeline.settings.daytona import DaytonaSettings, SandboxOptions, SandboxSettings

SELECTOR = f"{CREATED_BY_LABEL}={CREATED_BY}"


def sandbox_daytona(argv: Sequence[str], seams: Seams = LIVE) -> None:
    cli = parser("sandbox_daytona")
    mode = cli.add_mutually_exclusive_group()
    mode.add_argument(
        "--down", metavar="NAME", help="stop and delete sandbox NAME (or id); wait until gone"
    )
    mode.add_argument(
        "--cleanup",
        action="store_true",
        help=f"delete every sandbox labelled {SELECTOR} (plan; --yes acts)",
    )
    cli.add_argument(
        "--snapshot",
        help="snapshot to start (default: DAYTONA_SNAPSHOT_NAME, else the newest active one "
        "of the stage)",
    )
    cli.add_argument("--prefix", help=f"stage {STAGE_DEFAULT}")
    cli.add_argument("--name", help="sandbox name (default: sbx-<YYYYMMDD-HHMMSS>-<random>)")
    add_setting_flag(
        cli, "--port", SandboxOptions, "port whose preview URL to print (the daemon's)"
    )
    cli.add_argument(
        "--env",
        action="append",
        type=_env_pair,
        default=[],
        metavar="KEY[=VALUE]",
        help="environment variable for the sandbox; repeatable. A bare KEY takes the value of "
        "$KEY here, which keeps secrets out of the process list",
    )
    cli.add_argument(
        "--label",
        action="append",
        type=_label_pair,
        default=[],
        metavar="KEY=VALUE",
        help="extra label; repeatable",
    )
    cli.add_argument(
        "--public", action="store_true", help="preview URLs open without a token (default: private)"
    )
    add_setting_flag(
        cli, "--timeout", SandboxSettings, "seconds to wait for started, and for gone with --down"
    )
    add_setting_flag(
        cli, "--auto-stop", SandboxSettings, "idle minutes before Daytona stops it, 0 never"
    )
    add_setting_flag(
        cli,
        "--auto-delete",
        SandboxSettings,
        "minutes after a stop before Daytona deletes it, 0 at once, -1 never",
    )
    add_setting_flag(
        cli,
        "--older-than",
        SandboxOptions,
        "with --cleanup: only sandboxes created at least this many minutes ago (0: all)",
        metavar="MINUTES",
    )
    cli.add_argument("--yes", action="store_true", help="with --cleanup: delete what the plan says")
    args = cli.parse_args(argv)
    settings = load(SandboxSettings)
    waits = SandboxWaits(
        start_s=args.timeout or settings.timeout, interval=seams.interval or SANDBOX_POLL
    )
    # --down and --cleanup wait for gone as long as a start may take (DAYTONA_SANDBOX_TIMEOUT).
    teardown = replace(waits, teardown_s=waits.start_s)
    if args.yes and not args.cleanup:
        raise ConfigError("--yes only applies to --cleanup", "add --cleanup, or drop --yes")
    if args.down:
        _down(args.down, args.dry_run, teardown, seams)
    elif args.cleanup:
        _cleanup(args, teardown, seams)
    else:
        _up(args, settings, waits, seams)


def _up(
    args: argparse.Namespace, settings: SandboxSettings, waits: SandboxWaits, seams: Seams
) -> None:
    daytona = load(DaytonaSettings)
    snapshot = args.snapshot or settings.snapshot
    stage_of = None if snapshot else stage(args.prefix)
    if args.name and (problem := snapshot_name_problem(args.name)):
        raise ConfigError(
            f"--name {args.name!r} is not valid: expected {problem}", "correct the option"
        )
    request = SandboxSpec(
        snapshot=snapshot or "(newest)",
        env=dict(args.env),
        labels=dict(args.label),
        name=args.name,
        public=args.public,
        auto_stop_interval=settings.auto_stop if args.auto_stop is None else args.auto_stop,
        auto_delete_interval=settings.auto_delete if args.auto_delete is None else args.auto_delete,
        git_sha=git_sha_label(),
    ).request(seams.now())
    newest_of = stage_of and (
        f"the newest active one starting with {match_prefix(stage_of[0])!r} "
        f"(stage from {stage_of[1]})"
    )
    console.step("Daytona sandbox plan")
    for line in (
        f"snapshot:   {newest_of or request.snapshot}",
        f"name:       {request.name}",
        f"preview:    port {args.port} ({'public' if args.public else 'private: token needed'})",
        f"env:        {', '.join(sorted(request.env)) or '(none)'}",  # names only: may be secret
        f"labels:     {', '.join(f'{k}={v}' for k, v in sorted(request.labels.items()))}",
        f"auto-stop:  {interval_words(request.auto_stop_interval, 'never')}",
        f"auto-delete: {interval_words(request.auto_delete_interval, 'never', zero='at stop')}",
        f"deadline:   {waits.start_s:g} s",
        api_line(daytona),
    ):
        console.say(line)
    if args.dry_run:
        console.say("dry run: Daytona was not contacted; nothing changed")
        return
    with seams.daytona(daytona) as api:
        if stage_of is not None:
            latest = newest(api, stage_of[0], "pass --snapshot")
            console.say(f"   newest snapshot: {latest}")
            request = request.model_copy(update={"snapshot": latest})
        console.step(f"Daytona sandbox {request.name} from {request.snapshot}")
        clock = waits.clock_of(api)
        started = clock.monotonic()
        sandbox = launch_sandbox(api, request, waits)
        try:
            preview = api.preview_url(sandbox.id, args.port)
        except PipelineError as error:
            # It runs (and costs) even without a URL: say how to remove it.
            raise DaytonaError(
                f"sandbox {sandbox.name} started, but {error.cause}",
                f"retry, or remove it: nox -s sandbox_daytona -- --down {sandbox.name}",
            ) from None
        duration = clock.monotonic() - started
    _report_up(args, sandbox, request.snapshot, preview, duration)


def _report_up(
    args: argparse.Namespace,
    sandbox: Sandbox,
    snapshot: str,
    preview: PortPreview,
    duration: float,
) -> None:
    console.step(f"sandbox {sandbox.name} is {sandbox.state} ({duration:.1f} s)")
    if not args.public:
        console.say(
            f"   private: browsers need a Daytona login; other clients send the "
            f"{PREVIEW_TOKEN_HEADER} header (token from GET /sandbox/{sandbox.id}/ports/"
            f"{args.port}/preview-url)"
        )
    console.say(f"   remove it: nox -s sandbox_daytona -- --down {sandbox.name}")
    console.output(preview.url)
    values = {
        "name": sandbox.name,
        "id": sandbox.id,
        "snapshot": sandbox.snapshot or snapshot,
        "state": sandbox.state,
        "port": args.port,
        "preview_url": preview.url,  # never the token
        "public": args.public,
        "duration_s": round(duration, 1),
    }
    publish(
        "sandbox",
        values,
        load(ReportSettings),
        [
            ("sandbox", f"`{sandbox.name}` ({sandbox.state})"),
            ("id", f"`{sandbox.id}`"),
            ("snapshot", f"`{values['snapshot']}`"),
            ("preview", f"{preview.url} (port {args.port})"),
            ("duration", f"{duration:.1f} s"),
        ],
    )


def _down(name: str, dry_run: bool, waits: SandboxWaits, seams: Seams) -> None:
    if dry_run:
        console.say(f"would stop sandbox {name}, delete it and wait until it is gone")
        console.say("dry run: Daytona was not contacted; nothing changed")
        return
    with seams.daytona() as api:
        console.step(f"removing Daytona sandbox {name}")
        if not stop_and_delete(api, name, waits):
            console.say(f"   no sandbox {name}: nothing to remove")


def _cleanup(args: argparse.Namespace, waits: SandboxWaits, seams: Seams) -> None:
    if args.dry_run:
        console.say(
            f"would list sandboxes labelled {SELECTOR}"
            + (f" created over {args.older_than:g} min ago" if args.older_than else "")
        )
        console.say("dry run: Daytona was not contacted; run without --dry-run to see the plan")
        return
    older_than = timedelta(minutes=args.older_than)
    clean_up(
        seams,
        "sandboxes",
        lambda api: [
            (
                f"sandboxes labelled {SELECTOR}",
                plan_cleanup(
                    api.iter_sandboxes(PIPELINE_LABELS), now=seams.now(), older_than=older_than
                ),
            )
        ],
        partial(stop_and_delete, waits=waits),
        yes=args.yes,
        section="sandboxes_clean",
        fix="re-run `nox -s sandbox_daytona -- --cleanup --yes`",
    )


def _label_pair(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key.strip(), value


def _env_pair(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    key = key.strip()
    if not key:
        raise argparse.ArgumentTypeError("KEY=VALUE or KEY needs a name")
    if not equals and key not in os.environ:
        # Name only: the message must not show a value, and there is none anyway.
        raise argparse.ArgumentTypeError(f"{key} is not set here (give KEY=VALUE or export it)")
    return key, value if equals else os.environ[key]
