"""Shared fixtures. Markers follow from the fixtures a test uses, so selection cannot drift:
`engine` (a Docker engine with buildx), `registry` (the local OCI registry), `emulator`.

The user's engine is left as the tests found it: nothing is pruned, everything a test makes
there carries a test name (TEST_NAME_PREFIX, TEST_IMAGE_NAMESPACE, or the session registry's
host) and is removed when the session ends. Tests that need an empty cache, a second engine or
an engine that dies use `own_engine` (tests/helpers/engines.py). Builds of the real image use
`sandbox_build_base`: a developer's base image is only ever read. Every session that used the
user's engine ends with the check that proves all this (test_engine_isolation.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

from pipeline.base_image import rootfs as base_rootfs
from pipeline.base_image.choose import choose_build_base
from pipeline.docker import images
from pipeline.docker.cli import Docker, find_docker
from pipeline.docker.endpoint import Location
from pipeline.registry.server import LocalRegistry, start_registry
from pipeline.rules.base_image_plan import DEFAULT_TAG, RECIPE_LABEL, dockerfile_default_base
from pipeline.settings.build import BuildSettings, ReportSettings, env_names
from tests.helpers.engines import EngineStartError, OwnEngine, start_engine
from tests.helpers.host_engine import (
    TEST_IMAGE_NAMESPACE,
    TEST_NAME_PREFIX,
    Canary,
    container_inventory,
    enter_session,
    image_inventory,
    leave_session,
    other_live_sessions,
    remove_test_artifacts,
    volume_inventory,
)

__all__ = ["TEST_IMAGE_NAMESPACE", "TEST_NAME_PREFIX"]

# A run started as a background job of a non-interactive shell inherits SIGINT ignored: Python
# then never raises KeyboardInterrupt and every child inherits the ignore, so the Ctrl-C tests
# would test the harness, not the pipeline.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_MARKERS = {
    "engine": "engine",
    "registry": "registry",
    "daytona_emulator": "emulator",
    "daytona_emulator_with_registry": "emulator",
    "sandbox_image": "sandbox_image",
    "own_engine": "engine",
    "own_engine_no_containerd_store": "engine",
}
# Variables of the developer's shell that would change what a test builds or where it reports.
PIPELINE_VARIABLES = env_names(BuildSettings, ReportSettings)

F = TypeVar("F", bound=Callable[..., object])
_CHECK_AT_END = pytest.StashKey[bool]()
_TOUCHES_ENGINE = pytest.StashKey[bool]()
_FINAL_CHECKS = pytest.StashKey[list[pytest.Item]]()
_REGISTRY_HOSTS: set[str] = set()  # every registry this session started (random ports)


def runs_last(test: F) -> F:
    """Run this test after every other one of the session (the final isolation check)."""
    test.runs_last = True  # type: ignore[attr-defined]
    return test


def _runs_last(item: pytest.Item) -> bool:
    return bool(getattr(getattr(item, "function", None), "runs_last", False))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Runs before -m deselection (conftest hooks run first), which relies on these markers;
    # deselection keeps the order, so what is put last here stays last.
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            marker = FIXTURE_MARKERS.get(fixture)
            if marker:
                item.add_marker(getattr(pytest.mark, marker))
    items.sort(key=_runs_last)  # stable: only the final checks move, to the end
    config.stash[_FINAL_CHECKS] = [item for item in items if _runs_last(item)]


def pytest_collection_finish(session: pytest.Session) -> None:
    engine_markers = set(FIXTURE_MARKERS.values()) - {"registry"}
    touches = any(
        item.get_closest_marker(marker) for item in session.items for marker in engine_markers
    )
    session.config.stash[_TOUCHES_ENGINE] = touches
    if touches:
        # Every tier that used the user's engine ends with the isolation check, whatever -m
        # selected (the image tier's `-m sandbox_image` would otherwise leave it out).
        kept = {item.nodeid for item in session.items}
        session.items += [
            item for item in session.config.stash.get(_FINAL_CHECKS, []) if item.nodeid not in kept
        ]
    session.config.stash[_CHECK_AT_END] = any(_runs_last(item) for item in session.items)


def _unavailable(reason: str) -> NoReturn:
    # CI must never skip an integration tier: there a missing engine is a failure.
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run this tier)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine() -> None:
    """A Docker engine with buildx answers; scripts/setup-engine.sh provides one."""
    if shutil.which("docker") is None:
        _unavailable("no docker CLI: run scripts/setup-engine.sh")
    probe = subprocess.run(
        ["docker", "buildx", "version"], capture_output=True, timeout=30, check=False
    )
    info = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    if probe.returncode or info.returncode:
        _unavailable("no Docker engine with buildx answers: run scripts/setup-engine.sh")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    if shutil.which("docker-registry") is None:
        _unavailable("no docker-registry binary: run scripts/setup-engine.sh")
    served = start_registry(tmp_path_factory.mktemp("registry"), username="tester")
    _REGISTRY_HOSTS.add(served.host)
    yield served
    served.stop()


@pytest.fixture(scope="session")
def docker_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Docker config of the tests' own, so logins never touch ~/.docker."""
    return tmp_path_factory.mktemp("docker-config")


