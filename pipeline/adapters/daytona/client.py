"""A thin httpx adapter for Daytona's snapshot and sandbox APIs: requests, retries, error mapping.

Decisions (what to create, when to wait) live in naming.py, lifecycle.py and sandboxes.py; this
module only turns calls into HTTP and HTTP failures into `pipeline.errors`. The API key lives in
a SecretStr and is added to each request by an `httpx.Auth`, so it is in no header dict, repr or
message (the toolbox gets it too, as from the SDK: it authenticates `process/execute`).
"""

from __future__ import annotations

import email.utils
import json as json_module
import logging
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import quote

import httpx
import stamina
from pydantic import SecretStr, ValidationError

from pipeline import console
from pipeline.errors import ConfigError, DaytonaAuthError, DaytonaError
from pipeline.rules.daytona_models import (
    ApiError,
    CreateSandbox,
    CreateSnapshot,
    ExecResult,
    PortPreview,
    Sandbox,
    SandboxPage,
    Snapshot,
    SnapshotPage,
)
from pipeline.settings.daytona import DaytonaSettings

_QUIET_MARK = "<sandbox-pipeline retry"


class QuietRetry(Exception):
    """Base of the signals we hand stamina; its log records for them are dropped (below)."""

    def __repr__(self) -> str:
        return f"{_QUIET_MARK}: {self}>"


def _not_ours(record: logging.LogRecord) -> bool:
    return not str(record.__dict__.get("stamina.caused_by", "")).startswith(_QUIET_MARK)


# stamina logs every scheduled retry at WARNING, and nox puts a handler on the root logger: each
# poll of a snapshot would print a bare "stamina.retry_scheduled". We print our own lines for
# HTTP retries and progress for polls, so only stamina's records about our signals are dropped.
logging.getLogger("stamina").addFilter(_not_ours)

SOURCE: Final = "sandbox-pipeline"
KEYS_URL: Final = "https://app.daytona.io/dashboard/keys"
LIST_LIMIT_MAX: Final = 200
SNAPSHOT_PERMISSIONS: Final = "write:snapshots and delete:snapshots"
SANDBOX_PERMISSIONS: Final = "write:sandboxes and delete:sandboxes"
# `POST /sandbox` and `/start` answer only once the sandbox started or the server gave up
# waiting (30 s on Daytona): a shorter read timeout would turn every slow start into an
# "outcome unknown".
SANDBOX_WAIT_HTTP_TIMEOUT: Final = 75.0
# The toolbox answers when the command ends; allow its own timeout plus this much.
EXEC_HTTP_MARGIN: Final = 15.0
DEFAULT_EXEC_TIMEOUT: Final = 60
_M = TypeVar("_M", Snapshot, SnapshotPage, Sandbox, SandboxPage, PortPreview, ExecResult)


