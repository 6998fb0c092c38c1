"""The one way the pipeline waits and retries: tenacity's loop on an injectable clock.

- `poll` reads something until it is done (a snapshot active, a container healthy, a registry
  answering): pauses that grow as an `Interval` says, a deadline that no pause reaches past, and
  one last read right at the deadline before `PollTimeout`. `watch` is `poll` with a line for
  each state change, for waits that take minutes.
- `retry` calls again after the errors it is told are worth another try: exponential backoff with
  jitter, or the wait the server asked for (an error's `retry_after`, capped), all inside a time
  budget that no pause reaches past; `GaveUp` when the budget or the tries are spent.

Why tenacity rather than stamina: stamina (a wrapper around tenacity) has the friendlier API and
good defaults, but it sleeps with `time.sleep` and measures its timeout with `time.monotonic`,
so a test can neither drive it with a fake clock nor see the exact pauses (stamina's testing mode
only removes them), and its default instrumentation logs a warning per retry. tenacity takes the
sleep, the stop condition and the wait as callables, so the budget and the deadline are measured
on the clock given here, a server's `Retry-After` is one wait callable, and its own
`wait_exponential_jitter` is the backoff schedule, so none of its parameters is re-typed here.
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


def _outcome(state: tenacity.RetryCallState) -> tenacity.Future:
    assert state.outcome is not None  # tenacity asks for a pause only after a try ended
    return state.outcome


# --- waiting for a state ------------------------------------------------------------------------


class PollTimeout(Exception, Generic[T]):
    """The deadline passed; `last` is what the final probe saw (for the error message)."""

    def __init__(self, last: T, waited_s: float) -> None:
        super().__init__(f"still not done after {waited_s:.1f} s")
        self.last = last
        self.waited_s = waited_s


@dataclass(frozen=True)
class Interval:
    """How long to sleep between probes: `first_s`, times `factor` each time, up to `max_s`."""

    first_s: float = 1.0
    factor: float = 1.0
    max_s: float | None = None

    def wait(self) -> wait_base:
        cap = math.inf if self.max_s is None else self.max_s
        return tenacity.wait_exponential(multiplier=self.first_s, exp_base=self.factor, max=cap)


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
    is not done yet (progress lines). An exception from the probe ends the wait at once.
    """
    plan = (interval if isinstance(interval, Interval) else Interval(first_s=interval)).wait()
    started = clock.monotonic()
    deadline = started + timeout_s

    def pause(state: tenacity.RetryCallState) -> float:
        return max(0.0, min(plan(state), deadline - clock.monotonic()))

    def waiting(state: tenacity.RetryCallState) -> None:
        if on_wait is not None:
            on_wait(_outcome(state).result(), clock.monotonic() - started)

    def timed_out(state: tenacity.RetryCallState) -> T:
        raise PollTimeout(_outcome(state).result(), clock.monotonic() - started)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda result: not done(result)),
        stop=lambda _: clock.monotonic() >= deadline,
        wait=pause,
        sleep=clock.sleep,
        before_sleep=waiting,
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
    (what it is now) and every HEARTBEAT_S while it does not. PollTimeout at the deadline; its
    `last` reading says where it stuck."""
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


# --- trying again ------------------------------------------------------------------------------


def _backoff() -> wait_base:
    return tenacity.wait_exponential_jitter(max=15, jitter=1)  # 1, 2, 4, 8, 15 s, + up to 1 s


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one operation retries: `backoff` between tries (tenacity's exponential backoff
    with jitter), or the wait a server asked for (`Retry-After`, capped at `retry_after_max`),
    all inside `timeout` seconds, pauses included; `attempts` caps the tries (None: what fits).
    A blip (a rolling deploy answering 503 for half a minute) must not fail a release, and a
    real outage must still end within a bounded time."""

    timeout: float
    backoff: wait_base = field(default_factory=_backoff)
    attempts: int | None = None
    retry_after_max: float = 60.0

    def pause(self, state: tenacity.RetryCallState, elapsed: float) -> float | None:
        """Seconds to wait after `state.attempt_number` tries that took `elapsed` s so far, or
        None to give up. A pause never ends past the budget: the last try is at its very end. A
        Retry-After that reaches past the budget gives up at once: the server said not before.
        """
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
    """The retry budget or the tries are spent; `last` is the final try's error."""

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
    """`call()`, again after each error of a type in `on`, as `policy` says; GaveUp when it
    is spent. Any other error ends it at once. An error's `retry_after` attribute (seconds the
    other side asked for) replaces the backoff. `on_retry(tries so far, error)` runs before
    each pause (progress lines)."""
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