@dataclass
class PipelineRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def error_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1, f"expected one error line, got:\n{self.stderr[-3000:]}"
        return lines[0]


@dataclass
class FixtureRepo:
    """A git repository holding a tiny image (busybox on scratch) and its own image name."""

    path: Path
    repository: str  # image repository in the test registry, unique per test

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.path, capture_output=True, text=True, check=True
        ).stdout.strip()

    @property
    def sha(self) -> str:
        return self.git("rev-parse", "HEAD")

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "SANDBOX_BUILD_CONTEXT": str(self.path),
            "SANDBOX_DOCKERFILE": str(self.path / "sandbox" / "Dockerfile"),
            "SANDBOX_IMAGE_REPOSITORY": self.repository,
            **extra,
        }


TINY_DOCKERFILE = """\
FROM scratch
COPY sandbox/busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN echo {nonce} > /nonce
ARG GIT_SHA
ENV GIT_SHA=$GIT_SHA
"""


def make_fixture_repo(path: Path, host: str, dockerfile: str = TINY_DOCKERFILE) -> FixtureRepo:
    nonce = uuid.uuid4().hex[:12]  # unique steps: no other test's cache can answer for them
    (path / "sandbox").mkdir(parents=True)
    shutil.copy("/bin/busybox", path / "sandbox" / "busybox")
    (path / "sandbox" / "Dockerfile").write_text(dockerfile.format(nonce=nonce))
    repo = FixtureRepo(path=path, repository=f"{host}/{TEST_IMAGE_NAMESPACE}sandbox-{nonce}")
    repo.git("init", "-q", "-b", "main")
    repo.git("add", "-A")
    repo.git("-c", "user.email=ci@example.invalid", "-c", "user.name=ci", "commit", "-qm", "init")
    return repo


@pytest.fixture
def fixture_repo(tmp_path: Path, registry: LocalRegistry) -> FixtureRepo:
    return make_fixture_repo(tmp_path / "repo", registry.host)


