"""The replay of an unchanged `snapshot_local` (pipeline/fastpath/replay.py), without an engine:
what it observes, when it refuses, and where it finds the engine. The engine tier
(tests/integration/engine/test_dev_loop.py) proves it against real builds."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.base_image.choose import candidates
from pipeline.build import record as dev_build
from pipeline.docker import endpoint
from pipeline.docker.endpoint import DEFAULT_HOST, Location
from pipeline.fastpath import replay
from pipeline.fastpath.replay import Record, Watch
from pipeline.settings.build import BuildSettings, ReportSettings, env_names
from tests.helpers.git import git
from tests.helpers.settings_env import use_repo_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    (path / "sandbox").mkdir(parents=True)
    (path / "sandbox" / "Dockerfile").write_text("FROM scratch\n")
    (path / ".gitignore").write_text("ignored.txt\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "init")
    return path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path / "home")}


def _watch(repo: Path, tmp_path: Path, *files: Path) -> Watch:
    return Watch(
        context=str(repo),
        dockerfile=str(repo / "sandbox" / "Dockerfile"),
        cache_file=str(tmp_path / "stat-cache.json"),
        env_names=("SANDBOX_IMAGE_REPOSITORY", "PUSH"),
        env_prefixes=("BUILDX_", "BUILDKIT_"),
        report_names=("PIPELINE_REPORT",),
        files=tuple(str(f) for f in files),
    )


def test_env_digest_reads_names_as_the_settings_do() -> None:
    key = b"k" * 32
    names = ("PUSH", "SANDBOX_BASE_IMAGE")
    base = replay.env_digest(names, {"PUSH": "1"}, key)
    assert base == replay.env_digest(names, {"PUSH": "1", "OTHER": "x"}, key)
    assert base == replay.env_digest(names, {"PUSH": "1", "SANDBOX_BASE_IMAGE": ""}, key)
    assert base != replay.env_digest(names, {"PUSH": "0"}, key)
    assert base != replay.env_digest(names, {"push": "1"}, key)  # read case-insensitively
    assert base != replay.env_digest(names, {"PUSH": "1"}, b"other key" * 4)
    secret = replay.env_digest(("REGISTRY_PASSWORD",), {"REGISTRY_PASSWORD": "hunter2"}, key)
    assert secret != hashlib.sha256(b"hunter2").hexdigest() and "hunter2" not in secret


def test_git_state_follows_commit_branch_and_dirtiness(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit, branch, dirty, origin = replay.git_state(repo)
    assert (commit, branch, dirty, origin) == (git(repo, "rev-parse", "HEAD"), "main", False, "")
    git(repo, "remote", "add", "origin", "https://github.com/iterate/iterate.git")
    assert replay.git_state(repo)[3] == "https://github.com/iterate/iterate.git"
    (repo / "ignored.txt").write_text("git ignores me\n")
    assert replay.git_state(repo)[2] is False
    (repo / "new.txt").write_text("untracked\n")
    assert replay.git_state(repo)[2] is True
    (repo / "new.txt").unlink()
    git(repo, "checkout", "-q", "-b", "feature")
    assert replay.git_state(repo)[1] == "feature"
    git(repo, "checkout", "-q", "--detach")
    assert replay.git_state(repo)[1] == "(detached)"
    # variables that point git elsewhere are dropped: the one git runner drops them for all
    monkeypatch.setenv("GIT_DIR", "/nonexistent")
    assert replay.git_state(repo)[0] == commit


def test_git_state_refuses_a_repository_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    with pytest.raises(replay.Unobservable):
        replay.git_state(tmp_path)


def test_file_state_is_content_and_listing(tmp_path: Path) -> None:
    target = tmp_path / "config"
    assert replay.file_state(str(target)) is None
    target.write_text("a")
    first = replay.file_state(str(target))
    target.write_text("a")  # rewritten unchanged (buildx does this to its config on each build)
    assert replay.file_state(str(target)) == first
    target.write_text("b")
    assert replay.file_state(str(target)) != first
    listing = replay.file_state(str(tmp_path))
    (tmp_path / "another").write_text("")
    assert replay.file_state(str(tmp_path)) != listing
    assert replay.file_state(str(target / "below-a-file")) is None


def test_observation_changes_with_each_input(
    repo: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    extra = tmp_path / "ca.pem"
    extra.write_text("one")
    watch = _watch(repo, tmp_path, extra)
    first = replay.observe(watch, env, refs=())
    assert replay.observe(watch, env, refs=()) == first
    changes = {
        "context file": lambda: (repo / "sandbox" / "app.txt").write_text("new"),
        "watched file": lambda: extra.write_text("two"),
        "ignored but sent": lambda: (repo / "ignored.txt").write_text("buildx sends me"),
    }
    seen = first
    for name, change in changes.items():
        change()
        now = replay.observe(watch, env, refs=())
        assert now != seen, name
        seen = now
    assert replay.observe(watch, {**env, "PUSH": "1"}, refs=()).env != seen.env
    # buildx's own variables count by prefix (BUILDX_GIT_LABELS adds labels), any of them
    assert replay.observe(watch, {**env, "BUILDX_GIT_LABELS": "1"}, refs=()).env != seen.env
    assert replay.observe(watch, {**env, "BUILDKIT_ANYTHING": "1"}, refs=()).env != seen.env
    assert replay.observe(watch, {**env, "OTHER_TOOL": "1"}, refs=()).env == seen.env


def test_record_round_trips_and_replays_only_when_all_holds(
    repo: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    watch = _watch(repo, tmp_path)
    seen = replay.observe(watch, env, refs=())
    said: list[str] = []
    assert replay.replay([], env, said.append) is False  # no record yet
    replay.write_record(Record(watch, seen, "unchanged; nothing built"), env)
    path = replay.record_path(env)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = replay.load_record(env)
    assert loaded == Record(watch, seen, "unchanged; nothing built")
    assert replay.replay([], env, said.append) is True and said == ["unchanged; nothing built"]
    assert replay.replay(["--dry-run"], env, said.append) is False  # options: the full path
    assert replay.replay([], {**env, "PIPELINE_REPORT": "/tmp/r.json"}, said.append) is False
    assert replay.replay([], {**env, "pipeline_report": "/tmp/r.json"}, said.append) is False
    for off in ("off", "0", "False"):  # SANDBOX_FAST_PATH=off: never replayed
        assert replay.replay([], {**env, "SANDBOX_FAST_PATH": off}, said.append) is False
    assert replay.replay([], {**env, "SANDBOX_FAST_PATH": "on"}, said.append) is True
    said.pop()
    (repo / "sandbox" / "app.txt").write_text("changed")
    assert replay.replay([], env, said.append) is False
    assert len(said) == 1


def test_a_damaged_or_old_record_is_no_replay(env: dict[str, str]) -> None:
    path = replay.record_path(env)
    path.parent.mkdir(parents=True)
    for text in ("not json", json.dumps({"format": 0}), json.dumps({"format": 1, "watch": {}})):
        path.write_text(text)
        assert replay.load_record(env) is None
        assert replay.replay([], env, print) is False


def test_remember_refuses_what_moved_while_deciding(
    repo: Path, tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    images = {"base:1": "sha256:b", "repo:local": "sha256:i", "repo:sha-x": "sha256:i"}
    monkeypatch.setattr(
        endpoint, "image_ids", lambda location, refs: {r: images.get(r) for r in refs}
    )
    watch = _watch(repo, tmp_path)
    tags = ("repo:sha-x", "repo:local")
    before = replay.observe(watch, env, refs=("base:1", "official:1"))
    read = (before.context, replay.file_state(watch.dockerfile))
    assert read[1] is not None
    args = (watch, before, "sha256:i", tags, {"base:1": "sha256:b"}, "same", env)
    # The decision read the tree otherwise than both observations (a file caught mid-write):
    # the image holds what the decision read, so the observed tree is not vouched for.
    caught = ("another context digest", read[1])
    assert replay.remember(*args, built_from=caught) is False and replay.load_record(env) is None
    other_dockerfile = (read[0], "another dockerfile digest")
    assert replay.remember(*args, built_from=other_dockerfile) is False
    assert replay.remember(*args, built_from=read) is True
    record = replay.load_record(env)
    assert record is not None and set(record.watch.refs) == {"base:1", "official:1", *tags}
    assert record.seen.images["official:1"] is None  # an absent candidate is part of it
    assert replay.replay([], env, lambda _: None) is True

    (repo / "sandbox" / "app.txt").write_text("written during the build")
    assert replay.remember(*args, built_from=read) is False and replay.load_record(env) is None
    before = replay.observe(watch, env, refs=("base:1",))
    images["base:1"] = "sha256:pulled-meanwhile"
    fixed = {"base:1": "sha256:b"}
    read = (before.context, replay.file_state(watch.dockerfile))
    assert read[1] is not None
    assert (
        replay.remember(watch, before, "sha256:i", tags, fixed, "x", env, built_from=read) is False
    )
    images["base:1"] = "sha256:b"
    images["repo:local"] = "sha256:overtaken"  # another build moved :local since
    assert (
        replay.remember(watch, before, "sha256:i", tags, fixed, "x", env, built_from=read) is False
    )


def test_the_replay_watches_what_the_full_path_reads(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = repo / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    use_repo_settings(monkeypatch, repo, SANDBOX_BUILD_CA_BUNDLE=str(ca))
    settings = BuildSettings()
    watch = dev_build.watch(settings)
    assert set(env_names(BuildSettings)) <= set(watch.env_names)
    assert not set(env_names(ReportSettings)) & set(watch.env_names)
    assert set(env_names(ReportSettings)) == set(watch.report_names)
    files = set(watch.files)
    dockerfile = repo / "sandbox" / "Dockerfile"
    for expected in (
        dockerfile,
        dockerfile.with_name("Dockerfile.dockerignore"),
        repo / ".dockerignore",
        ca,
        ROOT / "pipeline" / "fastpath" / "replay.py",
        ROOT / "pipeline" / "build" / "run.py",
    ):
        assert str(expected) in files, expected


def test_base_candidates_name_what_the_base_choice_inspects(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("ARG BASE_IMAGE=node:24-bookworm\nFROM ${BASE_IMAGE}\n")
    settings = BuildSettings.model_construct(base_image=None, dockerfile=dockerfile)
    assert candidates(settings.base_image, settings.dockerfile) == [
        "node:24-bookworm",
        "sandbox-base/node24-bookworm:local",
    ]
    chosen = settings.model_copy(update={"base_image": "mine:1"})
    assert candidates(chosen.base_image, chosen.dockerfile) == ["mine:1"]


@pytest.fixture
def docker_config(tmp_path: Path) -> Path:
    config = tmp_path / "docker"
    config.mkdir()
    return config


def _context(config: Path, name: str, host: str) -> None:
    key = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / key
    meta.mkdir(parents=True)
    document = {"Name": name, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}
    (meta / "meta.json").write_text(json.dumps(document))


def engine_host(env: dict[str, str]) -> str:
    return Location.from_env(env).engine_host()


def test_engine_host_is_found_as_the_docker_cli_finds_it(docker_config: Path) -> None:
    env = {"DOCKER_CONFIG": str(docker_config)}
    assert engine_host(env) == DEFAULT_HOST
    assert engine_host({**env, "DOCKER_HOST": "tcp://127.0.0.1:2375"}) == ("tcp://127.0.0.1:2375")
    orbstack = "unix:///Users/me/.orbstack/run/docker.sock"
    _context(docker_config, "orbstack", orbstack)
    (docker_config / "config.json").write_text(json.dumps({"currentContext": "orbstack"}))
    assert engine_host(env) == orbstack  # `docker context use orbstack`
    assert engine_host({**env, "DOCKER_CONTEXT": "orbstack"}) == orbstack
    # DOCKER_HOST wins over config.json's context and over DOCKER_CONTEXT, as the docker CLI
    # decides (cli/command/cli.go resolveContextName; the engine tier checks it against the CLI)
    assert engine_host({**env, "DOCKER_HOST": "unix:///x.sock"}) == "unix:///x.sock"
    both = {**env, "DOCKER_HOST": "unix:///x.sock", "DOCKER_CONTEXT": "orbstack"}
    assert engine_host(both) == "unix:///x.sock"
    assert engine_host({**env, "DOCKER_CONTEXT": "default"}) == DEFAULT_HOST


@pytest.mark.parametrize(
    "env_or_context",
    [
        {"DOCKER_HOST": "ssh://me@host"},
        {"DOCKER_HOST": "tcp://127.0.0.1:2376", "DOCKER_TLS_VERIFY": "1"},
        {"DOCKER_CONTEXT": "missing"},
        {"DOCKER_CONTEXT": "tls"},
    ],
    ids=["ssh", "tls-env", "unknown-context", "tls-context"],
)
def test_engines_the_replay_cannot_ask_mean_no_replay(
    docker_config: Path, env_or_context: dict[str, str]
) -> None:
    _context(docker_config, "tls", "tcp://10.0.0.1:2376")
    (docker_config / "contexts" / "tls" / hashlib.sha256(b"tls").hexdigest()).mkdir(parents=True)
    env = {"DOCKER_CONFIG": str(docker_config), **env_or_context}
    with pytest.raises(endpoint.Unsupported):
        endpoint.image_ids(Location.from_env(env), ["x:1"])


def test_an_engine_that_does_not_answer_is_unsupported(tmp_path: Path) -> None:
    env = {"DOCKER_HOST": f"unix://{tmp_path}/none.sock", "DOCKER_CONFIG": str(tmp_path)}
    with pytest.raises(endpoint.Unsupported):
        endpoint.image_ids(Location.from_env(env), ["x:1"])


def test_replay_imports_without_pydantic_on_the_oldest_python_nox_may_use() -> None:
    """nox's own interpreter has none of the project's dependencies, and may be a 3.10."""
    code = (
        "import sys, json; import pipeline.fastpath.replay; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'pydantic_settings', 'python_on_whales', 'httpx')); "
        "assert not bad, bad; "
        "print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items() "
        "if n.startswith('pipeline') and getattr(m, '__file__', None))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    files = json.loads(done.stdout)
    assert any(f.endswith("replay.py") for f in files) and len(files) >= 6
    for file in files:
        ast.parse(Path(file).read_text(), file, feature_version=(3, 10))


def test_a_record_differing_in_any_one_observation_is_not_replayed(
    repo: Path, tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replay compares every field it observed: a record that differs from what is
    observed now in any one of them (as a change there would make it) is not replayed."""
    monkeypatch.setattr(endpoint, "image_ids", lambda location, refs: dict.fromkeys(refs, "x"))
    watch = replace(_watch(repo, tmp_path), refs=("i",))
    now = replay.observe(watch, env)
    commit, branch, dirty, origin = now.git
    said: list[str] = []
    replay.write_record(Record(watch, now, "same"), env)
    assert replay.replay([], env, said.append) is True  # the control: all as recorded
    for name, changed in {
        "builder": replace(now, builder="other:docker-container:"),
        "env": replace(now, env="E"),
        "commit": replace(now, git=("0" * 40, branch, dirty, origin)),
        "branch": replace(now, git=(commit, "other", dirty, origin)),
        "dirty": replace(now, git=(commit, branch, not dirty, origin)),
        "origin": replace(now, git=(commit, branch, dirty, "https://example.invalid/x.git")),
        "context": replace(now, context="D"),
        "files": replace(now, files={**now.files, "f": "2"}),
        "images": replace(now, images={"i": None}),
    }.items():
        replay.write_record(Record(watch, changed, "stale"), env)
        assert replay.replay([], env, said.append) is False, name
    assert said == ["same"]


