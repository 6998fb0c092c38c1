"""Detached background builds: one per repository and image, a status file, a rerun marker.

State lives in `<root>/<key>/`: `lock` (flock held by the running worker for as long as it
lives, so a killed worker frees it), `status.json`, `rerun` and `build.log`.

- `start_background` takes the lock and hands the locked descriptor to the detached worker, so
  no second build can slip in between. While a worker holds the lock it starts nothing, but
  leaves the `rerun` marker when the tree changed since the running build started.
- `run_worker` builds until no marker is left. It looks for the marker once more after letting
  go of the lock, and a caller that leaves a marker tries the lock once more, so a change made
  while a build ends is never lost.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Literal

from pydantic import BaseModel, ConfigDict

from pipeline.errors import EngineError, PipelineError

LOCK_FD_VARIABLE = "PIPELINE_BACKGROUND_LOCK_FD"
# A status() probe holds the lock for microseconds; a start that meets it looks again.
LOCK_ATTEMPTS = 4
LOCK_RETRY_S = 0.02


@dataclass(frozen=True)
class Result:  # what a build callable reports on success
    image: str
    detail: str = ""


class LastResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    image: str | None = None
    detail: str = ""
    error: str | None = None  # a failed build's one-line error
    duration_s: float = 0.0
    finished_at: datetime


class StatusFile(BaseModel):
    building: bool = False
    pid: int | None = None
    started_at: datetime | None = None
    tree_state: str | None = None  # what the running (or last) build started from
    last: LastResult | None = None
    last_good: LastResult | None = None


@dataclass(frozen=True)
class Status:
    state: Literal["idle", "building", "failed"]
    last: LastResult | None
    last_good: LastResult | None
    started_at: datetime | None  # of the running build
    pid: int | None
    rerun_pending: bool
    log: Path


@dataclass(frozen=True)
class BackgroundStart:
    outcome: Literal["started", "already-building", "rerun-marked"]
    log: Path
    pid: int | None


@dataclass(frozen=True)
class Paths:
    dir: Path
    lock: Path
    status: Path
    rerun: Path
    log: Path

    @classmethod
    def of(cls, root: Path, key: str) -> Paths:
        at = root / key
        return cls(at, at / "lock", at / "status.json", at / "rerun", at / "build.log")


def _open_lock(paths: Paths) -> int:
    paths.dir.mkdir(parents=True, exist_ok=True)
    return os.open(paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _try_lock(fd: int, attempts: int = 1, shared: bool = False) -> bool:
    mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
    for attempt in range(attempts):
        try:
            fcntl.flock(fd, mode)
            return True
        except BlockingIOError:
            if attempt + 1 < attempts:
                time.sleep(LOCK_RETRY_S)
    return False


def read_status(paths: Paths) -> StatusFile | None:
    try:
        return StatusFile.model_validate_json(paths.status.read_text())
    except (OSError, ValueError):
        return None


def _update_status(paths: Paths, **changes: object) -> StatusFile:
    """Rewrite the status with `changes`, whole or not at all; returns what it held before."""
    before = read_status(paths) or StatusFile()
    tmp = paths.dir / f".status.{os.getpid()}.tmp"
    tmp.write_text(before.model_copy(update=changes).model_dump_json(indent=2) + "\n")
    tmp.replace(paths.status)
    return before


def start_background(
    root: Path,
    key: str,
    argv: Sequence[str],
    *,
    tree_state: str | None,
    cwd: Path | None = None,
) -> BackgroundStart:
    """Start `argv` (which calls `run_worker`) detached, unless a build of `key` runs; then mark
    a rerun when `tree_state` differs from the running build's (unknown counts as different)."""
    paths = Paths.of(root, key)
    fd = _open_lock(paths)
    try:
        if not _try_lock(fd, LOCK_ATTEMPTS):
            running = read_status(paths)
            if running and tree_state is not None and running.tree_state == tree_state:
                return BackgroundStart("already-building", paths.log, running.pid)
            paths.rerun.touch()
            if not _try_lock(fd):  # still running: it will see the marker when it ends
                return BackgroundStart("rerun-marked", paths.log, running.pid if running else None)
        previous = _update_status(
            paths, building=True, pid=None, started_at=_now(), tree_state=tree_state
        )
        if paths.log.exists():
            paths.log.replace(paths.dir / "build.previous.log")
        with paths.log.open("wb") as log:
            try:
                process = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C in the launcher's terminal must not reach it
                    pass_fds=(fd,),
                    env={**os.environ, LOCK_FD_VARIABLE: str(fd)},
                    cwd=cwd,
                )
            except OSError as error:
                _update_status(paths, **dict(previous))
                raise EngineError(
                    f"could not start the background build ({argv[0]}): {error.strerror}",
                    "check that the Python running the pipeline is still installed",
                ) from None
        return BackgroundStart("started", paths.log, process.pid)
    finally:
        os.close(fd)  # the worker holds the lock through its own copy of the descriptor


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def status(root: Path, key: str) -> Status:
    paths = Paths.of(root, key)
    saved = read_status(paths) or StatusFile()
    with os.fdopen(_open_lock(paths)) as lock:
        free = _try_lock(lock.fileno(), shared=True)
    last = saved.last
    if free and saved.building:  # the worker died without writing its result
        error = "the background build stopped without a result (killed?); see its log"
        last = LastResult(ok=False, error=error, finished_at=saved.started_at or _now())
    return Status(
        state="building" if not free else "failed" if last and not last.ok else "idle",
        last=last,
        last_good=saved.last_good,
        started_at=None if free else saved.started_at,
        pid=None if free else saved.pid,
        rerun_pending=paths.rerun.exists(),
        log=paths.log,
    )