def run_pipeline(
    command: str,
    *args: str,
    env: Mapping[str, str],
    docker_config: Path | None = None,
    via_nox: bool = False,
    timeout: float = 600,
) -> PipelineRun:
    """Run a session command the way users do, in a clean copy of the environment."""
    full_env = {k: v for k, v in os.environ.items() if k not in PIPELINE_VARIABLES}
    if docker_config is not None:
        full_env["DOCKER_CONFIG"] = str(docker_config)
    full_env.update(env)
    if via_nox:
        # venvs of the tests' own (the checkout's .nox/ is the user's), from uv's usual cache
        # even when the test moves XDG_CACHE_HOME
        full_env.setdefault("UV_CACHE_DIR", str(_uv_cache()))
        argv = [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", command]
        argv += ["--envdir", str(_nox_envdir())]
        argv += ["--", *args] if args else []
    else:
        argv = [sys.executable, "-m", "pipeline", command, *args]
    done = subprocess.run(
        argv, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return PipelineRun(done.returncode, done.stdout, done.stderr)


def _uv_cache() -> Path:
    if os.environ.get("UV_CACHE_DIR"):
        return Path(os.environ["UV_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uv"


_NOX_ENVDIR: list[Path] = []


def _nox_envdir() -> Path:
    """One folder of nox venvs for the whole test run, removed when it ends."""
    if not _NOX_ENVDIR:
        import atexit
        import tempfile

        made = Path(tempfile.mkdtemp(prefix="sandbox-pipeline-test-nox-"))
        atexit.register(shutil.rmtree, made, True)
        _NOX_ENVDIR.append(made)
    return _NOX_ENVDIR[0]


def image_exists(reference: str) -> bool:
    done = subprocess.run(
        ["docker", "image", "inspect", reference], capture_output=True, check=False
    )
    return done.returncode == 0


def _own_engine(containerd_store: bool) -> Iterator[OwnEngine]:
    try:
        engine = start_engine(containerd_store=containerd_store, tcp=True)
    except EngineStartError as error:
        _unavailable(f"no own engine: {error}")
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def own_engine() -> Iterator[OwnEngine]:
    """An engine of the tests' own (containerd image store, unix socket and loopback TCP):
    its build cache and images are nobody else's. Do not kill it; start one for that."""
    yield from _own_engine(containerd_store=True)


@pytest.fixture(scope="module")
def own_engine_no_containerd_store() -> Iterator[OwnEngine]:
    """An own engine with the classic image store (OrbStack's default): no registry cache export."""
    yield from _own_engine(containerd_store=False)


@dataclass
class HostBaseline:
    """The user's engine as the session found it; `problem` says why it could not be read."""

    canary: Canary | None
    images: set[str]
    others: bool  # other test sessions were running on this machine when it was taken
    problem: str | None = None
    containers: set[str] = field(default_factory=set)
    volumes: set[str] = field(default_factory=set)


@pytest.fixture(scope="session", autouse=True)
def remove_what_tests_made(request: pytest.FixtureRequest) -> Iterator[None]:
    """At the end of a session that used an engine: remove exactly what the tests made there."""
    touches = request.config.stash.get(_TOUCHES_ENGINE, False) and shutil.which("docker")
    if touches:
        enter_session()
    yield
    if touches:
        remove_test_artifacts(_REGISTRY_HOSTS)
        leave_session()


@pytest.fixture(scope="session", autouse=True)
def host_engine_baseline(
    request: pytest.FixtureRequest, remove_what_tests_made: None
) -> Iterator[HostBaseline | None]:
    """Before any test: a canary build and the image list, when a final check will use them."""
    if not request.config.stash.get(_CHECK_AT_END, False):
        yield None
        return
    canary = None
    try:
        canary = Canary.build()
        found = HostBaseline(
            canary,
            image_inventory(),
            bool(other_live_sessions()),
            containers=container_inventory(),
            volumes=volume_inventory(),
        )
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        problem = f"no canary build on the user's engine: {error}"
        found = HostBaseline(None, set(), False, problem)
    yield found
    if canary is not None:
        canary.remove()


# The offline base a test build makes when the developer has no current one of their own.
TEST_OFFLINE_BASE = f"{TEST_IMAGE_NAMESPACE}node24-bookworm:local"


def docker_here(host: str | None = None) -> Docker:
    """The docker CLI as this test's environment points it (DOCKER_HOST, PATH, ...)."""
    location = Location.from_env(os.environ)
    if host is not None:
        location = Location(host=host, config=location.config)
    return find_docker(location)


def choose_base(
    configured: str | None, dockerfile: Path, offline_tag: str = DEFAULT_TAG
) -> str | None:
    """base_image/choose.py as the build runs it, on the engine of this test's environment."""
    docker = docker_here()

    def make(tag: str) -> str:
        cache = BuildSettings().cache_dir / "base-image"
        return base_rootfs.make_base_image(docker, dict(os.environ), cache, tag)

    return choose_build_base(docker, configured, dockerfile, make, offline_tag)


def _in_engine(reference: str) -> bool:
    return images.label(docker_here(), reference, RECIPE_LABEL) is not None


def offline_base_for_tests(docker_host: str | None = None) -> str:
    """The developer's offline base when it is current (a build only reads it), else the tests'
    own: making it would overwrite the developer's tag."""
    mine = images.label(docker_here(docker_host), DEFAULT_TAG, RECIPE_LABEL)
    current = base_rootfs.plan_here(DEFAULT_TAG).recipe
    return DEFAULT_TAG if mine == current else TEST_OFFLINE_BASE


@pytest.fixture(scope="session")
def sandbox_build_base(engine: None) -> Iterator[str | None]:
    """SANDBOX_BASE_IMAGE for a test build of the real image (None: the Dockerfile's own base),
    chosen so that no test writes or removes a developer's tag:
    - the official node:24-bookworm where the engine has it or can pull it (GitHub's runners); a
      pull made here is removed again at the end, as the developer did not have it;
    - else the developer's offline base (sandbox-base/node24-bookworm:local), when it is current,
      used read-only;
    - else an offline base of the tests' own (TEST_OFFLINE_BASE), swept with the session's
      other test images."""
    dockerfile = ROOT / "sandbox" / "Dockerfile"
    official = dockerfile_default_base(dockerfile.read_text())
    had_official = official is not None and _in_engine(official)
    try:
        yield choose_base(None, dockerfile, offline_tag=offline_base_for_tests())
    finally:
        pulled = official is not None and not had_official and _in_engine(official)
        if pulled and not other_live_sessions():  # another session may still build from it
            subprocess.run(
                ["docker", "image", "rm", str(official)], capture_output=True, timeout=120
            )


def session_registry_hosts() -> set[str]:
    """Hosts (127.0.0.1:PORT) of the registries this session started."""
    return set(_REGISTRY_HOSTS)


@pytest.fixture
def new_name() -> Iterator[Callable[[], str]]:
    """Test names for sandbox containers; each is removed by name at the end (a developer's own
    sandboxes, which carry the same label, are never touched)."""
    prefix = f"{TEST_NAME_PREFIX}sandbox-{uuid.uuid4().hex[:6]}-"
    names: list[str] = []

    def make() -> str:
        names.append(f"{prefix}{len(names)}")
        return names[-1]

    yield make
    if names:
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True, check=False)
