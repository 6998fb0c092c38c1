"""The newest active snapshot of a prefix: what the app (`pipeline.app`) starts sandboxes from.

Answers are cached in the process for five minutes per prefix, because the app asks on every
sandbox start and a stage gets a new snapshot at most every few minutes; developer prefixes are
never cached.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.daytona.client import DaytonaClient
from pipeline.rules.daytona_models import Snapshot
from pipeline.rules.snapshot_names import is_dev_prefix, match_prefix, pick_latest

PAGE_SIZE = 50

CacheKey = tuple[str, str, str]  # api url, organization, matched prefix


@dataclass
class LatestCache:
    """Answers per (API, organization, prefix) for `ttl` seconds. Each call reads or writes the
    dict once, so the app's threads need no lock."""

    ttl: float = 300.0
    clock: Callable[[], float] = time.monotonic
    entries: dict[CacheKey, tuple[float, str]] = field(default_factory=dict)

    def get(self, key: CacheKey) -> str | None:
        stored_at, name = self.entries.get(key, (-math.inf, None))
        return name if self.clock() - stored_at < self.ttl else None

    def put(self, key: CacheKey, name: str) -> None:
        self.entries[key] = (self.clock(), name)


DEFAULT_CACHE = LatestCache()


def find_latest(
    client: DaytonaClient, matched_prefix: str, *, page_size: int = PAGE_SIZE
) -> Snapshot | None:
    for page in client.snapshot_pages(matched_prefix, limit=page_size):
        if (found := pick_latest(page.items, matched_prefix)) is not None:
            return found
    return None


def latest_snapshot(
    prefix: str,
    client: DaytonaClient,
    *,
    cache: LatestCache = DEFAULT_CACHE,
    page_size: int = PAGE_SIZE,
) -> str | None:
    """Name of the newest active snapshot for `prefix` (`prd`, or `iterate-sandbox-`), or None.
    Misses are not cached: a snapshot being made right now should be found on the next call."""
    matched = match_prefix(prefix)
    key = (client.api_url, client.organization_id or "", matched)
    use_cache = not is_dev_prefix(matched)
    if use_cache and (cached := cache.get(key)) is not None:
        return cached
    found = find_latest(client, matched, page_size=page_size)
    if found is not None and use_cache:
        cache.put(key, found.name)
    return None if found is None else found.name
