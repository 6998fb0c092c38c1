"""The entry (the host of SANDBOX_IMAGE_REPOSITORY, DAYTONA_REGISTRY_USERNAME/_PASSWORD) lets
Daytona pull private images (a private GHCR package) into snapshots. The password is never printed
or reported.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import SecretStr

from pipeline import console
from pipeline.daytona.registries import EntryOutcome, PullCredentials, apply_plan, read_plan
from pipeline.errors import ConfigError
from pipeline.report import publish
from pipeline.rules.registry_entries import (
    EntryPlan,
    PullPassword,
    describe_entry,
    judge_pull_password,
)
from pipeline.sessions.daytona_common import LIVE, Seams, api_line
from pipeline.sessions.options import parser
from pipeline.settings.build import BuildSettings, ReportSettings, load
from pipeline.settings.daytona import DaytonaSettings, RegistryEntrySettings

READ_ONLY_FIX = (
    "create a token that can only read packages (GitHub: a classic PAT with read:packages) and "
    "export DAYTONA_REGISTRY_USERNAME and DAYTONA_REGISTRY_PASSWORD"
)


def daytona_registry(argv: Sequence[str], seams: Seams = LIVE) -> None:
    dry_run = "list Daytona's registry entries, print the plan, and change nothing"
    args = parser("daytona_registry", dry_run=dry_run).parse_args(argv)
    build = load(BuildSettings)
    credentials = pull_credentials(load(RegistryEntrySettings), build)
    daytona = load(DaytonaSettings)
    host = build.registry_host
    with seams.daytona(daytona) as api:
        plan = read_plan(api, host, build.image_repository)
        print_plan(plan, credentials, daytona)
        if args.dry_run:
            console.say("dry run: Daytona's registry entries were only listed; nothing changed")
            return
        console.step(f"Daytona registry entry for {host}")
        outcome = apply_plan(api, plan, credentials)
    report(host, credentials, outcome)


def pull_credentials(settings: RegistryEntrySettings, build: BuildSettings) -> PullCredentials:
    """The entry's credentials; refused when missing or when judge_pull_password refuses them."""
    given = {
        "DAYTONA_REGISTRY_USERNAME": settings.username,
        "DAYTONA_REGISTRY_PASSWORD": settings.password,
    }
    if missing := [name for name, value in given.items() if not value]:
        raise ConfigError(f"{' and '.join(missing)} not set", READ_ONLY_FIX)
    assert settings.username is not None and settings.password is not None
    judged = judge_pull_password(
        settings.password.get_secret_value(),
        github_token=_plain(build.github_token),
        push_password=_plain(build.registry_password),
    )
    if judged is PullPassword.EXPIRES_WITH_JOB:
        raise ConfigError(
            "DAYTONA_REGISTRY_PASSWORD is this job's GITHUB_TOKEN, which expires when the job "
            "ends (Daytona's pulls would fail from then on)",
            READ_ONLY_FIX,
        )
    if judged is PullPassword.CAN_PUSH:
        console.warn(
            "DAYTONA_REGISTRY_PASSWORD is the push token (REGISTRY_PASSWORD): Daytona would keep "
            "a token that can push; give it one that can only read packages"
        )
    return PullCredentials(settings.username, settings.password)


def _plain(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


def print_plan(plan: EntryPlan, credentials: PullCredentials, daytona: DaytonaSettings) -> None:
    console.step("Daytona registry entry plan")
    console.say(f"registry:   {plan.host} (from SANDBOX_IMAGE_REPOSITORY {plan.repository})")
    console.say(f"username:   {credentials.username}")
    console.say("password:   from DAYTONA_REGISTRY_PASSWORD (never shown)")
    console.say(api_line(daytona))
    if plan.keep is None:
        console.say(f"action:     create entry {plan.host!r} with url {plan.host}")
    else:
        console.say(f"action:     update in place {describe_entry(plan.keep)}")
    for duplicate in plan.delete:
        console.say(f"delete:     {describe_entry(duplicate)} (another entry for {plan.host})")
    for other in plan.shadowing:
        console.warn(
            f"entry {describe_entry(other)} also matches {plan.repository}, and Daytona may "
            "pull with its credentials instead; it is left alone (delete it in the dashboard "
            "if it is stale)"
        )


def report(host: str, credentials: PullCredentials, outcome: EntryOutcome) -> None:
    entry = outcome.entry
    console.step(f"registry entry {entry.id} for {entry.url} is {outcome.action}")
    values = {
        "registry": host,
        "id": entry.id,
        "url": entry.url,
        "username": credentials.username,
        "action": outcome.action,
        "deleted": list(outcome.deleted),
    }
    publish(
        "daytona_registry",
        values,
        load(ReportSettings),
        [
            ("registry entry", f"`{entry.id}` ({outcome.action})"),
            ("url", f"`{entry.url}`"),
            ("username", f"`{credentials.username}`"),
            ("duplicates deleted", str(len(outcome.deleted))),
        ],
    )
