"""The release chain's pure rules: the digest check and whether `:main` may move."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigError, GitError
from pipeline.rules.release import (
    Ancestry,
    MainSource,
    decide_main_move,
    digest_mismatch,
    digest_problem,
    main_source,
    pinned_tag,
    platform_manifest,
    rebuild_tag,
    revision_problem,
)

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
OLD, NEW = "a" * 40, "b" * 40


def test_digest_mismatch_names_both() -> None:
    assert digest_mismatch(D1, D1) is None
    line = digest_mismatch(D1, D2)
    assert line is not None and D1 in line and D2 in line


@pytest.mark.parametrize(
    ("value", "ok"),
    [(D1, True), ("sha256:" + "A" * 64, False), ("sha256:123", False), ("1" * 64, False)],
)
def test_digest_problem(value: str, ok: bool) -> None:
    assert (digest_problem(value) is None) is ok


@pytest.mark.parametrize(
    ("current", "ancestry", "move", "words"),
    [
        (None, None, True, "does not exist yet"),
        ("v1.2", None, True, "not a commit sha"),
        (OLD, None, True, "already points at"),  # building OLD again
        (NEW, Ancestry("ancestor", "x"), False, "never moves backwards"),
        (NEW, Ancestry("not-ancestor", "diverged"), True, "not an ancestor"),
    ],
)
def test_decide_main_move(
    current: str | None, ancestry: Ancestry | None, move: bool, words: str
) -> None:
    decision = decide_main_move(current, OLD, ancestry)
    assert decision.move is move
    assert words in decision.reason


@pytest.mark.parametrize(
    "ancestry", [Ancestry("unknown", "git fetch origin: Authentication failed"), None]
)
def test_cannot_tell_fails_the_release_instead_of_holding(ancestry: Ancestry | None) -> None:
    """A private repository's shallow checkout cannot fetch `:main`'s commit: that used to be
    a warning and a green job that left `:main` where it was, forever."""
    with pytest.raises(GitError) as caught:
        decide_main_move(NEW, OLD, ancestry)
    line = str(caught.value)
    assert "cannot tell whether" in line and "`:main` was not moved" in line
    assert "fetch-depth: 0" in line and "\n" not in line
    if ancestry is not None:
        assert "Authentication failed" in line


REPO = "ghcr.io/iterate/sandbox"


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        (OLD, f"sha-{OLD}"),
        (OLD.upper(), f"sha-{OLD}"),
        (f"sha-{OLD}", f"sha-{OLD}"),
        (f"sha-{OLD}-rebuild-20261207", f"sha-{OLD}-rebuild-20261207"),
        (f"{REPO}:sha-{OLD}-rebuild-20261207", f"sha-{OLD}-rebuild-20261207"),
    ],
)
def test_main_source_names_a_commit_tag(text: str, tag: str) -> None:
    assert main_source(text, REPO) == MainSource(f"{REPO}:{tag}", tag, OLD)


@pytest.mark.parametrize(
    "text",
    [
        "main",
        OLD[:12],
        f"sha-{OLD}-dirty",  # a dirty tag names no commit
        f"ghcr.io/other/repo:sha-{OLD}",  # another repository
        f"{REPO}@{D1}",
        f"{REPO}:pinned-{'1' * 64}",
    ],
)
def test_main_source_refuses_anything_else(text: str) -> None:
    with pytest.raises(ConfigError, match="--from"):
        main_source(text, REPO)


def test_tags_that_say_what_they_are() -> None:
    assert rebuild_tag(OLD, "20261207") == f"sha-{OLD}-rebuild-20261207"
    assert pinned_tag(D1) == "pinned-" + "1" * 64
    source = main_source(OLD, REPO)
    assert revision_problem(source, OLD) is None
    problem = revision_problem(source, NEW)
    assert problem is not None and "not built from that commit" in problem


INDEX = {
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        {"digest": "sha256:att", "platform": {"os": "unknown", "architecture": "unknown"}},
        {
            "digest": "sha256:arm",
            "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
        },
        {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}},
    ],
}


@pytest.mark.parametrize(
    ("platform", "digest"),
    [
        ("linux/amd64", "sha256:amd"),
        ("linux/arm64", "sha256:arm"),
        ("linux/arm64/v8", "sha256:arm"),
        ("linux/arm64/v7", None),
        ("linux/s390x", None),
        ("unknown/unknown", None),
        (None, "sha256:arm"),  # any image, never the attestation
    ],
)
def test_platform_manifest(platform: str | None, digest: str | None) -> None:
    assert platform_manifest(INDEX, platform) == digest