def run_worker(
    root: Path,
    key: str,
    build: Callable[[], Result],
    *,
    tree_state: Callable[[], str | None] = lambda: None,
    on_line: Callable[[str], None] = lambda line: print(line, flush=True),
) -> bool:
    """Build, and again while a rerun was asked for; True when the last build succeeded.
    Without a descriptor handed over by `start_background`, the worker takes the lock itself, or
    returns False at once when it is held."""
    paths = Paths.of(root, key)
    inherited = os.environ.pop(LOCK_FD_VARIABLE, None)  # builds it runs must not see it
    fd = int(inherited) if inherited else _open_lock(paths)
    if not _try_lock(fd):  # an inherited descriptor already holds it: this succeeds
        os.close(fd)
        on_line(f"another background build of {key} is running; nothing started")
        return False
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        while True:
            last = _one_build(paths, build, tree_state, on_line)
            if paths.rerun.exists():
                continue
            fcntl.flock(fd, fcntl.LOCK_UN)
            if not paths.rerun.exists() or not _try_lock(fd):
                return last.ok
    finally:
        signal.signal(signal.SIGTERM, previous)
        os.close(fd)


class Stopped(BaseException):
    """SIGTERM in the middle of a build."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Stopped(f"stopped by {signal.Signals(signum).name}")


def _one_build(
    paths: Paths,
    build: Callable[[], Result],
    tree_state: Callable[[], str | None],
    on_line: Callable[[str], None],
) -> LastResult:
    paths.rerun.unlink(missing_ok=True)  # changes from now on ask for the next round
    started_at = _now()
    _update_status(
        paths, building=True, pid=os.getpid(), started_at=started_at, tree_state=tree_state()
    )
    on_line(f"==> background build started {started_at.isoformat()}")
    started = time.monotonic()
    outcome: Result | None = None
    error: str | None = None
    try:
        outcome = build()
    except PipelineError as failure:
        error = str(failure)
    except BaseException as failure:  # the status must say why, whatever happened
        on_line(traceback.format_exc().rstrip())
        error = (
            str(failure) if isinstance(failure, Stopped) else f"{type(failure).__name__}: {failure}"
        )
        if not isinstance(failure, Exception):
            raise
    finally:
        last = LastResult(
            ok=error is None,
            image=outcome.image if outcome else None,
            detail=outcome.detail if outcome else "",
            error=" ".join(error.split()) if error else None,
            duration_s=round(time.monotonic() - started, 3),
            finished_at=_now(),
        )
        good = last if last.ok else (read_status(paths) or StatusFile()).last_good
        _update_status(paths, building=False, pid=None, last=last, last_good=good)
    return last


def dump_status(state: Status) -> str:
    """The status as JSON, for launchers written in other languages."""
    return json.dumps(vars(state), indent=2, default=_as_json)


def _as_json(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value.isoformat() if isinstance(value, datetime) else str(value)
