"""The Daytona sessions: `name(argv)` functions the noxfile calls with `session.posargs`.

Each parses its options (prog `nox -s NAME --`), prints its plan, and raises PipelineError on
failure. `--dry-run` prints the plan and changes nothing. The keyword-only parameters exist for
tests (a client on an emulator, fast polling, a fixed clock); sessions never pass them.
"""

from __future__ import annotations

import argparse
import os
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial

from pipeline import console
from pipeline.adapters.daytona.client import DaytonaClient
from pipeline.adapters.daytona.latest import find_latest, latest_snapshot
from pipeline.adapters.daytona.sandboxes import (
    CREATED_BY,
    CREATED_BY_LABEL,
    DEFAULT_PORT,
    PIPELINE_LABELS,
    PREVIEW_TOKEN_HEADER,
    SANDBOX_POLL,
    launch_sandbox,
    new_sandbox_name,
    pipeline_labels,
    plan_cleanup,
    stop_and_delete,
)
from pipeline.adapters.daytona.snapshots import Outcome, PollPolicy, SnapshotSpec, ensure_snapshot
from pipeline.adapters.registry_api import check_image, parse_image, registry_credentials
from pipeline.errors import ConfigError, DaytonaError, GitError, PipelineError
from pipeline.report import publish
from pipeline.rules.daytona_models import CreateSandbox
from pipeline.rules.retention import plan_retention
from pipeline.rules.snapshot_names import (
    image_problem,
    match_prefix,
    resolve_stage,
    sha_image,
    sha_snapshot_name,
    snapshot_name_problem,
    stage_snapshot_name,
)
from pipeline.sessions.options import parser
from pipeline.settings.build import BuildSettings, ReportSettings, load
from pipeline.settings.daytona import (
    DaytonaSettings,
    SandboxSettings,
    SnapshotSettings,
    StageSettings,
)

DEFAULT_KEEP = 5
DEFAULT_DAYS = 7.0
Now = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- snapshot_daytona / snapshot_stage -------------------------------------------------------


def snapshot_daytona(
    argv: Sequence[str],
    *,
    client: DaytonaClient | None = None,
    poll: PollPolicy | None = None,
) -> None:
    """Register the commit's image as Daytona snapshot iterate-sandbox-<sha>; idempotent."""
    cli = parser("snapshot_daytona", "Make iterate-sandbox-<sha> from <repo>:sha-<sha>.")
    cli.add_argument(
        "--name",
        help="snapshot name (default: SANDBOX_SNAPSHOT_NAME, else iterate-sandbox-<sha>[-dirty])",
    )
    cli.add_argument(
        "--force",
        action="store_true",
        help="replace a snapshot of that name that failed or has another image",
    )
    _snapshot_options(cli)
    args = cli.parse_args(argv)
    settings = load(SnapshotSettings)
    build = load(BuildSettings)
    name = args.name or settings.name
    image = args.image or settings.image
    if name is None or image is None:
        sha, dirty = _commit(build)
        name = name or sha_snapshot_name(sha, dirty)
        image = image or sha_image(build.image_repository, sha, dirty)
    spec = _spec(args, settings, name, image)
    _make(spec, args, settings, build, client=client, poll=poll, force=args.force)


def snapshot_stage(
    argv: Sequence[str],
    *,
    client: DaytonaClient | None = None,
    poll: PollPolicy | None = None,
    now: Now = _utcnow,
) -> None:
    """Make a new <stage>--<YYYYMMDD-HHMMSS> snapshot (stage: dev-$ITERATE_USER or APP_STAGE)."""
    cli = parser("snapshot_stage", "Make <stage>--<YYYYMMDD-HHMMSS> (UTC) from the commit's image.")
    cli.add_argument(
        "--prefix", help="stage (default: DAYTONA_SNAPSHOT_PREFIX, dev-$ITERATE_USER, APP_STAGE)"
    )
    _snapshot_options(cli)
    args = cli.parse_args(argv)
    settings = load(SnapshotSettings)
    build = load(BuildSettings)
    stage, source = _stage(args.prefix)
    image = args.image or settings.image
    if image is None:
        sha, dirty = _commit(build)
        image = sha_image(build.image_repository, sha, dirty)
    spec = _spec(args, settings, stage_snapshot_name(stage, now()), image)
    _make(
        spec,
        args,
        settings,
        build,
        client=client,
        poll=poll,
        force=False,
        extra_plan=(f"stage:      {stage} (from {source})",),
    )


