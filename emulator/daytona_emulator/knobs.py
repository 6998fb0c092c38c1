"""Test hooks: injected faults, scripted snapshot and sandbox outcomes, settings, the request log.

The same `Knobs` object backs the `/_emulator/*` admin routes and the in-process handle that
`EmulatorServer.knobs` returns, so a test can use whichever is more convenient.
"""

from __future__ import annotations

import fnmatch
import itertools
import threading
from collections.abc import Callable
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from daytona_emulator.config import EmulatorConfig, Limits, Timings

FaultKind = Literal["error", "rate_limit", "delay", "drop", "drop_after"]
OutcomeKind = Literal["stuck_pending", "stuck_pulling", "error", "build_failed"]
SandboxOutcomeKind = Literal["error", "stuck_creating"]
OutcomeT = TypeVar("OutcomeT", bound=BaseModel)


class FaultRule(BaseModel):
    """One injected fault, applied to the next `count` matching API requests.

    - `error`: answer `status` (5xx) with Daytona's error body, without touching state.
    - `rate_limit`: answer 429 with `Retry-After` / `Retry-After-authenticated` headers.
    - `delay`: wait `seconds`, then handle the request normally.
    - `drop`: close the connection without any response; the request is not processed.
    - `drop_after`: process the request (state changes!), then close without a response:
      the "lost create response" case.
    """

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    count: int | None = Field(default=1, ge=1, description="None: until cleared")
    method: str | None = Field(default=None, description="only this HTTP method")
    path_prefix: str | None = Field(default=None, description="only raw paths starting so")
    status: int = Field(default=500, ge=500, le=599)
    message: str = "An unexpected error occurred."
    retry_after: int = Field(default=1, ge=0)
    seconds: float = Field(default=0.0, ge=0)
    id: int = 0
    applied: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.applied >= self.count


class SnapshotOutcome(BaseModel):
    """What happens to snapshots whose name matches `name_pattern` (a shell-style glob).

    `stuck_pending`/`stuck_pulling` never leave that state; `error`/`build_failed` end there after
    the pending dwell, with `reason` as `errorReason` (no registry is asked).
    """

    model_config = ConfigDict(extra="forbid")

    name_pattern: str
    outcome: OutcomeKind
    reason: str = "Timeout processing snapshot pull on initial runner"


class SandboxOutcome(BaseModel):
    """What happens to sandboxes created from snapshots whose name matches `snapshot_pattern`.

    `error`: the sandbox goes from `creating` to `error` with `reason` as `errorReason`, without
    a container (so `POST /sandbox` answers 400 `Sandbox failed to start: <reason>`).
    `stuck_creating`: it stays `creating`, as when no runner picks it up.
    """

    model_config = ConfigDict(extra="forbid")

    snapshot_pattern: str
    outcome: SandboxOutcomeKind
    reason: str = "Failed to start sandbox container"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timings: Timings
    limits: Limits


class SettingsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timings: dict[str, float] = Field(default_factory=dict)
    limits: dict[str, float] = Field(default_factory=dict)


class RequestRecord(BaseModel):
    method: str
    path: str
    query: str
    status: int | None = Field(description="None when the connection was dropped")
    fault: FaultKind | None = None


class Scripted(Generic[OutcomeT]):
    """Scripted outcomes in the order added; the first whose glob matches a name applies."""

    def __init__(self, pattern: Callable[[OutcomeT], str]) -> None:
        self._lock = threading.Lock()
        self._pattern = pattern
        self._items: list[OutcomeT] = []

    def add(self, item: OutcomeT) -> OutcomeT:
        with self._lock:
            self._items.append(item)
            return item

    def all(self) -> list[OutcomeT]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def first_for(self, name: str) -> OutcomeT | None:
        with self._lock:
            return next(
                (i for i in self._items if fnmatch.fnmatchcase(name, self._pattern(i))), None
            )


class Knobs:
    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._faults: list[FaultRule] = []
        self._outcomes = Scripted[SnapshotOutcome](lambda outcome: outcome.name_pattern)
        self._sandbox_outcomes = Scripted[SandboxOutcome](lambda outcome: outcome.snapshot_pattern)
        self._requests: list[RequestRecord] = []
        self.timings = config.timings.model_copy()
        self.limits = config.limits.model_copy()
        self.registry_mirrors: dict[str, str] = dict(config.registry_mirrors)

    def reset(self) -> None:
        """Back to the configuration the server was started with."""
        with self._lock:
            self._faults.clear()
            self._outcomes.clear()
            self._sandbox_outcomes.clear()
            self._requests.clear()
            self.timings = self._config.timings.model_copy()
            self.limits = self._config.limits.model_copy()
            self.registry_mirrors = dict(self._config.registry_mirrors)

    # Faults

    def add_fault(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            stored = rule.model_copy(update={"id": next(self._ids), "applied": 0})
            self._faults.append(stored)
            return stored.model_copy()

    def faults(self) -> list[FaultRule]:
        with self._lock:
            return [rule.model_copy() for rule in self._faults]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, method: str, path: str) -> FaultRule | None:
        """The first live rule matching this request, with one use consumed."""
        with self._lock:
            for rule in self._faults:
                if not rule.exhausted and rule.matches(method, path):
                    rule.applied += 1
                    return rule.model_copy()
            return None

    # Scripted outcomes (snapshots by name, sandboxes by their snapshot's name)

    def add_outcome(self, outcome: SnapshotOutcome) -> SnapshotOutcome:
        return self._outcomes.add(outcome)

    def outcomes(self) -> list[SnapshotOutcome]:
        return self._outcomes.all()

    def clear_outcomes(self) -> None:
        self._outcomes.clear()

    def outcome_for(self, name: str) -> SnapshotOutcome | None:
        return self._outcomes.first_for(name)

    def add_sandbox_outcome(self, outcome: SandboxOutcome) -> SandboxOutcome:
        return self._sandbox_outcomes.add(outcome)

    def sandbox_outcomes(self) -> list[SandboxOutcome]:
        return self._sandbox_outcomes.all()

    def clear_sandbox_outcomes(self) -> None:
        self._sandbox_outcomes.clear()

    def sandbox_outcome_for(self, snapshot_name: str) -> SandboxOutcome | None:
        return self._sandbox_outcomes.first_for(snapshot_name)

    # Settings and registries

    def settings(self) -> Settings:
        with self._lock:
            return Settings(timings=self.timings.model_copy(), limits=self.limits.model_copy())

    def update_settings(self, patch: SettingsPatch) -> Settings:
        with self._lock:
            # Validate through the models so a bad value is refused, not stored.
            self.timings = Timings.model_validate({**self.timings.model_dump(), **patch.timings})
            self.limits = Limits.model_validate({**self.limits.model_dump(), **patch.limits})
        return self.settings()

    def set_registry_mirror(self, host: str, target: str) -> None:
        with self._lock:
            self.registry_mirrors = {**self.registry_mirrors, host: target}

    # Request log

    def log_request(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()
