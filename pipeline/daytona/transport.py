"""Daytona over HTTP, the base of DaytonaClient: send one call, retry what may be retried, map
failures to pipeline errors. The API key is a SecretStr added to each request by `BearerAuth`, so
it is in no header dict, repr or message."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final, Generic, Self, TypeVar

import httpx
from pydantic import SecretStr, TypeAdapter, ValidationError

from pipeline import console
from pipeline.errors import DaytonaError
from pipeline.http_auth import BearerAuth
from pipeline.rules.daytona_http import (
    DEFAULT_RETRY_TIMEOUT,
    api_error,
    redact,
    retry_after_seconds,
)
from pipeline.rules.daytona_models import ApiError
from pipeline.waiting import SYSTEM_CLOCK, Clock, GaveUp, RetryPolicy, retry

SOURCE: Final = "sandbox-pipeline"
T = TypeVar("T")


class _MayRetry(DaytonaError):
    def __init__(self, cause: str, fix: str = "", retry_after: float | None = None) -> None:
        super().__init__(cause, fix)
        self.retry_after = retry_after  # seconds the server's Retry-After asked for, if it did


class Transient(_MayRetry):
    """5xx, 429 or a failed connection on a call that is safe to send again."""


class OutcomeUnknown(_MayRetry):
    """A POST may or may not have taken effect (connection dropped after sending, or 5xx): never
    sent again as such (NamedCreate looks the name up first)."""


class RetriesSpent(DaytonaError):
    """A call kept failing until its RetryPolicy was spent; the cause is the last failure's."""


