"""A whole release of the tiny fixture image, on the real engine, the tests' own registry and the
Daytona emulator (which fails digest references and lends no credentials, as Daytona does),
through the sessions users and CI run:

build once (`snapshot_push`) → the image test pulls and boots exactly the pushed digest → a
re-run reuses `:sha-<sha>` → `snapshot_push -- --from <sha>` moves `:main` to that digest with
no build, although HEAD's Dockerfile fails → `snapshot_daytona` registers the verified tag and
Daytona pulls that digest → `snapshot_stage -- --from` promotes and rolls back by tag; and a
shallow clone of a private repository fails the release in one line instead of holding `:main`.

It stays in the engine tier: the emulator is started here, not through the `daytona_emulator`
fixture (whose marker belongs to the Daytona tier).
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from daytona_emulator import EmulatorServer
from daytona_emulator.knobs import SettingsPatch
from pipeline.errors import RegistryError
from pipeline.registry.client import MANIFEST_TYPES
from pipeline.registry.server import LocalRegistry
from pipeline.registry.tags import put_tag
from pipeline.settings.build import BuildSettings
from tests.conftest import FixtureRepo, PipelineRun, make_fixture_repo, run_pipeline
from tests.helpers.emulator import EMULATOR_KEY, api_client, set_registry_entry, shared_emulator
from tests.helpers.given_image import pull_given

pytestmark = pytest.mark.usefixtures("engine")

BROKEN = "FROM scratch\nRUN exit 1\n"  # a Dockerfile HEAD can no longer build


@pytest.fixture
def release_emulator(
    pytestconfig: pytest.Config, registry: LocalRegistry
) -> Iterator[EmulatorServer]:
    """The session's emulator, its organization holding a registry entry for the tests'
    registry (as `nox -s daytona_registry` makes one), with short dwell times."""
    server = shared_emulator(pytestconfig)
    server.reset()
    set_registry_entry(server, registry.host, registry.username, registry.password)
    server.knobs.update_settings(
        SettingsPatch(timings={"pending_seconds": 0.05, "pulling_seconds": 0.05})
    )
    yield server
    server.reset()


@dataclass
class Release:
    repo: FixtureRepo
    registry: LocalRegistry
    emulator: EmulatorServer
    tmp: Path
    docker_config: Path

    @property
    def name(self) -> str:
        return self.repo.repository.split("/", 1)[1]

    def env(self, path: Path | None = None, **extra: str) -> dict[str, str]:
        report = self.tmp / "report.json"
        report.unlink(missing_ok=True)
        return {
            **self.repo.env(),
            **({"SANDBOX_BUILD_CONTEXT": str(path)} if path else {}),
            "REGISTRY_USERNAME": self.registry.username,
            "REGISTRY_PASSWORD": self.registry.password,
            "DAYTONA_API_URL": self.emulator.base_url,
            "DAYTONA_API_KEY": EMULATOR_KEY,
            "PIPELINE_REPORT": str(report),
            **extra,
        }

    def run(self, command: str, *args: str, path: Path | None = None, **extra: str) -> PipelineRun:
        done = run_pipeline(
            command, *args, env=self.env(path, **extra), docker_config=self.docker_config
        )
        assert self.registry.password not in done.output
        return done

    def section(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads((self.tmp / "report.json").read_text())[name]
        return found

    def digest(self, tag: str) -> str | None:
        with self.registry.client() as client:
            head = client.head(
                f"/v2/{self.name}/manifests/{tag}", headers={"Accept": ", ".join(MANIFEST_TYPES)}
            )
        return str(head.headers["Docker-Content-Digest"]) if head.status_code == 200 else None

    def snapshot(self, name: str) -> dict[str, Any]:
        with api_client(self.emulator) as client:
            found: dict[str, Any] = client.get(f"/snapshots/{name}").json()
        return found


def commit(repo: FixtureRepo, dockerfile: str, message: str) -> str:
    (repo.path / "sandbox" / "Dockerfile").write_text(dockerfile)
    repo.git("add", "-A")
    repo.git("-c", "user.email=ci@example.invalid", "-c", "user.name=ci", "commit", "-qm", message)
    return repo.sha


def pulled_hex(snapshot: dict[str, Any]) -> str:
    ref = str(snapshot["ref"])
    assert ref.endswith(":daytona") and "/daytona-" in ref, ref
    return ref.rsplit("/daytona-", 1)[1].removesuffix(":daytona")


@pytest.fixture
def release(
    registry: LocalRegistry,
    release_emulator: EmulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Release]:
    repo = make_fixture_repo(tmp_path / "repo", registry.host)
    config = tmp_path / "docker-config"
    config.mkdir()
    # what the image test's pull reads (the one credential resolver, as the pipeline)
    for key, value in {
        "SANDBOX_IMAGE_REPOSITORY": repo.repository,
        "REGISTRY_USERNAME": registry.username,
        "REGISTRY_PASSWORD": registry.password,
        "DOCKER_CONFIG": str(config),
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("GITHUB_TOKEN", "GITHUB_ACTOR", "DOCKER_HOST", "BUILDX_BUILDER"):
        monkeypatch.delenv(key, raising=False)
    yield Release(repo, registry, release_emulator, tmp_path, config)
    listed = subprocess.run(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repo.repository],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    refs = [ref for ref in listed if not ref.endswith(":<none>")]
    digests = subprocess.run(
        ["docker", "image", "ls", "-q", repo.repository], capture_output=True, text=True
    ).stdout.split()
    if refs or digests:
        subprocess.run(["docker", "image", "rm", "-f", *refs, *digests], capture_output=True)


def test_a_fixture_release_ships_the_digest_its_image_test_booted(release: Release) -> None:
    sha = release.repo.sha

    # 1. Build once: :sha-<sha> and the cache, never :main.
    built = release.run("snapshot_push")
    assert built.returncode == 0, built.output[-3000:]
    digest = release.section("build")["digest"]
    assert digest == release.digest(f"sha-{sha}")
    assert release.registry.tags(release.name) == ["buildcache", f"sha-{sha}"]

    # 2. The image test: pull exactly that digest and boot it.
    booted = pull_given(f"{release.repo.repository}@{digest}")
    ran = subprocess.run(
        ["docker", "run", "--rm", booted.reference, "/bin/sh", "-c", "echo $GIT_SHA"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout.strip() == sha and booted.digest == digest

    # 3. A re-run (a fresh runner would build another digest) reuses the tag: nothing pushed.
    again = release.run("snapshot_push")
    assert again.returncode == 0, again.output[-3000:]
    reused = release.section("build")
    assert reused["reused"] is True and reused["pushed"] is False and reused["digest"] == digest
    assert "docker buildx build" not in again.output
    assert release.digest(f"sha-{sha}") == digest

    # 4. HEAD moves on to a Dockerfile that fails; :main still moves to the tested digest,
    #    without a build (and without reading the Dockerfile).
    head = commit(release.repo, BROKEN, "broken")
    failing = release.run("snapshot_push")
    assert failing.returncode == 5, failing.output[-2000:]  # HEAD really cannot build
    moved = release.run("snapshot_push", "--from", sha, SANDBOX_IMAGE_DIGEST=digest)
    assert moved.returncode == 0, moved.output[-3000:]
    assert "docker buildx build" not in moved.output
    assert release.section("build")["main_moved"] is True
    assert release.digest("main") == digest == booted.digest
    assert head != sha

    # 5. Daytona gets the verified tag, and says it pulled that digest.
    made = release.run(
        "snapshot_daytona", GIT_SHA=sha, SANDBOX_IMAGE_DIGEST=digest, SANDBOX_SNAPSHOT_TIMEOUT="60"
    )
    assert made.returncode == 0, made.output[-3000:]
    snapshot = release.snapshot(f"iterate-sandbox-{sha}")
    assert snapshot["state"] == "active"
    assert snapshot["imageName"] == f"{release.repo.repository}:sha-{sha}"
    assert f"sha256:{pulled_hex(snapshot)}" == digest == release.digest("main")

    # 6. Promotion and rollback by tag, against an emulator that fails digest references.
    promoted = release.run("snapshot_stage", "--from", sha, APP_STAGE="prd")
    assert promoted.returncode == 0, promoted.output[-3000:]
    first = release.section("snapshot")
    assert first["image"] == f"{release.repo.repository}:sha-{sha}"
    assert f"sha256:{pulled_hex(release.snapshot(first['name']))}" == digest
    time.sleep(1.1)  # stage snapshot names carry the second
    rolled = release.run("snapshot_stage", "--from", first["name"], APP_STAGE="prd")
    assert rolled.returncode == 0, rolled.output[-3000:]
    second = release.section("snapshot")
    assert second["name"] != first["name"] and second["image_digest"] == digest
    assert f"sha256:{pulled_hex(release.snapshot(second['name']))}" == digest
    with api_client(release.emulator) as client:  # what the pipeline no longer sends
        sent = client.post(
            "/snapshots",
            json={"name": "by-digest", "imageName": f"{release.repo.repository}@{digest}"},
        )
        assert sent.status_code == 200
    deadline = time.monotonic() + 30
    while (state := release.snapshot("by-digest")["state"]) not in ("error", "active"):
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    assert state == "error"
    assert "invalid reference format" in release.snapshot("by-digest")["errorReason"]


class _Private(http.server.BaseHTTPRequestHandler):
    """A git host that wants credentials for everything (a private repository)."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="private"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def private_remote() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Private)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/iterate/private.git"
    server.shutdown()
    server.server_close()


