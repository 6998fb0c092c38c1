"""Preview URLs: `/_preview/<sandboxId>/<port>/<path>` forwards to that port of the container.

Daytona's preview URL is a host of its proxy (`https://<port>-<sandboxId>.proxy.daytona.works`);
the emulator has no wildcard DNS, so the port and sandbox travel in the path instead and the
rest of the path is what the app inside sees. As Daytona's proxy does, it lets anyone through
to a public sandbox and otherwise wants the preview token or an API key (`sandbox_access.py`);
the token header and query parameter are removed before forwarding.

This sits outside the traffic layer: preview traffic is not Daytona API traffic, so injected
API faults and the request log leave it alone.
"""

from __future__ import annotations

import functools
import ssl
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from daytona_emulator.proxy_wire import proxy_error
from daytona_emulator.sandbox_access import TOKEN_HEADER, TOKEN_QUERY, authentication_error
from daytona_emulator.sandbox_models import SandboxState
from daytona_emulator.state import EmulatorState

PREVIEW_PREFIX = "/_preview"
# RFC 9110 §7.6.1 connection-specific headers, plus what the transport recomputes.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
UPSTREAM_TIMEOUT = httpx.Timeout(60.0, connect=5.0)


@functools.cache
def _tls() -> ssl.SSLContext:
    # Upstreams are plain HTTP, but httpx builds a TLS context per client unless given one,
    # and loading the CA bundle costs ~50 ms.
    return ssl.create_default_context()


class PreviewDispatch:
    """Outermost ASGI layer: preview requests to the proxy, everything else to the API."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") or str(scope.get("path", "")).encode()
        if scope["type"] == "http" and raw.startswith(PREVIEW_PREFIX.encode() + b"/"):
            response = await self._proxy(Request(scope, receive), raw.decode("latin-1"))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _error(self, request: Request, status: int, message: str) -> Response:
        return proxy_error(status, message, request.scope, self.state.clock.now())

    async def _proxy(self, request: Request, raw_path: str) -> Response:
        sandbox_id, _, rest = raw_path[len(PREVIEW_PREFIX) + 1 :].partition("/")
        port_text, slash, path = rest.partition("/")
        if not port_text.isdigit():
            return self._error(request, 400, f"invalid port '{port_text}': must be numeric")
        port = int(port_text)
        row = self.state.sandboxes.get(sandbox_id)
        if row is None or not row.public:
            reason = authentication_error(self.state, request, row)
            if reason is not None:
                # Daytona's proxy redirects browsers to its login page; there is none here.
                return self._error(request, 401, reason)
        assert row is not None
        container = row.container_id
        if row.state != SandboxState.STARTED or container is None:
            return self._error(
                request, 502, f"Sandbox {row.id} is not running (state {row.state.value})"
            )
        self.state.sandbox_lifecycle.touch(row)  # preview traffic is activity, as for Daytona
        endpoint = self.state.runtime.endpoint(container, port)
        if endpoint is None:
            return self._error(request, 502, f"Port {port} of sandbox {row.id} is unreachable")
        query = urlencode(
            [
                (k, v)
                for k, v in parse_qsl(request.url.query, keep_blank_values=True)
                if k != TOKEN_QUERY
            ]
        )
        url = f"http://{endpoint.host}:{endpoint.port}{slash or '/'}{path}"
        headers = [
            (name, value)
            for name, value in request.headers.raw
            if name.decode("latin-1").lower() not in HOP_BY_HOP | {TOKEN_HEADER}
        ]
        headers.append((b"x-forwarded-host", request.headers.get("host", "").encode("latin-1")))
        async with httpx.AsyncClient(
            timeout=UPSTREAM_TIMEOUT, trust_env=False, verify=_tls()
        ) as client:
            try:
                upstream = await client.request(
                    request.method,
                    f"{url}?{query}" if query else url,
                    headers=headers,
                    content=await request.body(),
                )
            except httpx.HTTPError as error:
                return self._error(
                    request,
                    502,
                    f"dial tcp {endpoint.host}:{endpoint.port}: {error or type(error).__name__}",
                )
        response = Response(content=upstream.content, status_code=upstream.status_code)
        kept = [
            (name, value)
            for name, value in upstream.headers.raw
            if name.decode("latin-1").lower() not in HOP_BY_HOP | {"content-encoding"}
        ]
        response.raw_headers = [*kept, (b"content-length", str(len(upstream.content)).encode())]
        return response