class CreateConflict(DaytonaError):
    """409 on create: a snapshot (or sandbox) with that name exists (often a concurrent run's)."""


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
        organization_id: str | None = None,
        *,
        http_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.organization_id = organization_id
        self.retry = retry or RetryPolicy(DEFAULT_RETRY_TIMEOUT)
        self.clock = clock  # of the retries; waits on top of this client default to it too
        self._key = api_key
        headers = {
            "Accept": "application/json",
            "User-Agent": _user_agent(),
            "X-Daytona-Source": SOURCE,
        }
        if organization_id:
            headers["X-Daytona-Organization-ID"] = organization_id
        self.http = httpx.Client(
            base_url=self.api_url + "/",
            auth=BearerAuth(api_key),
            headers=headers,
            timeout=http_timeout,
            transport=transport,
            follow_redirects=False,  # a redirect would carry the key to wherever it points
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.close()

    def send(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Mapping[str, object] | None = None,
        tolerate: tuple[int, ...] = (),
        idempotent: bool = True,
        timeout: float | None = None,
        secrets: tuple[SecretStr, ...] = (),
    ) -> httpx.Response:
        """One request, sent again after 5xx, 429 and connection errors as `self.retry` says.
        `path` may be an absolute URL (the toolbox lives at the sandbox's `toolboxProxyUrl`);
        answers in `tolerate` are returned, not raised; `secrets` (a registry password in the
        body) become *** in any message built from the answer, as the key does. A call that is
        not `idempotent` is sent again only when it surely had no effect: 429 (the throttler
        rejects before the handler runs) and failures to connect; otherwise OutcomeUnknown."""

        def once() -> httpx.Response:
            try:
                response = self.http.request(
                    method,
                    path,
                    params=params,
                    json=json,
                    timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
                )
            except httpx.TransportError as error:
                if idempotent or isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
                    raise Transient(
                        f"{operation}: cannot reach Daytona at {self.api_url} ({_describe(error)})",
                        "check DAYTONA_API_URL and the network",
                    ) from None
                raise OutcomeUnknown(
                    f"{operation}: the connection failed after the request was sent "
                    f"({_describe(error)})"
                ) from None
            status = response.status_code
            if status < 400 or status in tolerate:
                return response
            failure = api_error(
                status, self.message(response, secrets), operation, self.organization_id, path
            )
            if status != 429 and status < 500:
                raise failure
            retry_after = retry_after_seconds(response.headers, datetime.now(UTC))
            kind = Transient if status == 429 or idempotent else OutcomeUnknown
            raise kind(failure.cause, failure.fix, retry_after)

        return self.retrying(once, on=Transient, say_retries=True)

    def retrying(
        self, attempt: Callable[[], T], *, on: type[DaytonaError], say_retries: bool = False
    ) -> T:
        """`attempt()` again after `on` errors, as `self.retry` says, on `self.clock`; when that is
        spent, RetriesSpent: the last error, and how long it was tried."""
        say = _say_retry if say_retries else None
        try:
            return retry(attempt, self.retry, on=on, clock=self.clock, on_retry=say)
        except GaveUp as spent:
            last = spent.last
            assert isinstance(last, DaytonaError)
            raise RetriesSpent(
                f"{last.cause} (gave up after {spent.tries} tries in {spent.elapsed_s:.0f} s)",
                last.fix or "check Daytona's status and re-run",
            ) from None

    def fetch(self, model: type[T], method: str, path: str, operation: str, **send: Any) -> T:
        return self.parse(model, self.send(method, path, operation, **send), operation)

    def find(self, model: type[T], path: str, operation: str) -> T | None:
        response = self.send("GET", path, operation, tolerate=(404,))
        return None if response.status_code == 404 else self.parse(model, response, operation)

    def create(self, model: type[T], path: str, operation: str, **send: Any) -> T:
        response = self.send("POST", path, operation, idempotent=False, tolerate=(409,), **send)
        if response.status_code == 409:
            raise CreateConflict(f"{operation}: {self.message(response)}")
        return self.parse(model, response, operation)

    def remove(self, path: str, operation: str) -> bool:
        return self.send("DELETE", path, operation, tolerate=(404,)).status_code != 404

    def parse(self, shape: type[T], response: httpx.Response, operation: str, what: str = "") -> T:
        try:
            return TypeAdapter(shape).validate_json(response.content)
        except ValidationError as error:
            raise DaytonaError(
                f"{operation}: Daytona's answer is not {what or 'a ' + shape.__name__} "
                f"({error.error_count()} problems, first: {error.errors()[0]['msg']})",
                "check DAYTONA_API_URL points at Daytona's API (…/api)",
            ) from None

    def message(self, response: httpx.Response, secrets: tuple[SecretStr, ...] = ()) -> str:
        text = ""
        if is_json_object(response):
            body = ApiError.model_validate(response.json())
            text = body.message or body.error or ""
        if not text:
            text = response.text[:200] or response.reason_phrase
        hidden = (self._key, *secrets)
        return redact(text, *(secret.get_secret_value() for secret in hidden))


class NamedCreate(Generic[T]):
    """A create by name, never sent again blindly: after a lost answer (OutcomeUnknown) the name
    is looked up first, and posted again (after a pause as the client's RetryPolicy says) only
    when absent. `unsure` stays set once a POST may have landed unseen: a 409 may be our own."""

    def __init__(self, client: Transport, look_up: Callable[[], T | None]) -> None:
        self.client, self.look_up = client, look_up
        self.unsure = False

    def send(self, post: Callable[[], T]) -> tuple[T, bool]:
        """What was made, and whether an answer said so (False: the look-up found it)."""

        def attempt() -> tuple[T, bool]:
            try:
                return post(), True
            except OutcomeUnknown as unknown:
                console.warn(f"{unknown.cause}; looking the name up before trying again")
                self.unsure = True
                if (found := self.look_up()) is None:
                    raise
                return found, False

        return self.client.retrying(attempt, on=OutcomeUnknown)


def is_json_object(response: httpx.Response) -> bool:
    try:
        return isinstance(response.json(), dict)
    except ValueError:
        return False


def _say_retry(tries: int, error: BaseException) -> None:
    console.say(f"   retry {tries} after: {error}")


def _describe(error: Exception) -> str:
    return str(error) or type(error).__name__
