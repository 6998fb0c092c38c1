"""The local-docker provider on the real engine, with a busybox stand-in for the sandbox daemon.

The real image is proven by the sandbox suite; these tests pin the provider's own mechanics:
image choice, labels, the published port, dev-sync mounts, health waits and cleanup.

A developer's own sandboxes may run on this engine: every sandbox here has a test name and is
removed by name, the pnpm store is a test volume, and `sandbox_down -- --all` (which removes
every pipeline sandbox) runs only against an engine of the tests' own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from pipeline.docker import containers
from pipeline.errors import ConfigError, SandboxError
from pipeline.sandbox import local_docker
from pipeline.sandbox.local_docker import image_candidates, pick_image
from pipeline.sessions import sandbox_local
from pipeline.settings.build import load
from pipeline.settings.local import LocalDockerSettings
from tests.conftest import TEST_IMAGE_NAMESPACE, TEST_NAME_PREFIX, docker_here, run_pipeline
from tests.helpers.engines import OwnEngine

pytestmark = pytest.mark.usefixtures("engine")

HEALTHY = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /www/api /var/log/daemon && echo '{"ok": true}' > /www/api/health \\
    && echo daemon-log-marker > /var/log/daemon/daemon.log
CMD ["httpd", "-f", "-p", "3000", "-h", "/www"]
"""
BROKEN = HEALTHY.replace(
    'CMD ["httpd", "-f", "-p", "3000", "-h", "/www"]',
    'CMD ["sh", "-c", "echo broken-start-marker; sleep 600"]',
)


def _build(tmp: Path, dockerfile: str, tag: str) -> str:
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copy("/bin/busybox", tmp / "busybox")
    (tmp / "Dockerfile").write_text(dockerfile)
    subprocess.run(
        ["docker", "buildx", "build", "--load", "-q", "-t", tag, str(tmp)],
        capture_output=True,
        check=True,
    )
    return tag


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, engine: None) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("provider-images")
    nonce = uuid.uuid4().hex[:8]
    built = {
        "healthy": _build(root / "h", HEALTHY, f"{TEST_IMAGE_NAMESPACE}healthy:{nonce}"),
        "broken": _build(root / "b", BROKEN, f"{TEST_IMAGE_NAMESPACE}broken:{nonce}"),
    }
    yield built
    subprocess.run(["docker", "image", "rm", *built.values()], capture_output=True, check=False)


@pytest.fixture(scope="module")
def pnpm_volume(engine: None) -> Iterator[str]:
    """The sandboxes' pnpm store: a test volume, never the developer's iterate-pnpm-store."""
    name = f"{TEST_NAME_PREFIX}pnpm-store-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["docker", "volume", "rm", "-f", name], capture_output=True, check=False)