def test_a_private_shallow_clone_fails_the_release_in_one_line(
    release: Release, private_remote: str
) -> None:
    """:main points at A; the release of a newer C runs in a depth-1 clone whose origin wants
    credentials it does not have: git cannot tell whether C is older than A. That used to be a
    warning and a green job that left :main where it was; now the release fails, saying why and
    what to change, and :main is untouched. The full history then moves it, and A again is held."""
    a = release.repo.sha
    assert release.run("snapshot_push").returncode == 0
    assert release.run("snapshot_push", "--from", a).returncode == 0
    main_at_a = release.digest("main")
    text = (release.repo.path / "sandbox" / "Dockerfile").read_text()
    c = commit(release.repo, text.replace("ENV GIT_SHA", "ENV C=1\nENV GIT_SHA"), "c")
    assert release.run("snapshot_push").returncode == 0
    clone = release.tmp / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{release.repo.path}", str(clone)],
        check=True,
    )
    subprocess.run(["git", "-C", str(clone), "remote", "set-url", "origin", private_remote])

    held = release.run("snapshot_push", "--from", c, path=clone)

    assert held.returncode == 4, held.output[-3000:]
    line = held.error_line()
    assert f"cannot tell whether {c[:12]} is older than {a[:12]}" in line
    assert "`:main` was not moved" in line and "fetch-depth: 0" in line
    assert release.digest("main") == main_at_a
    forward = release.run("snapshot_push", "--from", c)  # the whole history can tell
    assert forward.returncode == 0 and release.section("build")["main_moved"] is True
    assert release.digest("main") == release.digest(f"sha-{c}")
    back = release.run("snapshot_push", "--from", a)  # an older release: :main stays, green
    assert back.returncode == 0 and release.section("build")["main_moved"] is False
    assert "never moves backwards" in back.stderr
    assert release.digest("main") == release.digest(f"sha-{c}")


