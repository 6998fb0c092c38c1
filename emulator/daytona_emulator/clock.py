"""The emulator's one source of time: dwell times, removal delays, start waits, auto-stop and
every timestamp it writes read it, so tests can hold time still and move it themselves.

`SystemClock` is real time. `ManualClock` moves only when told (`advance`), which is how tests
walk a snapshot from `pending` to `active` or a sandbox past its auto-stop without sleeping.
Polling loops that only *look* for changes (the state machine's tick, a bounded wait for a
container) still pause in real time; what they compare against comes from the clock.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (dwell times, deadlines)."""
        ...

    def now(self) -> datetime:
        """Wall-clock time, aware, UTC (what `createdAt` and error bodies show)."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that stands still until `advance` (or the emulator's own stepping) moves it.

    It starts at the real time by default, so rows made before the switch stay consistent.
    """

    def __init__(self, *, monotonic: float | None = None, now: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._start = time.monotonic() if monotonic is None else monotonic
        self._start_wall = (now or datetime.now(UTC)).astimezone(UTC)
        self._current = self._start

    def monotonic(self) -> float:
        with self._lock:
            return self._current

    def now(self) -> datetime:
        with self._lock:
            return self._start_wall + timedelta(seconds=self._current - self._start)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go back")
        with self._lock:
            self._current += seconds

    def move_to(self, monotonic: float) -> None:
        """Forward to `monotonic` (never back): how the emulator steps through due times."""
        with self._lock:
            self._current = max(self._current, monotonic)


def epoch_ms(moment: datetime) -> int:
    """JavaScript's `Date.now()` for `moment`."""
    return int(moment.timestamp() * 1000)
