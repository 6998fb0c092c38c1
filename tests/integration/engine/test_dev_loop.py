"""The dev loop on a real engine: the .dockerignore table against real buildx, the fingerprint
against real image ids and labels, and a real detached background build of the fixture repo.

Images carry the tests' namespace (iterate-test/) and are removed by each test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.background.builds import Status, status
from pipeline.base_image import rootfs as base_rootfs
from pipeline.build.record import REPLAYED
from pipeline.docker import images
from pipeline.rules.base_image_plan import DEFAULT_TAG, RECIPE_LABEL
from pipeline.rules.build_plan import BuildPlan
from pipeline.rules.fingerprint import LABEL
from pipeline.rules.git_facts import GitFacts
from pipeline.sessions import background
from pipeline.settings.build import BuildSettings
from tests.conftest import (
    PIPELINE_VARIABLES,
    TINY_DOCKERFILE,
    FixtureRepo,
    docker_here,
    image_exists,
    make_fixture_repo,
)
from tests.helpers.engines import OwnEngine
from tests.helpers.host_engine import TEST_IMAGE_NAMESPACE
from tests.helpers.plans import fingerprint_build, make_plan
from tests.unit.test_dockerignore import BAD_PATTERNS, CASES, EVERYTHING, make_tree

pytestmark = pytest.mark.usefixtures("engine")
ROOT = Path(__file__).resolve().parents[3]
HOST = "localhost:5999"  # never contacted: images are only loaded, never pushed


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=300, check=check
    )


def _sent_by_buildx(tmp: Path, ignore_text: str) -> set[str] | str:
    """What a real `docker buildx build` sends: `COPY . /ctx` exported to a folder."""
    context, recipe, out = tmp / "ctx", tmp / "df", tmp / "out"
    if not context.exists():
        make_tree(context)
    recipe.mkdir()
    (recipe / "Dockerfile").write_text("FROM scratch\nCOPY . /ctx\n")
    (recipe / "Dockerfile.dockerignore").write_bytes(ignore_text.encode())
    done = _docker(
        "buildx", "build", "-q", "-f", str(recipe / "Dockerfile"),
        "--output", f"type=local,dest={out}", str(context), check=False,
    )  # fmt: skip
    if done.returncode:
        return done.stderr.strip().splitlines()[-1]
    copied = out / "ctx"
    return {str(p.relative_to(copied)) for p in copied.rglob("*")} if copied.exists() else set()


@pytest.mark.parametrize(("case", "text", "excluded"), CASES, ids=[c[0] for c in CASES])
def test_dockerignore_table_matches_real_buildx(
    tmp_path: Path, case: str, text: str, excluded: set[str]
) -> None:
    assert _sent_by_buildx(tmp_path, text) == EVERYTHING - excluded


@pytest.mark.parametrize("pattern", BAD_PATTERNS)
def test_patterns_we_refuse_buildx_refuses(tmp_path: Path, pattern: str) -> None:
    answer = _sent_by_buildx(tmp_path, pattern + "\n")
    # buildx fails; which line it prints last is racy (the refusal, or "context canceled")
    assert isinstance(answer, str) and ("pattern" in answer or "canceled" in answer), answer


def test_ignore_file_beside_the_dockerfile_wins(tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    make_tree(context)
    (context / ".dockerignore").write_text("docs\n")
    sent = _sent_by_buildx(tmp_path, "dir\n")  # written as df/Dockerfile.dockerignore
    assert isinstance(sent, set) and "docs/readme.md" in sent and "dir" not in sent


@pytest.fixture
def base_image() -> Iterator[str]:
    """A local image to start FROM (busybox on scratch), removed afterwards."""
    reference = f"{TEST_IMAGE_NAMESPACE}fingerprint-base-{uuid.uuid4().hex[:10]}:1"
    yield reference
    _docker("image", "rm", reference, check=False)


def _build_base(reference: str, tmp: Path, content: str) -> str:
    folder = tmp / f"base-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    shutil.copy("/bin/busybox", folder / "busybox")
    (folder / "v").write_text(content)
    (folder / "Dockerfile").write_text("FROM scratch\nCOPY busybox /bin/busybox\nCOPY v /v\n")
    _docker("buildx", "build", "-q", "--load", "-t", reference, str(folder))
    image = images.one(docker_here(), reference)
    assert image is not None
    return image.id


def _plan(repo: FixtureRepo, monkeypatch: pytest.MonkeyPatch, **env: str) -> BuildPlan:
    for name in PIPELINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**repo.env(), "SANDBOX_BUILD_CA_BUNDLE": "none", **env}.items():
        monkeypatch.setenv(name, value)
    facts = GitFacts(
        sha=repo.sha,
        dirty=False,
        branch="main",
        work_tree=repo.path,
        git_dir=repo.path / ".git",
        common_dir=repo.path / ".git",
        commit_time=datetime(2026, 1, 1, tzinfo=UTC),
        source_url=None,
    )
    return make_plan("local", BuildSettings(), facts)


def test_fingerprint_follows_the_engines_base_image(
    tmp_path: Path, base_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_id = _build_base(base_image, tmp_path, "one")
    repo = make_fixture_repo(
        tmp_path / "repo", HOST, dockerfile=f"FROM {base_image}\nRUN echo {{nonce}} > /n\n"
    )
    plan = _plan(repo, monkeypatch)
    cache = [tmp_path / "cache"]
    before = fingerprint_build(plan, cache_dirs=cache, env={})
    assert before.value is not None, before.reason
    second_id = _build_base(base_image, tmp_path, "two")  # same tag, new image
    assert second_id != first_id
    after = fingerprint_build(plan, cache_dirs=cache, env={})
    assert after.value is not None and after.value != before.value
    _docker("image", "rm", base_image)
    gone = fingerprint_build(plan, cache_dirs=cache, env={})
    assert gone.value is None and base_image in gone.reason


def test_label_on_the_built_image_is_what_compare_with_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_fixture_repo(tmp_path / "repo", HOST)
    plan = _plan(repo, monkeypatch)
    local = f"{repo.repository}:local"
    cache = [tmp_path / "cache"]
    measured = fingerprint_build(plan, cache_dirs=cache, env={}, repository=repo.repository)
    assert measured.value is not None and measured.local is None  # nothing built yet
    try:
        _docker(
            "buildx", "build", "-q", "--load", "-t", local, "--label",
            f"{LABEL}={measured.value}", "-f", str(plan.request.dockerfile),
            str(plan.request.context),
        )  # fmt: skip
        again = fingerprint_build(plan, cache_dirs=cache, env={}, repository=repo.repository)
        assert again.local is not None and again.value is not None
        assert again.local_fingerprint == again.value
        (repo.path / "new.txt").write_text("a change buildx would send\n")
        changed = fingerprint_build(plan, cache_dirs=cache, env={}, repository=repo.repository)
        assert changed.local is not None and changed.local_fingerprint != changed.value
    finally:
        _docker("image", "rm", local, check=False)


# The first build of a fresh fixture takes a few seconds: time to act while it runs.
SLOW_DOCKERFILE = TINY_DOCKERFILE + 'RUN ["/bin/busybox", "sleep", "3"]\n'


@pytest.fixture
def dev_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FixtureRepo]:
    """The fixture repo as the launcher's environment: the worker inherits it."""
    repo = make_fixture_repo(tmp_path / "repo", HOST, dockerfile=SLOW_DOCKERFILE)
    for name in PIPELINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in repo.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PIPELINE_BACKGROUND_DIR", str(tmp_path / "background"))
    yield repo
    for tag in ("local", f"sha-{repo.sha}", f"sha-{repo.sha}-dirty"):
        _docker("image", "rm", f"{repo.repository}:{tag}", check=False)