def test_promoting_needs_no_engine_and_refuses_a_digest_that_moved(release: Release) -> None:
    sha = release.repo.sha
    assert release.run("snapshot_push").returncode == 0
    digest = release.digest(f"sha-{sha}")
    other = "sha256:" + "0" * 64
    refused = release.run("snapshot_push", "--from", sha, SANDBOX_IMAGE_DIGEST=other)
    assert refused.returncode == 7, refused.output[-2000:]
    line = refused.error_line()
    assert other in line and str(digest) in line
    assert release.digest("main") is None
    empty = release.run("snapshot_push", "--from", sha, SANDBOX_IMAGE_DIGEST="")
    assert empty.returncode == 2 and "set but empty" in empty.error_line()
    # no engine at all: DOCKER_HOST points nowhere, and the move still works
    ok = release.run("snapshot_push", "--from", sha, DOCKER_HOST="unix:///nonexistent.sock")
    assert ok.returncode == 0, ok.output[-2000:]
    assert release.digest("main") == digest
    # the writer itself never moves a tag that names a commit, and writes nothing twice
    settings = BuildSettings()
    assert digest is not None
    assert put_tag(release.repo.repository, digest, f"sha-{sha}", settings, may_move=False) is False
    with pytest.raises(RegistryError, match="is never moved"):
        put_tag(release.repo.repository, other, f"sha-{sha}", settings, may_move=False)
    assert release.digest(f"sha-{sha}") == digest
