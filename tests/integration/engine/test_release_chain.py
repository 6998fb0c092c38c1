"""The release chain on the real engine, buildx and a local registry with htpasswd auth:
the push credential lives only for the push, the registry's digest is the one buildx reports,
a re-pushed tag is caught by its digest, and `:main` never moves backwards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from pipeline.build.run import push_credentials
from pipeline.docker.cli import find_docker
from pipeline.docker.endpoint import Location
from pipeline.docker.login import login
from pipeline.errors import RegistryError
from pipeline.registry.client import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    image_labels,
    image_revision,
    resolve_digest,
    verify_digest,
)
from pipeline.registry.credentials import Credentials
from pipeline.registry.server import LocalRegistry
from pipeline.registry.tags import main_tag_move
from pipeline.settings.build import BuildSettings
from tests.conftest import ROOT, PipelineRun, make_fixture_repo, run_pipeline

pytestmark = pytest.mark.usefixtures("engine")
REVISION = "org.opencontainers.image.revision"
TEMP_PREFIX = "sandbox-pipeline-docker-config-"


@pytest.fixture
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's Docker config for these tests: empty, so only our login can push."""
    config = tmp_path / "user-docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    return config


@pytest.fixture
def settings(
    registry: LocalRegistry, user_config: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BuildSettings]:
    for key in ("GITHUB_TOKEN", "GITHUB_ACTOR", "DOCKER_HOST", "BUILDX_BUILDER"):
        monkeypatch.delenv(key, raising=False)
    repository = f"{registry.host}/iterate-test/release-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("SANDBOX_IMAGE_REPOSITORY", repository)
    monkeypatch.setenv("REGISTRY_USERNAME", registry.username)
    monkeypatch.setenv("REGISTRY_PASSWORD", registry.password)
    yield BuildSettings()
    # The docker driver also keeps a pushed image in the engine: remove this test's tags only.
    listed = subprocess.run(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repository],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if listed:
        subprocess.run(["docker", "image", "rm", *listed], capture_output=True, check=False)


def push_image(
    context: Path,
    tag: str,
    config: Path,
    *,
    content: str,
    revision: str | None = None,
    provenance: bool = False,
) -> str:
    """Build a one-file image and push it with `docker --config CONFIG buildx build --push`,
    the way the build session pushes; returns buildx's `containerimage.digest`."""
    from python_on_whales import DockerClient

    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text("FROM scratch\nCOPY content /content\n")
    (context / "content").write_text(content)
    metadata = context / "metadata.json"
    DockerClient(config=config).buildx.build(
        context,
        tags=[tag],
        labels={REVISION: revision or content},
        push=True,
        provenance=provenance,
        metadata_file=metadata,
        progress=False,
    )
    digest: str = json.loads(metadata.read_text())["containerimage.digest"]
    return digest


def temp_configs(where: Path | None = None) -> set[str]:
    """Temporary Docker configs in `where` (a test's own temp directory: other test sessions,
    or xdist workers, log in and out in the shared one meanwhile)."""
    return {p for p in os.listdir(where or tempfile.gettempdir()) if p.startswith(TEMP_PREFIX)}


