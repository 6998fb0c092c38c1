"""Make Daytona hold exactly one registry entry for a host, with the given pull credentials.

The password cannot be read back, so the kept entry is always updated in place (PATCH): a second
run creates nothing and leaves the same entry with the current password. A create whose answer
was lost is never sent again blindly: the entries are listed first. Two runs at the same time may
each create one; the last listing settles on the oldest entry and removes the rest, so both runs
end with the same single entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import SecretStr

from pipeline import console
from pipeline.daytona.client import DaytonaClient
from pipeline.daytona.transport import OutcomeUnknown
from pipeline.errors import DaytonaError
from pipeline.rules.daytona_models import DockerRegistry, RegistryEntryRequest
from pipeline.rules.registry_entries import EntryPlan, plan_entries


@dataclass(frozen=True)
class PullCredentials:
    """What Daytona pulls with: a read-only package token, never the push token."""

    username: str
    password: SecretStr = field(repr=False)


@dataclass(frozen=True)
class EntryOutcome:
    entry: DockerRegistry
    action: str  # created | updated
    deleted: tuple[str, ...]  # ids of the duplicates removed


def read_plan(client: DaytonaClient, host: str, repository: str) -> EntryPlan:
    return plan_entries(client.list_registries(), host, repository)


def apply_plan(
    client: DaytonaClient, plan: EntryPlan, credentials: PullCredentials
) -> EntryOutcome:
    """Create or update the kept entry, delete the duplicates, then settle any race."""
    entry = _save(client, plan, plan.keep, credentials)
    deleted = [d.id for d in plan.delete if _delete(client, d)]
    final = read_plan(client, plan.host, plan.repository)
    if final.keep is None:
        raise DaytonaError(
            f"the registry entry for {plan.host} disappeared while this run made it",
            "another run or a person deleted it; re-run `nox -s daytona_registry`",
        )
    if final.keep.id != entry.id:
        # Another run made one first: the oldest stays (every run agrees on it), with our
        # credentials, and ours goes with the other duplicates below.
        console.say(f"   another run made entry {final.keep.id} first; keeping that one")
        entry = _save(client, plan, final.keep, credentials)
    deleted += [d.id for d in final.delete if _delete(client, d)]
    return EntryOutcome(entry, "created" if plan.keep is None else "updated", tuple(deleted))


def _save(
    client: DaytonaClient,
    plan: EntryPlan,
    entry: DockerRegistry | None,
    credentials: PullCredentials,
) -> DockerRegistry:
    """Update `entry` in place, or create the host's entry when there is none. An update keeps
    the entry's name and URL (a person may have named it in the dashboard)."""
    name, url = (entry.name, entry.url) if entry else (plan.host, plan.host)
    request = RegistryEntryRequest(
        name=name, url=url, username=credentials.username, password=credentials.password
    )
    try:
        saved = client.save_registry(request, entry.id if entry else None)
    except OutcomeUnknown as unknown:  # a create's answer lost (an update is retried as a read)
        console.warn(f"{unknown.cause}; listing the entries before trying anything else")
        found = read_plan(client, plan.host, plan.repository).keep
        if found is None:
            raise DaytonaError(
                f"{unknown.cause} (no entry for {plan.host} was made)",
                "re-run `nox -s daytona_registry`; nothing was changed",
            ) from None
        return _save(client, plan, found, credentials)
    if entry:
        console.say(f"   updated entry {saved.id} in place (username and password)")
    else:
        console.say(f"   created entry {saved.id} for {saved.url}")
    return saved


def _delete(client: DaytonaClient, entry: DockerRegistry) -> bool:
    gone = client.delete_registry(entry.id)
    console.say(f"   deleted duplicate entry {entry.id}" + ("" if gone else " (already gone)"))
    return gone
