"""Platforms and the builder: the OCI list, buildx's spelling, and the decisions made before a
build (platforms the builder cannot build, a cache export the engine cannot make)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError, EngineError
from pipeline.rules.build_plan import (
    CACHE_EXPORT_FIX,
    NO_CACHE_EXPORT,
    Mode,
    builder_problem,
    needs_image_store_check,
)
from pipeline.rules.platforms import (
    BuilderFacts,
    normalize,
    parse_builder_inspect,
    platform_problem,
    unsupported,
)
from pipeline.settings.build import BuildSettings, env_names
from tests.helpers.plans import git_facts, make_plan

# `docker buildx inspect` of this machine's default builder (docker driver, buildx 0.13.1).
DOCKER_DRIVER = """\
Name:          default
Driver:        docker
Last Activity: 2026-11-29 05:47:54 +0000 UTC

Nodes:
Name:             default
Endpoint:         default
Status:           running
BuildKit version: v0.0.0+unknown
Platforms:        linux/amd64, linux/amd64/v2, linux/amd64/v3, linux/amd64/v4
Labels:
 org.mobyproject.buildkit.worker.containerd.namespace: moby
 org.mobyproject.buildkit.worker.executor:             containerd
"""
# A docker-container builder with two nodes; `*` marks the platforms set by --platform.
TWO_NODES = """\
Name:          multi
Driver:        docker-container
Last Activity: 2026-11-29 05:00:00 +0000 UTC

Nodes:
Name:      multi0
Endpoint:  unix:///var/run/docker.sock
Status:    running
Buildkit:  v0.12.5
Platforms: linux/amd64*, linux/386

Name:      multi1
Endpoint:  ssh://arm-box
Status:    running
Buildkit:  v0.12.5
Platforms: linux/arm64, linux/arm/v7, linux/arm/v6
"""
NOT_BOOTED = """\
Name:          fresh
Driver:        docker-container
Last Activity: 2026-11-29 05:00:00 +0000 UTC

