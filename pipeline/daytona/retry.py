"""The pauses between tries of one Daytona operation, on an injectable clock.

The schedule itself is the pure `retry_pause`; this only keeps count, draws the jitter and
sleeps, so unit tests drive it with `pipeline.waiting.FakeClock` instead of waiting.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from pipeline.errors import DaytonaError
from pipeline.rules.daytona_http import RetryPolicy, retry_pause
from pipeline.waiting import Clock

_RANDOM = secrets.SystemRandom()


class Backoff:
    """One operation's retries: each `wait` sleeps the next pause, or says the budget is spent."""

    def __init__(
        self, policy: RetryPolicy, clock: Clock, draw: Callable[[], float] = _RANDOM.random
    ) -> None:
        self.policy = policy
        self.retries = 0
        self._clock = clock
        self._draw = draw
        self._started = clock.monotonic()

    @property
    def elapsed(self) -> float:
        return self._clock.monotonic() - self._started

    def wait(self, retry_after: float | None = None) -> bool:
        """Sleep before the next try; False (without sleeping) when no try is left."""
        pause = retry_pause(
            self.policy,
            self.retries + 1,
            elapsed=self.elapsed,
            retry_after=retry_after,
            draw=self._draw(),
        )
        if pause is None:
            return False
        self.retries += 1
        self._clock.sleep(pause)
        return True


def gave_up(last: DaytonaError, backoff: Backoff) -> DaytonaError:
    """The error after the last try: what failed last, and how long we kept trying."""
    return DaytonaError(
        f"{last.cause} (gave up after {backoff.retries + 1} tries in {backoff.elapsed:.0f} s)",
        last.fix or "check Daytona's status and re-run",
    )
