"""Faults where they are real (issue 13, items 1-4; issue 10, items 4-5): a slow step interrupted
with SIGINT to the session's process group, SIGTERM, the timeout, a PATH with only python, git
and docker, a registry that answers 500, a registry killed mid-push, an engine of the tests' own
killed mid-build, an engine without the containerd image store, a platform the builder cannot
build, and a GIT_SHA that is not HEAD. Each ends with its own exit code, one line, and nothing
left: no buildx process, no running step in the engine, no tag that looks pushed.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipeline.registry.server import LocalRegistry, start_registry
from pipeline.rules.build_plan import NO_CACHE_EXPORT
from tests.conftest import (
    PIPELINE_VARIABLES,
    ROOT,
    FixtureRepo,
    image_exists,
    make_fixture_repo,
    run_pipeline,
)
from tests.helpers.engines import OwnEngine, started_engine
from tests.helpers.processes import processes_matching, processes_with_env

pytestmark = pytest.mark.usefixtures("engine")

# A step that prints a marker, then sleeps for a duration no other process on the machine has.
SLOW_STEP = (
    "FROM scratch\nCOPY sandbox/busybox /bin/busybox\n"
    'RUN ["/bin/busybox", "sh", "-c", "echo started-{{nonce}}; /bin/busybox sleep {seconds}"]\n'
)
STEP_OUTPUT = re.compile(r"^#\d+ [\d.]+ started-")
GONE_WITHIN_S = 10.0


@dataclass
class Running:
    """A session command running in a process group of its own (as `set -m; cmd &` makes)."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def wait_for_line(self, pattern: re.Pattern[str], timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(pattern.search(line) for line in list(self.lines)):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        tail = "".join(self.lines[-30:])
        pytest.fail(f"no line matching {pattern.pattern!r} (exit {self.process.poll()}):\n{tail}")

    def finish(self, timeout_s: float = 60) -> tuple[int, str]:
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            # A session that did not stop must not outlive the test (nor hold the engine).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise
        time.sleep(0.2)  # the reader thread takes the last lines
        return code, "".join(self.lines)


def start_session(command: str, env: dict[str, str], via_nox: bool = False) -> Running:
    full_env = {k: v for k, v in os.environ.items() if k not in PIPELINE_VARIABLES}
    full_env.update(env)
    argv = [sys.executable, "-m", "pipeline", command]
    if via_nox:
        argv = [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", command]
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    running = Running(process)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            running.lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return running


def slow_repo(tmp_path: Path, host: str) -> tuple[FixtureRepo, str, int]:
    seconds = random.randint(3000, 3999)
    repo = make_fixture_repo(tmp_path / "repo", host, SLOW_STEP.format(seconds=seconds))
    nonce = repo.repository.rsplit("-", 1)[1]
    return repo, nonce, seconds


def steps_in_use(nonce: str) -> list[str]:
    """Build-cache records of the step still held by a running build (`docker buildx du`):
    a running RUN step holds its mutable mount (`Reclaimable: false`) until it ends."""
    text = _host_docker("buildx", "du", "--verbose")
    return [
        block
        for block in text.split("\n\n")
        if nonce in block and re.search(r"Reclaimable:\s+false", block)
    ]


def _host_docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=60, check=True
    ).stdout


def assert_nothing_left(repo: FixtureRepo, nonce: str, seconds: int) -> None:
    """Within seconds: no buildx process of this build, no step running, no step held."""
    deadline = time.monotonic() + GONE_WITHIN_S
    while True:
        processes = processes_matching(repo.repository, f"sleep {seconds}")
        held = steps_in_use(nonce)
        if not processes and not held:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"left behind: processes {processes}, steps in use {held}")
        time.sleep(0.5)
    assert not image_exists(f"{repo.repository}:sha-{repo.sha}")
    assert not image_exists(f"{repo.repository}:local")


