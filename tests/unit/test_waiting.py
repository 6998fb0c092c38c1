"""The one wait: deadline, growing interval, a last probe at the deadline, progress lines."""

from __future__ import annotations

import pytest

from pipeline.waiting import Interval, PollTimeout, poll, watch
from tests.helpers.clock import FakeClock


def test_returns_the_first_result_that_is_done() -> None:
    clock = FakeClock()
    answers = iter([1, 2, 3, 4])
    assert poll(lambda: next(answers), lambda n: n >= 3, timeout_s=60, clock=clock) == 3
    assert clock.sleeps == [1.0, 1.0]


def test_interval_grows_up_to_its_maximum() -> None:
    clock = FakeClock()
    with pytest.raises(PollTimeout) as raised:
        poll(
            lambda: "pending",
            lambda s: s == "active",
            timeout_s=20,
            interval=Interval(first_s=1, factor=2, max_s=5),
            clock=clock,
        )
    assert clock.sleeps[:5] == [1, 2, 4, 5, 5]
    assert raised.value.last == "pending"
    assert raised.value.waited_s == pytest.approx(20)


def test_the_last_sleep_stops_at_the_deadline_and_probes_once_more() -> None:
    clock = FakeClock()
    seen: list[float] = []

    def probe() -> float:
        seen.append(clock.now)
        return clock.now

    with pytest.raises(PollTimeout):
        poll(probe, lambda _: False, timeout_s=2.5, interval=1.0, clock=clock)
    assert seen == [0.0, 1.0, 2.0, 2.5]


def test_watch_prints_each_change_and_a_heartbeat(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    states = iter(["pending"] * 70 + ["pulling", "active"])
    found = watch(
        "snap",
        lambda: next(states),
        lambda s: s == "active",
        str,
        state="pending",
        deadline=1000,
        interval=Interval(first_s=1),
        clock=clock,
    )
    assert found == "active"
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "   snap: still pending (60 s)",  # nothing changed for a minute: a sign of life
        "   snap: pending → pulling (70 s)",
        "   snap: pulling → active (71 s)",
    ]
