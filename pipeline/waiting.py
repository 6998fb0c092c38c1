"""The one way the pipeline waits and retries: tenacity's loop on an injectable clock. No pause
ever reaches past a deadline or a budget.

Not stamina: it sleeps with `time.sleep` and times with `time.monotonic`, so a test can neither
drive it with a fake clock nor see the exact pauses, and it logs a warning per retry. tenacity
takes the sleep, the stop condition and the wait as callables.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import tenacity
from tenacity.wait import wait_base

from pipeline import console

T = TypeVar("T")
HEARTBEAT_S = 60.0  # `watch` repeats an unchanged state this often, so CI logs show life


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


SYSTEM_CLOCK: Clock = time  # the time module has both: monotonic() and sleep()


def _outcome(state: tenacity.RetryCallState) -> tenacity.Future:
    assert state.outcome is not None  # tenacity asks for a pause only after a try ended
    return state.outcome


class PollTimeout(Exception, Generic[T]):
    """`last`: what the final probe saw (for the error message)."""

    def __init__(self, last: T, waited_s: float) -> None:
        super().__init__(f"still not done after {waited_s:.1f} s")
        self.last, self.waited_s = last, waited_s


@dataclass(frozen=True)
class Interval:
    first_s: float = 1.0
    factor: float = 1.0
    max_s: float = math.inf


def poll(
    probe: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout_s: float,
    interval: Interval | float = 1.0,
    clock: Clock = SYSTEM_CLOCK,
) -> T:
    """Call `probe` until `done(result)`; that result, or PollTimeout. The last probe is right
    at the deadline, so a timeout never hides a state reached while sleeping. An exception from
    the probe ends the wait."""
    every = interval if isinstance(interval, Interval) else Interval(first_s=interval)
    plan = tenacity.wait_exponential(
        multiplier=every.first_s, exp_base=every.factor, max=every.max_s
    )
    started = clock.monotonic()
    deadline = started + timeout_s

    def pause(state: tenacity.RetryCallState) -> float:
        return max(0.0, min(plan(state), deadline - clock.monotonic()))

    def timed_out(state: tenacity.RetryCallState) -> T:
        raise PollTimeout(_outcome(state).result(), clock.monotonic() - started)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda result: not done(result)),
        stop=lambda _: clock.monotonic() >= deadline,
        wait=pause,
        sleep=clock.sleep,
        retry_error_callback=timed_out,
    )
    return retrying(probe)


def watch(
    name: str,
    read: Callable[[], T],
    done: Callable[[T], bool],
    state_of: Callable[[T], str],
    *,
    state: str,
    deadline: float,
    interval: Interval,
    clock: Clock = SYSTEM_CLOCK,
) -> T:
    """`poll` until `deadline` (on `clock`), printing `name`'s state when it changes from `state`
    (what it is now) and every HEARTBEAT_S while it does not."""
    started = last_line = clock.monotonic()

    def probe() -> T:
        nonlocal state, last_line
        reading = read()
        now, seen = clock.monotonic(), state_of(reading)
        if seen != state:
            console.say(f"   {name}: {state} → {seen} ({now - started:.0f} s)")
            state, last_line = seen, now
        elif now - last_line >= HEARTBEAT_S:
            console.say(f"   {name}: still {seen} ({now - started:.0f} s)")
            last_line = now
        return reading

    return poll(probe, done, timeout_s=deadline - started, interval=interval, clock=clock)


@dataclass(frozen=True)
class RetryPolicy:
    """`backoff` between tries, or the wait a server asked for (capped at `retry_after_max`),
    all inside `timeout` seconds; `attempts` caps the tries (None: what fits). A blip (a rolling
    deploy answering 503 for half a minute) must not fail a release, and an outage must still
    end within a bounded time."""

    timeout: float
    # 1, 2, 4, 8, 15 s, + up to 1 s
    backoff: wait_base = field(
        default_factory=lambda: tenacity.wait_exponential_jitter(max=15, jitter=1)
    )
    attempts: int | None = None
    retry_after_max: float = 60.0

    def pause(self, state: tenacity.RetryCallState, elapsed: float) -> float | None:
        """Seconds to wait, or None to give up. The last try is at the budget's very end; a
        Retry-After past it gives up at once (the server said not before)."""
        if self.attempts is not None and state.attempt_number >= self.attempts:
            return None
        remaining = self.timeout - elapsed
        if remaining <= 0:
            return None
        asked = getattr(_outcome(state).exception(), "retry_after", None)
        if isinstance(asked, int | float):
            wait = min(float(asked), self.retry_after_max)
            return wait if wait <= remaining else None
        return min(self.backoff(state), remaining)


class GaveUp(Exception):
    def __init__(self, last: BaseException, tries: int, elapsed_s: float) -> None:
        super().__init__(f"gave up after {tries} tries in {elapsed_s:.0f} s: {last}")
        self.last, self.tries, self.elapsed_s = last, tries, elapsed_s


def retry(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    on: type[BaseException] | tuple[type[BaseException], ...],
    clock: Clock = SYSTEM_CLOCK,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """`call()`, again after each error of a type in `on`, as `policy` says. An error's
    `retry_after` (seconds the other side asked for) replaces the backoff. `on_retry(tries so
    far, error)` runs before each pause."""
    started = clock.monotonic()
    pauses: dict[int, float | None] = {}

    def pause(state: tenacity.RetryCallState) -> float | None:
        # tenacity asks the stop condition and the wait separately: both must see one pause
        # (the jitter is drawn once).
        if state.attempt_number not in pauses:
            pauses[state.attempt_number] = policy.pause(state, clock.monotonic() - started)
        return pauses[state.attempt_number]

    def retrying_after(state: tenacity.RetryCallState) -> None:
        if on_retry is not None:
            on_retry(state.attempt_number, _error(state))

    def gave_up(state: tenacity.RetryCallState) -> T:
        last = _error(state)
        raise GaveUp(last, state.attempt_number, clock.monotonic() - started) from last

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(on),
        stop=lambda state: pause(state) is None,
        wait=lambda state: pause(state) or 0.0,
        sleep=clock.sleep,
        before_sleep=retrying_after,
        retry_error_callback=gave_up,
    )
    return retrying(call)


def _error(state: tenacity.RetryCallState) -> BaseException:
    error = _outcome(state).exception()
    assert error is not None  # `retry` tries again only after an error
    return error