Nodes:
Name:      fresh0
Endpoint:  unix:///var/run/docker.sock
Status:    inactive
"""


@pytest.mark.parametrize(
    ("platform", "problem"),
    [
        ("linux/amd64", None),
        ("linux/arm64/v8", None),
        ("linux/arm/v7", None),
        ("linux/amd64/v3", None),
        ("linux/riscv64", None),
        ("windows/amd64", None),
        ("linux/mips99", "linux has 386, amd64"),
        ("linux/aarch64", "did you mean linux/arm64?"),
        ("linux/x86_64", "did you mean linux/amd64?"),
        ("Linux/amd64", "no os Linux"),
        ("linux/arm64/v9", "arm64 takes one of v8"),
        ("linux/386/v2", "386 takes none"),
        ("amd64", "not os/arch[/variant]"),
        ("linux//v7", "not os/arch[/variant]"),
        ("linux/amd64/v2/x", "not os/arch[/variant]"),
    ],
)
def test_platform_problem(platform: str, problem: str | None) -> None:
    found = platform_problem(platform)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found and platform in found


@pytest.mark.parametrize(
    ("given", "same_as"),
    [
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/amd64/v1", "linux/amd64"),
        ("linux/amd64*", "linux/amd64"),
        ("linux/amd64/v2", "linux/amd64/v2"),
    ],
)
def test_normalize_as_buildx_compares(given: str, same_as: str) -> None:
    assert normalize(given) == normalize(same_as)


def test_parse_inspect_of_the_docker_driver() -> None:
    facts = parse_builder_inspect(DOCKER_DRIVER)
    assert facts == BuilderFacts(
        "default",
        "docker",
        ("linux/amd64", "linux/amd64/v2", "linux/amd64/v3", "linux/amd64/v4"),
    )


def test_parse_inspect_joins_nodes_and_drops_stars() -> None:
    facts = parse_builder_inspect(TWO_NODES)
    assert (facts.name, facts.driver) == ("multi", "docker-container")
    assert facts.platforms == (
        "linux/amd64",
        "linux/386",
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm/v6",
    )
    assert parse_builder_inspect(NOT_BOOTED).platforms == ()


@pytest.mark.parametrize(
    ("wanted", "missing"),
    [
        (("linux/amd64",), ()),
        (("linux/arm64/v8", "linux/arm"), ()),
        (("linux/amd64", "linux/s390x"), ("linux/s390x",)),
        (("linux/arm/v5",), ("linux/arm/v5",)),
    ],
)
def test_unsupported(wanted: tuple[str, ...], missing: tuple[str, ...]) -> None:
    assert unsupported(wanted, parse_builder_inspect(TWO_NODES).platforms) == missing


def request(monkeypatch: pytest.MonkeyPatch, mode: str = "local", **env: str) -> BuildSettings:
    for name in env_names(BuildSettings):
        monkeypatch.delenv(name, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return BuildSettings()


GIT = git_facts("a" * 40, repo=Path("/r"))


def test_builder_that_cannot_build_the_platform_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = request(monkeypatch, PUSH="1", SANDBOX_BUILD_PLATFORM="linux/amd64,linux/arm64")
    wanted = settings.request("local")
    error = builder_problem(wanted, parse_builder_inspect(DOCKER_DRIVER))
    assert isinstance(error, ConfigError)
    line = str(error)
    assert line.startswith("SANDBOX_BUILD_PLATFORM=linux/amd64,linux/arm64: builder default")
    assert "cannot build linux/arm64" in line and "BUILDX_BUILDER" in line
    assert builder_problem(wanted, parse_builder_inspect(TWO_NODES)) is None
    assert builder_problem(wanted, parse_builder_inspect(NOT_BOOTED)) is None  # not known yet
    # and the plan refuses it before anything is built
    with pytest.raises(ConfigError, match="cannot build linux/arm64"):
        make_plan("local", settings, GIT, builder=parse_builder_inspect(DOCKER_DRIVER))


@pytest.mark.parametrize(
    ("mode", "env", "driver", "store", "outcome"),
    [
        # The automatic export (PUSH=1) is dropped and reported; an asked-for one is refused.
        ("local", {"PUSH": "1"}, "docker", False, "skipped"),
        ("push", {}, "docker", False, "skipped"),
        ("local", {"PUSH": "1", "SANDBOX_BUILD_CACHE": "readwrite"}, "docker", False, "refused"),
        ("local", {"PUSH": "1"}, "docker", True, "export"),
        ("local", {"PUSH": "1"}, "docker", None, "export"),  # unknown: let buildx try
        ("local", {"PUSH": "1"}, "docker-container", False, "no check"),
        ("local", {}, "docker", False, "no check"),  # no export planned: no `docker info` at all
        ("local", {"PUSH": "1", "SANDBOX_BUILD_CACHE": "read"}, "docker", False, "no check"),
    ],
)
def test_cache_export_without_containerd_store(
    monkeypatch: pytest.MonkeyPatch,
    mode: Mode,
    env: dict[str, str],
    driver: str,
    store: bool | None,
    outcome: str,
) -> None:
    settings = request(monkeypatch, mode, **env)
    builder = BuilderFacts("b", driver, ("linux/amd64",))
    if outcome == "no check":
        assert not needs_image_store_check(settings.request(mode), builder)
        return
    assert needs_image_store_check(settings.request(mode), builder)
    if outcome == "refused":
        with pytest.raises(EngineError) as caught:
            make_plan(mode, settings, GIT, builder=builder, containerd_store=store)
        assert NO_CACHE_EXPORT in str(caught.value)
        assert CACHE_EXPORT_FIX in str(caught.value) and "SANDBOX_BUILD_CACHE=read" in str(
            caught.value
        )
        return
    wanted = make_plan(mode, settings, GIT, builder=builder)
    settled = make_plan(mode, settings, GIT, builder=builder, containerd_store=store)
    if outcome == "skipped":
        assert settled.cache_to is None and settled.cache_export_skipped == NO_CACHE_EXPORT
        assert settled.cache_from == wanted.cache_from  # reading the cache still works
        assert f"cache to:   - (skipped: {NO_CACHE_EXPORT})" in settled.describe()
    else:
        assert settled == wanted
