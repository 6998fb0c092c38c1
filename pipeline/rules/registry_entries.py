"""Which Daytona registry entry holds the pull credentials for the image repository (pure).

Daytona pulls a snapshot's image with the organization's entry whose URL (scheme stripped) starts
the image name at a boundary; with two entries for the same host it is not said which one wins,
so a stale duplicate can make pulls fail at random. Entries scoped to a path (`ghcr.io/acme`)
belong to someone's other images: they are never deleted, only named when they also match the
repository (Daytona may pull with them instead).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pipeline.rules.daytona_models import DockerRegistry
from pipeline.rules.image_ref import DOCKER_HUB

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def entry_url(url: str) -> str:
    """An entry's URL as Daytona compares it: no scheme, no trailing `/`, lower-case, and any
    Docker Hub spelling as `docker.io` (Daytona stores it so)."""
    cleaned = _SCHEME.sub("", url.strip()).rstrip("/").lower()
    return DOCKER_HUB if DOCKER_HUB in cleaned else cleaned


def matches_repository(url: str, repository: str) -> bool:
    """True when Daytona would pull images of `repository` with an entry of this URL."""
    prefix = entry_url(url)
    name = repository.lower()
    return name.startswith(prefix) and name[len(prefix) : len(prefix) + 1] in ("", "/", ":")


@dataclass(frozen=True)
class EntryPlan:
    host: str
    repository: str
    keep: DockerRegistry | None  # updated in place (PATCH); None: a new one is made (POST)
    delete: tuple[DockerRegistry, ...]  # further entries for the same host
    shadowing: tuple[DockerRegistry, ...]  # path-scoped entries that also match the repository


def plan_entries(entries: Iterable[DockerRegistry], host: str, repository: str) -> EntryPlan:
    """Keep the oldest organization entry whose URL is exactly `host` (so concurrent runs agree
    on it), delete the rest of them."""
    wanted = entry_url(host)
    own = [e for e in entries if e.registry_type == "organization"]
    same_host = sorted(
        (e for e in own if entry_url(e.url) == wanted), key=lambda e: (e.created_at or _EPOCH, e.id)
    )
    shadowing = tuple(
        e for e in own if entry_url(e.url) != wanted and matches_repository(e.url, repository)
    )
    return EntryPlan(
        host=host,
        repository=repository,
        keep=same_host[0] if same_host else None,
        delete=tuple(same_host[1:]),
        shadowing=shadowing,
    )


def describe_entry(entry: DockerRegistry) -> str:
    """One line naming an entry without anything secret (Daytona never returns the password)."""
    made = entry.created_at.strftime("%Y-%m-%d %H:%M UTC") if entry.created_at else "unknown"
    user = entry.username or "(no username)"
    return f"{entry.id} ({entry.name!r}, url {entry.url}, user {user}, created {made})"


class PullPassword(StrEnum):
    """What DAYTONA_REGISTRY_PASSWORD is, as far as the pipeline can tell."""

    READ_ONLY = "read-only"  # none of the tokens below: what it should be
    EXPIRES_WITH_JOB = "expires with the job"  # this job's GITHUB_TOKEN → refused
    CAN_PUSH = "can push"  # the push token (REGISTRY_PASSWORD): it works → a warning


def judge_pull_password(
    password: str, *, github_token: str | None, push_password: str | None
) -> PullPassword:
    """Daytona keeps the entry's password for as long as the entry lives: the job's expiring
    GITHUB_TOKEN would break every pull after the job, and the push token gives Daytona more
    than it needs."""
    if github_token and password == github_token:
        return PullPassword.EXPIRES_WITH_JOB
    if push_password and password == push_password:
        return PullPassword.CAN_PUSH
    return PullPassword.READ_ONLY
