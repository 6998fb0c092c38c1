"""Outermost ASGI layer: logs every API request and applies injected faults (`knobs.FaultRule`).

It sits outside FastAPI so it can answer before any route runs and can drop a connection with
no response at all, which only the server's transport can do: uvicorn hands its per-request
`send` as a bound method of the request cycle, whose `transport` is the client's socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from daytona_emulator.knobs import FaultRule, RequestRecord
from daytona_emulator.state import EmulatorState
from daytona_emulator.wire import error_response

ADMIN_PREFIX = "/_emulator"


def _close_transport(send: Send) -> bool:
    transport: Any = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return False
    transport.close()
    return True


async def _drain(receive: Receive) -> None:
    """Read the request body before closing: a close with unread data makes the kernel answer
    with a reset, which clients report as a read error instead of a dropped connection."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


class TrafficMiddleware:
    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state
        self.knobs = state.knobs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.decode("latin-1")
        if path.startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        rule = self.knobs.take_fault(method, path)
        logged: list[bool] = []

        def log(status: int | None) -> None:
            # Logged before the response leaves, so a client that has its answer also sees it
            # in the log.
            if not logged:
                logged.append(True)
                self.knobs.log_request(
                    RequestRecord(
                        method=method,
                        path=path,
                        query=scope.get("query_string", b"").decode("latin-1"),
                        status=status,
                        fault=rule.kind if rule else None,
                    )
                )

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                log(message["status"])
            await send(message)

        try:
            await self._serve(rule, scope, receive, send, recording_send, log)
        finally:
            log(None)

    async def _serve(
        self,
        rule: FaultRule | None,
        scope: Scope,
        receive: Receive,
        send: Send,
        recording_send: Send,
        log: Callable[[int | None], None],
    ) -> None:
        if rule is None:
            await self.app(scope, receive, recording_send)
        elif rule.kind == "delay":
            # Real time on purpose: this is latency that a client's own timeout has to see.
            await asyncio.sleep(rule.seconds)
            await self.app(scope, receive, recording_send)
        elif rule.kind == "error":
            response = error_response(rule.status, rule.message, scope, self.state.clock.now())
            await response(scope, receive, recording_send)
        elif rule.kind == "rate_limit":
            seconds = str(rule.retry_after)
            headers = {
                "Retry-After": seconds,
                "Retry-After-authenticated": seconds,
                "X-RateLimit-Limit-authenticated": "10000",
                "X-RateLimit-Remaining-authenticated": "0",
                "X-RateLimit-Reset-authenticated": seconds,
            }
            response = error_response(
                429, "ThrottlerException: Too Many Requests", scope, self.state.clock.now(), headers
            )
            await response(scope, receive, recording_send)
        else:
            if rule.kind == "drop_after":

                async def swallow(message: Message) -> None:
                    return None

                await self.app(scope, receive, swallow)
            else:
                await _drain(receive)
            log(None)
            if not _close_transport(send):
                raise RuntimeError("this ASGI server does not let the emulator drop connections")
            # Let the server notice the closed transport, so it does not try to answer.
            await asyncio.sleep(0.01)
