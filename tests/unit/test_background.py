"""Background builds: one at a time per key, a status with the last result, a rerun marker that
is never lost, and a worker that is really detached. Builds here are Python callables and tiny
Python processes; tests/integration/engine/test_dev_loop.py runs real image builds."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.background.builds import (
    Paths,
    Result,
    StatusFile,
    read_status,
    run_worker,
    start_background,
    status,
)
from pipeline.errors import BuildError
from pipeline.sessions.background import _result, background_key

KEY = "sandbox-test"
ROOT = Path(__file__).resolve().parents[2]


def _quiet(line: str) -> None:
    pass


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "background"


@pytest.fixture
def held(root: Path) -> Iterator[Callable[[], None]]:
    """Hold the key's lock the way a running worker does; call the result to let go."""
    paths = Paths.of(root, KEY)
    paths.dir.mkdir(parents=True)
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            os.close(fd)

    yield release
    release()


def test_successful_build_is_idle_with_its_result(root: Path) -> None:
    assert run_worker(
        root, KEY, lambda: Result(image="repo:local", detail="(built)"), on_line=_quiet
    )
    now = status(root, KEY)
    assert now.state == "idle" and now.last is not None and now.last.ok
    assert now.last.image == "repo:local" and now.last_good == now.last
    assert now.last.duration_s >= 0 and now.last.finished_at.tzinfo is not None


def test_failed_build_keeps_last_good_and_one_line_error(root: Path) -> None:
    run_worker(root, KEY, lambda: Result(image="repo:local"), on_line=_quiet)

    def failing() -> Result:
        raise BuildError("docker buildx build failed: step 3\n  exit 1", "fix the step")

    assert not run_worker(root, KEY, failing, on_line=_quiet)
    now = status(root, KEY)
    assert now.state == "failed" and now.last is not None and not now.last.ok
    assert now.last.error == "docker buildx build failed: step 3 exit 1 — fix: fix the step"
    assert now.last_good is not None and now.last_good.image == "repo:local"


def test_unexpected_exception_is_recorded(root: Path) -> None:
    def broken() -> Result:
        raise ValueError("boom")

    lines: list[str] = []
    assert not run_worker(root, KEY, broken, on_line=lines.append)
    assert status(root, KEY).last.error == "ValueError: boom"  # type: ignore[union-attr]
    assert any("Traceback" in line for line in lines)  # the log has the details


def test_rerun_marker_builds_once_more_with_newest_state(root: Path) -> None:
    states = iter(["tree-1", "tree-3"])
    calls: list[str] = []

    def build() -> Result:
        calls.append("build")
        if len(calls) == 1:  # two changes while the first build runs: one more build, not two
            Paths.of(root, KEY).rerun.touch()
            Paths.of(root, KEY).rerun.touch()
        return Result(image="repo:local")

    assert run_worker(root, KEY, build, tree_state=lambda: next(states), on_line=_quiet)
    assert calls == ["build", "build"]
    assert not Paths.of(root, KEY).rerun.exists()
    saved = read_status(Paths.of(root, KEY))
    assert saved is not None and saved.tree_state == "tree-3"


