"""The build core on a real engine, real buildx and a real registry with htpasswd auth."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pipeline.registry.server import LocalRegistry
from tests.conftest import FixtureRepo, image_exists, make_fixture_repo, run_pipeline
from tests.helpers import engines
from tests.helpers.engines import OwnEngine, own_engine_problem

pytestmark = pytest.mark.usefixtures("engine")


def _inspect(reference: str) -> dict[str, object]:
    done = subprocess.run(
        ["docker", "image", "inspect", reference], capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout)[0]
    return result


def _push_env(repo: FixtureRepo, registry: LocalRegistry, **extra: str) -> dict[str, str]:
    return repo.env(
        REGISTRY_USERNAME=registry.username, REGISTRY_PASSWORD=registry.password, **extra
    )


def _name(repo: FixtureRepo) -> str:
    return repo.repository.split("/", 1)[1]


def test_clean_tree_is_loaded_as_local_and_sha(fixture_repo: FixtureRepo, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    run = run_pipeline("snapshot_local", env=fixture_repo.env(PIPELINE_REPORT=str(report)))
    assert run.returncode == 0, run.output
    sha = fixture_repo.sha
    for tag in (f"{fixture_repo.repository}:local", f"{fixture_repo.repository}:sha-{sha}"):
        assert image_exists(tag), tag
    config = _inspect(f"{fixture_repo.repository}:sha-{sha}")["Config"]
    assert isinstance(config, dict)
    assert f"GIT_SHA={sha}" in config["Env"]
    assert config["Labels"]["org.opencontainers.image.revision"] == sha
    assert "org.opencontainers.image.created" in config["Labels"]
    built = json.loads(report.read_text())["build"]
    assert built["sha"] == sha and built["dirty"] is False and built["pushed"] is False
    assert built["digest"].startswith("sha256:")
    assert built["steps_total"] == 3


def test_dirty_tree_gets_dirty_tag(fixture_repo: FixtureRepo) -> None:
    (fixture_repo.path / "scratch.txt").write_text("untracked counts as dirty\n")
    run = run_pipeline("snapshot_local", env=fixture_repo.env())
    assert run.returncode == 0, run.output
    assert image_exists(f"{fixture_repo.repository}:sha-{fixture_repo.sha}-dirty")
    assert not image_exists(f"{fixture_repo.repository}:sha-{fixture_repo.sha}")


def test_unchanged_rebuild_is_skipped_and_a_changed_one_reuses_every_step(
    fixture_repo: FixtureRepo, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    env = fixture_repo.env(PIPELINE_REPORT=str(report))
    assert run_pipeline("snapshot_local", env=env).returncode == 0
    again = run_pipeline("snapshot_local", env=env)
    assert again.returncode == 0, again.output
    assert json.loads(report.read_text())["build"]["skipped"] is True
    (fixture_repo.path / "notes.txt").write_text("sent to buildx, copied by no step\n")
    changed = run_pipeline("snapshot_local", env=env)
    assert changed.returncode == 0, changed.output
    built = json.loads(report.read_text())["build"]
    assert built["steps_cached"] == built["steps_total"] == 3


def test_push_puts_sha_and_buildcache_in_registry_not_local(
    fixture_repo: FixtureRepo, registry: LocalRegistry, docker_config: Path, tmp_path: Path
) -> None:
    report, outputs = tmp_path / "report.json", tmp_path / "github_output"
    env = _push_env(
        fixture_repo,
        registry,
        PUSH="1",
        PIPELINE_REPORT=str(report),
        GITHUB_OUTPUT=str(outputs),
    )
    run = run_pipeline("snapshot_local", env=env, docker_config=docker_config)
    assert run.returncode == 0, run.output
    sha = fixture_repo.sha
    assert registry.tags(_name(fixture_repo)) == ["buildcache", f"sha-{sha}"]
    assert image_exists(f"{fixture_repo.repository}:local")  # tagged locally, never pushed
    built = json.loads(report.read_text())["build"]
    assert built["cache_import"] == "empty"  # first build: no cache yet, and no warning
    assert "warning" not in run.stderr
    assert built["cache_export"] == "ok"
    with registry.client() as client:
        head = client.head(
            f"/v2/{_name(fixture_repo)}/manifests/sha-{sha}",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
    assert head.headers["Docker-Content-Digest"] == built["digest"]
    lines = outputs.read_text().splitlines()
    assert f"digest={built['digest']}" in lines
    assert f"image={fixture_repo.repository}:sha-{sha}" in lines
    assert registry.password not in run.output


def test_registry_cache_gives_every_step_after_prune(
    fixture_repo: FixtureRepo,
    registry: LocalRegistry,
    docker_config: Path,
    tmp_path: Path,
    own_engine: OwnEngine,
) -> None:
    # The prune empties an engine of the tests' own, never the user's build cache.
    own_engine.reach_host_port(int(registry.host.rsplit(":", 1)[1]))
    report = tmp_path / "report.json"
    env = _push_env(
        fixture_repo, registry, PUSH="1", PIPELINE_REPORT=str(report), **own_engine.env()
    )
    assert run_pipeline("snapshot_local", env=env, docker_config=docker_config).returncode == 0
    own_engine.docker("builder", "prune", "-af")
    warm = run_pipeline("snapshot_local", env=env, docker_config=docker_config)
    assert warm.returncode == 0, warm.output
    built = json.loads(report.read_text())["build"]
    assert built["cache_import"] == "hit"
    assert built["steps_cached"] == built["steps_total"] == 3


def test_snapshot_push_pushes_the_sha_and_main_only_through_from(
    fixture_repo: FixtureRepo, registry: LocalRegistry, docker_config: Path
) -> None:
    env = _push_env(fixture_repo, registry)
    run = run_pipeline("snapshot_push", env=env, docker_config=docker_config)
    assert run.returncode == 0, run.output
    # :main moves only after the image tests, by `--from` (test_release_fixture.py)
    assert registry.tags(_name(fixture_repo)) == ["buildcache", f"sha-{fixture_repo.sha}"]
    moved = run_pipeline(
        "snapshot_push", "--from", fixture_repo.sha, env=env, docker_config=docker_config
    )
    assert moved.returncode == 0, moved.output
    assert registry.tags(_name(fixture_repo)) == ["buildcache", "main", f"sha-{fixture_repo.sha}"]


def test_ref_push_pushes_only_that_commits_sha_from_a_dirty_checkout(
    fixture_repo: FixtureRepo, registry: LocalRegistry, docker_config: Path, tmp_path: Path
) -> None:
    repo = fixture_repo
    repo.git("checkout", "-q", "-b", "feature")
    (repo.path / "feature.txt").write_text("feature\n")
    repo.git("add", "feature.txt")
    repo.git("-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "f")
    feature = repo.sha
    repo.git("checkout", "-q", "main")
    (repo.path / "sandbox" / "Dockerfile").write_text("FROM scratch\n")  # dirty, not committed
    before = repo.git("status", "--porcelain")
    report = tmp_path / "report.json"
    env = _push_env(repo, registry, SANDBOX_ITERATE_REPO_REF="feature", PIPELINE_REPORT=str(report))
    run = run_pipeline("snapshot_push", env=env, docker_config=docker_config)
    assert run.returncode == 0, run.output
    # A branch's build never becomes what main runs; the dirty checkout is not what was built.
    assert registry.tags(_name(repo)) == ["buildcache", f"sha-{feature}"]
    built = json.loads(report.read_text())["build"]
    assert built["sha"] == feature and built["dirty"] is False and built["branch"] == "feature"
    assert repo.git("status", "--porcelain") == before


def test_snapshot_push_refuses_dirty_tree(
    fixture_repo: FixtureRepo, registry: LocalRegistry, docker_config: Path
) -> None:
    (fixture_repo.path / "sandbox" / "Dockerfile").write_text("FROM scratch\n")
    run = run_pipeline(
        "snapshot_push", env=_push_env(fixture_repo, registry), docker_config=docker_config
    )
    assert run.returncode == 4
    assert "dirty" in run.error_line() and "fix:" in run.error_line()
    assert registry.tags(_name(fixture_repo)) == []


def test_wrong_registry_password_is_one_line_without_the_password(
    fixture_repo: FixtureRepo, registry: LocalRegistry, docker_config: Path
) -> None:
    wrong = "not-the-password-8d1f"
    env = fixture_repo.env(PUSH="1", REGISTRY_USERNAME="tester", REGISTRY_PASSWORD=wrong)
    run = run_pipeline("snapshot_local", env=env, docker_config=docker_config)
    assert run.returncode == 7
    line = run.error_line()
    assert "REGISTRY_USERNAME/REGISTRY_PASSWORD" in line and registry.host in line
    assert wrong not in run.output
    assert registry.tags(_name(fixture_repo)) == []


def test_stopped_engine_is_one_line(fixture_repo: FixtureRepo, tmp_path: Path) -> None:
    socket = tmp_path / "no-engine.sock"
    run = run_pipeline("snapshot_local", env=fixture_repo.env(DOCKER_HOST=f"unix://{socket}"))
    assert run.returncode == 3
    line = run.error_line()
    assert "does not answer" in line and str(socket) in line and "DOCKER_HOST" in line


def _plugin_dirs() -> list[str]:
    return [
        d
        for d in (
            "/usr/libexec/docker/cli-plugins",
            "/usr/lib/docker/cli-plugins",
            "/usr/local/libexec/docker/cli-plugins",
            "/usr/local/lib/docker/cli-plugins",
        )
        if os.path.isdir(d)
    ]


def test_missing_buildx_is_one_line(fixture_repo: FixtureRepo, tmp_path: Path) -> None:
    """Hide the buildx plugin in a private mount namespace: the real CLI then really lacks it.
    A normal user gets there through passwordless sudo, and the pipeline runs as that user
    again (setpriv), with the same environment."""
    problem = own_engine_problem()  # the same needs: unshare, setpriv, root or sudo -n
    if problem:
        pytest.skip(f"hiding the buildx plugin: {problem}")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PUSH", "DOCKER_HOST")}
    env.update(fixture_repo.env(DOCKER_CONFIG=str(tmp_path / "cfg")))
    mounts = " && ".join(f"mount --bind {empty} {d}" for d in _plugin_dirs())
    # back to the caller: uid, gid and groups (the docker group), then exactly this environment
    as_caller = [
        str(engines.tool("setpriv")),
        f"--reuid={os.getuid()}",
        f"--regid={os.getgid()}",
        "--init-groups" if os.geteuid() != 0 else "--keep-groups",
        "env",
        "-i",
        *(f"{k}={v}" for k, v in env.items()),
        sys.executable,
        "-m",
        "pipeline",
        "snapshot_local",
    ]
    done = subprocess.run(
        [
            *([] if os.geteuid() == 0 else ["sudo", "-n"]),
            str(engines.tool("unshare")),
            "-m",
            "sh",
            "-c",
            f'{mounts} && exec "$@"',
            "sh",
            *as_caller,
        ],
        cwd=os.getcwd(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [errors[0]] and "buildx is not installed" in errors[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PUSH", "maybe"), ("SANDBOX_BUILD_PLATFORM", "amd64"), ("GIT_SHA", "abc123")],
)
def test_bad_env_value_is_one_line(fixture_repo: FixtureRepo, variable: str, value: str) -> None:
    run = run_pipeline("snapshot_local", env=fixture_repo.env(**{variable: value}))
    assert run.returncode == 2
    assert f"{variable}='{value}' is not valid" in run.error_line()


def test_build_failure_shows_last_log_lines(tmp_path: Path, registry: LocalRegistry) -> None:
    repo = make_fixture_repo(
        tmp_path / "repo",
        registry.host,
        'FROM scratch\nCOPY sandbox/busybox /bin/sh\nRUN ["/bin/sh", "-c", "echo {nonce}; '
        'echo boom-marker >&2; exit 3"]\n',
    )
    run = run_pipeline("snapshot_local", env=repo.env())
    assert run.returncode == 5
    assert "boom-marker" in run.stderr.split("error: ")[0]  # the tail is printed above the error
    assert "exit code: 3" in run.error_line() or "exit code 3" in run.error_line()


def test_build_timeout_is_one_line(tmp_path: Path, registry: LocalRegistry) -> None:
    repo = make_fixture_repo(
        tmp_path / "repo",
        registry.host,
        "FROM scratch\nCOPY sandbox/busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "sh", "-c", "echo {nonce}; /bin/busybox sleep 60"]\n',
    )
    run = run_pipeline("snapshot_local", env=repo.env(SANDBOX_BUILD_TIMEOUT="3"), timeout=60)
    assert run.returncode == 6
    assert "3 s timeout" in run.error_line() and "SANDBOX_BUILD_TIMEOUT" in run.error_line()


def test_dry_run_touches_nothing(fixture_repo: FixtureRepo, registry: LocalRegistry) -> None:
    env = _push_env(fixture_repo, registry, PUSH="1")
    run = run_pipeline("snapshot_local", "--dry-run", env=env, via_nox=True)
    assert run.returncode == 0, run.output
    sha = fixture_repo.sha
    # nox passes the command's stderr on through its stdout.
    assert f"{fixture_repo.repository}:sha-{sha} (pushed)" in run.output
    assert f"cache to:   {fixture_repo.repository}:buildcache (mode=max)" in run.output
    assert f"build arg:  GIT_SHA={sha}" in run.output
    assert not image_exists(f"{fixture_repo.repository}:local")
    assert registry.tags(_name(fixture_repo)) == []


def test_session_error_is_one_line_through_nox(fixture_repo: FixtureRepo) -> None:
    run = run_pipeline("snapshot_local", env=fixture_repo.env(PUSH="perhaps"), via_nox=True)
    assert run.returncode == 1
    assert "Traceback" not in run.output
    assert "PUSH='perhaps' is not valid" in run.output  # nox passes stderr on via stdout


def test_doctor_checks_credentials(registry: LocalRegistry, fixture_repo: FixtureRepo) -> None:
    good = run_pipeline("doctor", env=_push_env(fixture_repo, registry))
    assert good.returncode == 0, good.output
    assert "ok    registry credentials" in good.stdout and "accepted" in good.stdout
    bad = run_pipeline(
        "doctor", env=fixture_repo.env(REGISTRY_USERNAME="tester", REGISTRY_PASSWORD="nope-123")
    )
    assert bad.returncode == 11  # doctor's own code: it found problems (pipeline/errors.py)
    assert "FAIL  registry credentials" in bad.stdout and "nope-123" not in bad.output


def test_doctor_on_a_machine_that_only_builds_locally(tmp_path: Path) -> None:
    # PATH with only python, git and docker (no gh with a developer's login), an empty Docker
    # config, the default ghcr.io repository and no token: nothing to push with.
    folder = tmp_path / "path"
    folder.mkdir()
    for tool in ("git", "docker"):
        (folder / tool).symlink_to(str(shutil.which(tool)))
    (folder / "python").symlink_to(sys.executable)
    env = {"PATH": str(folder), "SANDBOX_IMAGE_REPOSITORY": "ghcr.io/iterate/sandbox"}
    config = tmp_path / "docker-config"
    config.mkdir()
    local = run_pipeline("doctor", env=env, docker_config=config)
    assert local.returncode == 0, local.output
    assert "note  registry credentials: none for ghcr.io" in local.stdout
    assert "FAIL" not in local.stdout
    pushing = run_pipeline("doctor", env={**env, "PUSH": "1"}, docker_config=config)
    assert pushing.returncode == 11, pushing.output
    assert "FAIL  registry credentials: none for ghcr.io (PUSH=1)" in pushing.stdout


def test_secret_is_not_in_image(
    fixture_repo: FixtureRepo, registry: LocalRegistry, docker_config: Path
) -> None:
    env = _push_env(fixture_repo, registry, PUSH="1")
    assert run_pipeline("snapshot_local", env=env, docker_config=docker_config).returncode == 0
    reference = f"{fixture_repo.repository}:sha-{fixture_repo.sha}"
    history = subprocess.run(
        ["docker", "image", "history", "--no-trunc", reference],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert registry.password not in json.dumps(_inspect(reference)) + history
    with httpx.Client() as client:
        assert client.get(f"{registry.url}/v2/").status_code == 401  # auth really is on