def test_the_builder_buildx_uses_is_observed_not_its_files(
    repo: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    config = tmp_path / "docker"
    env = {**env, "DOCKER_CONFIG": str(config)}
    watch = _watch(repo, tmp_path)
    fresh = replay.observe(watch, env, refs=())
    assert fresh.builder == "default:docker:"  # no buildx config yet: the engine's default
    (config / "buildx" / "instances").mkdir(parents=True)
    (config / "buildx" / "current").write_text(json.dumps({"Key": "k", "Name": ""}))
    assert replay.observe(watch, env, refs=()) == fresh  # buildx wrote its files: same builder
    remote = {"Driver": "remote", "Nodes": [{"Endpoint": "tcp://10.0.0.1:1234"}]}
    (config / "buildx" / "instances" / "remote").write_text(json.dumps(remote))
    (config / "buildx" / "current").write_text(json.dumps({"Key": "k", "Name": "remote"}))
    assert replay.observe(watch, env, refs=()).builder == "remote:remote:tcp://10.0.0.1:1234"
    # BUILDX_CONFIG moves buildx's files (and so its builder), as buildx itself reads it
    elsewhere = tmp_path / "buildx-elsewhere"
    moved = replay.observe(watch, {**env, "BUILDX_CONFIG": str(elsewhere)}, refs=())
    assert moved.builder == "default:docker:"
    (elsewhere / "instances").mkdir(parents=True)
    (elsewhere / "instances" / "remote").write_text(json.dumps(remote))
    (elsewhere / "current").write_text(json.dumps({"Key": "k", "Name": "remote"}))
    moved = replay.observe(watch, {**env, "BUILDX_CONFIG": str(elsewhere)}, refs=())
    assert moved.builder.startswith("remote:remote:")


def test_a_record_that_cannot_be_written_never_fails_the_build(
    repo: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    watch = _watch(repo, tmp_path)
    before = replay.observe(watch, env, refs=())
    blocked = tmp_path / "a-file-not-a-folder"
    blocked.write_text("")
    env = {**env, "XDG_CACHE_HOME": str(blocked)}  # no cache folder can be made below it
    read = (before.context, replay.file_state(watch.dockerfile))
    assert read[1] is not None
    assert replay.remember(watch, before, "sha256:i", (), {}, "x", env, built_from=read) is False
    assert replay.replay([], env, print) is False


def test_the_child_of_a_nox_that_tried_does_not_observe_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """noxfile.py marks `python -m pipeline snapshot_local` when its own replay found a change;
    the mark is not inherited further (a background worker replays for itself)."""
    import pipeline.__main__ as entry

    calls: list[object] = []
    monkeypatch.setattr(entry, "replay", lambda *args: calls.append(args) or True)
    monkeypatch.setenv(replay.TRIED_VARIABLE, "1")
    monkeypatch.setattr(entry, "_command", lambda name: lambda rest: calls.append("full path"))
    assert entry.main(["snapshot_local"]) == 0
    assert calls == ["full path"]
    assert replay.TRIED_VARIABLE not in os.environ
    assert entry.main(["snapshot_local"]) == 0 and len(calls) == 2 and calls[1] != "full path"
