"""Waiting for a Daytona snapshot or sandbox to reach a state, through `pipeline.waiting.poll`.

One reader for both: it prints each state change (and, while nothing changes, a heartbeat, so CI
logs show life), and turns the poll's timeout into the caller's DeadlineExceeded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pipeline import console
from pipeline.errors import DeadlineExceeded
from pipeline.waiting import Clock, Interval, PollTimeout, poll

T = TypeVar("T")


@dataclass(frozen=True)
class PollPolicy:
    """How often to read while waiting: 1 s, growing to 10 s (Daytona's own cron re-checks every
    10 s, so polling faster than that late in a wait buys nothing)."""

    initial: float = 1.0
    factor: float = 1.5
    maximum: float = 10.0
    heartbeat: float = 60.0  # repeat an unchanged state this often, so CI logs show life

    @property
    def interval(self) -> Interval:
        return Interval(first_s=self.initial, factor=self.factor, max_s=self.maximum)


class _Progress:
    """Prints a state when it changes, and again every `heartbeat` s while it does not."""

    def __init__(self, name: str, state: str, clock: Clock, heartbeat: float) -> None:
        self.name, self.state, self._clock, self._heartbeat = name, state, clock, heartbeat
        self._started = self._last_print = clock.monotonic()

    def show(self, state: str) -> None:
        now = self._clock.monotonic()
        elapsed = now - self._started
        if state != self.state:
            console.say(f"   {self.name}: {self.state} → {state} ({elapsed:.0f} s)")
            self.state, self._last_print = state, now
        elif now - self._last_print >= self._heartbeat:
            console.say(f"   {self.name}: still {state} ({elapsed:.0f} s)")
            self._last_print = now


@dataclass(frozen=True)
class Watch:
    """What is waited for: `name` and its `state` now (for the progress lines), until when."""

    name: str
    state: str
    deadline: float  # on `clock`
    clock: Clock
    poll: PollPolicy

    def until(self, probe: Callable[[], T], done: Callable[[T], bool]) -> T:
        """`pipeline.waiting.poll` at this watch's pace until its deadline (then PollTimeout)."""
        return poll(
            probe,
            done,
            timeout_s=self.deadline - self.clock.monotonic(),
            interval=self.poll.interval,
            clock=self.clock,
        )


def wait_for(
    watch: Watch,
    read: Callable[[], T | None],
    done: Callable[[T | None], bool],
    state_of: Callable[[T], str],
    late: Callable[[str], DeadlineExceeded],
) -> T | None:
    """Read until `done(reading)` (None: it is gone) and return that reading; at the deadline
    raise `late(last state)`. Pauses grow as `watch.poll` says and never pass the deadline."""
    progress = _Progress(watch.name, watch.state, watch.clock, watch.poll.heartbeat)

    def probe() -> T | None:
        reading = read()
        progress.show("gone" if reading is None else state_of(reading))
        return reading

    try:
        return watch.until(probe, done)
    except PollTimeout:
        raise late(progress.state) from None