def _wait(repo: FixtureRepo, timeout_s: float = 300) -> Status:
    deadline = time.monotonic() + timeout_s
    key = background.background_key(repo.path, repo.repository)
    while True:
        now = status(background.state_root(), key)
        if now.state != "building":
            return now
        assert time.monotonic() < deadline, "the background build did not finish"
        time.sleep(0.2)


def _wait_for_log(repo: FixtureRepo, text: str, timeout_s: float = 120) -> None:
    key = background.background_key(repo.path, repo.repository)
    log = background.state_root() / key / "build.log"
    deadline = time.monotonic() + timeout_s
    while not (log.exists() and text in log.read_text(errors="replace")):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {log}"
        time.sleep(0.1)


def _image_id(reference: str) -> str:
    return _docker("image", "inspect", "--format", "{{.Id}}", reference).stdout.strip()


def test_background_build_runs_detached_and_reruns_after_a_change(dev_env: FixtureRepo) -> None:
    repo = dev_env
    began = time.monotonic()
    assert background.launch().outcome == "started"
    assert time.monotonic() - began < 5  # returns at once; the build goes on without us
    _wait_for_log(repo, 'RUN ["/bin/busybox", "sleep"')  # the first build is under way
    assert background.launch().outcome == "already-building"  # unchanged tree: nothing more
    (repo.path / "notes.txt").write_text("changed while it builds\n")
    assert background.launch().outcome == "rerun-marked"
    done = _wait(repo)
    assert done.state == "idle", done
    assert done.last is not None and done.last.ok and done.last.image == f"{repo.repository}:local"
    log = done.log.read_text()
    assert log.count("==> background build started") == 2, log[-3000:]
    assert image_exists(f"{repo.repository}:sha-{repo.sha}-dirty")  # the rerun saw the change
    status_json = json.loads(
        subprocess.run(
            [sys.executable, "-c", "from pipeline.sessions.background import show_status;"
             " show_status(as_json=True)"],  # of the fixture repo: dev_env set its variables
            cwd=ROOT, capture_output=True, text=True, check=True, env=os.environ,
        ).stdout
    )  # fmt: skip
    assert status_json["state"] == "idle" and status_json["last"]["ok"] is True


