"""A command in a process group of its own, with a deadline, stopped as a whole.

`docker buildx build` is two processes (the docker CLI and its buildx plugin); only a signal to
both makes buildx cancel the build in the engine. So the command gets its own session
(`start_new_session`), and on a timeout, Ctrl-C or SIGTERM the group gets SIGINT, then SIGTERM,
then SIGKILL, each after the one before had its grace period. Portable (no coreutils `timeout`,
which macOS lacks and which hid the build from Ctrl-C).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from pipeline.errors import Interrupted

LineSink = Callable[[str], None]
# After each signal, how long the group gets to exit before the next, harder one.
STOP_SIGNALS = ((signal.SIGINT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0))


@dataclass(frozen=True)
class Ran:
    returncode: int
    timed_out: bool


class GroupProcess:
    """A command in a process group of its own, stopped as a whole (see the module doc)."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def __enter__(self) -> GroupProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def finish(self, timeout_s: float, on_line: LineSink, cancelled: str) -> Ran:
        """Stream its output lines until it exits or `timeout_s` passes (then stop it).

        Ctrl-C or SIGTERM stop the group and raise `Interrupted(cancelled)`."""
        with _sigterm_interrupts():
            try:
                exited = self._pump(time.monotonic() + timeout_s, on_line)
            except KeyboardInterrupt as interrupt:
                self.stop()
                signum = interrupt.signum if isinstance(interrupt, Interrupted) else signal.SIGINT
                raise Interrupted(cancelled, signum) from None
            except BaseException:
                self.stop()
                raise
            if not exited:
                self.stop()
        code = self.process.wait()
        return Ran(returncode=code, timed_out=not exited)

    def _pump(self, deadline: float, on_line: LineSink) -> bool:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        pending = b""
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if not selector.select(min(remaining, 1.0)):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    on_line(line.decode(errors="replace"))
        if pending:
            on_line(pending.decode(errors="replace"))
        try:
            self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self) -> None:
        """SIGINT, SIGTERM, SIGKILL to the group, each after the last had its grace period.

        Meanwhile Ctrl-C and SIGTERM do not interrupt the stopping: they skip to the next signal.
        """
        while True:
            try:
                with _signals_hurry() as hurry:
                    for signum, grace in STOP_SIGNALS:
                        if not self._group_alive():
                            break
                        try:
                            os.killpg(self.process.pid, signum)
                        except ProcessLookupError:
                            break
                        self._wait_group(grace, hurry)
                break
            except KeyboardInterrupt:  # arrived before the handlers were in place: start over
                continue
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process.poll()

    def _group_alive(self) -> bool:
        self.process.poll()  # reap the leader: a zombie would keep the group "alive"
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _has_live_member(self.process.pid)

    def _wait_group(self, grace: float, hurry: threading.Event) -> None:
        deadline = time.monotonic() + grace
        stdout = self.process.stdout
        if stdout is not None and not stdout.closed:
            os.set_blocking(stdout.fileno(), False)
        hurry.clear()
        while time.monotonic() < deadline and not hurry.is_set():
            if stdout is not None and not stdout.closed:
                with suppress(BlockingIOError):
                    os.read(stdout.fileno(), 65536)  # keep the pipe from filling up
            if not self._group_alive():
                return
            time.sleep(0.05)


def _has_live_member(group: int) -> bool:
    """Whether a process of `group` still runs. Orphans that exited stay zombies until init
    reaps them (slowly, in some containers); kill(0) counts them, /proc tells them apart."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return True  # no /proc (macOS): trust kill(0)
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if len(fields) > 2 and fields[2] == str(group) and fields[0] != "Z":
            return True
    return False


@contextmanager
def _signals_hurry() -> Iterator[threading.Event]:
    """While a group is being stopped, Ctrl-C and SIGTERM set an event instead of raising."""
    hurry = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield hurry
        return

    def set_hurry(signum: int, frame: FrameType | None) -> None:
        hurry.set()

    previous = {sig: signal.signal(sig, set_hurry) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield hurry
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While a group runs, SIGTERM (a cancelled CI job, nox giving up) is an `Interrupted`, so
    the group is stopped before this process goes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted("", signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