def _snapshot_options(cli: argparse.ArgumentParser) -> None:
    cli.add_argument(
        "--image",
        help="image to snapshot (default: SANDBOX_IMAGE, else "
        "$SANDBOX_IMAGE_REPOSITORY:sha-<sha>[-dirty])",
    )
    cli.add_argument("--cpu", type=_positive_int, help="vCPUs (SANDBOX_SNAPSHOT_CPU, 2)")
    cli.add_argument("--memory", type=_positive_int, help="GB (SANDBOX_SNAPSHOT_MEMORY, 4)")
    cli.add_argument("--disk", type=_positive_int, help="GB (SANDBOX_SNAPSHOT_DISK, 10)")
    cli.add_argument(
        "--timeout",
        type=_positive_float,
        help="seconds to wait for active (DAYTONA_SNAPSHOT_TIMEOUT, 1200)",
    )
    cli.add_argument(
        "--skip-image-check",
        action="store_true",
        help="do not ask the image's registry whether the tag exists",
    )


def _spec(
    args: argparse.Namespace, settings: SnapshotSettings, name: str, image: str
) -> SnapshotSpec:
    for flag, value, problem in (
        ("--name/SANDBOX_SNAPSHOT_NAME", name, snapshot_name_problem(name)),
        ("--image/SANDBOX_IMAGE", image, image_problem(image)),
    ):
        if problem:
            raise ConfigError(
                f"{flag} {value!r} is not valid: expected {problem}",
                "correct the option or variable",
            )
    return SnapshotSpec(
        name=name,
        image=image,
        cpu=args.cpu or settings.cpu,
        memory=args.memory or settings.memory,
        disk=args.disk or settings.disk,
        entrypoint=settings.entrypoint,
    )


def _make(
    spec: SnapshotSpec,
    args: argparse.Namespace,
    settings: SnapshotSettings,
    build: BuildSettings,
    *,
    client: DaytonaClient | None,
    poll: PollPolicy | None,
    force: bool,
    extra_plan: tuple[str, ...] = (),
) -> None:
    daytona = load(DaytonaSettings)
    timeout = args.timeout or settings.timeout
    console.step("Daytona snapshot plan")
    for line in (*extra_plan, *spec.describe()):
        console.say(line)
    console.say(
        f"api:        {daytona.api_url}"
        + (f" (organization {daytona.organization_id})" if daytona.organization_id else "")
    )
    console.say(f"deadline:   {timeout:g} s")
    console.say(f"image check:{' skipped' if args.skip_image_check else ' registry v2 API'}")
    if force:
        console.say("force:      replace a failed snapshot or one with another image")
    if args.dry_run:
        console.say("dry run: Daytona and the registry were not contacted; nothing changed")
        return

    def check() -> None:
        if args.skip_image_check:
            return
        host = parse_image(spec.image).host
        digest = check_image(spec.image, registry_credentials(host, build))
        console.say(f"   image exists: {spec.image}" + (f" ({digest})" if digest else ""))

    with _client(client, daytona) as api:
        console.step(f"Daytona snapshot {spec.name}")
        outcome = ensure_snapshot(
            api, spec, timeout=timeout, force=force, check_image=check, poll=poll
        )
    _report(spec, outcome)


