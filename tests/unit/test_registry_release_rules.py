"""The release chain's pure rules: the digest check and whether `:main` may move."""

from __future__ import annotations

import pytest

from pipeline.rules.release import (
    Ancestry,
    decide_main_move,
    digest_mismatch,
    digest_problem,
    platform_manifest,
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
        (NEW, Ancestry("unknown", "no remote 'origin'"), False, "no remote 'origin'"),
        (NEW, None, False, "cannot tell"),
    ],
)
def test_decide_main_move(
    current: str | None, ancestry: Ancestry | None, move: bool, words: str
) -> None:
    decision = decide_main_move(current, OLD, ancestry)
    assert decision.move is move
    assert words in decision.reason


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
