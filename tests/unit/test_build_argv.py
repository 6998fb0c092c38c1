"""The docker argv the build runs: the same prefix python-on-whales would use, and every planned
flag on the command line."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.docker.buildx import build_argv
from pipeline.docker.cli import Docker, find_docker
from pipeline.docker.endpoint import Location
from pipeline.rules.git_facts import GitFacts
from pipeline.settings.build import BuildSettings, env_names
from tests.helpers.plans import make_plan

SHA = "b" * 40


@pytest.mark.parametrize(
    ("host", "config"),
    [(None, None), ("tcp://127.0.0.1:2375", None), ("unix:///x.sock", Path("/tmp/cfg"))],
)
def test_prefix_is_what_python_on_whales_builds(host: str | None, config: Path | None) -> None:
    from python_on_whales import DockerClient

    ours = find_docker(Location(host=host), config).argv("buildx", "version")
    theirs = [str(part) for part in DockerClient(host=host, config=config).client_config.docker_cmd]
    assert ours == [*theirs, "buildx", "version"]


def test_push_plan_on_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in env_names(BuildSettings):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SANDBOX_IMAGE_REPOSITORY", "ghcr.io/iterate/sandbox")
    monkeypatch.setenv("SANDBOX_BUILD_CA_BUNDLE", "none")
    monkeypatch.setenv("BUILDX_BUILDER", "ci")
    facts = GitFacts(
        sha=SHA,
        dirty=False,
        branch="main",
        work_tree=Path("/repo"),
        git_dir=Path("/repo/.git"),
        common_dir=Path("/repo/.git"),
        commit_time=datetime(2026, 1, 1, tzinfo=UTC),
        source_url=None,
    )
    plan = make_plan("push", BuildSettings(), facts)
    argv = build_argv(Docker("/usr/bin/docker", Location()), plan, Path("/tmp/meta.json"))
    assert argv[:5] == ["/usr/bin/docker", "buildx", "build", "--progress", "plain"]
    assert argv[-1] == str(plan.request.context)
    pairs = list(itertools.pairwise(argv))
    assert ("--builder", "ci") in pairs and ("--build-arg", f"GIT_SHA={SHA}") in pairs
    assert ("--tag", f"ghcr.io/iterate/sandbox:sha-{SHA}") in pairs
    # :main is moved after the image tests, by snapshot_push -- --from, never by a build
    assert not any(value.endswith(":main") for value in argv)
    assert ("--cache-from", "type=registry,ref=ghcr.io/iterate/sandbox:buildcache") in pairs
    assert (
        "--cache-to",
        "type=registry,ref=ghcr.io/iterate/sandbox:buildcache,mode=max,image-manifest=true,"
        "oci-mediatypes=true,ignore-error=true",
    ) in pairs
    assert ("--metadata-file", "/tmp/meta.json") in pairs
    assert "--push" in argv and "--load" not in argv and "--secret" not in argv
    assert "--provenance=false" in argv and "--sbom=false" in argv


def test_local_plan_loads_and_does_not_push(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in env_names(BuildSettings):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SANDBOX_BUILD_CA_BUNDLE", "none")
    facts = GitFacts(
        sha=SHA,
        dirty=False,
        branch="main",
        work_tree=Path("/repo"),
        git_dir=Path("/repo/.git"),
        common_dir=Path("/repo/.git"),
        commit_time=datetime(2026, 1, 1, tzinfo=UTC),
        source_url=None,
    )
    plan = make_plan("local", BuildSettings(), facts)
    argv = build_argv(Docker("/usr/bin/docker", Location()), plan, Path("/tmp/meta.json"))
    assert "--load" in argv and "--push" not in argv
    pairs = set(itertools.pairwise(argv))
    assert ("--tag", "ghcr.io/iterate/sandbox:local") in pairs