def _report(spec: SnapshotSpec, outcome: Outcome) -> None:
    snap = outcome.snapshot
    if outcome.action in ("existing", "waited") and (snap.cpu, snap.mem, snap.disk) != (
        spec.cpu,
        spec.memory,
        spec.disk,
    ):
        console.warn(
            f"{snap.name} exists with {snap.resources()}, not the requested {spec.cpu} vCPU, "
            f"{spec.memory} GB memory, {spec.disk} GB disk (snapshots are immutable; "
            "use another name or delete it to change them)"
        )
    console.step(
        f"snapshot {snap.name} is {snap.state} ({outcome.action}, {outcome.duration_s:.1f} s)"
    )
    values = {
        "name": snap.name,
        "id": snap.id,
        "state": snap.state,
        "image": snap.image_name or spec.image,
        "cpu": snap.cpu,
        "memory": snap.mem,
        "disk": snap.disk,
        "action": outcome.action,
        "duration_s": round(outcome.duration_s, 1),
    }
    publish(
        "snapshot",
        values,
        load(ReportSettings),
        [
            ("snapshot", f"`{snap.name}` ({snap.state}, {outcome.action})"),
            ("id", f"`{snap.id}`"),
            ("image", f"`{values['image']}`"),
            ("resources", snap.resources()),
            ("duration", f"{outcome.duration_s:.1f} s"),
        ],
    )


# --- snapshot_latest -------------------------------------------------------------------------


def snapshot_latest(argv: Sequence[str], *, client: DaytonaClient | None = None) -> None:
    """Print the newest active snapshot name of a stage (stdout), for scripts and deploys."""
    cli = parser("snapshot_latest", "Print the newest active snapshot of a prefix.")
    cli.add_argument(
        "--prefix",
        help="stage like prd (matches prd--…) or a prefix ending in '-' "
        "(default: DAYTONA_SNAPSHOT_PREFIX, dev-$ITERATE_USER, APP_STAGE)",
    )
    args = cli.parse_args(argv)
    prefix = args.prefix or _stage(None)[0]
    matched = match_prefix(prefix)
    if args.dry_run:
        console.say(
            f"would ask Daytona for active snapshots starting with {matched!r}, newest first"
        )
        return
    with _client(client, load(DaytonaSettings)) as api:
        found = find_latest(api, matched)
    if found is None:
        raise DaytonaError(
            f"no active snapshot starts with {matched!r}",
            "make one with `nox -s snapshot_stage`, or check the prefix",
        )
    console.output(found.name)


# --- snapshots_clean -------------------------------------------------------------------------


def snapshots_clean(
    argv: Sequence[str],
    *,
    client: DaytonaClient | None = None,
    now: Now = _utcnow,
) -> None:
    """Delete a prefix's old snapshots (keeps newest N, recent ones, newest active); --yes acts."""
    cli = parser(
        "snapshots_clean",
        "Retention for a prefix's snapshots; prints the plan, deletes only with --yes.",
    )
    cli.add_argument(
        "--prefix",
        action="append",
        help="stage or prefix to clean; repeatable (default: the current stage)",
    )
    cli.add_argument(
        "--keep",
        type=_non_negative_int,
        default=DEFAULT_KEEP,
        help=f"always keep this many newest (default {DEFAULT_KEEP})",
    )
    cli.add_argument(
        "--days",
        type=_non_negative_float,
        default=DEFAULT_DAYS,
        help=f"always keep snapshots younger than this (default {DEFAULT_DAYS:g})",
    )
    cli.add_argument("--yes", action="store_true", help="delete what the plan says")
    args = cli.parse_args(argv)
    prefixes = [match_prefix(p) for p in (args.prefix or [_stage(None)[0]])]
    rules = (
        f"keep the newest {args.keep}, anything younger than {args.days:g} days and the newest "
        "active one; delete the rest"
    )
    if args.dry_run:
        for matched in prefixes:
            console.say(f"would list snapshots starting with {matched!r}: {rules}")
        console.say("dry run: Daytona was not contacted; run without --dry-run to see the plan")
        return
    deletions = _Deletions("snapshots")
    with _client(client, load(DaytonaSettings)) as api:
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