def test_failed_background_build_keeps_the_last_good_local(dev_env: FixtureRepo) -> None:
    repo = dev_env
    assert background.launch().outcome == "started"
    good = _wait(repo)
    assert good.state == "idle", good
    good_id = _image_id(f"{repo.repository}:local")
    dockerfile = repo.path / "sandbox" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + 'RUN ["/bin/busybox", "false"]\n')
    assert background.launch().outcome == "started"
    failed = _wait(repo)
    assert failed.state == "failed" and failed.last is not None
    assert failed.last.error and "\n" not in failed.last.error
    assert "docker buildx build failed" in failed.last.error
    assert failed.last_good is not None and failed.last_good.image == f"{repo.repository}:local"
    assert _image_id(f"{repo.repository}:local") == good_id


# --- with the session wiring (pipeline/sessions/build.py calls pipeline/build/local.py) ---

from tests.conftest import run_pipeline  # noqa: E402


def _build(repo: FixtureRepo, tmp_path: Path, via: str = "report", **env: str) -> dict[str, object]:
    """One `snapshot_local`. via="report": with a JSON report, which always takes the full path
    (the replay leaves reports to it); via="replay" or "nox": as a developer runs it, where an
    unchanged run is replayed (by `python -m pipeline`, or inside nox's own interpreter)."""
    # the test's own replay record (under nox, uv's cache must stay where it is)
    own = {"XDG_CACHE_HOME": str(tmp_path / "xdg-cache")} if via != "nox" else {}
    if via == "report":
        report = tmp_path / f"report-{uuid.uuid4().hex[:6]}.json"
        run = run_pipeline(
            "snapshot_local", env=repo.env(PIPELINE_REPORT=str(report), **own, **env)
        )
        assert run.returncode == 0, run.output[-3000:]
        built: dict[str, object] = json.loads(report.read_text())["build"]
        assert REPLAYED not in run.output
        return built
    run = run_pipeline("snapshot_local", env=repo.env(**own, **env), via_nox=via == "nox")
    assert run.returncode == 0, run.output[-3000:]
    replayed = REPLAYED in run.output
    return {
        "skipped": "nothing built" in run.output,
        "replayed": replayed,
        "child": "python -m pipeline snapshot_local" in run.output,
        "output": run.output,
    }


