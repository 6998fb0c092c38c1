"""mitmproxy addon: route the sandbox's egress through ITERATE_EGRESS_PROXY_URL when it is set.

Read once at start (the egress proxy is deliberately not restarted when ~/.iterate/.env changes).
Unset or empty: mitmproxy stays a regular proxy. Set: `http(s)://[user:pass@]host:port` becomes
mitmproxy's upstream (credentials go to `upstream_auth`, never into the log). A value that is not
such a URL stops the proxy rather than letting traffic bypass the upstream (fail closed).

Works with mitmproxy 8 (Debian bookworm, `mode` is a string) and 10+ (`mode` is a list).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from mitmproxy import ctx  # type: ignore[import-not-found]

VARIABLE = "ITERATE_EGRESS_PROXY_URL"


class UpstreamError(ValueError):
    pass


def upstream_from_env(env: Mapping[str, str]) -> tuple[str, str | None] | None:
    """(upstream spec without credentials, "user:pass" or None), or None when unset."""
    raw = env.get(VARIABLE, "").strip()
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as error:
        raise UpstreamError(f"{VARIABLE} is not a URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UpstreamError(
            f"{VARIABLE} must look like http://host:port (got scheme {parts.scheme!r})"
        )
    port = port or (443 if parts.scheme == "https" else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    auth = None
    if parts.username is not None:
        auth = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return f"{parts.scheme}://{host}:{port}", auth


class EgressUpstream:
    def running(self) -> None:
        try:
            upstream = upstream_from_env(os.environ)
        except UpstreamError as error:
            ctx.log.error(f"egress: {error}; refusing to run without the upstream")
            ctx.master.shutdown()
            return
        if upstream is None:
            ctx.log.info(f"egress: direct ({VARIABLE} is not set)")
            return
        spec, auth = upstream
        mode = f"upstream:{spec}"
        updates: dict[str, object] = {
            "mode": mode if isinstance(ctx.options.mode, str) else [mode],
        }
        if auth is not None:
            updates["upstream_auth"] = auth
        ctx.options.update(**updates)
        ctx.log.info(f"egress: via upstream proxy {spec}" + (" (with credentials)" if auth else ""))


addons = [EgressUpstream()]