class _Deletions:
    """Deletes what a cleanup plan says one by one: a failure is reported and the rest go on;
    the outcome is published and failures end in one error."""

    def __init__(self, noun: str) -> None:
        self.noun = noun
        self.deleted: list[str] = []
        self.failures: list[str] = []

    def attempt(self, name: str, delete: Callable[[], bool]) -> None:
        try:
            if delete():  # False: it was already gone
                self.deleted.append(name)
                console.say(f"   deleted {name}")
        except PipelineError as error:
            self.failures.append(f"{name}: {error.cause}")
            console.warn(f"could not delete {name}: {error}")

    def finish(self, yes: bool, section: str, fix: str) -> None:
        if yes:
            console.step(f"deleted {len(self.deleted)} {self.noun}")
        else:
            console.say("nothing deleted; pass --yes to delete what the plan says")
        values = {"deleted": self.deleted, "failed": len(self.failures)}
        publish(section, values, load(ReportSettings))
        if self.failures:
            raise DaytonaError(
                f"{len(self.failures)} {self.noun} deletions failed, first: {self.failures[0]}",
                fix,
            )


# --- sandbox_daytona -------------------------------------------------------------------------


def sandbox_daytona(
    argv: Sequence[str],
    *,
    client: DaytonaClient | None = None,
    poll: PollPolicy | None = None,
    now: Now = _utcnow,
) -> None:
    """Start a sandbox from a snapshot and print its preview URL; --down / --cleanup remove."""
    cli = parser(
        "sandbox_daytona",
        "Start a Daytona sandbox from the stage's newest snapshot (or --snapshot), wait for "
        "started and print the preview URL of --port. --down NAME removes one; --cleanup "
        "removes the pipeline's sandboxes.",
    )
    mode = cli.add_mutually_exclusive_group()
    mode.add_argument(
        "--down", metavar="NAME", help="stop and delete sandbox NAME (or id); wait until gone"
    )
    mode.add_argument(
        "--cleanup",
        action="store_true",
        help=f"delete every sandbox labelled {CREATED_BY_LABEL}={CREATED_BY} (plan; --yes acts)",
    )
    cli.add_argument(
        "--snapshot",
        help="snapshot to start (default: DAYTONA_SNAPSHOT_NAME, else the newest active one "
        "of the stage)",
    )
    cli.add_argument(
        "--prefix", help="stage (default: DAYTONA_SNAPSHOT_PREFIX, dev-$ITERATE_USER, APP_STAGE)"
    )
    cli.add_argument("--name", help="sandbox name (default: sbx-<YYYYMMDD-HHMMSS>-<random>)")
    cli.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"port whose preview URL to print (default {DEFAULT_PORT}, the sandbox daemon)",
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
    cli.add_argument(
        "--timeout",
        type=_positive_float,
        help="seconds to wait for started, and for gone with --down (DAYTONA_SANDBOX_TIMEOUT, 300)",
    )
    cli.add_argument(
        "--auto-stop",
        type=_non_negative_int,
        help="idle minutes before Daytona stops it, 0 never (DAYTONA_SANDBOX_AUTO_STOP, 60)",
    )
    cli.add_argument(
        "--auto-delete",
        type=_auto_delete,
        help="minutes after a stop before Daytona deletes it, 0 at once, -1 never "
        "(DAYTONA_SANDBOX_AUTO_DELETE, 0)",
    )
    cli.add_argument(
        "--older-than",
        type=_non_negative_float,
        default=0.0,
        metavar="MINUTES",
        help="with --cleanup: only sandboxes created at least this long ago (default 0: all)",
    )
    cli.add_argument("--yes", action="store_true", help="with --cleanup: delete what the plan says")
    args = cli.parse_args(argv)
    settings = load(SandboxSettings)
    timeout = args.timeout or settings.timeout
    if args.yes and not args.cleanup:
        raise ConfigError("--yes only applies to --cleanup", "add --cleanup, or drop --yes")
    if args.down:
        _sandbox_down(args.down, args.dry_run, timeout, client=client, poll=poll)
    elif args.cleanup:
        _sandbox_cleanup(args, client=client, poll=poll, now=now)
    else:
        _sandbox_up(args, settings, timeout, client=client, poll=poll, now=now)


