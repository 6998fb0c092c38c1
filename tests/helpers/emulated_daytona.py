"""The Daytona client's lifecycles and sessions against the emulator: the one Daytona double.

Import the fixture into the test module (pytest finds it by name):

    from tests.helpers.emulated_daytona import daytona

- `daytona` (a `World`): the emulator (reset around the test) holding the local registry's
  credentials, a busybox image pushed there (it serves PAGE on port 3000), quick dwell times
  and generous per-sandbox limits.
- `world.freeze()`: an `EmulatorClock`, the emulator's own clock frozen and handed to the client:
  each pause of the client's retries and waits moves the emulator's time by as much (dwell
  times, removal delays), at once, and is recorded in `.sleeps` like `FakeClock`'s.
- `world.client(...)`: a DaytonaClient on the emulator (fast retries unless told otherwise);
  `before=` runs a hook just before each request is sent: another run acting at that moment.
- Rows made through Daytona's own API: `add_snapshot(name, state)` (any state, through the
  emulator's state knob), `add_sandbox(name, snapshot)` (a real container).
- The witness: `world.log` is the emulator's request log as "METHOD /path" (no `/api`, no
  query); `fault(...)` injects 5xx, 429, dropped connections and lost answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from tenacity import wait_exponential_jitter

from daytona_emulator import EmulatorServer, FaultRule
from daytona_emulator.knobs import SettingsPatch
from pipeline.daytona.client import DaytonaClient
from pipeline.registry.server import LocalRegistry
from pipeline.rules.sandbox_rules import CREATED_BY, CREATED_BY_LABEL
from pipeline.waiting import Clock, Interval, RetryPolicy
from tests.helpers.clock import FakeClock
from tests.helpers.emulator import (
    EMULATOR_KEY,
    admin_client,
    api_client,
    daytona_emulator_with_registry,
    push_busybox_image,
)
from tests.helpers.host_engine import TEST_IMAGE_NAMESPACE

__all__ = ["daytona", "daytona_emulator_with_registry"]

FAST = RetryPolicy(5, wait_exponential_jitter(multiplier=0.001, max=0.005, jitter=0), attempts=4)
# Emulator time moves only as the client pauses: these dwell times take a few polls to pass.
TIMINGS = {
    "pending_seconds": 1.0,
    "pulling_seconds": 1.0,
    "removal_seconds": 1.0,
    "sandbox_stop_timeout_seconds": 0,  # httpd as PID 1 ignores SIGTERM: kill at once
}
POLL = Interval(first_s=0.5)  # on the frozen clock: "pending → pulling → active" is seen
SANDBOX_POLL = Interval(first_s=0.05, factor=1.5, max_s=0.3)  # real time: containers start
LIMITS = {"max_cpu_per_sandbox": 1000, "max_memory_per_sandbox": 64, "max_disk_per_sandbox": 64}
# The image: a busybox that serves PAGE on port 3000 (the sandbox daemon's port) until stopped.
PAGE = "hello from the sandbox daemon stand-in\n"
HTTPD = ["httpd", "-f", "-p", "3000", "-h", "/www"]
_PUSHED: dict[str, str] = {}  # registry host -> the image pushed there


class EmulatorClock:
    """The emulator's frozen clock as a client's: a pause advances the emulator's time (every
    transition due on the way happens before it returns) and is recorded, as FakeClock does."""

    def __init__(self, server: EmulatorServer) -> None:
        self._server = server
        self._frozen = server.freeze_clock()
        self.start = self._frozen.monotonic()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._frozen.monotonic()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._server.advance_clock(seconds)

    @property
    def now(self) -> float:
        """Seconds since the test froze the clock (FakeClock's `now` starts at 0 too)."""
        return self.monotonic() - self.start


class Before(httpx.BaseTransport):
    """Real HTTP to the emulator, with `hook(request)` run just before each request leaves."""

    def __init__(self, hook: Callable[[httpx.Request], None]) -> None:
        self._hook = hook
        self._http = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._hook(request)
        return self._http.handle_request(request)

    def close(self) -> None:
        self._http.close()


@dataclass
class World:
    server: EmulatorServer
    registry: LocalRegistry
    image: str  # a runnable busybox image in the local registry (serves PAGE on port 3000)
    clock: Clock = field(default_factory=FakeClock)  # the client's, unless frozen

    def freeze(self) -> EmulatorClock:
        frozen = EmulatorClock(self.server)
        self.clock = frozen
        return frozen

    def client(
        self,
        *,
        retry: RetryPolicy = FAST,
        before: Callable[[httpx.Request], None] | None = None,
        clock: Clock | None = None,
    ) -> DaytonaClient:
        return DaytonaClient(
            self.server.base_url,
            SecretStr(EMULATOR_KEY),
            retry=retry,
            clock=clock or self.clock,
            transport=Before(before) if before else None,
        )

    # --- the witness ----------------------------------------------------------------------

    @property
    def log(self) -> list[str]:
        """Every API request so far, as "METHOD /path" (the emulator logs before answering)."""
        return [f"{r.method} {r.path.removeprefix('/api')}" for r in self.server.knobs.requests()]

    def count(self, entry: str) -> int:
        return self.log.count(entry)

    def posts(self) -> int:
        return self.count("POST /snapshots")

    def statuses(self, method: str) -> list[int | None]:
        return [r.status for r in self.server.knobs.requests() if r.method == method]

    def forget_requests(self) -> None:
        self.server.knobs.clear_requests()

    def fault(self, **rule: Any) -> None:
        self.server.knobs.add_fault(FaultRule(**rule))

    def settings(self, **timings: float) -> None:
        self.server.knobs.update_settings(SettingsPatch(timings=timings))

    def advance(self, seconds: float) -> None:
        self.server.advance_clock(seconds)

    # --- rows, made through Daytona's API (each call is in the log: forget_requests after) --

    def get(self, path: str) -> dict[str, Any] | None:
        with api_client(self.server) as http:
            response = http.get(path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def add_snapshot(
        self,
        name: str,
        state: str = "active",
        *,
        image: str | None = None,
        cpu: int = 2,
        memory: int = 4,
        disk: int = 10,
        error_reason: str | None = None,
    ) -> dict[str, Any]:
        """A snapshot in `state` (`pending` stays as made; any other is set through the
        emulator's state knob, as Daytona's own machinery would set it; an `active` one starts
        sandboxes from its image). `image=""`: one built from a Dockerfile."""
        body: dict[str, Any] = {"name": name, "cpu": cpu, "memory": memory, "disk": disk}
        if image == "":
            body["buildInfo"] = {"dockerfileContent": "FROM scratch\n"}
        else:
            body["imageName"] = image or self.image
        with api_client(self.server) as http:
            made = http.post("/snapshots", json=body)
            assert made.status_code == 200, made.text
            row: dict[str, Any] = made.json()
        if state != "pending":
            row = self.force(row["id"], state, error_reason)
        return row

    def force(
        self, snapshot_id: str, state: str, error_reason: str | None = None
    ) -> dict[str, Any]:
        with admin_client(self.server) as admin:
            forced = admin.post(
                f"/_emulator/snapshots/{snapshot_id}/state",
                json={"state": state, "errorReason": error_reason},
            )
            forced.raise_for_status()
            row: dict[str, Any] = forced.json()
            return row

    def add_sandbox(
        self,
        name: str,
        snapshot: str,
        *,
        labels: Mapping[str, str] | None = None,
        stop: bool = False,
        auto_delete: int = -1,
    ) -> dict[str, Any]:
        """A sandbox (a real container) that Daytona never stops by itself, nor deletes unless
        `auto_delete` says so (0: at its stop); `stop`: stopped again."""
        body = {
            "snapshot": snapshot,
            "name": name,
            "labels": dict(labels or {CREATED_BY_LABEL: CREATED_BY}),
            "autoStopInterval": 0,
            "autoDeleteInterval": auto_delete,
        }
        with api_client(self.server) as http:
            made = http.post("/sandbox", json=body)
            assert made.status_code == 200, made.text
            row: dict[str, Any] = made.json()
            if stop:
                http.post(f"/sandbox/{row['id']}/stop").raise_for_status()
        return row


@pytest.fixture
def daytona(daytona_emulator_with_registry: EmulatorServer, registry: LocalRegistry) -> World:
    server = daytona_emulator_with_registry
    server.knobs.update_settings(SettingsPatch(timings=TIMINGS, limits=LIMITS))
    if registry.host not in _PUSHED:  # one push per registry: tests never change the image
        _PUSHED[registry.host] = push_busybox_image(
            registry,
            f"{TEST_IMAGE_NAMESPACE}daytona-client/{uuid.uuid4().hex[:10]}",
            "v1",
            entrypoint=HTTPD,
            files={"www/index.html": PAGE},
        ).reference
    return World(server, registry, _PUSHED[registry.host])
