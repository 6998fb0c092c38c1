"""Daytona over HTTP: send one call, retry what may be retried, map failures to pipeline errors.

The API key lives in a SecretStr and is added to each request by `BearerAuth`, so it is in no
header dict, repr or message. Redirects are not followed: they would carry the key elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from pipeline import console
from pipeline.daytona.retry import Backoff
from pipeline.errors import DaytonaError
from pipeline.http_auth import BearerAuth
from pipeline.rules.daytona_http import (
    SNAPSHOT_PERMISSIONS,
    RetryPolicy,
    api_error,
    redact,
    retry_after_seconds,
)
from pipeline.rules.daytona_models import ApiError
from pipeline.waiting import SYSTEM_CLOCK, Clock

SOURCE: Final = "sandbox-pipeline"
M = TypeVar("M", bound=BaseModel)


class CreateConflict(DaytonaError):
    """409 on create: a snapshot (or sandbox) with that name exists (often a concurrent run's)."""


class OutcomeUnknown(DaytonaError):
    """A POST may or may not have taken effect (connection dropped after sending, or 5xx).

    Never retried as such: the caller looks the snapshot (or sandbox) up first, then decides.
    `retry_after` is the server's `Retry-After`, if it sent one, for the caller's next try.
    """

    def __init__(self, cause: str, fix: str = "", retry_after: float | None = None) -> None:
        super().__init__(cause, fix)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Call:
    """One request. `path` may be an absolute URL (the toolbox lives at the sandbox's
    `toolboxProxyUrl`); `timeout` replaces the client's for this call; `permissions` names what
    a 403 lacks. Non-idempotent calls are retried only when the request surely had no effect:
    429 (the throttler rejects before the handler runs) and failures to connect."""

    method: str
    path: str
    operation: str
    params: Mapping[str, str | int] | None = None
    json: Mapping[str, object] | None = None
    tolerate: tuple[int, ...] = ()
    idempotent: bool = True
    timeout: float | None = None
    permissions: str = SNAPSHOT_PERMISSIONS
    # Sent in the body (a registry password): replaced by *** in any message built from the
    # answer, as the key is.
    secrets: tuple[SecretStr, ...] = ()


@dataclass(frozen=True)
class _Retryable:
    error: DaytonaError
    retry_after: float | None = None


def _user_agent() -> str:
    try:
        return f"{SOURCE}/{version('sandbox-pipeline')}"
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return SOURCE


class Transport:
    def __init__(
        self,
        api_url: str,
        api_key: SecretStr,
        organization_id: str | None,
        *,
        http_timeout: float,
        retry: RetryPolicy,
        clock: Clock = SYSTEM_CLOCK,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = api_url
        self.organization_id = organization_id
        self.retry = retry
        self.clock = clock
        self._key = api_key
        headers = {
            "Accept": "application/json",
            "User-Agent": _user_agent(),
            "X-Daytona-Source": SOURCE,
        }
        if organization_id:
            headers["X-Daytona-Organization-ID"] = organization_id
        self.http = httpx.Client(
            base_url=api_url + "/",
            auth=BearerAuth(api_key),
            headers=headers,
            timeout=http_timeout,
            transport=transport,
            follow_redirects=False,  # a redirect would carry the key to wherever it points
        )

    def send(self, call: Call) -> httpx.Response:
        """Send with backoff on 5xx/429/connection errors; raise mapped errors otherwise."""
        backoff = Backoff(self.retry, self.clock)
        while True:
            outcome = self._once(call)
            if isinstance(outcome, httpx.Response):
                return outcome
            if not backoff.wait(outcome.retry_after):
                raise outcome.error
            console.say(f"   retry {backoff.retries} after: {outcome.error}")

    def parse(self, model: type[M], response: httpx.Response, operation: str) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as error:
            raise DaytonaError(
                f"{operation}: Daytona's answer is not a {model.__name__} "
                f"({error.error_count()} problems, first: {error.errors()[0]['msg']})",
                "check DAYTONA_API_URL points at Daytona's API (…/api)",
            ) from None

    def message(self, response: httpx.Response, secrets: tuple[SecretStr, ...] = ()) -> str:
        """Daytona's `message` (else `error`, else the start of the body), on one line."""
        text = ""
        if is_json_object(response):
            body = ApiError.model_validate(response.json())
            text = body.message or body.error or ""
        if not text:
            text = response.text[:200] or response.reason_phrase
        hidden = (self._key, *secrets)
        return redact(text, *(secret.get_secret_value() for secret in hidden))

    def close(self) -> None:
        self.http.close()

    def _once(self, call: Call) -> httpx.Response | _Retryable:
        try:
            response = self.http.request(
                call.method,
                call.path,
                params=call.params,
                json=call.json,
                timeout=httpx.USE_CLIENT_DEFAULT if call.timeout is None else call.timeout,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            return _Retryable(self._unreachable(call.operation, error))
        except httpx.TransportError as error:
            if call.idempotent:
                return _Retryable(self._unreachable(call.operation, error))
            raise OutcomeUnknown(
                f"{call.operation}: the connection failed after the request was sent "
                f"({_describe(error)})"
            ) from None
        status = response.status_code
        if status < 400 or status in call.tolerate:
            return response
        failure = api_error(
            status,
            self.message(response, call.secrets),
            call.operation,
            self.organization_id,
            permissions=call.permissions,
        )
        if status != 429 and status < 500:
            raise failure
        retry_after = retry_after_seconds(response.headers, datetime.now(UTC))
        if status == 429 or call.idempotent:
            return _Retryable(failure, retry_after)
        raise OutcomeUnknown(failure.cause, failure.fix, retry_after)

    def _unreachable(self, operation: str, error: httpx.TransportError) -> DaytonaError:
        return DaytonaError(
            f"{operation}: cannot reach Daytona at {self.api_url} ({_describe(error)})",
            "check DAYTONA_API_URL and the network",
        )


def is_json_object(response: httpx.Response) -> bool:
    try:
        return isinstance(response.json(), dict)
    except ValueError:
        return False


def _describe(error: Exception) -> str:
    return str(error) or type(error).__name__


class Endpoints:
    """What the groups of endpoint methods share: one Transport, and how they use it."""

    _transport: Transport

    @property
    def _http(self) -> httpx.Client:
        return self._transport.http

    def _send(self, method: str, path: str, operation: str, **options: Any) -> httpx.Response:
        return self._transport.send(Call(method, path, operation, **options))

    def _parse(self, model: type[M], response: httpx.Response, operation: str) -> M:
        return self._transport.parse(model, response, operation)

    def _message(self, response: httpx.Response) -> str:
        return self._transport.message(response)

    def _longer(self, seconds: float) -> float:
        """A read timeout of at least `seconds`, for calls the server itself holds open."""
        return max(seconds, self._http.timeout.read or 0)


def url_of(response: httpx.Response, operation: str) -> str:
    """The `url` of a `{"url": …}` answer (build logs, toolbox)."""
    url = response.json().get("url") if is_json_object(response) else None
    if not isinstance(url, str) or not url:
        raise DaytonaError(f"{operation}: the answer has no url")
    return url
