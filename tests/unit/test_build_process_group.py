"""GroupProcess on real processes: a deadline, Ctrl-C and SIGTERM stop the whole group.

Each child prints the pid of a grandchild it started; the tests check that the grandchild is
gone too, as buildx's plugin process must be when the docker CLI above it is stopped.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from pipeline import process_group
from pipeline.errors import Interrupted
from pipeline.process_group import GroupProcess

# A child that starts a grandchild (sleeping, same process group), tells its pid, then waits.
PARENT = """
import signal, subprocess, sys, time
for name in sys.argv[1:]:
    signal.signal(getattr(signal, name), signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(f"grandchild {child.pid}", flush=True)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (its parent, also stopped, will not reap it any more).
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def parent(*ignore: str) -> GroupProcess:
    return GroupProcess([sys.executable, "-c", PARENT, *ignore])


def grandchild(lines: list[str]) -> int:
    return int(next(line for line in lines if line.startswith("grandchild")).split()[1])


@pytest.fixture
def quick_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    grace = ((signal.SIGINT, 0.5), (signal.SIGTERM, 0.5), (signal.SIGKILL, 5.0))
    monkeypatch.setattr(process_group, "STOP_SIGNALS", grace)


@contextmanager
def signal_self_later(signum: int, after_s: float) -> Iterator[None]:
    timer = threading.Timer(after_s, os.kill, (os.getpid(), signum))
    timer.start()
    yield
    timer.cancel()


def test_lines_and_exit_code() -> None:
    lines: list[str] = []
    code = "import sys; print('one'); print('two', flush=True); sys.stdout.write('tail'); exit(3)"
    ran = GroupProcess([sys.executable, "-c", code]).finish(10, lines.append, "stopped")
    assert ran.returncode == 3 and not ran.timed_out
    assert lines == ["one", "two", "tail"]


def test_timeout_stops_the_whole_group() -> None:
    lines: list[str] = []
    started = time.monotonic()
    ran = parent().finish(1.5, lines.append, "stopped")
    assert ran.timed_out
    assert time.monotonic() - started < 5
    assert not alive(grandchild(lines))


def test_a_group_deaf_to_sigint_and_sigterm_gets_sigkill(quick_stop: None) -> None:
    lines: list[str] = []
    started = time.monotonic()
    ran = parent("SIGINT", "SIGTERM").finish(1.5, lines.append, "stopped")
    assert ran.timed_out and ran.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 6
    assert not alive(grandchild(lines))


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_stop_the_group_and_say_what(signum: int, exit_code: int) -> None:
    lines: list[str] = []
    group = parent()
    started = time.monotonic()
    with pytest.raises(Interrupted) as caught, signal_self_later(signum, 1.5):
        group.finish(60, lines.append, "build cancelled")
    assert caught.value.done == "build cancelled" and caught.value.exit_code == exit_code
    assert time.monotonic() - started < 10
    assert group.process.returncode is not None
    assert not alive(grandchild(lines))


def test_sigterm_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    GroupProcess([sys.executable, "-c", "pass"]).finish(10, lambda line: None, "stopped")
    assert signal.getsignal(signal.SIGTERM) is before
