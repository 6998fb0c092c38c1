"""The one way the pipeline waits for something: probe, check, sleep, until a deadline.

Every wait (a snapshot becoming active, a sandbox starting, a container turning healthy, a
registry answering) goes through `poll`, so each has a deadline and an interval, and tests drive
it with a fake clock instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()


class FakeClock:
    """A clock for tests: `sleep` advances time at once and records what was asked."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class PollTimeout(Exception, Generic[T]):
    """The deadline passed; `last` is what the final probe saw (for the error message)."""

    def __init__(self, last: T, waited_s: float) -> None:
        super().__init__(f"still not done after {waited_s:.1f} s")
        self.last = last
        self.waited_s = waited_s


@dataclass(frozen=True)
class Interval:
    """How long to sleep between probes: starts at `first_s`, grows by `factor` up to `max_s`."""

    first_s: float = 1.0
    factor: float = 1.0
    max_s: float | None = None

    def after(self, current: float) -> float:
        grown = current * self.factor
        return min(grown, self.max_s) if self.max_s is not None else grown


def poll(
    probe: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout_s: float,
    interval: Interval | float = 1.0,
    clock: Clock = SYSTEM_CLOCK,
    on_wait: Callable[[T, float], None] | None = None,
) -> T:
    """Call `probe` until `done(result)`; return that result or raise PollTimeout.

    The probe runs at least once, and once more right at the deadline, so a timeout never hides
    a state that was reached while sleeping. `on_wait(result, elapsed_s)` sees every result that
    is not done yet (progress lines).
    """
    plan = interval if isinstance(interval, Interval) else Interval(first_s=interval)
    started = clock.monotonic()
    deadline = started + timeout_s
    pause = plan.first_s
    while True:
        result = probe()
        if done(result):
            return result
        now = clock.monotonic()
        if now >= deadline:
            raise PollTimeout(result, now - started)
        if on_wait is not None:
            on_wait(result, now - started)
        clock.sleep(max(0.0, min(pause, deadline - now)))
        pause = plan.after(pause)
