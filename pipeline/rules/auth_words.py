"""How docker, registries and Daytona say "your credentials were refused" (pure): one list for a
failed push, a failed login, a snapshot whose pull failed, a sandbox that could not start.
"""

from __future__ import annotations

import re

AUTH_REFUSED_WORDS = (
    "unauthorized",
    "authentication required",
    "denied",
    "incorrect username or password",
    "401",
    "403 forbidden",
    "no basic auth credentials",
)


# Each word whole, and a status code not as part of an address: "401" inside a port
# (127.0.0.1:40185 or :401), a tag or a hex id is not a status.
_REFUSED = re.compile(
    "|".join(
        (r"(?<![\w:.])" if word[0].isdigit() else r"(?<!\w)") + re.escape(word) + r"(?!\w)"
        for word in AUTH_REFUSED_WORDS
    )
)


def says_auth_refused(text: str | None) -> bool:
    return _REFUSED.search((text or "").lower()) is not None
