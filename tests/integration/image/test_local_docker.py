"""The local integration suite: the real sandbox image, built from the offline base by the
pipeline, booted through the local-docker provider.

With SANDBOX_TEST_IMAGE=<repo>@sha256:… the tier boots that pushed image, pulled, instead of
building one (CI on main: the digest the release then promotes, tests/helpers/given_image.py);
the two tests of the pipeline's own rebuild are skipped then.

Failures print the container's service logs (SandboxError details, or the assertion message).
Everything made on the engine has a test name (image, sandboxes, the pnpm store volume) and is
removed; the base is one the session may use without writing a developer's tag
(`sandbox_build_base` in tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from pipeline.docker import containers
from pipeline.sandbox import local_docker
from pipeline.sessions import sandbox_local
from tests.conftest import ROOT, TEST_IMAGE_NAMESPACE, TEST_NAME_PREFIX, docker_here, run_pipeline
from tests.helpers.given_image import given_reference, pull_given

# A repository of this session's own: test sessions running side by side never share a tag.
REPOSITORY = f"{TEST_IMAGE_NAMESPACE}sandbox-{uuid.uuid4().hex[:8]}"
CLIS = ("claude", "opencode", "pi", "gh", "pnpm", "tsx", "bun", "node")
SERVICES = ("daemon", "egress-proxy", "opencode")  # what supervisord runs


@dataclass(frozen=True)
class BuiltImage:
    reference: str
    sha: str
    env: dict[str, str]
    report: dict[str, object]
    given: bool = False  # SANDBOX_TEST_IMAGE: pulled, not built by this session


@pytest.fixture(scope="module")
def sandbox_image(
    engine: None, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BuiltImage]:
    """The real image, built by the pipeline's own command from the base this machine can have:
    the official node:24-bookworm where it can be pulled (GitHub's runners), else an offline
    base (made as root, or under passwordless sudo, when there is no current one)."""
    given = given_reference()
    if given is not None:
        had = _image_id_or_none(given)
        pulled = pull_given(given)
        try:
            yield BuiltImage(given, pulled.revision, {}, {"digest": pulled.digest}, given=True)
        finally:
            if had is None:
                subprocess.run(["docker", "image", "rm", given], capture_output=True, check=False)
        return
    # asked for only when building: a given image needs no base (nor its pull, on a runner)
    base: str | None = request.getfixturevalue("sandbox_build_base")
    report = tmp_path_factory.mktemp("report") / "report.json"
    env = {
        **({"SANDBOX_BASE_IMAGE": base} if base else {}),
        "SANDBOX_IMAGE_REPOSITORY": REPOSITORY,
        "PIPELINE_REPORT": str(report),
    }
    try:
        built = run_pipeline("snapshot_local", env=env, timeout=1800)
        assert built.returncode == 0, built.output[-4000:]
        result = json.loads(report.read_text())["build"]
        yield BuiltImage(f"{REPOSITORY}:local", result["sha"], env, result)
    finally:
        _remove_repository(REPOSITORY)


def _image_id_or_none(reference: str) -> str | None:
    done = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", reference],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def _remove_repository(repository: str) -> None:
    """Every tag of the repository (:local, :sha-…), by name: the session's sweep of test names
    waits while other test sessions run."""
    tags = subprocess.run(
        ["docker", "image", "ls", repository, "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if tags:
        subprocess.run(["docker", "image", "rm", *tags], capture_output=True, check=False)


@pytest.fixture(scope="module")
def pnpm_volume(engine: None) -> Iterator[str]:
    """The sandboxes' pnpm store: a fresh test volume (one made before the image declared the
    store directory would keep root ownership), never the developer's iterate-pnpm-store."""
    name = f"{TEST_NAME_PREFIX}pnpm-store-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["docker", "volume", "rm", "-f", name], capture_output=True, check=False)