@pytest.fixture
def loop_repo(tmp_path: Path) -> Iterator[FixtureRepo]:
    repo = make_fixture_repo(tmp_path / "repo", HOST)
    (repo.path / ".gitignore").write_text("ignored.txt\n")
    (repo.path / "ignored.txt").write_text("git ignores me; buildx sends me\n")
    (repo.path / "notes.md").write_text("tracked\n")
    repo.git("add", ".gitignore", "notes.md")
    repo.git("-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "gi")
    yield repo
    listed = _docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repo.repository)
    for reference in listed.stdout.split():
        _docker("image", "rm", reference, check=False)


def test_replay_takes_over_once_a_build_is_recorded_and_steps_aside_for_a_lost_tag(
    loop_repo: FixtureRepo, tmp_path: Path
) -> None:
    first = _build(loop_repo, tmp_path, via="replay")
    assert not first["skipped"]
    second = _build(loop_repo, tmp_path, via="replay")
    assert second["skipped"] and second["replayed"], second["output"]
    local, sha_tag = f"{loop_repo.repository}:local", f"{loop_repo.repository}:sha-{loop_repo.sha}"
    _docker("image", "rm", sha_tag)
    third = _build(loop_repo, tmp_path, via="replay")  # the full path re-applies the tag
    assert third["skipped"] and not third["replayed"], third["output"]
    assert _image_id(sha_tag) == _image_id(local)
    assert _build(loop_repo, tmp_path, via="replay")["replayed"]


def test_nox_replays_in_its_own_interpreter(loop_repo: FixtureRepo, tmp_path: Path) -> None:
    """Any nox: the replay needs nothing but the standard library, and no venv's Python runs."""
    first = _build(loop_repo, tmp_path, via="nox")
    assert first["child"] and not first["replayed"], first["output"]
    second = _build(loop_repo, tmp_path, via="nox")
    assert second["replayed"] and not second["child"], second["output"]
    assert f"nox > unchanged since {loop_repo.repository}:local" in str(second["output"])
    (loop_repo.path / "notes.md").write_text("edited\n")
    third = _build(loop_repo, tmp_path, via="nox")
    assert third["child"] and not third["skipped"], third["output"]


def test_replay_follows_the_environment(loop_repo: FixtureRepo, tmp_path: Path) -> None:
    _build(loop_repo, tmp_path, via="replay")
    assert _build(loop_repo, tmp_path, via="replay")["replayed"]
    # a build input read from the environment, and a setting spelled in lower case (read
    # case-insensitively by the settings): both change what is built
    assert not _build(loop_repo, tmp_path, via="replay", SOURCE_DATE_EPOCH="1")["skipped"]
    assert _build(loop_repo, tmp_path, via="replay", SOURCE_DATE_EPOCH="1")["replayed"]
    lower = _build(loop_repo, tmp_path, via="replay", sandbox_build_ca_bundle="none")
    assert not lower["skipped"], lower["output"]


def test_unchanged_snapshot_local_is_skipped_and_retagged(
    loop_repo: FixtureRepo, tmp_path: Path
) -> None:
    first = _build(loop_repo, tmp_path)
    assert not first.get("skipped")
    local = f"{loop_repo.repository}:local"
    labels = json.loads(
        _docker("image", "inspect", "--format", "{{json .Config.Labels}}", local).stdout
    )
    assert len(labels[LABEL]) == 64
    _docker("image", "rm", f"{loop_repo.repository}:sha-{loop_repo.sha}")
    second = _build(loop_repo, tmp_path)
    assert second["skipped"] is True and second["fingerprint"] == labels[LABEL]
    assert _image_id(f"{loop_repo.repository}:sha-{loop_repo.sha}") == _image_id(local)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda r: (r.path / "notes.md").write_text("edited\n"), id="tracked-file"),
        pytest.param(
            lambda r: (r.path / "sandbox" / "busybox").chmod(0o700), id="tracked-file-mode"
        ),
        pytest.param(
            lambda r: r.git(
                "-c",
                "user.email=t@example.invalid",
                "-c",
                "user.name=t",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "same files",
            ),
            id="build-arg-GIT_SHA",
        ),
        pytest.param(lambda r: (r.path / "untracked.txt").write_text("new\n"), id="untracked-file"),
        pytest.param(lambda r: (r.path / "ignored.txt").write_text("x\n"), id="git-ignored-file"),
        pytest.param(
            lambda r: (r.path / "sandbox" / "Dockerfile").write_text(
                (r.path / "sandbox" / "Dockerfile").read_text() + "ENV X=1\n"
            ),
            id="dockerfile",
        ),
        pytest.param(
            lambda r: (r.path / "sandbox" / "Dockerfile.dockerignore").write_text("notes.md\n"),
            id="ignore-file",
        ),
        pytest.param(
            lambda r: r.git("remote", "add", "origin", "https://github.com/iterate/elsewhere.git"),
            id="git-remote-label",
        ),
    ],
)
@pytest.mark.parametrize("via", ["report", "replay"])
def test_each_changed_input_rebuilds(
    loop_repo: FixtureRepo, tmp_path: Path, change: Callable[[FixtureRepo], object], via: str
) -> None:
    _build(loop_repo, tmp_path, via=via)
    if via == "replay":  # the replay holds while nothing changes ...
        assert _build(loop_repo, tmp_path, via=via)["replayed"]
    change(loop_repo)
    again = _build(loop_repo, tmp_path, via=via)  # ... and never across a change
    assert not again.get("skipped"), again