@pytest.mark.parametrize("provenance", [False, True], ids=["manifest", "index"])
def test_pushed_with_a_temporary_login_and_resolved_to_buildx_digest(
    settings: BuildSettings,
    registry: LocalRegistry,
    user_config: Path,
    tmp_path: Path,
    provenance: bool,
) -> None:
    image = f"{settings.image_repository}:sha-1"
    with push_credentials(settings) as config:
        assert config is not None and config.is_dir()
        auths = json.loads((config / "config.json").read_text())["auths"]
        assert registry.host in auths  # logged in right before the push…
        built = push_image(tmp_path / "ctx", image, config, content="one", provenance=provenance)
    assert not config.exists()  # …and the credential is gone right after
    assert not (user_config / "config.json").exists()  # the user's config never had it
    # What buildx reports as containerimage.digest is what the registry serves for the tag
    # (for an index: the index digest; Daytona and SANDBOX_IMAGE_DIGEST use this one).
    assert resolve_digest(image, settings) == built
    with registry.client() as client:
        served = client.get(
            f"/v2/{image.split('/', 1)[1].replace(':', '/manifests/')}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
    is_index = served.json()["mediaType"] in INDEX_TYPES
    assert is_index is provenance  # both shapes are really exercised
    labels = image_labels(image, settings)  # through the index to the amd64 manifest, if any
    assert labels is not None and labels[REVISION] == "one"
    other_platform = image_labels(image, settings, platform="linux/s390x")
    assert other_platform == labels  # the labels of any platform's image, not an error


def test_a_tag_pushed_again_is_caught_by_its_digest(
    settings: BuildSettings, tmp_path: Path
) -> None:
    image = f"{settings.image_repository}:sha-2"
    with push_credentials(settings) as config:
        assert config is not None
        first = push_image(tmp_path / "a", image, config, content="first build")
        assert verify_digest(image, first, settings) == first
        second = push_image(tmp_path / "b", image, config, content="a later push")
    assert first != second
    with pytest.raises(RegistryError) as caught:
        verify_digest(image, first, settings)
    line = str(caught.value)
    assert first in line and second in line and "pushed again" in line


def test_a_refused_login_leaves_no_config_behind(
    settings: BuildSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REGISTRY_PASSWORD", "wrong-password-123")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = temp_configs()
    with (
        pytest.raises(RegistryError, match="refused") as caught,
        push_credentials(BuildSettings()),
    ):
        pytest.fail("the block must not run without a login")
    assert "wrong-password-123" not in str(caught.value)
    assert temp_configs() == before


CHILD = """
import sys, time
from pipeline.build.run import push_credentials
from pipeline.settings.build import BuildSettings
with push_credentials(BuildSettings()) as config:
    print(config, flush=True)
    time.sleep(60)
"""


def test_sigterm_during_the_push_deletes_the_credential(settings: BuildSettings) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        config = Path(child.stdout.readline().strip())
        assert (config / "config.json").is_file()
        child.send_signal(signal.SIGTERM)  # what a cancelled CI job gets
        assert child.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert not config.exists()


def commit(path: Path, name: str) -> str:
    (path / name).write_text(name)
    git = ["git", "-C", str(path), "-c", "user.email=ci@example.invalid", "-c", "user.name=ci"]
    subprocess.run([*git, "add", name], check=True)
    subprocess.run([*git, "commit", "-qm", name], check=True)
    return subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_main_never_moves_backwards(
    settings: BuildSettings, registry: LocalRegistry, tmp_path: Path
) -> None:
    """Commits A ← B ← C; `:main` was pushed from B (with the revision label the build writes)."""
    repo = make_fixture_repo(tmp_path / "repo", registry.host)
    a = repo.sha
    b = commit(repo.path, "b.txt")
    c = commit(repo.path, "c.txt")
    main = f"{settings.image_repository}:main"
    with push_credentials(settings) as config:
        assert config is not None
        push_image(tmp_path / "ctx", main, config, content="b", revision=b)
    assert image_revision(main, settings) == b

    older = main_tag_move(main, a, repo.path, settings)  # a re-run of an older release
    assert not older.move
    assert "ancestor" in older.reason and "never moves backwards" in older.reason

    newer = main_tag_move(main, c, repo.path, settings)
    assert newer.move, newer.reason

    assert main_tag_move(main, b, repo.path, settings).move  # the same commit, re-pushed
    fresh = main_tag_move(f"{settings.image_repository}-none:main", a, repo.path, settings)
    assert fresh.move and "does not exist yet" in fresh.reason


# --- through the build session ------------------------------------------------------------------


def _main_digest(registry: LocalRegistry, name: str) -> str:
    with registry.client() as client:
        head = client.head(
            f"/v2/{name}/manifests/main", headers={"Accept": ", ".join(MANIFEST_TYPES)}
        )
    assert head.status_code == 200, head.status_code
    return str(head.headers["Docker-Content-Digest"])


def test_snapshot_push_of_an_older_commit_leaves_main_and_no_credential(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    """Commits A ← B: `snapshot_push` at B pushes `:sha-B` only, `--from B` moves `:main` to
    it; at A (a copy checked out at A, as an old release job's checkout is) `:sha-A` is pushed
    and `--from A` leaves `:main` (never backwards). No push leaves its login in the user's
    Docker config, nor a temporary one behind."""
    repo = make_fixture_repo(tmp_path / "repo", registry.host)
    a = repo.sha
    b = commit(repo.path, "b.txt")
    user = tmp_path / "user-docker-config"
    user.mkdir()
    name = repo.repository.split("/", 1)[1]
    temp = tmp_path / "tmp"
    temp.mkdir()
    configs = temp_configs(temp)

    def push(path: Path, tag: str, *args: str) -> tuple[PipelineRun, dict[str, object], list[str]]:
        report, outputs = tmp_path / f"report-{tag}.json", tmp_path / f"output-{tag}"
        env = {
            **repo.env(SANDBOX_BUILD_CONTEXT=str(path)),
            "SANDBOX_DOCKERFILE": str(path / "sandbox" / "Dockerfile"),
            "REGISTRY_USERNAME": registry.username,
            "REGISTRY_PASSWORD": registry.password,
            "TMPDIR": str(temp),
            "PIPELINE_REPORT": str(report),
            "GITHUB_OUTPUT": str(outputs),
        }
        run = run_pipeline("snapshot_push", *args, env=env, docker_config=user)
        assert run.returncode == 0, run.output[-3000:]
        assert registry.password not in run.output
        built = json.loads(report.read_text())["build"]
        return run, built, outputs.read_text().splitlines()

    try:
        _, at_b, _ = push(repo.path, "b")
        assert registry.tags(name) == ["buildcache", f"sha-{b}"]  # a build never moves :main
        _, moved, lines = push(repo.path, "b-main", "--from", b)
        assert moved["main_moved"] is True and "main_moved=true" in lines
        main_at_b = _main_digest(registry, name)
        assert main_at_b == at_b["digest"] == moved["digest"]

        older = tmp_path / "old-checkout"
        shutil.copytree(repo.path, older, symlinks=True)
        subprocess.run(["git", "-C", str(older), "checkout", "-q", a], check=True)
        push(older, "a")
        run, at_a, lines = push(older, "a-main", "--from", a)
        assert sorted(registry.tags(name)) == sorted(["buildcache", "main", f"sha-{a}", f"sha-{b}"])
        assert _main_digest(registry, name) == main_at_b  # :main never moves backwards
        assert at_a["main_moved"] is False and "main_moved=false" in lines
        assert "never moves backwards" in str(at_a["main_reason"])
        assert "never moves backwards" in run.stderr  # a warning, not an error
    finally:
        subprocess.run(
            ["docker", "image", "rm", *(f"{repo.repository}:{t}" for t in ("main", f"sha-{a}",
             f"sha-{b}"))], capture_output=True, check=False,
        )  # fmt: skip
    # The login lived in a temporary config for each push, and nowhere after.
    assert temp_configs(temp) == configs
    for path in user.rglob("*"):
        if path.is_file():
            assert registry.password not in path.read_text(errors="replace"), path


class _Silent(socketserver.BaseRequestHandler):
    """Accepts a connection and says nothing: a registry behind a black-holing proxy."""

    def handle(self) -> None:
        time.sleep(30)


def test_a_login_that_hangs_is_stopped_in_python(settings: BuildSettings, tmp_path: Path) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Silent)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    credentials = Credentials(username="u", password=SecretStr("hang-secret-77"), source="test")
    config = tmp_path / "config"
    config.mkdir()
    began = time.monotonic()
    try:
        with pytest.raises(RegistryError) as caught:
            login(find_docker(Location(), config), host, credentials, timeout_s=3)
    finally:
        server.shutdown()
        server.server_close()
    assert time.monotonic() - began < 20
    line = str(caught.value)
    assert "did not finish within 3 s" in line and host in line and "\n" not in line
    assert "hang-secret-77" not in line