def _sandbox_up(
    args: argparse.Namespace,
    settings: SandboxSettings,
    timeout: float,
    *,
    client: DaytonaClient | None,
    poll: PollPolicy | None,
    now: Now,
) -> None:
    daytona = load(DaytonaSettings)
    snapshot = args.snapshot or settings.snapshot
    stage = None if snapshot else _stage(args.prefix)
    name = args.name or new_sandbox_name(now(), secrets.token_hex(3))
    if problem := snapshot_name_problem(name):
        raise ConfigError(f"--name {name!r} is not valid: expected {problem}", "correct the option")
    env = dict(args.env)
    git_sha = _git_sha()
    labels = pipeline_labels(dict(args.label), git_sha=git_sha)
    request = CreateSandbox(
        snapshot=snapshot or "(newest)",
        name=name,
        env=env,
        labels=labels,
        public=args.public,
        auto_stop_interval=settings.auto_stop if args.auto_stop is None else args.auto_stop,
        auto_delete_interval=(
            settings.auto_delete if args.auto_delete is None else args.auto_delete
        ),
    )
    console.step("Daytona sandbox plan")
    if stage is not None:
        console.say(
            f"snapshot:   the newest active one starting with {match_prefix(stage[0])!r} "
            f"(stage from {stage[1]})"
        )
    else:
        console.say(f"snapshot:   {snapshot}")
    for line in (
        f"name:       {name}",
        f"preview:    port {args.port} ({'public' if args.public else 'private: token needed'})",
        f"env:        {', '.join(sorted(env)) or '(none)'}",  # names only: values may be secret
        f"labels:     {', '.join(f'{k}={v}' for k, v in sorted(labels.items()))}",
        f"auto-stop:  {_interval(request.auto_stop_interval, 'never')}",
        f"auto-delete:{' ' + _interval(request.auto_delete_interval, 'never', zero='at stop')}",
        f"deadline:   {timeout:g} s",
        f"api:        {daytona.api_url}",
    ):
        console.say(line)
    if args.dry_run:
        console.say("dry run: Daytona was not contacted; nothing changed")
        return
    with _client(client, daytona) as api:
        if snapshot is None:
            assert stage is not None
            snapshot = latest_snapshot(stage[0], api)
            if snapshot is None:
                raise DaytonaError(
                    f"no active snapshot starts with {match_prefix(stage[0])!r}",
                    "make one with `nox -s snapshot_stage`, or pass --snapshot",
                )
            console.say(f"   newest snapshot: {snapshot}")
        request = request.model_copy(update={"snapshot": snapshot})
        console.step(f"Daytona sandbox {name} from {snapshot}")
        started = time.monotonic()
        sandbox = launch_sandbox(api, request, timeout=timeout, poll=poll or SANDBOX_POLL)
        try:
            preview = api.preview_url(sandbox.id, args.port)
        except PipelineError as error:
            # It runs (and costs) even without a URL: say how to remove it.
            raise DaytonaError(
                f"sandbox {sandbox.name} started, but {error.cause}",
                f"retry, or remove it: nox -s sandbox_daytona -- --down {sandbox.name}",
            ) from None
    duration = time.monotonic() - started
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


def _sandbox_down(
    name: str,
    dry_run: bool,
    timeout: float,
    *,
    client: DaytonaClient | None,
    poll: PollPolicy | None,
) -> None:
    if dry_run:
        console.say(f"would stop sandbox {name}, delete it and wait until it is gone")
        console.say("dry run: Daytona was not contacted; nothing changed")
        return
    with _client(client, load(DaytonaSettings)) as api:
        console.step(f"removing Daytona sandbox {name}")
        if not stop_and_delete(api, name, timeout=timeout, poll=poll or SANDBOX_POLL):
            console.say(f"   no sandbox {name}: nothing to remove")


