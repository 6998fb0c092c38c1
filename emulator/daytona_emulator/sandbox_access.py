"""Who may reach a sandbox through Daytona's proxy (previews and the toolbox alike).

Daytona's proxy tries, in order: a Bearer API key (or JWT) that can access the sandbox, the
preview token in the `X-Daytona-Preview-Token` header, the same token as the
`DAYTONA_SANDBOX_AUTH_KEY` query parameter, then a cookie from its login flow (not emulated).
"""

from __future__ import annotations

from starlette.requests import Request

from daytona_emulator.sandbox_models import SandboxRow
from daytona_emulator.state import EmulatorState

# Names of where the token travels, not secrets.
TOKEN_HEADER = "x-daytona-preview-token"  # noqa: S105
TOKEN_QUERY = "DAYTONA_SANDBOX_AUTH_KEY"  # noqa: S105
MISSING_AUTHENTICATION = (
    "missing authentication: provide a preview access token (via header, query parameter, "
    "or cookie) or use an API key or JWT"
)


def _bearer_reaches(state: EmulatorState, authorization: str, row: SandboxRow | None) -> bool:
    """An API key reaches the sandboxes of its own organization."""
    token = authorization[len("bearer ") :].strip()
    key = state.api_keys.get(token)
    return key is not None and row is not None and key.organization_id == row.organization_id


def authentication_error(
    state: EmulatorState, request: Request, row: SandboxRow | None
) -> str | None:
    """None when the request may reach `row` (None: no such sandbox), else Daytona's reason."""
    failures: list[str] = []
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        if _bearer_reaches(state, authorization, row):
            return None
        failures.append("Bearer token is invalid")
    token = request.headers.get(TOKEN_HEADER)
    if token:
        if row is not None and token == row.auth_token:
            return None
        failures.append("Auth key header is invalid")
    query_token = request.query_params.get(TOKEN_QUERY)
    if query_token:
        if row is not None and query_token == row.auth_token:
            return None
        failures.append("Auth key query parameter is invalid")
    if failures:
        return "authentication failed:\n" + "\n;\n".join(failures)
    return MISSING_AUTHENTICATION
