"""How docker, registries and Daytona say "your credentials were refused" (pure).

One list for every place that reads such text: a failed push, a failed login, a snapshot whose
pull failed, a sandbox that could not start.
"""

from __future__ import annotations

AUTH_REFUSED_WORDS = (
    "unauthorized",
    "authentication required",
    "denied",
    "incorrect username or password",
    "401",
    "403 forbidden",
    "no basic auth credentials",
)


def says_auth_refused(text: str | None) -> bool:
    """True when `text` reads like a registry refusing credentials or access."""
    lowered = (text or "").lower()
    return any(word in lowered for word in AUTH_REFUSED_WORDS)