@pytest.fixture
def sandbox_env(monkeypatch: pytest.MonkeyPatch, pnpm_volume: str) -> pytest.MonkeyPatch:
    for key in (
        "LOCAL_DOCKER_IMAGE_NAME",
        "LOCAL_DOCKER_REPO_CHECKOUT",
        "LOCAL_DOCKER_GIT_DIR",
        "LOCAL_DOCKER_COMMON_DIR",
        "DOCKER_HOST",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LOCAL_DOCKER_PNPM_VOLUME", pnpm_volume)
    return monkeypatch


def _inspect(name: str, template: str) -> str:
    return subprocess.run(
        ["docker", "inspect", "-f", template, name], capture_output=True, text=True, check=True
    ).stdout


def _exists(name: str) -> bool:
    done = subprocess.run(["docker", "container", "inspect", name], capture_output=True)
    return done.returncode == 0


def test_start_healthy_without_sync(
    images: dict[str, str],
    sandbox_env: pytest.MonkeyPatch,
    new_name: Callable[[], str],
    pnpm_volume: str,
) -> None:
    sandbox_env.setenv("LOCAL_DOCKER_IMAGE_NAME", images["healthy"])
    sandbox = sandbox_local.start(sync=False, name=new_name())
    assert sandbox.url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{sandbox.url}/api/health").json() == {"ok": True}
    assert local_docker.LABEL in _inspect(sandbox.name, "{{json .Config.Labels}}")
    mounts = json.loads(_inspect(sandbox.name, "{{json .Mounts}}"))
    store = [m for m in mounts if m["Destination"] == local_docker.PNPM_STORE_PATH]
    assert [(m["Type"], m["Name"]) for m in store] == [("volume", pnpm_volume)]


def test_cleanup_with_a_prefix_removes_only_those_sandboxes(
    images: dict[str, str], sandbox_env: pytest.MonkeyPatch, new_name: Callable[[], str]
) -> None:
    """Another labelled sandbox (a developer's, say) outlives a cleanup of other names."""
    sandbox_env.setenv("LOCAL_DOCKER_IMAGE_NAME", images["healthy"])
    mine = sandbox_local.start(sync=False, name=new_name())
    other = sandbox_local.start(sync=False, name=new_name())
    assert local_docker.cleanup(docker_here(), prefix=mine.name) == [mine.name]
    assert local_docker.cleanup(docker_here(), prefix=mine.name) == []
    assert not _exists(mine.name)
    assert _inspect(other.name, "{{.State.Running}}").strip() == "true"
    assert httpx.get(f"{other.url}/api/health").json() == {"ok": True}


def test_sandbox_down_all_removes_every_pipeline_sandbox_and_nothing_else(
    own_engine: OwnEngine, tmp_path: Path
) -> None:
    """`sandbox_down -- --all` on an engine of the tests' own: it would take a developer's
    sandboxes too, so it never runs against theirs."""
    tag = f"{TEST_IMAGE_NAMESPACE}down-all:{uuid.uuid4().hex[:8]}"
    shutil.copy("/bin/busybox", tmp_path / "busybox")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY busybox /bin/busybox\n")
    own_engine.docker("buildx", "build", "-q", "-t", tag, str(tmp_path))
    prefix = f"{TEST_NAME_PREFIX}down-{uuid.uuid4().hex[:6]}-"
    labelled = [f"{prefix}a", f"{prefix}b"]
    foreign = f"{prefix}foreign"
    try:
        for name in labelled:
            label = f"{local_docker.LABEL}=1"
            own_engine.docker("create", "--name", name, "--label", label, tag, "/bin/busybox")
        own_engine.docker("create", "--name", foreign, tag, "/bin/busybox")
        done = run_pipeline("sandbox_down", "--all", env=own_engine.env())
        assert done.returncode == 0, done.output[-2000:]
        assert f"removed 2 sandbox container(s): {', '.join(labelled)}" in done.stderr
        left = own_engine.docker("ps", "--all", "--format", "{{.Names}}").stdout.split()
        assert sorted(n for n in left if n.startswith(prefix)) == [foreign]
    finally:
        own_engine.docker("rm", "-f", *labelled, foreign, check=False)
        own_engine.docker("image", "rm", tag, check=False)


def test_dev_sync_mounts(
    images: dict[str, str],
    sandbox_env: pytest.MonkeyPatch,
    tmp_path: Path,
    new_name: Callable[[], str],
) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "marker.txt").write_text("from the host\n")
    gitdir, commondir = tmp_path / "gitdir", tmp_path / "commondir"
    gitdir.mkdir()
    commondir.mkdir()
    sandbox_env.setenv("LOCAL_DOCKER_IMAGE_NAME", images["healthy"])
    sandbox_env.setenv("LOCAL_DOCKER_REPO_CHECKOUT", str(checkout))
    sandbox_env.setenv("LOCAL_DOCKER_GIT_DIR", str(gitdir))
    sandbox_env.setenv("LOCAL_DOCKER_COMMON_DIR", str(commondir))
    sandbox = sandbox_local.start(name=new_name())
    assert containers.execute(
        docker_here(), sandbox.name, ["cat", "/host/repo-checkout/marker.txt"]
    ).strip() == ("from the host")


# Each way a process could create something: a new file, a directory, a redirect into an
# existing file's neighbour, and remounting the mount read-write first (root in the container).
WRITE_ATTEMPTS = (
    "touch {path}/planted",
    "mkdir {path}/hooks-planted",
    "echo x > {path}/config-planted",
    "mount -o remount,rw {path} && touch {path}/planted-after-remount",
)


