"""A clock for tests of pipeline/waiting.py's loops: `sleep` advances time at once and records
what was asked, so a test sees the exact pauses without waiting them out."""

from __future__ import annotations


class FakeClock:
    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
