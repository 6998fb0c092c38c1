"""Request bodies and query strings read the way Daytona's Express API reads them."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from daytona_emulator.errors import bad_request


def _reject_constant(name: str) -> Any:
    raise ValueError(f"Unexpected token {name[0]} in JSON")


async def json_body(request: Request) -> object:
    """express.json(): only JSON content types are parsed; anything else is an empty body."""
    if "json" not in request.headers.get("content-type", ""):
        return {}
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise bad_request(f"{error.msg} in JSON at position {error.pos}") from error
    except (ValueError, UnicodeDecodeError) as error:
        raise bad_request(str(error)) from error


def query_lists(request: Request) -> dict[str, list[str]]:
    """Every query parameter with all its values, in order (repeats are not lost)."""
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    return params