def test_dev_sync_mounts_are_read_only_even_for_root(
    images: dict[str, str],
    sandbox_env: pytest.MonkeyPatch,
    tmp_path: Path,
    new_name: Callable[[], str],
) -> None:
    """A process in the sandbox cannot plant a hook or a config in the host's checkout or .git."""
    paths = {
        "/host/repo-checkout": tmp_path / "checkout",
        "/host/gitdir": tmp_path / "common" / "worktrees" / "wt",
        "/host/commondir": tmp_path / "common",
    }
    for host in paths.values():
        (host / "hooks").mkdir(parents=True)
    sandbox_env.setenv("LOCAL_DOCKER_IMAGE_NAME", images["healthy"])
    sandbox_env.setenv("LOCAL_DOCKER_REPO_CHECKOUT", str(paths["/host/repo-checkout"]))
    sandbox_env.setenv("LOCAL_DOCKER_GIT_DIR", str(paths["/host/gitdir"]))
    sandbox_env.setenv("LOCAL_DOCKER_COMMON_DIR", str(paths["/host/commondir"]))
    before = {path: sorted(p.name for p in path.rglob("*")) for path in paths.values()}
    sandbox = sandbox_local.start(name=new_name())
    assert containers.execute(docker_here(), sandbox.name, ["id", "-u"]).strip() == "0"
    refused = []
    for inside in paths:
        for attempt in WRITE_ATTEMPTS:
            script = attempt.format(path=inside) + "; echo rc=$?"
            # `sh -c` so a refusal is an exit code, not an exception; the hooks/ dir too.
            for target in (inside, f"{inside}/hooks"):
                out = containers.execute(
                    docker_here(), sandbox.name, ["sh", "-c", script.replace(inside, target)]
                )
                assert not out.strip().endswith("rc=0"), f"{attempt} succeeded on {target}"
                refused.append(target)
    assert len(refused) == len(paths) * len(WRITE_ATTEMPTS) * 2
    after = {path: sorted(p.name for p in path.rglob("*")) for path in paths.values()}
    assert after == before, "something was created on the host through a dev-sync mount"
    mounts = containers.execute(docker_here(), sandbox.name, ["cat", "/proc/mounts"])
    for inside in paths:
        line = next(m for m in mounts.splitlines() if m.split()[1] == inside)
        assert line.split()[3].split(",")[0] == "ro", line


def test_unhealthy_sandbox_is_removed_and_logs_shown(
    images: dict[str, str], sandbox_env: pytest.MonkeyPatch, new_name: Callable[[], str]
) -> None:
    sandbox_env.setenv("LOCAL_DOCKER_IMAGE_NAME", images["broken"])
    sandbox_env.setenv("LOCAL_DOCKER_HEALTH_TIMEOUT", "3")
    name = new_name()
    with pytest.raises(SandboxError) as caught:
        sandbox_local.start(sync=False, name=name)
    error = caught.value
    assert "did not become healthy within 3 s" in str(error)
    assert any("broken-start-marker" in line for line in error.details)
    assert any("daemon-log-marker" in line for line in error.details)
    assert not _exists(name)  # nothing half-done left behind


def test_missing_image_is_one_line(sandbox_env: pytest.MonkeyPatch) -> None:
    absent = f"{TEST_IMAGE_NAMESPACE}absent:nope"
    sandbox_env.setenv("LOCAL_DOCKER_IMAGE_NAME", absent)
    with pytest.raises(SandboxError, match=f"{absent} is not in the local engine"):
        sandbox_local.start(sync=False)


@pytest.mark.parametrize("volume", ["/home/me/store", "-v", "a", "store:rw"])
def test_a_pnpm_volume_that_is_no_volume_name_is_one_line(
    volume: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A path would make it a bind mount of the host's directory.
    monkeypatch.setenv("LOCAL_DOCKER_PNPM_VOLUME", volume)
    with pytest.raises(ConfigError) as caught:
        load(LocalDockerSettings)
    line = str(caught.value)
    assert line.startswith(f"LOCAL_DOCKER_PNPM_VOLUME={volume!r} is not valid: expected a Docker")
    assert "\n" not in line


def test_down_refuses_foreign_containers(
    images: dict[str, str], sandbox_env: pytest.MonkeyPatch
) -> None:
    name = f"{TEST_NAME_PREFIX}foreign-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        ["docker", "run", "-d", "--name", name, images["healthy"]], capture_output=True, check=True
    )
    try:
        with pytest.raises(SandboxError, match="not made by the sandbox pipeline"):
            local_docker.stop(docker_here(), name)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


@pytest.mark.parametrize(
    ("configured", "present", "expected"),
    [
        ("x/y:z", {"x/y:z", "r/s:local"}, "x/y:z"),
        ("x/y:z", {"r/s:local"}, None),
        (None, {"r/s:local", "r/s:main"}, "r/s:local"),
        (None, {"r/s:main"}, "r/s:main"),
        (None, set(), None),
    ],
)
def test_pick_image(
    configured: str | None,
    present: set[str],
    expected: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOCAL_DOCKER_IMAGE_NAME", raising=False)
    settings = LocalDockerSettings(LOCAL_DOCKER_IMAGE_NAME=configured)
    asked: list[str] = []

    def exists(ref: str) -> bool:
        asked.append(ref)
        return ref in present

    assert pick_image(image_candidates(settings.image_name, "r/s"), exists) == expected
    assert len(asked) == len(set(asked))  # never the same image twice
