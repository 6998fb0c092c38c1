"""The one way the pipeline runs a command: in a process group of its own, with a deadline,
stopped as a whole.

`docker buildx build` is two processes (the docker CLI and its buildx plugin); only a signal to
both makes buildx cancel the build in the engine. So on a timeout, Ctrl-C or SIGTERM the group
gets SIGINT, then SIGTERM, then SIGKILL, each after a grace period. No coreutils `timeout`: macOS
lacks it, and it hid the build from Ctrl-C.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from pipeline.errors import Interrupted

LineSink = Callable[[str], None]
# After each signal, how long the group gets to exit before the next, harder one.
STOP_SIGNALS = ((signal.SIGINT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0))
Stdin = bytes | IO[bytes] | None
_Handler = Callable[[int, FrameType | None], object]


@dataclass(frozen=True)
class Ran:
    returncode: int
    timed_out: bool


@dataclass(frozen=True)
class Finished:
    code: int  # -1: timed out
    out: str
    err: str

    @property
    def timed_out(self) -> bool:
        return self.code == -1

    def last_line(self) -> str:
        return last_line(self.err or self.out) if self.code else last_line(self.out)


def last_line(text: str) -> str:
    """The last non-empty line of a tool's output (what it says last is usually why)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


class GroupProcess:
    def __init__(
        self,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: Stdin = None,
        separate_stderr: bool = False,
        cwd: Path | None = None,
        unset: tuple[str, ...] = (),
    ) -> None:
        """`env`: variables added (values kept off argv: `docker run --env NAME`); `unset`: ones
        taken out (GIT_DIR for another repository)."""
        environment = None
        if env is not None or unset:
            environment = {k: v for k, v in os.environ.items() if k not in unset}
            environment.update(env or {})
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if isinstance(stdin, bytes) else (stdin or subprocess.DEVNULL),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if separate_stderr else subprocess.STDOUT,
            start_new_session=True,
            env=environment,
            cwd=cwd,
        )
        if isinstance(stdin, bytes):
            assert self.process.stdin is not None
            # Small inputs (a password) fit the pipe's buffer: written at once, then closed.
            with suppress(BrokenPipeError):
                self.process.stdin.write(stdin)
            self.process.stdin.close()

    def __enter__(self) -> GroupProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def finish(
        self,
        timeout_s: float,
        on_line: LineSink,
        cancelled: str,
        on_err_line: LineSink | None = None,
    ) -> Ran:
        """Stream its output lines until it exits or `timeout_s` passes (then stop it).
        Ctrl-C or SIGTERM stop the group and raise `Interrupted(cancelled)`."""
        exited = False
        with sigterm_interrupts():
            try:
                exited = self._pump(time.monotonic() + timeout_s, on_line, on_err_line or on_line)
            except KeyboardInterrupt as interrupt:
                signum = interrupt.signum if isinstance(interrupt, Interrupted) else signal.SIGINT
                raise Interrupted(cancelled, signum) from None
            finally:
                if not exited:
                    self.stop()
        code = self.process.wait()
        return Ran(returncode=code, timed_out=not exited)

    def _pump(self, deadline: float, on_line: LineSink, on_err_line: LineSink) -> bool:
        streams = ((self.process.stdout, on_line), (self.process.stderr, on_err_line))
        with selectors.DefaultSelector() as selector:
            for stream, sink in streams:
                if stream is not None:  # data: the sink, and the line read so far
                    selector.register(stream, selectors.EVENT_READ, (sink, [b""]))
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                for key, _ in selector.select(min(remaining, 1.0)):
                    sink, pending = key.data
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        if pending[0]:
                            sink(pending[0].decode(errors="replace"))
                        continue
                    *lines, pending[0] = (pending[0] + chunk).split(b"\n")
                    for line in lines:
                        sink(line.decode(errors="replace"))
        try:
            self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self) -> None:
        """SIGINT, SIGTERM, SIGKILL to the group, each after the last had its grace period.
        Meanwhile Ctrl-C and SIGTERM skip to the next signal instead of interrupting."""
        hurry = threading.Event()
        while True:
            try:
                with _handling((signal.SIGINT, signal.SIGTERM), lambda *_: hurry.set()):
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
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
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
        streams = [s for s in (self.process.stdout, self.process.stderr) if s and not s.closed]
        for stream in streams:
            os.set_blocking(stream.fileno(), False)
        hurry.clear()
        while time.monotonic() < deadline and not hurry.is_set():
            for stream in streams:
                with suppress(BlockingIOError, ValueError):
                    os.read(stream.fileno(), 65536)  # keep the pipe from filling up
            if not self._group_alive():
                return
            time.sleep(0.05)


def run(
    argv: list[str],
    timeout_s: float,
    *,
    env: Mapping[str, str] | None = None,
    stdin: Stdin = None,
    cwd: Path | None = None,
    unset: tuple[str, ...] = (),
    cancelled: str = "stopped",
) -> Finished:
    out: list[str] = []
    err: list[str] = []
    with GroupProcess(
        argv, env=env, stdin=stdin, separate_stderr=True, cwd=cwd, unset=unset
    ) as group:
        ran = group.finish(timeout_s, out.append, cancelled, err.append)
    return Finished(-1 if ran.timed_out else ran.returncode, "\n".join(out), "\n".join(err))


def cancel_when_orphaned() -> None:
    """SIGTERM this process when its parent goes: a dev launcher that stops `nox` alone must not
    leave a build running that tags an image a minute later. A process started detached (its
    parent already init) is left alone."""
    parent = os.getppid()
    if parent == 1:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _has_live_member(group: int) -> bool:
    """Orphans that exited stay zombies until init reaps them (slowly, in some containers):
    kill(0) counts them, /proc tells them apart."""
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


def sigterm_interrupts() -> AbstractContextManager[None]:
    """While the block runs, SIGTERM (a cancelled CI job, a process manager, an orphaned run)
    raises `Interrupted`, so `finally` blocks run and what was started is stopped."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted("", signal.SIGTERM)

    return _handling((signal.SIGTERM,), interrupt)


@contextmanager
def _handling(signums: tuple[int, ...], handler: _Handler) -> Iterator[None]:
    """`handler` for `signums` while the block runs (only the main thread may set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