@pytest.mark.parametrize("via_nox", [False, True], ids=["python-m-pipeline", "nox"])
def test_ctrl_c_to_the_process_group_cancels_the_build(
    tmp_path: Path, registry: LocalRegistry, via_nox: bool
) -> None:
    repo, nonce, seconds = slow_repo(tmp_path, registry.host)
    running = start_session("snapshot_local", repo.env(), via_nox=via_nox)
    running.wait_for_line(STEP_OUTPUT)
    # Both checks of assert_nothing_left see the running step now (so they can fail).
    assert processes_matching(f"sleep {seconds}"), "the step should be running now"
    assert steps_in_use(nonce), "the engine should hold the running step's mount now"
    sent = time.monotonic()
    os.killpg(running.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    code, output = running.finish()
    assert time.monotonic() - sent < GONE_WITHIN_S
    assert "interrupted: build cancelled" in output
    assert code == 130, output[-2000:]  # nox passes the interruption on as 130 too
    assert "Traceback" not in output
    assert_nothing_left(repo, nonce, seconds)


def test_sigterm_cancels_the_build(tmp_path: Path, registry: LocalRegistry) -> None:
    repo, nonce, seconds = slow_repo(tmp_path, registry.host)
    running = start_session("snapshot_local", repo.env())
    running.wait_for_line(STEP_OUTPUT)
    os.kill(running.process.pid, signal.SIGTERM)  # a cancelled CI job
    code, output = running.finish()
    assert code == 143 and "interrupted: build cancelled" in output, output[-2000:]
    assert_nothing_left(repo, nonce, seconds)


def _our_temp_folders() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir()) if name.startswith("sandbox-")}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_stopping_nox_alone_cancels_the_build(
    tmp_path: Path, registry: LocalRegistry, signum: int
) -> None:
    """A dev launcher or process manager signals nox's pid only: SIGTERM ends nox at once (the
    pipeline notices its parent going), SIGINT makes nox pass SIGTERM on. Either way buildx is
    gone within seconds, nothing is tagged and no temporary folder is left."""
    repo, nonce, seconds = slow_repo(tmp_path, registry.host)
    temp_before = _our_temp_folders()
    running = start_session("snapshot_local", repo.env(), via_nox=True)
    running.wait_for_line(STEP_OUTPUT)
    assert processes_matching(f"sleep {seconds}"), "the step should be running now"
    os.kill(running.process.pid, signum)  # nox's pid alone, not its group
    running.finish()
    assert_nothing_left(repo, nonce, seconds)
    deadline = time.monotonic() + GONE_WITHIN_S
    while _our_temp_folders() - temp_before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _our_temp_folders() - temp_before
    # nox, the pipeline and anything they started are gone (no orphan tags :local later)
    assert not processes_with_env(f"SANDBOX_IMAGE_REPOSITORY={repo.repository}")


def test_timeout_cancels_the_step_in_the_engine(tmp_path: Path, registry: LocalRegistry) -> None:
    repo, nonce, seconds = slow_repo(tmp_path, registry.host)
    run = run_pipeline("snapshot_local", env=repo.env(SANDBOX_BUILD_TIMEOUT="6"), timeout=120)
    assert run.returncode == 6, run.output[-2000:]
    line = run.error_line()
    assert "6 s timeout and was cancelled" in line and "SANDBOX_BUILD_TIMEOUT" in line
    assert_nothing_left(repo, nonce, seconds)


def test_path_with_only_python_git_and_docker(
    fixture_repo: FixtureRepo, registry: LocalRegistry, docker_config: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "path"
    folder.mkdir()
    for tool in ("git", "docker"):
        found = shutil.which(tool)
        assert found is not None
        (folder / tool).symlink_to(found)
    (folder / "python").symlink_to(sys.executable)
    env = fixture_repo.env(
        PATH=str(folder),
        PUSH="1",
        REGISTRY_USERNAME=registry.username,
        REGISTRY_PASSWORD=registry.password,
    )
    run = run_pipeline("snapshot_local", env=env, docker_config=docker_config)
    assert run.returncode == 0, run.output[-3000:]
    name = fixture_repo.repository.split("/", 1)[1]
    assert f"sha-{fixture_repo.sha}" in registry.tags(name)
    assert image_exists(f"{fixture_repo.repository}:local")


class _Answers500(http.server.BaseHTTPRequestHandler):
    """Every request gets 500, like a registry whose storage broke."""

    def handle_one_request(self) -> None:
        # containerd tries TLS first: answer in plain HTTP, as a plain-HTTP registry does, so
        # it falls back to http:// for this loopback host.
        if self.rfile.peek(1)[:1] == b"\x16":
            self.wfile.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
            self.close_connection = True
            return
        super().handle_one_request()

    def _fail(self) -> None:
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _fail

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def registry_answering_500() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers500)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_registry_answering_500_is_a_registry_error(
    tmp_path: Path, registry_answering_500: str
) -> None:
    repo = make_fixture_repo(tmp_path / "repo", registry_answering_500)
    run = run_pipeline("snapshot_local", env=repo.env(PUSH="1"), timeout=180)
    assert run.returncode == 7, run.output[-3000:]
    line = run.error_line()
    assert f"the push to {registry_answering_500} failed" in line and "500" in line
    assert "failing step" not in line
    assert not image_exists(f"{repo.repository}:sha-{repo.sha}")  # no tag that looks pushed


