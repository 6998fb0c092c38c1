"""How the pipeline reads Daytona's HTTP answers and when it tries again (pure).

`api_error` turns an error answer into the pipeline error that names what to fix;
`retry_after_seconds` reads Daytona's `Retry-After` headers; `retry_pause` is the backoff
schedule every retried Daytona call follows (5xx, 429, connection errors, and a create whose
outcome was unknown and that turned out not to have landed).
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from pipeline.errors import DaytonaAuthError, DaytonaError

KEYS_URL: Final = "https://app.daytona.io/dashboard/keys"
SNAPSHOT_PERMISSIONS: Final = "write:snapshots and delete:snapshots"
SANDBOX_PERMISSIONS: Final = "write:sandboxes and delete:sandboxes"
REGISTRY_PERMISSIONS: Final = "write:registries and delete:registries"
DEFAULT_RETRY_TIMEOUT: Final = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry: exponential backoff with jitter, `Retry-After` honoured, all inside
    a time budget. A Daytona blip (a rolling deploy answering 503 for half a minute) must not
    fail a release, and a real outage must still end within a bounded time."""

    attempts: int | None = None  # tries in all, the first included; None: what fits `timeout`
    timeout: float = DEFAULT_RETRY_TIMEOUT  # budget of one operation, pauses included
    wait_initial: float = 1.0
    wait_max: float = 15.0
    wait_jitter: float = 1.0  # up to this many seconds added at random to each pause
    wait_exp_base: float = 2.0
    retry_after_max: float = 60.0  # a Retry-After beyond this is capped, not obeyed blindly


def retry_pause(
    policy: RetryPolicy,
    retry: int,
    *,
    elapsed: float,
    retry_after: float | None = None,
    draw: float = 0.0,
) -> float | None:
    """Seconds to wait before retry number `retry` (1: the first), or None to give up.

    `elapsed`: seconds since the operation began; `draw` in [0, 1) scales the jitter. A pause
    never ends past the budget: the last try happens right at its end. A `Retry-After` that
    reaches past the budget gives up at once, since the server said not to try before then.
    """
    if policy.attempts is not None and retry >= policy.attempts:
        return None
    remaining = policy.timeout - elapsed
    if remaining <= 0:
        return None
    if retry_after is not None:
        wait = min(retry_after, policy.retry_after_max)
        return wait if wait <= remaining else None
    grown = policy.wait_initial * policy.wait_exp_base ** (retry - 1)
    return min(min(grown, policy.wait_max) + policy.wait_jitter * draw, remaining)


def retry_after_seconds(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds to wait from `Retry-After` or Daytona's per-throttler `Retry-After-<name>`.

    Seconds or an HTTP date; the longest of several wins. None when there is none we can read.
    """
    waits: list[float] = []
    for key, value in headers.items():
        lowered = key.lower()
        if lowered != "retry-after" and not lowered.startswith("retry-after-"):
            continue
        seconds = _seconds(value.strip(), now)
        if seconds is not None:
            waits.append(seconds)
    return max(waits) if waits else None


def _seconds(value: str, now: datetime) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def api_error(
    status: int,
    message: str,
    operation: str,
    organization_id: str | None,
    *,
    permissions: str = SNAPSHOT_PERMISSIONS,
) -> DaytonaError:
    """The pipeline error for a Daytona error answer: auth problems name the variables to fix."""
    cause = f"{operation}: Daytona answered {status} {message}".rstrip()
    if status == 401:
        return DaytonaAuthError(
            cause,
            f"check DAYTONA_API_KEY (a current key from {KEYS_URL})"
            + ("" if organization_id else "; a JWT also needs DAYTONA_ORGANIZATION_ID"),
        )
    if status == 403:
        org = (
            "and that DAYTONA_ORGANIZATION_ID is an organization the key belongs to"
            if organization_id
            else "or set DAYTONA_ORGANIZATION_ID if the key belongs to another organization"
        )
        return DaytonaAuthError(
            cause,
            f"give the key in DAYTONA_API_KEY the {permissions} permissions, {org}",
        )
    if status == 429:
        return DaytonaError(cause, "Daytona is rate limiting this organization; try again later")
    if status >= 500:
        return DaytonaError(cause, "Daytona is having trouble; try again in a few minutes")
    return DaytonaError(cause)


def redact(text: str, *secrets: str) -> str:
    """`text` on one line, with each secret replaced: a proxy that echoes a request must not
    leak the key (or a registry password sent in the body) through an error message."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return " ".join(text.split())
