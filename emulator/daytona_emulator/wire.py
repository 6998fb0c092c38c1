"""How Daytona's NestJS API spells things on the wire: dates, numbers in messages, error bodies.

The API is JavaScript, so values that end up inside messages are formatted the way JavaScript
would format them (`String(5)` is "5", not "5.0"), and query strings are converted to numbers the
way `Number()` converts them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse


def iso(moment: datetime) -> str:
    """`Date.prototype.toISOString()`: milliseconds and a `Z`."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def js_str(number: float) -> str:
    """`String(number)` for the numbers that appear in Daytona's messages."""
    if math.isfinite(number) and float(number).is_integer() and abs(number) < 1e21:
        return str(int(number))
    if math.isnan(number):
        return "NaN"
    return repr(float(number))


_JS_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_JS_RADIX = {"0x": 16, "0o": 8, "0b": 2}


def js_number(text: str) -> float:
    """`Number(text)` as class-transformer's `@Type(() => Number)` applies it to query strings."""
    stripped = text.strip()
    if stripped == "":
        return 0.0
    prefix = stripped[:2].lower()
    if prefix in _JS_RADIX:
        try:
            return float(int(stripped[2:], _JS_RADIX[prefix]))
        except ValueError:
            return math.nan
    if stripped in ("Infinity", "+Infinity"):
        return math.inf
    if stripped == "-Infinity":
        return -math.inf
    if _JS_DECIMAL.fullmatch(stripped):
        return float(stripped)
    return math.nan


def reason_phrase(status: int) -> str:
    """Node's reason phrase for a status, which Nest puts in the `error` field."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Http Exception"


def error_body(status: int, message: str, path: str, moment: datetime) -> dict[str, Any]:
    """The body Daytona's global exception filter writes for every error (spec §2)."""
    return {
        "statusCode": status,
        "timestamp": iso(moment),
        "path": path,
        "error": reason_phrase(status),
        "message": message,
    }


def request_url(scope: Mapping[str, Any]) -> str:
    """Express's `request.originalUrl`: the path as sent (still percent-encoded) plus the query."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) and raw else str(scope.get("path", "/"))
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


def error_response(
    status: int,
    message: str,
    scope: Mapping[str, Any],
    moment: datetime,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(status, message, request_url(scope), moment),
        status_code=status,
        headers=headers,
    )