@pytest.fixture
def provider_env(
    sandbox_image: BuiltImage, pnpm_volume: str, monkeypatch: pytest.MonkeyPatch
) -> BuiltImage:
    for key in (
        "LOCAL_DOCKER_REPO_CHECKOUT",
        "LOCAL_DOCKER_GIT_DIR",
        "LOCAL_DOCKER_COMMON_DIR",
        "DOCKER_HOST",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LOCAL_DOCKER_IMAGE_NAME", sandbox_image.reference)
    monkeypatch.setenv("LOCAL_DOCKER_PNPM_VOLUME", pnpm_volume)
    return sandbox_image


def _logs(name: str) -> str:
    return "\n".join(local_docker.service_logs(docker_here(), name))


def _sh(name: str, script: str) -> str:
    return containers.execute(docker_here(), name, ["bash", "-lc", script])


def _rebuild(image: BuiltImage, report: Path) -> dict[str, object]:
    again = run_pipeline("snapshot_local", env={**image.env, "PIPELINE_REPORT": str(report)})
    assert again.returncode == 0, again.output[-3000:]
    result: dict[str, object] = json.loads(report.read_text())["build"]
    return result


def _image_id(reference: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", reference],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _built_here(image: BuiltImage) -> None:
    if image.given:
        pytest.skip(f"SANDBOX_TEST_IMAGE={image.reference} was pulled: no build of this session")


def test_the_booted_image_is_the_given_digest(sandbox_image: BuiltImage) -> None:
    """What the tier boots is the digest it was given (or the one it built)."""
    digest = sandbox_image.report["digest"]
    assert isinstance(digest, str) and digest.startswith("sha256:")
    digests = subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            sandbox_image.reference,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if sandbox_image.given:
        assert digest in digests and sandbox_image.reference.endswith(digest)


def test_unchanged_rebuild_builds_nothing(sandbox_image: BuiltImage, tmp_path: Path) -> None:
    """The dev loop's fast path on the real image: `:local` carries this tree's fingerprint."""
    _built_here(sandbox_image)
    before = _image_id(sandbox_image.reference)
    result = _rebuild(sandbox_image, tmp_path / "again.json")
    assert result["skipped"] is True, result
    assert result["image_id"] == before == _image_id(sandbox_image.reference)


def test_rebuild_without_change_reuses_every_layer(
    sandbox_image: BuiltImage, tmp_path: Path
) -> None:
    _built_here(sandbox_image)
    # Without `:local` (the test's own tag) the fast path has nothing to compare with: a real
    # build runs, and every step must come from the build cache.
    subprocess.run(
        ["docker", "image", "rm", sandbox_image.reference], check=True, capture_output=True
    )
    result = _rebuild(sandbox_image, tmp_path / "again.json")
    assert isinstance(result["steps_total"], int) and result["steps_total"] >= 10, result
    assert result["steps_cached"] == result["steps_total"]
    assert result["digest"] == sandbox_image.report["digest"]
    assert _image_id(sandbox_image.reference)  # loaded and tagged again


def test_boots_with_health_clis_and_supervised_services(
    provider_env: BuiltImage, new_name: Callable[[], str]
) -> None:
    sandbox = sandbox_local.start(sync=False, name=new_name())
    health = httpx.get(f"{sandbox.url}/api/health", timeout=5).json()
    assert health["ok"] is True and health["gitSha"] == provider_env.sha, _logs(sandbox.name)
    assert _sh(sandbox.name, "test -f /tmp/reached-entrypoint && echo yes").strip() == "yes"
    for cli in CLIS:
        out = _sh(sandbox.name, f"{cli} --version 2>&1")
        assert re.search(r"\d+\.\d+", out), f"{cli} --version said {out!r}\n{_logs(sandbox.name)}"

    def pids() -> dict[str, str]:
        status = _sh(sandbox.name, "pidnap status")
        found = dict(re.findall(r"^(\S+)\s+RUNNING\s+pid (\d+)", status, re.MULTILINE))
        return found

    deadline = time.monotonic() + 30
    while not set(SERVICES) <= pids().keys() and time.monotonic() < deadline:
        time.sleep(0.5)
    before = pids()
    assert set(SERVICES) <= before.keys(), _logs(sandbox.name)
    processes = httpx.get(f"{sandbox.url}/api/processes", timeout=5).text
    assert all(service in processes for service in SERVICES)
    _sh(sandbox.name, "processes restart opencode")
    after = pids()
    assert after["opencode"] != before["opencode"]
    assert after["daemon"] == before["daemon"]


def test_repo_is_a_git_repository_at_the_image_sha(
    provider_env: BuiltImage, new_name: Callable[[], str]
) -> None:
    sandbox = sandbox_local.start(sync=False, name=new_name())
    head = _sh(sandbox.name, "cd ~/src/github.com/iterate/iterate && git rev-parse HEAD").strip()
    assert head == provider_env.sha


def _host_facts(path: Path) -> str:
    script = "git rev-parse --abbrev-ref HEAD; git rev-parse HEAD; git status --porcelain"
    return subprocess.run(
        ["bash", "-c", script], cwd=path, capture_output=True, text=True, check=True
    ).stdout


def _dirty_clone(tmp_path: Path) -> Path:
    clone = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)

    def git(*args: str, cwd: Path = clone) -> None:
        subprocess.run(
            ["git", "-c", "user.email=t@e.invalid", "-c", "user.name=t", *args],
            cwd=cwd,
            check=True,
            capture_output=True,
        )

    (clone / "README.md").write_text((clone / "README.md").read_text() + "staged\n")
    git("add", "README.md")
    (clone / "pyproject.toml").write_text((clone / "pyproject.toml").read_text() + "# unstaged\n")
    (clone / "untracked.txt").write_text("untracked\n")
    return clone


@pytest.mark.parametrize("layout", ["plain", "worktree"])
def test_dev_sync_matches_host_git_state(
    provider_env: BuiltImage,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    new_name: Callable[[], str],
    layout: str,
) -> None:
    checkout = _dirty_clone(tmp_path)
    if layout == "worktree":
        worktree = tmp_path / "wt"
        subprocess.run(
            ["git", "worktree", "add", "-q", "-b", "feature", str(worktree)],
            cwd=checkout,
            check=True,
            capture_output=True,
        )
        (worktree / "README.md").write_text("changed in the worktree\n")
        subprocess.run(["git", "add", "README.md"], cwd=worktree, check=True)
        (worktree / "noxfile.py").write_text("# unstaged\n")
        (worktree / "new-in-worktree.txt").write_text("untracked\n")
        checkout = worktree
    # Only the checkout is given: git dir and common dir default from git (worktrees too).
    monkeypatch.setenv("LOCAL_DOCKER_REPO_CHECKOUT", str(checkout))
    sandbox = sandbox_local.start(sync=True, name=new_name())
    inside = _sh(
        sandbox.name,
        "cd ~/src/github.com/iterate/iterate && git rev-parse "
        "--abbrev-ref HEAD; git rev-parse HEAD; git status --porcelain",
    )
    host = _host_facts(checkout)
    assert inside.splitlines() == host.splitlines(), (
        f"inside:\n{inside}\nhost:\n{host}\n{_logs(sandbox.name)}"
    )
    assert len(host.splitlines()) >= 5  # branch, HEAD and at least three changes


@pytest.mark.parametrize("script", ["services.sh", "dev-sync.sh"])
def test_verify_script(sandbox_image: BuiltImage, script: str) -> None:
    """The image's own checks: .env restart delays (0.5 s / 5 s / never), the proxy upstream,
    arguments exec'd instead of the supervisor, and dev sync's edge cases."""
    verify = subprocess.Popen(
        ["bash", str(ROOT / "sandbox" / "verify" / script), sandbox_image.reference],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "VERIFY_DAEMON_PORT": str(_free_port())},
    )
    try:
        stdout, stderr = verify.communicate(timeout=600)
    except BaseException:
        verify.kill()
        verify.wait()
        # services.sh names its container sandbox-verify-$$ and removes it when it exits; killed,
        # it cannot, so its container (this run's: $$ is the pid started here) goes here.
        subprocess.run(
            ["docker", "rm", "-f", f"sandbox-verify-{verify.pid}"], capture_output=True, check=False
        )
        raise
    assert verify.returncode == 0, stdout[-5000:] + stderr[-3000:]
    assert "FAIL" not in stdout


def _free_port() -> int:
    from pipeline.registry.server import free_port

    return free_port()
