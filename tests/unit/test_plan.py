"""The pure build decisions, pinned by tables (like docker/metadata-action's tests)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, GitError
from pipeline.rules.build_plan import (
    MAX_TAG_LENGTH,
    cache_option,
    commit_tag,
    sanitize_tag,
    sha_tag,
)
from pipeline.rules.git_facts import GitFacts
from pipeline.settings.build import BuildSettings
from tests.helpers.plans import make_plan

SHA = "0123456789abcdef0123456789abcdef01234567"
WHEN = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def facts(
    dirty: bool = False, source: str | None = "https://github.com/iterate/iterate"
) -> GitFacts:
    return GitFacts(
        sha=SHA,
        dirty=dirty,
        branch="main",
        work_tree=Path("/repo"),
        git_dir=Path("/repo/.git"),
        common_dir=Path("/repo/.git"),
        commit_time=WHEN,
        source_url=source,
    )


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> BuildSettings:
    for key in (
        "PUSH",
        "GIT_SHA",
        "SANDBOX_IMAGE_REPOSITORY",
        "SANDBOX_BUILD_PLATFORM",
        "SANDBOX_BUILD_CACHE",
        "SANDBOX_ATTESTATIONS",
        "BUILDX_BUILDER",
    ):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return BuildSettings()


REPO = "ghcr.io/iterate/sandbox"


@pytest.mark.parametrize(
    ("mode", "env", "dirty", "pushed", "local", "push"),
    [
        ("local", {}, False, (f"{REPO}:sha-{SHA}",), (f"{REPO}:local",), False),
        ("local", {}, True, (f"{REPO}:sha-{SHA}-dirty",), (f"{REPO}:local",), False),
        ("local", {"PUSH": "1"}, False, (f"{REPO}:sha-{SHA}",), (f"{REPO}:local",), True),
        ("local", {"PUSH": "true"}, True, (f"{REPO}:sha-{SHA}-dirty",), (f"{REPO}:local",), True),
        ("local", {"PUSH": "0"}, False, (f"{REPO}:sha-{SHA}",), (f"{REPO}:local",), False),
        # a build never moves :main: that is `snapshot_push -- --from`, after the image tests
        ("push", {}, False, (f"{REPO}:sha-{SHA}",), (), True),
        ("push", {"PUSH": "0"}, False, (f"{REPO}:sha-{SHA}",), (), True),
        (
            "local",
            {"GIT_SHA": SHA.upper()},
            False,
            (f"{REPO}:sha-{SHA}",),
            (f"{REPO}:local",),
            False,
        ),
        (
            "local",
            {"SANDBOX_IMAGE_REPOSITORY": "127.0.0.1:5000/a/b"},
            False,
            (f"127.0.0.1:5000/a/b:sha-{SHA}",),
            ("127.0.0.1:5000/a/b:local",),
            False,
        ),
    ],
)
def test_tags(
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    env: dict[str, str],
    dirty: bool,
    pushed: tuple[str, ...],
    local: tuple[str, ...],
    push: bool,
) -> None:
    plan = make_plan(mode, settings(monkeypatch, **env), facts(dirty))  # type: ignore[arg-type]
    assert plan.pushed_tags == pushed
    assert plan.local_tags == local
    assert plan.push is push and plan.load is not push
    # A push never sends :local; a local build names every tag.
    assert plan.build_tags == (pushed if push else pushed + local)


@pytest.mark.parametrize("mode", ["local", "push"])
def test_git_sha_of_another_commit_is_refused(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    # The files built are HEAD's: GIT_SHA=<A> on a tree at B would tag B's files as :sha-A.
    other = "f" * 40
    with pytest.raises(GitError) as caught:
        make_plan(mode, settings(monkeypatch, GIT_SHA=other), facts())  # type: ignore[arg-type]
    line = str(caught.value)
    assert f"GIT_SHA={other} is not the commit being built" in line and SHA in line
    assert "unset GIT_SHA" in line and "\n" not in line


@pytest.mark.parametrize(
    ("mode", "env", "pushed", "local"),
    [
        ("push", {}, (f"{REPO}:sha-{SHA}",), ()),
        ("local", {"PUSH": "1"}, (f"{REPO}:sha-{SHA}",), (f"{REPO}:local",)),
        ("local", {}, (f"{REPO}:sha-{SHA}",), (f"{REPO}:local",)),
    ],
)
def test_ref_build_never_moves_main(
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    env: dict[str, str],
    pushed: tuple[str, ...],
    local: tuple[str, ...],
) -> None:
    # SANDBOX_ITERATE_REPO_REF=feature: its commit gets its sha tag, never what main runs (the
    # plan is made from the exported commit's facts like any other).
    plan = make_plan(mode, settings(monkeypatch, **env), facts())  # type: ignore[arg-type]
    assert plan.pushed_tags == pushed and plan.local_tags == local
    assert not any(tag.endswith(":main") for tag in plan.all_tags)


def test_a_commit_tag_the_registry_has_is_reused_not_pushed_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tag that names a commit names one image forever: a re-run (a fresh runner, whose
    rebuild would get another digest) reuses it instead of pushing over it."""
    push = settings(monkeypatch)
    digest = "sha256:" + "d" * 64
    fresh = make_plan("push", push, facts())
    assert fresh.action == "build" and fresh.registry_digest is None
    reused = make_plan("push", push, facts(), registry_digest=digest)
    assert reused.action == "reuse" and reused.registry_digest == digest
    assert reused.pushed_tags == (f"{REPO}:sha-{SHA}",)
    assert "nothing built or pushed" in "\n".join(reused.describe())
    local = make_plan("local", settings(monkeypatch), facts(), registry_digest=digest)
    assert local.action == "build"  # a local build pushes nothing: nothing to reuse