def _sandbox_cleanup(
    args: argparse.Namespace,
    *,
    client: DaytonaClient | None,
    poll: PollPolicy | None,
    now: Now,
) -> None:
    older_than = timedelta(minutes=args.older_than)
    selector = f"{CREATED_BY_LABEL}={CREATED_BY}"
    if args.dry_run:
        console.say(
            f"would list sandboxes labelled {selector}"
            + (f" created over {args.older_than:g} min ago" if args.older_than else "")
        )
        console.say("dry run: Daytona was not contacted; run without --dry-run to see the plan")
        return
    timeout = args.timeout or load(SandboxSettings).timeout
    deletions = _Deletions("sandboxes")
    with _client(client, load(DaytonaSettings)) as api:
        plan = plan_cleanup(api.iter_sandboxes(PIPELINE_LABELS), now=now(), older_than=older_than)
        with console.group(f"sandboxes labelled {selector}"):
            for line in plan.describe():
                console.say(line)
        if args.yes:
            for sandbox in plan.to_delete:
                deletions.attempt(
                    sandbox.name,
                    partial(
                        stop_and_delete, api, sandbox.id, timeout=timeout, poll=poll or SANDBOX_POLL
                    ),
                )
    deletions.finish(
        args.yes, "sandboxes_clean", "re-run `nox -s sandbox_daytona -- --cleanup --yes`"
    )


def _git_sha() -> str | None:
    """The commit for the `git-sha` label; a label is not worth failing over, so best effort."""
    try:
        return _commit(load(BuildSettings))[0]
    except PipelineError:
        return None


def _interval(minutes: int | None, off: str, zero: str | None = None) -> str:
    if minutes is None:
        return "Daytona's default"
    if minutes < 0 or (minutes == 0 and zero is None):
        return off
    if minutes == 0 and zero is not None:
        return zero
    return f"{minutes} min"


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError("must be a TCP port (1-65535)")
    return value


def _auto_delete(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < -1:
        raise argparse.ArgumentTypeError("must be -1 (never), 0 (at stop) or minutes")
    return value


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
    if equals:
        return key, value
    if key not in os.environ:
        # Name only: the message must not show a value, and there is none anyway.
        raise argparse.ArgumentTypeError(f"{key} is not set here (give KEY=VALUE or export it)")
    return key, os.environ[key]


# --- shared ----------------------------------------------------------------------------------


@contextmanager
def _client(client: DaytonaClient | None, settings: DaytonaSettings) -> Iterator[DaytonaClient]:
    if client is not None:  # the caller's: they close it
        yield client
        return
    with DaytonaClient.from_settings(settings) as own:
        yield own


def _stage(prefix: str | None) -> tuple[str, str]:
    if prefix:
        return resolve_stage(prefix=prefix, iterate_user=None, app_stage=None)[0], "--prefix"
    stage = load(StageSettings)
    return resolve_stage(
        prefix=stage.prefix, iterate_user=stage.iterate_user, app_stage=stage.app_stage
    )


def _commit(build: BuildSettings) -> tuple[str, bool]:
    """The commit whose image to snapshot: GIT_SHA or HEAD; dirty as snapshot_local tags it."""
    from pipeline.adapters.git import read_git_facts

    try:
        facts = read_git_facts(build.build_context, os.environ)
    except GitError:
        if build.git_sha:  # CI may snapshot a pushed commit without a checkout
            return build.git_sha, False
        raise
    if build.git_sha and build.git_sha != facts.sha:
        # Another commit's image (a dispatch naming a sha): this tree's state says nothing of it.
        return build.git_sha, False
    return facts.sha, facts.dirty


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


__all__ = [
    "sandbox_daytona",
    "snapshot_daytona",
    "snapshot_latest",
    "snapshot_stage",
    "snapshots_clean",
]
