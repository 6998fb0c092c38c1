"""What a person sees: in a terminal (a real pseudo-terminal here) the live view, the log's path
and the closing table; piped, buildx's plain log; a failure's last lines shown once; Ctrl-C in
the live view still stops the build at once."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.registry.server import LocalRegistry
from tests.conftest import PIPELINE_VARIABLES, ROOT, FixtureRepo, make_fixture_repo, run_pipeline
from tests.integration.engine.test_build_faults import (
    GONE_WITHIN_S,
    assert_nothing_left,
    slow_repo,
)

pytestmark = pytest.mark.usefixtures("engine")

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def shown(output: str) -> str:
    """A terminal's output as text: drawing codes and carriage returns left out."""
    return ESCAPE.sub("", output).replace("\r", "")


FAILING = (
    "FROM scratch\nCOPY sandbox/busybox /bin/busybox\n"
    'RUN ["/bin/busybox", "sh", "-c", "echo boom-{nonce}; exit 3"]\n'
)


def in_terminal(
    env: dict[str, str], *, stop_after: str | None = None, timeout_s: float = 180
) -> tuple[int, str]:
    """`python -m pipeline snapshot_local` with a pseudo-terminal as stdout and stderr; with
    `stop_after`, Ctrl-C (SIGINT to its process group) once that text was shown."""
    full = {k: v for k, v in os.environ.items() if k not in PIPELINE_VARIABLES}
    full.update(env, TERM="xterm-256color", COLUMNS="120", LINES="40")
    for name in ("CI", "GITHUB_ACTIONS", "PIPELINE_PROGRESS"):
        full.pop(name, None)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "snapshot_local"],
        cwd=ROOT,
        env=full,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        start_new_session=True,
    )
    os.close(follower)
    seen, deadline, sent = b"", time.monotonic() + timeout_s, False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal closed: the process is done
                    break
                if not chunk:
                    break
                seen += chunk
            if stop_after and not sent and stop_after in shown(seen.decode(errors="replace")):
                os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in that terminal
                sent = True
            if process.poll() is not None and not ready:
                break
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        os.close(leader)
    return code, seen.decode(errors="replace")


def log_path(output: str) -> Path:
    found = re.search(r"build log: (\S+\.log)", shown(output))
    assert found, output[-2000:]
    return Path(found.group(1))


@pytest.fixture
def repo(tmp_path: Path, registry: LocalRegistry) -> FixtureRepo:
    return make_fixture_repo(tmp_path / "repo", registry.host)


def test_a_terminal_gets_the_live_view_and_the_closing_table(
    repo: FixtureRepo, tmp_path: Path
) -> None:
    code, output = in_terminal(repo.env(XDG_CACHE_HOME=str(tmp_path / "cache")))
    assert code == 0, output[-3000:]
    plain = shown(output)
    assert "\x1b[" in output  # drawn, not printed line by line
    assert not re.search(r"^#\d+ \[", plain, re.MULTILINE)  # no plain log in the terminal
    assert "✓" in plain and "RUN echo" in plain  # steps with their state
    assert re.search(r"^\s+step\s+time$", plain, re.MULTILINE)  # the closing table
    assert re.search(r"^\s+image \d", plain, re.MULTILINE)
    log = log_path(output).read_text()
    assert re.search(r"^#\d+ \[internal\] load build definition", log, re.MULTILINE)
    assert "naming to" in log  # the whole plain log, kept in the file


def test_piped_output_is_the_plain_log(repo: FixtureRepo, tmp_path: Path) -> None:
    run = run_pipeline("snapshot_local", env=repo.env(XDG_CACHE_HOME=str(tmp_path / "cache")))
    assert run.returncode == 0, run.output[-3000:]
    assert re.search(r"^#\d+ \[internal\] load build definition", run.output, re.MULTILINE)
    assert "\x1b[" not in run.output
    assert log_path(run.output).read_text().count("\n") > 5


@pytest.mark.parametrize("where", ["terminal", "pipe"])
def test_a_failed_steps_last_lines_are_shown_once(
    tmp_path: Path, registry: LocalRegistry, where: str
) -> None:
    repo = make_fixture_repo(tmp_path / "repo", registry.host, dockerfile=FAILING)
    nonce = repo.repository.rsplit("-", 1)[1]
    env = repo.env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    if where == "terminal":
        code, output = in_terminal(env)
        text = shown(output)
    else:
        run = run_pipeline("snapshot_local", env=env)
        code, text = run.returncode, run.output
    assert code == 5, text[-3000:]
    assert len(re.findall(rf"^\s*#\d+ [\d.]+ boom-{nonce}$", text, re.MULTILINE)) == 1, text
    assert "error: docker buildx build failed" in text
    if where == "terminal":
        assert "full log: " in text


def test_ctrl_c_in_the_live_view_stops_the_build(tmp_path: Path, registry: LocalRegistry) -> None:
    repo, nonce, seconds = slow_repo(tmp_path, registry.host)
    started = time.monotonic()
    code, output = in_terminal(
        repo.env(XDG_CACHE_HOME=str(tmp_path / "cache")), stop_after="RUN", timeout_s=120
    )
    assert code == 130, shown(output)[-3000:]
    assert time.monotonic() - started < 60 + GONE_WITHIN_S
    assert "interrupted: build cancelled" in shown(output)
    assert_nothing_left(repo, nonce, seconds)