@pytest.mark.parametrize("via", ["report", "replay"])
def test_changed_build_arg_base_image_and_ca_rebuild(
    tmp_path: Path, base_image: str, via: str
) -> None:
    _build_base(base_image, tmp_path, "one")
    recipe = 'ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN ["/bin/busybox", "touch", "/{nonce}"]\n'
    repo = make_fixture_repo(tmp_path / "repo", HOST, dockerfile=recipe + "ARG GIT_SHA\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    env = {"SANDBOX_BASE_IMAGE": base_image, "SANDBOX_BUILD_CA_BUNDLE": str(ca)}
    try:
        _build(repo, tmp_path, via, **env)
        assert _build(repo, tmp_path, via, **env)["skipped"] is True
        ca.write_text("-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n")
        assert not _build(repo, tmp_path, via, **env).get("skipped")  # the CA bundle
        assert _build(repo, tmp_path, via, **env)["skipped"] is True
        _build_base(base_image, tmp_path, "two")
        assert not _build(repo, tmp_path, via, **env).get("skipped")  # the base image
        assert _build(repo, tmp_path, via, **env)["skipped"] is True
        platform = {"SANDBOX_BUILD_PLATFORM": "linux/amd64/v2"}
        assert not _build(repo, tmp_path, via, **platform, **env).get("skipped")
    finally:
        listed = _docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repo.repository)
        for reference in listed.stdout.split():
            _docker("image", "rm", reference, check=False)


def test_background_and_status_through_the_command(dev_env: FixtureRepo) -> None:
    env = {**dev_env.env(), "PIPELINE_BACKGROUND_DIR": os.environ["PIPELINE_BACKGROUND_DIR"]}
    started = run_pipeline("snapshot_local", "--background", env=env)
    assert started.returncode == 0, started.output
    assert started.stdout.strip().endswith("build.log")
    _wait(dev_env)
    shown = run_pipeline("snapshot_local", "--status", "--json", env=env)
    assert json.loads(shown.stdout)["state"] == "idle", shown.output
    plain = run_pipeline("snapshot_local", "--status", env=env)
    assert plain.stdout.strip() == "idle" and "last build:" in plain.stderr


