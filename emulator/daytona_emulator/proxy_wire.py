"""How Daytona's Go services (proxy, runner, daemon) spell errors: not the API's Nest body.

Their `common-go` error middleware answers `{statusCode, message, code, timestamp, path, method}`
with `code` the upper-snake status name; the SDK reads `message` and `code` from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse


def status_code_name(status: int) -> str:
    try:
        return HTTPStatus(status).name
    except ValueError:
        return "UNKNOWN_ERROR"


def proxy_error(
    status: int, message: str, scope: Mapping[str, Any], moment: datetime
) -> JSONResponse:
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) and raw else str(scope.get("path", "/"))
    body = {
        "statusCode": status,
        "message": message,
        "code": status_code_name(status),
        # Go's time.Time marshals as RFC 3339 with nanoseconds; microseconds are close enough.
        "timestamp": moment.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "path": path,
        "method": str(scope.get("method", "GET")),
    }
    return JSONResponse(body, status_code=status)