class _KillOnUpload:
    """A TCP proxy in front of a registry that kills the registry when the first blob upload
    starts (`POST /v2/…/blobs/uploads/`): the registry dies mid-push, every time."""

    def __init__(self, registry: LocalRegistry) -> None:
        self.registry = registry
        self.killed = threading.Event()
        upstream = registry.host.rsplit(":", 1)
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                try:
                    conn = socket.create_connection((upstream[0], int(upstream[1])), timeout=30)
                except OSError:
                    return
                back = threading.Thread(target=_copy, args=(conn, self.request), daemon=True)
                back.start()
                while data := _recv(self.request):
                    if re.search(rb"(^|\r\n)POST /v2/[^ ]*/blobs/uploads/", data):
                        proxy.registry.process.kill()
                        proxy.killed.set()
                        break
                    conn.sendall(data)
                conn.close()

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.host = f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _recv(conn: socket.socket) -> bytes:
    try:
        return conn.recv(65536)
    except OSError:
        return b""


def _copy(source: socket.socket, target: socket.socket) -> None:
    while data := _recv(source):
        try:
            target.sendall(data)
        except OSError:
            return
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def test_registry_killed_mid_push_is_a_registry_error(tmp_path: Path, docker_config: Path) -> None:
    own = start_registry(tmp_path / "registry", username="tester")
    proxy = _KillOnUpload(own)
    try:
        repo = make_fixture_repo(tmp_path / "repo", proxy.host)
        env = repo.env(PUSH="1", REGISTRY_USERNAME="tester", REGISTRY_PASSWORD=own.password)
        run = run_pipeline("snapshot_local", env=env, docker_config=docker_config, timeout=180)
        assert proxy.killed.is_set(), "the push never started"
        assert run.returncode == 7, run.output[-3000:]
        line = run.error_line()
        assert f"the push to {proxy.host} failed" in line
        assert "stopped answering or cannot be reached" in line
        assert not image_exists(f"{repo.repository}:sha-{repo.sha}")
        # Back up on the same storage: nothing of the commit was published.
        again = start_registry(tmp_path / "registry", username="tester", port=own_port(own))
        try:
            assert again.tags(repo.repository.split("/", 1)[1]) == []
        finally:
            again.stop()
    finally:
        proxy.close()
        own.stop()


def own_port(registry: LocalRegistry) -> int:
    return int(registry.host.rsplit(":", 1)[1])


@pytest.mark.parametrize("tcp", [False, True], ids=["unix-socket", "tcp"])
def test_engine_killed_mid_build_is_an_engine_error(tmp_path: Path, tcp: bool) -> None:
    repo, _, seconds = slow_repo(tmp_path, "127.0.0.1:5000")
    with started_engine(containerd_store=True, tcp=True) as engine:
        running = start_session("snapshot_local", repo.env(**engine.env(tcp=tcp)))
        running.wait_for_line(STEP_OUTPUT)
        engine.kill()
        killed = time.monotonic()
        code, output = running.finish()
        assert time.monotonic() - killed < GONE_WITHIN_S
    assert code == 3, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output[-3000:]
    assert "the Docker engine stopped answering during the build" in errors[0]
    assert "failing step" not in errors[0]
    assert not processes_matching(repo.repository, f"sleep {seconds}")


def test_push_without_containerd_store_builds_without_cache_export(
    own_engine_no_containerd_store: OwnEngine,
    registry: LocalRegistry,
    tmp_path: Path,
    docker_config: Path,
) -> None:
    engine = own_engine_no_containerd_store
    engine.reach_host_port(own_port(registry))
    repo = make_fixture_repo(tmp_path / "repo", registry.host)
    report = tmp_path / "report.json"
    env = repo.env(
        **engine.env(),
        PUSH="1",
        REGISTRY_USERNAME=registry.username,
        REGISTRY_PASSWORD=registry.password,
        PIPELINE_REPORT=str(report),
    )
    run = run_pipeline("snapshot_local", env=env, docker_config=docker_config)
    assert run.returncode == 0, run.output[-3000:]
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and NO_CACHE_EXPORT in warnings[0]
    assert "BUILDX_BUILDER" in warnings[0] and "containerd" in warnings[0]
    # Said before building: the warning comes ahead of buildx's first line.
    assert run.stderr.index("warning: ") < run.stderr.index("#0 building with")
    built = json.loads(report.read_text())["build"]
    assert built["cache_export"] == f"skipped: {NO_CACHE_EXPORT}" and built["pushed"] is True
    assert registry.tags(repo.repository.split("/", 1)[1]) == [f"sha-{repo.sha}"]


