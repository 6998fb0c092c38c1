"""Bearer API keys (rule E9): the key names the organization; permissions gate writes.

Only API keys are emulated. With a key, Daytona takes the organization from the key, so an
`X-Daytona-Organization-ID` header is accepted and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from daytona_emulator.config import ApiKey
from daytona_emulator.errors import ApiError, forbidden
from daytona_emulator.state import EmulatorState, emulator_state


@dataclass(frozen=True)
class AuthContext:
    organization_id: str
    permissions: frozenset[str]

    def require(self, permission: str) -> None:
        """`OrganizationResourceActionGuard`: runs before any validation of the request."""
        if permission not in self.permissions:
            raise forbidden("Access denied")


def authenticate(connection: HTTPConnection, keys: Mapping[str, ApiKey]) -> AuthContext:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    key = keys.get(token.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        raise ApiError(401, "Invalid credentials")
    return AuthContext(organization_id=key.organization_id, permissions=key.permissions)


def request_context(connection: HTTPConnection) -> tuple[EmulatorState, AuthContext]:
    """The emulator and the caller of an API request (401 unless the key is known)."""
    state = emulator_state(connection)
    return state, authenticate(connection, state.api_keys)
