"""What the Daytona sessions share: the client, the stage, the commit, the newest snapshot, and
the cleanup loop.

`connect` is the one place a DaytonaClient is made from DAYTONA_* (the app uses it too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline import console
from pipeline.daytona.client import DaytonaClient
from pipeline.daytona.latest import find_latest
from pipeline.errors import ConfigError, DaytonaError, GitError, PipelineError
from pipeline.report import publish
from pipeline.rules.daytona_http import KEYS_URL
from pipeline.rules.retention import RetentionPlan
from pipeline.rules.sandbox_rules import CleanupPlan
from pipeline.rules.snapshot_names import match_prefix, resolve_stage
from pipeline.settings.build import BuildSettings, ReportSettings, load
from pipeline.settings.daytona import DaytonaSettings, StageSettings
from pipeline.waiting import Interval, RetryPolicy


def utcnow() -> datetime:
    return datetime.now(UTC)


def connect(settings: DaytonaSettings) -> DaytonaClient:
    """A client for the Daytona that DAYTONA_* names. The key is required here, not by the
    settings, so that --help and --dry-run work without one."""
    if settings.api_key is None:
        raise ConfigError(
            "DAYTONA_API_KEY is not set",
            f"create a key with write:snapshots and delete:snapshots at {KEYS_URL} "
            "and export DAYTONA_API_KEY",
        )
    return DaytonaClient(
        settings.api_url,
        settings.api_key,
        settings.organization_id,
        http_timeout=settings.http_timeout,
        retry=RetryPolicy(settings.retry_timeout),
    )


def api_line(daytona: DaytonaSettings) -> str:
    org = f" (organization {daytona.organization_id})" if daytona.organization_id else ""
    return f"api:        {daytona.api_url}{org}"


@dataclass(frozen=True)
class Seams:
    """What a test hands a Daytona session in place of the real thing (nox never does): a client
    on an emulator (the test closes it), fast polling (None: the session's own), a fixed clock."""

    client: DaytonaClient | None = None
    interval: Interval | None = None
    now: Callable[[], datetime] = utcnow

    @contextmanager
    def daytona(self, settings: DaytonaSettings | None = None) -> Iterator[DaytonaClient]:
        """The test's client, else one from DAYTONA_* that is closed after."""
        if self.client is not None:
            yield self.client
            return
        with connect(settings or load(DaytonaSettings)) as own:
            yield own


LIVE = Seams()
# What stage() reads without --prefix, for the flags' help.
STAGE_DEFAULT = "(default: DAYTONA_SNAPSHOT_PREFIX, dev-$ITERATE_USER, APP_STAGE)"


def stage(prefix: str | None) -> tuple[str, str]:
    """The stage and where it came from: --prefix, else the variables."""
    if prefix:
        return resolve_stage(prefix=prefix, iterate_user=None, app_stage=None)[0], "--prefix"
    settings = load(StageSettings)
    return resolve_stage(
        prefix=settings.prefix, iterate_user=settings.iterate_user, app_stage=settings.app_stage
    )


def commit(build: BuildSettings) -> tuple[str, bool]:
    """The commit whose image to snapshot: the one SANDBOX_ITERATE_REPO_REF names, else GIT_SHA
    or HEAD; dirty as snapshot_local tags it."""
    from pipeline.git.facts import read_git_facts
    from pipeline.git.refs import resolve_ref

    if build.repo_ref is not None:
        sha = resolve_ref(build.build_context, build.repo_ref).sha
        if build.git_sha and build.git_sha != sha:
            raise GitError(
                f"GIT_SHA={build.git_sha} is not the commit SANDBOX_ITERATE_REPO_REF="
                f"{build.repo_ref} names ({sha})",
                "unset one of them",
            )
        return sha, False
    try:
        facts = read_git_facts(build.build_context, build.ci)
    except GitError:
        if build.git_sha:  # CI may snapshot a pushed commit without a checkout
            return build.git_sha, False
        raise
    if build.git_sha and build.git_sha != facts.sha:
        # Another commit's image (a dispatch naming a sha): this tree's state says nothing of it.
        return build.git_sha, False
    return facts.sha, facts.dirty


def git_sha_label() -> str | None:
    """The commit for the `git-sha` label; a label is not worth failing over, so best effort."""
    try:
        return commit(load(BuildSettings))[0]
    except PipelineError:
        return None


def newest(api: DaytonaClient, prefix: str, fix: str) -> str:
    """The newest active snapshot of a stage or prefix; DaytonaError when it has none."""
    matched = match_prefix(prefix)
    found = find_latest(api, matched)
    if found is None:
        raise DaytonaError(
            f"no active snapshot starts with {matched!r}",
            f"make one with `nox -s snapshot_stage`, or {fix}",
        )
    return found.name


def clean_up(
    seams: Seams,
    noun: str,
    plans: Callable[[DaytonaClient], Iterable[tuple[str, RetentionPlan | CleanupPlan]]],
    delete: Callable[[DaytonaClient, str], bool],
    *,
    yes: bool,
    section: str,
    fix: str,
) -> None:
    """Print each titled plan; with `yes` delete what it says one by one (by id): a failure is
    reported and the rest go on; the outcome is published and failures end in one error."""
    deleted: list[str] = []
    failures: list[str] = []
    with seams.daytona() as api:
        for title, plan in plans(api):
            with console.group(title):
                for line in plan.describe():
                    console.say(line)
            for item in plan.to_delete if yes else ():
                try:
                    if delete(api, item.id):  # False: it was already gone
                        deleted.append(item.name)
                        console.say(f"   deleted {item.name}")
                except PipelineError as error:
                    failures.append(f"{item.name}: {error.cause}")
                    console.warn(f"could not delete {item.name}: {error}")
    if yes:
        console.step(f"deleted {len(deleted)} {noun}")
    else:
        console.say("nothing deleted; pass --yes to delete what the plan says")
    publish(section, {"deleted": deleted, "failed": len(failures)}, load(ReportSettings))
    if failures:
        raise DaytonaError(f"{len(failures)} {noun} deletions failed, first: {failures[0]}", fix)