def test_ref_build_tags_that_commit_and_leaves_the_checkout(
    loop_repo: FixtureRepo, tmp_path: Path
) -> None:
    repo = loop_repo
    main_sha = repo.sha
    repo.git("checkout", "-q", "-b", "feature")
    (repo.path / "feature.txt").write_text("feature\n")
    repo.git("add", "feature.txt")
    repo.git("-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "f")
    feature_sha = repo.sha
    repo.git("checkout", "-q", "main")
    (repo.path / "wip.txt").write_text("uncommitted\n")
    before = repo.git("status", "--porcelain"), (repo.path / ".git" / "index").read_bytes()
    built = _build(repo, tmp_path, SANDBOX_ITERATE_REPO_REF="feature")
    assert built["sha"] == feature_sha and built["dirty"] is False
    assert image_exists(f"{repo.repository}:sha-{feature_sha}")
    assert not image_exists(f"{repo.repository}:sha-{feature_sha}-dirty")
    assert not image_exists(f"{repo.repository}:sha-{main_sha}-dirty")
    assert (
        repo.git("status", "--porcelain"),
        (repo.path / ".git" / "index").read_bytes(),
    ) == before
    missing = run_pipeline("snapshot_local", env=repo.env(SANDBOX_ITERATE_REPO_REF="nope"))
    assert missing.returncode == 4 and "nope" in missing.error_line()


# --- one session on every machine: the base snapshot_local finds for itself -------------------

UNPULLABLE = f"127.0.0.1:9/{TEST_IMAGE_NAMESPACE}unpullable:none"  # port 9: nothing listens


@pytest.mark.parametrize("via", ["report", "replay"])
def test_snapshot_local_uses_the_offline_base_and_its_fast_path_follows_it(
    own_engine: OwnEngine, tmp_path: Path, via: str
) -> None:
    """The Dockerfile's own base cannot be pulled (as Docker Hub offline): snapshot_local alone
    builds FROM the current offline base, skips the next unchanged run, and rebuilds when that
    base is remade. On an engine of the tests' own: its offline base tag is a stand-in."""
    recipe = base_rootfs.plan_here(DEFAULT_TAG).recipe
    standin = tmp_path / "standin"
    standin.mkdir()
    shutil.copy("/bin/busybox", standin / "busybox")

    def make_standin(content: str) -> None:
        (standin / "v").write_text(content)
        (standin / "Dockerfile").write_text(
            f"FROM scratch\nCOPY busybox /bin/busybox\nCOPY v /v\nLABEL {RECIPE_LABEL}={recipe}\n"
        )
        own_engine.docker("buildx", "build", "-q", "--load", "-t", DEFAULT_TAG, str(standin))

    recipe_text = (
        f"ARG BASE_IMAGE={UNPULLABLE}\nFROM ${{{{BASE_IMAGE}}}}\n"  # make_fixture_repo formats it
        'RUN ["/bin/busybox", "cp", "/v", "/{nonce}"]\nARG GIT_SHA\n'
    )
    repo = make_fixture_repo(tmp_path / "repo", HOST, dockerfile=recipe_text)
    env = {**own_engine.env(), "SANDBOX_BUILD_CA_BUNDLE": "none"}
    make_standin("one")
    try:
        first = _build(repo, tmp_path, via, **env)
        assert not first.get("skipped")
        local = f"{repo.repository}:local"
        config = json.loads(
            own_engine.docker("image", "inspect", "--format", "{{json .Config}}", local).stdout
        )
        assert config["Labels"][RECIPE_LABEL] == recipe  # FROM the offline base
        assert _build(repo, tmp_path, via, **env)["skipped"] is True
        make_standin("two")  # the offline base is remade: same tag, new image
        assert not _build(repo, tmp_path, via, **env).get("skipped")
    finally:
        own_engine.docker("image", "rm", DEFAULT_TAG, check=False)
        for tag in ("local", f"sha-{repo.sha}"):
            own_engine.docker("image", "rm", f"{repo.repository}:{tag}", check=False)


def test_no_base_at_all_is_one_line_with_its_own_exit_code(
    own_engine: OwnEngine, tmp_path: Path
) -> None:
    # PATH without mmdebstrap: the offline base cannot be made, and nothing is built.
    only = tmp_path / "bin"
    only.mkdir()
    for tool in ("docker", "git"):
        (only / tool).symlink_to(str(shutil.which(tool)))
    (only / "python").symlink_to(sys.executable)
    repo = make_fixture_repo(
        tmp_path / "repo",
        HOST,
        dockerfile=f"ARG BASE_IMAGE={UNPULLABLE}\nFROM ${{{{BASE_IMAGE}}}}\n",
    )
    assert own_engine.docker("image", "inspect", DEFAULT_TAG, check=False).returncode != 0
    run = run_pipeline("snapshot_local", env=repo.env(PATH=str(only), **own_engine.env()))
    assert run.returncode == 12, run.output[-3000:]
    line = run.error_line()
    assert f"{UNPULLABLE} cannot be pulled" in line and "mmdebstrap" in line
    assert own_engine.docker("image", "inspect", f"{repo.repository}:local", check=False).returncode
