"""How the pipeline reads Daytona's HTTP answers (pure): the error that names what to fix, the
`Retry-After` wait that `pipeline.waiting.retry` honours, and secrets kept out of messages."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from pipeline.errors import DaytonaAuthError, DaytonaError

KEYS_URL: Final = "https://app.daytona.io/dashboard/keys"
_PERMISSION_NOUNS: Final = (("/snapshots", "snapshots"), ("/docker-registry", "registries"))
# Seconds one Daytona call keeps retrying 5xx, 429 and connection errors (DAYTONA_RETRY_TIMEOUT).
DEFAULT_RETRY_TIMEOUT: Final = 60.0


def retry_after_seconds(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds to wait from `Retry-After` or Daytona's per-throttler `Retry-After-<name>`. Seconds
    or an HTTP date; the longest of several wins. None when there is none we can read."""
    waits = [
        seconds
        for key, value in headers.items()
        if key.lower() == "retry-after" or key.lower().startswith("retry-after-")
        if (seconds := _seconds(value.strip(), now)) is not None
    ]
    return max(waits, default=None)


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
    status: int, message: str, operation: str, organization_id: str | None, path: str
) -> DaytonaError:
    """The pipeline error for a Daytona error answer to a call on `path`: auth problems name the
    variables and key permissions to fix."""
    cause = f"{operation}: Daytona answered {status} {message}".rstrip()
    if status == 401:
        return DaytonaAuthError(
            cause,
            f"check DAYTONA_API_KEY (a current key from {KEYS_URL})"
            + ("" if organization_id else "; a JWT also needs DAYTONA_ORGANIZATION_ID"),
        )
    if status == 403:
        # The toolbox, at its own URL, is a sandbox call.
        noun = next((n for p, n in _PERMISSION_NOUNS if path.startswith(p)), "sandboxes")
        org = (
            "and that DAYTONA_ORGANIZATION_ID is an organization the key belongs to"
            if organization_id
            else "or set DAYTONA_ORGANIZATION_ID if the key belongs to another organization"
        )
        return DaytonaAuthError(
            cause,
            f"give the key in DAYTONA_API_KEY the write:{noun} and delete:{noun} permissions, "
            + org,
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