def test_asked_for_cache_export_without_containerd_store_is_refused_before_building(
    own_engine_no_containerd_store: OwnEngine,
    registry: LocalRegistry,
    tmp_path: Path,
    docker_config: Path,
) -> None:
    engine = own_engine_no_containerd_store
    engine.reach_host_port(own_port(registry))
    repo = make_fixture_repo(tmp_path / "repo", registry.host)
    env = repo.env(
        **engine.env(),
        PUSH="1",
        SANDBOX_BUILD_CACHE="readwrite",
        REGISTRY_USERNAME=registry.username,
        REGISTRY_PASSWORD=registry.password,
    )
    run = run_pipeline("snapshot_local", env=env, docker_config=docker_config)
    assert run.returncode == 3, run.output[-3000:]
    line = run.error_line()
    assert "SANDBOX_BUILD_CACHE=readwrite" in line and NO_CACHE_EXPORT in line
    assert "BUILDX_BUILDER" in line
    assert "#0 building with" not in run.output  # nothing was built
    assert registry.tags(repo.repository.split("/", 1)[1]) == []


def test_platform_the_builder_cannot_build_is_refused(fixture_repo: FixtureRepo) -> None:
    listed = _host_docker("buildx", "inspect")
    candidates = ("linux/s390x", "linux/ppc64le", "linux/riscv64", "linux/mips64le", "linux/386")
    platform = next(p for p in candidates if p not in listed)
    run = run_pipeline("snapshot_local", env=fixture_repo.env(SANDBOX_BUILD_PLATFORM=platform))
    assert run.returncode == 2, run.output[-3000:]
    line = run.error_line()
    assert line.startswith(f"error: SANDBOX_BUILD_PLATFORM={platform}: builder ")
    assert f"cannot build {platform}" in line
    assert "#0 building with" not in run.output
    assert not image_exists(f"{fixture_repo.repository}:local")
    typo = run_pipeline(
        "snapshot_local", env=fixture_repo.env(PUSH="1", SANDBOX_BUILD_PLATFORM="linux/mips99")
    )
    assert typo.returncode == 2 and "not an OCI platform" in typo.error_line()


def test_git_sha_of_another_commit_is_refused(
    fixture_repo: FixtureRepo, registry: LocalRegistry, docker_config: Path
) -> None:
    first = fixture_repo.sha
    (fixture_repo.path / "later.txt").write_text("a second commit\n")
    fixture_repo.git("add", "-A")
    fixture_repo.git("-c", "user.email=ci@e.invalid", "-c", "user.name=ci", "commit", "-qm", "2")
    env = fixture_repo.env(
        GIT_SHA=first,
        REGISTRY_USERNAME=registry.username,
        REGISTRY_PASSWORD=registry.password,
    )
    run = run_pipeline("snapshot_push", env=env, docker_config=docker_config)
    assert run.returncode == 4, run.output[-3000:]
    line = run.error_line()
    assert f"GIT_SHA={first} is not the commit being built" in line and fixture_repo.sha in line
    assert registry.tags(fixture_repo.repository.split("/", 1)[1]) == []
    assert not image_exists(f"{fixture_repo.repository}:sha-{first}")


def test_doctor_names_the_missing_containerd_store(
    own_engine_no_containerd_store: OwnEngine,
) -> None:
    env = {**own_engine_no_containerd_store.env(), "SANDBOX_IMAGE_REPOSITORY": "127.0.0.1:5000/x"}
    run = run_pipeline("doctor", "--skip-login", env=env)
    assert run.returncode == 11, run.output[-3000:]  # doctor's own exit code
    assert f"FAIL  cache export: {NO_CACHE_EXPORT} — fix: enable the containerd image store" in (
        run.stdout
    )
    assert "BUILDX_BUILDER" in run.stdout
    assert "doctor found 1 problem(s): cache export" in run.error_line()
