"""Shared fixtures. Markers follow from the fixtures a test uses, so selection cannot drift:
`engine` (a Docker engine with buildx), `registry` (the local OCI registry), `emulator`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.adapters.local_registry import LocalRegistry, start_registry
from pipeline.settings.build import BuildSettings, ReportSettings, env_names

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_MARKERS = {
    "engine": "engine",
    "registry": "registry",
    "daytona_emulator": "emulator",
    "daytona_emulator_with_registry": "emulator",
    "sandbox_image": "sandbox_image",
}
# Variables of the developer's shell that would change what a test builds or where it reports.
PIPELINE_VARIABLES = env_names(BuildSettings, ReportSettings)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            marker = FIXTURE_MARKERS.get(fixture)
            if marker:
                item.add_marker(getattr(pytest.mark, marker))


def _unavailable(reason: str) -> None:
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
    repo = FixtureRepo(path=path, repository=f"{host}/iterate/sandbox-{nonce}")
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
        argv = [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", command]
        argv += ["--", *args] if args else []
    else:
        argv = [sys.executable, "-m", "pipeline", command, *args]
    done = subprocess.run(
        argv, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return PipelineRun(done.returncode, done.stdout, done.stderr)


def image_exists(reference: str) -> bool:
    done = subprocess.run(
        ["docker", "image", "inspect", reference], capture_output=True, check=False
    )
    return done.returncode == 0