def _user_agent() -> str:
    try:
        return f"{SOURCE}/{version('sandbox-pipeline')}"
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return SOURCE


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry 5xx, 429 and connection errors; tests pass a fast one."""

    attempts: int = 6
    timeout: float = 120.0  # total budget for one call, waits included
    wait_initial: float = 0.5
    wait_max: float = 15.0
    wait_jitter: float = 0.5
    retry_after_max: float = 60.0  # a Retry-After beyond this is capped, not obeyed blindly


class CreateConflict(DaytonaError):
    """409 on create: a snapshot (or sandbox) with that name exists (often a concurrent run's)."""


class OutcomeUnknown(DaytonaError):
    """A POST may or may not have taken effect (connection dropped after sending, or 5xx).

    Never retried as such: the caller looks the snapshot (or sandbox) up first, then decides.
    """


class _Transient(QuietRetry):
    """Internal signal to stamina that a call may be retried; never escapes `_call`."""

    def __init__(self, error: DaytonaError, retry_after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class _BearerAuth(httpx.Auth):
    def __init__(self, key: SecretStr) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(key=SecretStr('**********'))"


class DaytonaClient:
    def __init__(
        self,
        api_url: str,
        api_key: SecretStr,
        organization_id: str | None = None,
        *,
        http_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.organization_id = organization_id
        self.retry = retry or RetryPolicy()
        self._key = api_key
        headers = {
            "Accept": "application/json",
            "User-Agent": _user_agent(),
            "X-Daytona-Source": SOURCE,
        }
        if organization_id:
            headers["X-Daytona-Organization-ID"] = organization_id
        self._http = httpx.Client(
            base_url=self.api_url + "/",
            auth=_BearerAuth(api_key),
            headers=headers,
            timeout=http_timeout,
            transport=transport,
            follow_redirects=False,  # a redirect would carry the key to wherever it points
        )

    @classmethod
    def from_settings(cls, settings: DaytonaSettings, **kwargs: Any) -> DaytonaClient:
        if settings.api_key is None:
            raise ConfigError(
                "DAYTONA_API_KEY is not set",
                f"create a key with write:snapshots and delete:snapshots at {KEYS_URL} "
                "and export DAYTONA_API_KEY",
            )
        return cls(
            settings.api_url,
            settings.api_key,
            settings.organization_id,
            http_timeout=settings.http_timeout,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"DaytonaClient({self.api_url!r}, organization_id={self.organization_id!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- snapshots -------------------------------------------------------------------------

    def get_snapshot(self, id_or_name: str) -> Snapshot | None:
        """The snapshot with that name (or id), None when Daytona answers 404."""
        response = self._call(
            "GET", _path(id_or_name), f"looking up snapshot {id_or_name}", tolerate=(404,)
        )
        if response.status_code == 404:
            return None
        return self._parse(Snapshot, response, f"looking up snapshot {id_or_name}")

    def list_snapshots(
        self,
        *,
        page: int = 1,
        limit: int = 100,
        name: str | None = None,
        sort: str = "createdAt",
        order: str = "desc",
    ) -> SnapshotPage:
        params: dict[str, str | int] = {"page": page, "limit": limit, "sort": sort, "order": order}
        if name:
            params["name"] = name
        operation = "listing snapshots" + (f" matching {name!r}" if name else "")
        response = self._call("GET", "/snapshots", operation, params=params)
        return self._parse(SnapshotPage, response, operation)

    def iter_snapshots(
        self, name: str | None, *, limit: int = LIST_LIMIT_MAX
    ) -> Iterator[Snapshot]:
        """Every snapshot the server matches to `name`, newest first, page by page (lazily)."""
        page = 1
        while True:
            result = self.list_snapshots(page=page, limit=limit, name=name)
            yield from result.items
            if page >= result.total_pages or not result.items:
                return
            page += 1

    def create_snapshot(self, request: CreateSnapshot) -> Snapshot:
        operation = f"creating snapshot {request.name}"
        response = self._call(
            "POST", "/snapshots", operation, json=request.body(), idempotent=False, tolerate=(409,)
        )
        if response.status_code == 409:
            raise CreateConflict(f"{operation}: {_message(response, self._key)}")
        return self._parse(Snapshot, response, operation)

    def activate_snapshot(self, snapshot_id: str) -> Snapshot:
        operation = f"activating snapshot {snapshot_id}"
        response = self._call("POST", f"{_path(snapshot_id)}/activate", operation, idempotent=False)
        return self._parse(Snapshot, response, operation)

    def delete_snapshot(self, snapshot_id: str) -> bool:
        """Delete by UUID (Daytona refuses names here). False when it was already gone."""
        response = self._call(
            "DELETE", _path(snapshot_id), f"deleting snapshot {snapshot_id}", tolerate=(404,)
        )
        return response.status_code != 404

    def build_logs_url(self, snapshot_id: str) -> str | None:
        """None for image snapshots: Daytona answers 404 "has no build info" for every one."""
        operation = f"getting the build-log URL of snapshot {snapshot_id}"
        response = self._call(
            "GET", f"{_path(snapshot_id)}/build-logs-url", operation, tolerate=(404,)
        )
        if response.status_code == 404:
            return None
        url = response.json().get("url") if _is_json_object(response) else None
        if not isinstance(url, str):
            raise DaytonaError(f"{operation}: the answer has no url")
        return url

    # --- sandboxes -------------------------------------------------------------------------
    # Paths and fields as in Daytona's generated client (daytona_api_client.api.sandbox_api).

    def create_sandbox(self, request: CreateSandbox) -> Sandbox:
        """`POST /sandbox`. Never retried once sent (a second POST could make a second
        sandbox): a lost answer or a 5xx raises OutcomeUnknown, a 409 CreateConflict."""
        operation = f"creating sandbox {request.name} from snapshot {request.snapshot}"
        response = self._call(
            "POST",
            "/sandbox",
            operation,
            json=request.body(),
            idempotent=False,
            tolerate=(409,),
            timeout=max(SANDBOX_WAIT_HTTP_TIMEOUT, self._http.timeout.read or 0),
            permissions=SANDBOX_PERMISSIONS,
        )
        if response.status_code == 409:
            raise CreateConflict(f"{operation}: {_message(response, self._key)}")
        return self._parse(Sandbox, response, operation)

    def get_sandbox(self, id_or_name: str) -> Sandbox | None:
        """The sandbox with that id or name, None when Daytona answers 404."""
        operation = f"looking up sandbox {id_or_name}"
        response = self._call(
            "GET",
            _sandbox_path(id_or_name),
            operation,
            tolerate=(404,),
            permissions=SANDBOX_PERMISSIONS,
        )
        if response.status_code == 404:
            return None
        return self._parse(Sandbox, response, operation)

    def list_sandboxes(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> SandboxPage:
        """One page of `GET /sandbox`; `labels` is sent JSON-encoded, as the SDK does."""
        params: dict[str, str | int] = {"limit": limit}
        if labels:
            params["labels"] = json_module.dumps(dict(labels), sort_keys=True)
        if cursor:
            params["cursor"] = cursor
        operation = "listing sandboxes" + (f" labelled {dict(labels)}" if labels else "")
        response = self._call(
            "GET", "/sandbox", operation, params=params, permissions=SANDBOX_PERMISSIONS
        )
        if response.content.lstrip().startswith(b"["):
            # Servers before the cursor API (public source up to v0.190) answer a bare array.
            return self._parse(SandboxPage, _as_page(response), operation)
        return self._parse(SandboxPage, response, operation)

    def iter_sandboxes(
        self, labels: Mapping[str, str] | None = None, *, limit: int = LIST_LIMIT_MAX
    ) -> Iterator[Sandbox]:
        """Every sandbox with all of `labels`, following `nextCursor` lazily."""
        cursor: str | None = None
        while True:
            page = self.list_sandboxes(labels=labels, limit=limit, cursor=cursor)
            yield from page.items
            if not page.next_cursor or not page.items:
                return
            cursor = page.next_cursor

    def start_sandbox(self, id_or_name: str) -> Sandbox:
        operation = f"starting sandbox {id_or_name}"
        response = self._call(
            "POST",
            f"{_sandbox_path(id_or_name)}/start",
            operation,
            idempotent=False,
            timeout=max(SANDBOX_WAIT_HTTP_TIMEOUT, self._http.timeout.read or 0),
            permissions=SANDBOX_PERMISSIONS,
        )
        return self._parse(Sandbox, response, operation)

    def stop_sandbox(self, id_or_name: str, *, force: bool = False) -> Sandbox:
        operation = f"stopping sandbox {id_or_name}"
        response = self._call(
            "POST",
            f"{_sandbox_path(id_or_name)}/stop",
            operation,
            params={"force": "true"} if force else None,
            idempotent=False,
            permissions=SANDBOX_PERMISSIONS,
        )
        return self._parse(Sandbox, response, operation)

    def delete_sandbox(self, id_or_name: str) -> bool:
        """Ask Daytona to destroy it (asynchronous: it shows `destroying`, then 404).

        False when it was already gone. Retried like a read: a repeat either finds it
        `destroying` (accepted again) or gone (404), never something new.
        """
        response = self._call(
            "DELETE",
            _sandbox_path(id_or_name),
            f"deleting sandbox {id_or_name}",
            tolerate=(404,),
            permissions=SANDBOX_PERMISSIONS,
        )
        return response.status_code != 404

    def preview_url(self, id_or_name: str, port: int) -> PortPreview:
        """The preview URL of a port and the token that opens it (`X-Daytona-Preview-Token`)."""
        operation = f"getting the preview URL of port {port} of sandbox {id_or_name}"
        response = self._call(
            "GET",
            f"{_sandbox_path(id_or_name)}/ports/{port}/preview-url",
            operation,
            permissions=SANDBOX_PERMISSIONS,
        )
        return self._parse(PortPreview, response, operation)

    def toolbox_proxy_url(self, sandbox_id: str) -> str:
        """What the SDK asks when a Sandbox came without `toolboxProxyUrl`."""
        operation = f"getting the toolbox URL of sandbox {sandbox_id}"
        response = self._call(
            "GET",
            f"{_sandbox_path(sandbox_id)}/toolbox-proxy-url",
            operation,
            permissions=SANDBOX_PERMISSIONS,
        )
        url = response.json().get("url") if _is_json_object(response) else None
        if not isinstance(url, str) or not url:
            raise DaytonaError(f"{operation}: the answer has no url")
        return url

    def execute(
        self,
        toolbox_proxy_url: str,
        sandbox_id: str,
        command: str,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: int = DEFAULT_EXEC_TIMEOUT,
    ) -> ExecResult:
        """Run `command` in the sandbox through the toolbox's `POST /process/execute`.

        Like the SDK: the URL is `<toolboxProxyUrl>/<sandboxId>/process/execute` with the same
        Bearer key. A command can have effects, so it is never re-sent after it may have run.
        """
        base = toolbox_proxy_url.rstrip("/")
        if not base.startswith(("https://", "http://")):
            # The key goes wherever this points: only to a real http(s) URL.
            raise DaytonaError(
                f"sandbox {sandbox_id} has no usable toolbox URL ({toolbox_proxy_url!r})"
            )
        body: dict[str, object] = {"command": command, "timeout": timeout}
        if cwd:
            body["cwd"] = cwd
        if env:
            body["envs"] = dict(env)
        operation = f"running a command in sandbox {sandbox_id}"
        response = self._call(
            "POST",
            f"{base}/{quote(sandbox_id, safe='')}/process/execute",
            operation,
            json=body,
            idempotent=False,
            timeout=timeout + EXEC_HTTP_MARGIN,
            permissions=SANDBOX_PERMISSIONS,
        )
        return self._parse(ExecResult, response, operation)

    # --- transport ---------------------------------------------------------------------------

    def _call(
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
        permissions: str = SNAPSHOT_PERMISSIONS,
    ) -> httpx.Response:
        """Send with retries on 5xx/429/connection errors; raise mapped errors otherwise.

        Non-idempotent calls are retried only when the request surely had no effect: 429 (the
        throttler rejects before the handler runs) and failures to connect. `path` may be an
        absolute URL (the toolbox lives at the sandbox's `toolboxProxyUrl`); `timeout` replaces
        the client's HTTP timeout for this call; `permissions` names what a 403 lacks.
        """
        policy = self.retry
        last: list[DaytonaError] = []

        def backoff(error: Exception) -> bool | float:
            if not isinstance(error, _Transient):
                return False
            last[:] = [error.error]
            if error.retry_after is not None:
                return min(error.retry_after, policy.retry_after_max)
            return True

        try:
            for attempt in stamina.retry_context(
                on=backoff,
                attempts=policy.attempts,
                timeout=policy.timeout,
                wait_initial=policy.wait_initial,
                wait_max=policy.wait_max,
                wait_jitter=policy.wait_jitter,
            ):
                with attempt:
                    if attempt.num > 1 and last:
                        console.say(f"   retry {attempt.num - 1} after: {last[0]}")
                    return self._once(
                        method,
                        path,
                        operation,
                        params,
                        json,
                        tolerate,
                        idempotent,
                        timeout,
                        permissions,
                    )
        except _Transient as exhausted:
            raise exhausted.error from None
        raise AssertionError("stamina yields at least one attempt")  # pragma: no cover

    def _once(
        self,
        method: str,
        path: str,
        operation: str,
        params: Mapping[str, str | int] | None,
        json: Mapping[str, object] | None,
        tolerate: tuple[int, ...],
        idempotent: bool,
        timeout: float | None = None,
        permissions: str = SNAPSHOT_PERMISSIONS,
    ) -> httpx.Response:
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                json=json,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise _Transient(self._unreachable(operation, error), None) from None
        except httpx.TransportError as error:
            if idempotent:
                raise _Transient(self._unreachable(operation, error), None) from None
            raise OutcomeUnknown(
                f"{operation}: the connection failed after the request was sent "
                f"({_describe(error)})"
            ) from None
        status = response.status_code
        if status < 400 or status in tolerate:
            return response
        failure = api_error(
            status,
            _message(response, self._key),
            operation,
            self.organization_id,
            permissions=permissions,
        )
        if status == 429:
            raise _Transient(failure, retry_after_seconds(response.headers, datetime.now(UTC)))
        if status >= 500:
            if idempotent:
                raise _Transient(failure, None)
            raise OutcomeUnknown(failure.cause, failure.fix)
        raise failure

    def _unreachable(self, operation: str, error: httpx.TransportError) -> DaytonaError:
        return DaytonaError(
            f"{operation}: cannot reach Daytona at {self.api_url} ({_describe(error)})",
            "check DAYTONA_API_URL and the network",
        )

    def _parse(self, model: type[_M], response: httpx.Response, operation: str) -> _M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as error:
            raise DaytonaError(
                f"{operation}: Daytona's answer is not a {model.__name__} "
                f"({error.error_count()} problems, first: {error.errors()[0]['msg']})",
                "check DAYTONA_API_URL points at Daytona's API (…/api)",
            ) from None


def api_error(
    status: int,
    message: str,
    operation: str,
    organization_id: str | None,
    *,
    permissions: str = SNAPSHOT_PERMISSIONS,
) -> DaytonaError:
    """The pipeline error for a Daytona error answer: auth problems name the variables to fix."""
    cause = f"{operation}: Daytona answered {status} {message}".rstrip()
    if status == 401:
        return DaytonaAuthError(
            cause,
            f"check DAYTONA_API_KEY (a current key from {KEYS_URL})"
            + ("" if organization_id else "; a JWT also needs DAYTONA_ORGANIZATION_ID"),
        )
    if status == 403:
        org = (
            "and that DAYTONA_ORGANIZATION_ID is an organization the key belongs to"
            if organization_id
            else "or set DAYTONA_ORGANIZATION_ID if the key belongs to another organization"
        )
        return DaytonaAuthError(
            cause,
            f"give the key in DAYTONA_API_KEY the {permissions} permissions, {org}",
        )
    if status == 429:
        return DaytonaError(cause, "Daytona is rate limiting this organization; try again later")
    if status >= 500:
        return DaytonaError(cause, "Daytona is having trouble; try again in a few minutes")
    return DaytonaError(cause)


def retry_after_seconds(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds to wait from `Retry-After` or Daytona's per-throttler `Retry-After-<name>`.

    Seconds or an HTTP date; the longest of several wins. None when there is none we can read.
    """
    waits: list[float] = []
    for key, value in headers.items():
        lowered = key.lower()
        if lowered != "retry-after" and not lowered.startswith("retry-after-"):
            continue
        seconds = _seconds(value.strip(), now)
        if seconds is not None:
            waits.append(seconds)
    return max(waits) if waits else None


def _seconds(value: str, now: datetime) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _message(response: httpx.Response, key: SecretStr) -> str:
    """Daytona's `message` (else `error`, else the start of the body), on one line."""
    text = ""
    if _is_json_object(response):
        body = ApiError.model_validate(response.json())
        text = body.message or body.error or ""
    if not text:
        text = response.text[:200] or response.reason_phrase
    secret = key.get_secret_value()
    if secret:
        text = text.replace(secret, "***")  # a proxy that echoes the request must not leak it
    return " ".join(text.split())


def _is_json_object(response: httpx.Response) -> bool:
    try:
        return isinstance(response.json(), dict)
    except ValueError:
        return False


def _describe(error: Exception) -> str:
    return str(error) or type(error).__name__


def _path(id_or_name: str) -> str:
    # Like the generated client: no safe characters, so a `/` stays inside one path segment.
    return f"/snapshots/{quote(id_or_name, safe='')}"


def _sandbox_path(id_or_name: str) -> str:
    return f"/sandbox/{quote(id_or_name, safe='')}"


def _as_page(response: httpx.Response) -> httpx.Response:
    body = b'{"items": ' + response.content + b', "nextCursor": null}'
    return httpx.Response(response.status_code, content=body)
