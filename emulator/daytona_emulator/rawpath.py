"""Route on the path as sent, so `%2F` inside a snapshot name stays inside one segment (E11).

Starlette routes on the decoded path, where `a%2Fb:1` has become two segments. This middleware
rebuilds the routing path from `raw_path` with only `%` and `/` re-encoded per segment; handlers
`unquote()` their path parameters to get the exact name back. Like Express, it also ignores a
trailing slash.
"""

from __future__ import annotations

from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send


def routing_path(raw_path: str) -> str:
    segments = [
        unquote(part).replace("%", "%25").replace("/", "%2F") for part in raw_path.split("/")
    ]
    path = "/".join(segments)
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path or "/"


class RawPathRouting:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        if scope["type"] == "http" and isinstance(raw, bytes) and raw:
            scope = {**scope, "path": routing_path(raw.decode("latin-1"))}
        await self.app(scope, receive, send)