def test_marker_left_while_the_worker_lets_go_is_not_lost(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller that marks between the worker's last look and its unlock: the worker looks
    again after unlocking and builds once more."""
    real_flock = fcntl.flock
    marked: list[bool] = []

    def flock(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_UN and not marked:
            marked.append(True)
            Paths.of(root, KEY).rerun.touch()
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)  # background.py calls fcntl.flock
    calls: list[int] = []
    run_worker(root, KEY, _counting(calls), on_line=_quiet)
    assert len(calls) == 2


def _counting(calls: list[int]) -> Callable[[], Result]:
    def build() -> Result:
        calls.append(1)
        return Result(image="x")

    return build


def test_worker_refuses_when_another_holds_the_lock(root: Path, held: Callable[[], None]) -> None:
    calls: list[int] = []
    assert not run_worker(root, KEY, _counting(calls), on_line=_quiet)
    assert calls == []


@pytest.mark.parametrize(
    ("running_state", "caller_state", "outcome", "marker"),
    [
        ("tree-1", "tree-1", "already-building", False),
        ("tree-1", "tree-2", "rerun-marked", True),
        ("tree-1", None, "rerun-marked", True),  # unknown counts as changed
        (None, "tree-1", "rerun-marked", True),
    ],
)
def test_call_while_building_starts_nothing(
    root: Path,
    held: Callable[[], None],
    running_state: str | None,
    caller_state: str | None,
    outcome: str,
    marker: bool,
) -> None:
    paths = Paths.of(root, KEY)
    running = StatusFile(building=True, pid=4242, started_at=None, tree_state=running_state)
    paths.status.write_text(running.model_dump_json())
    never = [sys.executable, "-c", "raise SystemExit('must not start')"]
    started = start_background(root, KEY, never, tree_state=caller_state)
    assert started.outcome == outcome and started.pid == 4242
    assert paths.rerun.exists() is marker
    assert not paths.log.exists()
    assert status(root, KEY).state == "building"


def test_marker_left_just_as_the_build_ended_starts_a_worker(root: Path, tmp_path: Path) -> None:
    """The lock is free by the time the caller looks again: it starts the rerun itself."""
    flag = tmp_path / "ran"
    started = start_background(
        root, KEY, _worker_argv(root, f"Path({str(flag)!r}).write_text('x')"), tree_state="t"
    )
    assert started.outcome == "started"
    _wait_idle(root)
    assert flag.exists()


def _worker_argv(root: Path, body: str, sleep_s: float = 0.0) -> list[str]:
    """A real worker process whose build runs `body` (Python) after `sleep_s`."""
    code = textwrap.dedent(
        f"""
        import os, sys, time
        from pathlib import Path
        from pipeline.background.builds import Result, run_worker
        def build():
            print("stdin is", os.readlink("/proc/self/fd/0") if os.path.exists("/proc") else "?")
            time.sleep({sleep_s})
            {body}
            return Result(image="repo:local", detail=f"sid={{os.getsid(0)}}")
        sys.exit(0 if run_worker(Path({str(root)!r}), {KEY!r}, build) else 1)
        """
    )
    return [sys.executable, "-c", code]


def _wait_idle(root: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while status(root, KEY).state == "building":
        assert time.monotonic() < deadline, "the background worker did not finish"
        time.sleep(0.05)


def test_start_returns_at_once_and_the_worker_is_detached(root: Path, tmp_path: Path) -> None:
    started_at = time.monotonic()
    started = start_background(
        root, KEY, _worker_argv(root, "pass", sleep_s=1.0), tree_state="t", cwd=ROOT
    )
    assert time.monotonic() - started_at < 1.0
    assert started.outcome == "started" and started.pid is not None
    assert os.getsid(started.pid) == started.pid != os.getsid(0)  # its own session
    now = status(root, KEY)
    assert now.state == "building"
    again = start_background(root, KEY, ["false"], tree_state="t")
    assert again.outcome == "already-building"
    _wait_idle(root)
    done = status(root, KEY)
    assert done.state == "idle" and done.last is not None
    assert done.last.detail == f"sid={started.pid}"
    log = started.log.read_text()
    assert "==> background build started" in log
    if os.path.exists("/proc"):
        assert "stdin is /dev/null" in log


def _reap(pid: int) -> None:
    """Wait for our (detached) child to end; subprocess may have reaped it already."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        deadline = time.monotonic() + 30
        while _alive(pid):
            assert time.monotonic() < deadline
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_killed_worker_reads_as_failed(root: Path) -> None:
    started = start_background(
        root, KEY, _worker_argv(root, "pass", sleep_s=60), tree_state="t", cwd=ROOT
    )
    assert started.pid is not None
    deadline = time.monotonic() + 30
    while (read_status(Paths.of(root, KEY)) or StatusFile(
        building=False, pid=None, started_at=None, tree_state=None
    )).pid != started.pid:  # fmt: skip
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(started.pid, signal.SIGKILL)
    _reap(started.pid)
    now = status(root, KEY)
    assert now.state == "failed" and now.last is not None
    assert "stopped without a result" in (now.last.error or "")


def test_sigterm_is_recorded_as_stopped(root: Path) -> None:
    started = start_background(
        root, KEY, _worker_argv(root, "pass", sleep_s=60), tree_state="t", cwd=ROOT
    )
    assert started.pid is not None
    deadline = time.monotonic() + 30
    while "==> background build started" not in started.log.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(started.pid, signal.SIGTERM)
    _reap(started.pid)
    now = status(root, KEY)
    assert now.state == "failed" and now.last is not None
    assert now.last.error == "stopped by SIGTERM"


def test_concurrent_starts_start_one_worker(root: Path) -> None:
    outcomes: list[str] = []
    argv = _worker_argv(root, "pass", sleep_s=1.0)

    def start() -> None:
        outcomes.append(start_background(root, KEY, argv, tree_state="t", cwd=ROOT).outcome)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already-building"] * 3 + ["started"]
    _wait_idle(root)


def test_failed_spawn_leaves_no_building_status(root: Path) -> None:
    with pytest.raises(Exception, match="could not start the background build"):
        start_background(root, KEY, ["/nonexistent/python"], tree_state="t")
    assert status(root, KEY).state == "idle"


def test_key_names_image_and_context(tmp_path: Path) -> None:
    a = background_key(tmp_path, "ghcr.io/iterate/sandbox")
    assert a.startswith("sandbox-") and a == background_key(tmp_path, "ghcr.io/iterate/sandbox")
    assert a != background_key(tmp_path, "ghcr.io/iterate/other")
    assert a != background_key(tmp_path / "x", "ghcr.io/iterate/sandbox")


def test_result_from_report(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text(
        '{"build": {"tags": ["r:sha-1", "r:local"], "steps_cached": 3, "steps_total": 3}}'
    )
    assert _result(report) == Result(image="r:local", detail="(built, 3/3 steps cached)")
    report.write_text('{"build": {"tags": ["r:sha-1", "r:local"], "skipped": true}}')
    assert _result(report).detail == "(unchanged: tagged, not built)"


def test_status_probe_does_not_take_the_lock_from_a_starter(root: Path) -> None:
    """status() holds a shared lock for an instant; a start meeting it retries."""
    for _ in range(20):
        status(root, KEY)
    started = start_background(root, KEY, _worker_argv(root, "pass"), tree_state="t", cwd=ROOT)
    assert started.outcome == "started"
    _wait_idle(root)


def test_worker_cli_runs_a_command_build(root: Path, tmp_path: Path) -> None:
    """The session's worker runs the build command and records its error line."""
    failing = [sys.executable, "-c", "import sys; print('error: the step failed — fix: x',"
               " file=sys.stderr); sys.exit(5)"]  # fmt: skip
    repository = "ghcr.io/iterate/sandbox"
    env = {
        **os.environ,  # the worker reads context, Dockerfile and key from the settings
        "SANDBOX_BUILD_CONTEXT": str(tmp_path),
        "SANDBOX_DOCKERFILE": str(tmp_path / "Dockerfile"),
        "SANDBOX_IMAGE_REPOSITORY": repository,
    }
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.sessions.background", "worker", str(root), *failing],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    now = status(root, background_key(tmp_path, repository))
    assert now.state == "failed" and now.last is not None
    assert now.last.error == "the step failed — fix: x"