def test_the_weekly_rebuild_has_tags_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    rebuild = settings(monkeypatch, SANDBOX_REBUILD="1")
    plan = make_plan("push", rebuild, facts(), day="20261207")
    assert plan.pushed_tags == (f"{REPO}:sha-{SHA}-rebuild-20261207",)
    request = rebuild.request("push")
    assert commit_tag(request, facts(), "20261207") == f"sha-{SHA}-rebuild-20261207"
    assert commit_tag(request, facts(dirty=True), "20261207") is None  # -dirty names no commit
    assert commit_tag(settings(monkeypatch).request("local"), facts(), None) is None
    assert commit_tag(settings(monkeypatch, PUSH="1").request("local"), facts(), None) is None
    with pytest.raises(ConfigError, match="SANDBOX_REBUILD=1 names a pushed image"):
        make_plan("local", rebuild, facts(), day="20261207")


def test_push_refuses_dirty_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GitError, match="dirty"):
        make_plan("push", settings(monkeypatch), facts(dirty=True))


@pytest.mark.parametrize(
    ("env", "cache_from", "cache_to"),
    [
        ({}, (), None),
        ({"PUSH": "1"}, (f"{REPO}:buildcache",), f"{REPO}:buildcache"),
        ({"SANDBOX_BUILD_CACHE": "read"}, (f"{REPO}:buildcache",), None),
        ({"PUSH": "1", "SANDBOX_BUILD_CACHE": "read"}, (f"{REPO}:buildcache",), None),
        ({"PUSH": "1", "SANDBOX_BUILD_CACHE": "off"}, (), None),
        ({"SANDBOX_BUILD_CACHE": "readwrite"}, (f"{REPO}:buildcache",), f"{REPO}:buildcache"),
    ],
)
def test_cache_refs(
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    cache_from: tuple[str, ...],
    cache_to: str | None,
) -> None:
    plan = make_plan("local", settings(monkeypatch, **env), facts())
    assert plan.cache_from == cache_from
    assert plan.cache_to == cache_to


def test_cache_export_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = make_plan("push", settings(monkeypatch), facts())
    assert plan.cache_to is not None
    assert cache_option(plan.cache_to, export=True) == (
        f"type=registry,ref={REPO}:buildcache,mode=max,image-manifest=true,oci-mediatypes=true,"
        "ignore-error=true"
    )


def test_labels_and_args(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = make_plan("local", settings(monkeypatch), facts())
    assert plan.build_args == {"GIT_SHA": SHA}
    assert plan.labels == {
        "org.opencontainers.image.revision": SHA,
        "org.opencontainers.image.created": "2026-11-23T09:30:00Z",
        "org.opencontainers.image.source": "https://github.com/iterate/iterate",
    }
    assert (
        "org.opencontainers.image.source"
        not in make_plan("local", settings(monkeypatch), facts(source=None)).labels
    )


def test_base_image_build_arg_only_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDBOX_BASE_IMAGE", raising=False)
    assert "BASE_IMAGE" not in make_plan("local", settings(monkeypatch), facts()).build_args
    monkeypatch.setenv("SANDBOX_BASE_IMAGE", "sandbox-base/node24-bookworm:local")
    plan = make_plan("local", settings(monkeypatch), facts())
    assert plan.build_args["BASE_IMAGE"] == "sandbox-base/node24-bookworm:local"


def test_attestations_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = make_plan("push", settings(monkeypatch), facts())
    assert (plan.provenance, plan.sbom) == (False, False)
    plan = make_plan("push", settings(monkeypatch, SANDBOX_ATTESTATIONS="provenance,sbom"), facts())
    assert (plan.provenance, plan.sbom) == (True, True)


def test_several_platforms_need_push(monkeypatch: pytest.MonkeyPatch) -> None:
    multi = {"SANDBOX_BUILD_PLATFORM": "linux/amd64,linux/arm64"}
    with pytest.raises(ConfigError, match="PUSH=1"):
        make_plan("local", settings(monkeypatch, **multi), facts())
    plan = make_plan("local", settings(monkeypatch, PUSH="1", **multi), facts())
    assert plan.request.platforms == ("linux/amd64", "linux/arm64")


def test_describe_names_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "\n".join(make_plan("local", settings(monkeypatch, PUSH="1"), facts()).describe())
    for needle in (
        f"{REPO}:sha-{SHA} (pushed)",
        f"{REPO}:local (local only)",
        f"cache from: {REPO}:buildcache",
        "mode=max",
        f"GIT_SHA={SHA}",
        "linux/amd64",
        "attest:     none",
    ):
        assert needle in text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("sha-abc", "sha-abc"),
        ("feature/x", "feature-x"),
        ("-leading", "leading"),
        (".dot", "dot"),
        ("ünïcode tag", "n-code-tag"),
        ("", "unknown"),
        ("a" * 200, "a" * MAX_TAG_LENGTH),
    ],
)
def test_sanitize_tag(raw: str, clean: str) -> None:
    assert sanitize_tag(raw) == clean


def test_sha_tag_fits_docker_limit() -> None:
    assert sha_tag(SHA, True) == f"sha-{SHA}-dirty"
    assert len(sha_tag(SHA, True)) <= MAX_TAG_LENGTH
