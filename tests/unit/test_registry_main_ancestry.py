"""Git's answer for `:main` (is the built commit a strict ancestor of `:main`'s?), from real
repositories: full clones, shallow clones that must fetch and deepen, and the "unknown" cases
with their reasons. Remotes are file:// URLs, which speak the same fetch protocol as GitHub."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.git import ancestry as git_ancestry
from pipeline.git.ancestry import strict_ancestry
from tests.helpers.git import git


@dataclass
class Origin:
    path: Path
    shas: list[str]  # c1 ← c2 ← … on main

    def clone(self, into: Path, *, at: str | None = None, depth: int | None = None) -> Path:
        args = ["clone", "-q"]
        if depth is not None:
            args += [f"--depth={depth}"]
        if at is not None:
            git(self.path, "branch", "-f", "release", at)
            args += ["--branch", "release"]
        git(into.parent, *args, f"file://{self.path}", into.name)
        return into


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    path = tmp_path / "origin"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    shas = []
    for n in range(1, 6):
        (path / "f.txt").write_text(f"{n}\n")
        git(path, "add", "f.txt")
        git(path, "commit", "-qm", f"c{n}")
        shas.append(git(path, "rev-parse", "HEAD"))
    return Origin(path, shas)


def is_shallow(repo: Path) -> bool:
    return git(repo, "rev-parse", "--is-shallow-repository") == "true"


def test_full_history(origin: Origin) -> None:
    c1, _, c3, _, c5 = origin.shas
    assert strict_ancestry(origin.path, c1, c3).answer == "ancestor"
    assert strict_ancestry(origin.path, c5, c3).answer == "not-ancestor"
    assert strict_ancestry(origin.path, c3, c3).answer == "not-ancestor"  # not *strict*


def test_diverged_histories_are_not_ancestors(origin: Origin) -> None:
    c2, c5 = origin.shas[1], origin.shas[4]
    git(origin.path, "checkout", "-q", "-b", "side", c2)
    (origin.path / "side.txt").write_text("side\n")
    git(origin.path, "add", "side.txt")
    git(origin.path, "commit", "-qm", "side")
    side = git(origin.path, "rev-parse", "HEAD")
    found = strict_ancestry(origin.path, side, c5)
    assert (found.answer, found.detail) == (
        "not-ancestor",
        "the two commits are on diverged histories",
    )


def test_shallow_ci_checkout_of_an_old_commit_fetches_main(origin: Origin, tmp_path: Path) -> None:
    """A re-run of an old release: CI checked out c2 with depth 1; `:main` is at c4."""
    c2, c4 = origin.shas[1], origin.shas[3]
    clone = origin.clone(tmp_path / "ci", at=c2, depth=1)
    assert is_shallow(clone)
    found = strict_ancestry(clone, c2, c4)
    assert found.answer == "ancestor", found.detail


def test_shallow_ci_checkout_of_a_new_commit(origin: Origin, tmp_path: Path) -> None:
    c4, c5 = origin.shas[3], origin.shas[4]
    clone = origin.clone(tmp_path / "ci", depth=1)  # main = c5
    assert strict_ancestry(clone, c5, c4).answer == "not-ancestor"


def test_history_beyond_the_fetch_depth_is_deepened(
    origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """c1 and c5 are further apart than the first fetch reaches: deepen, then unshallow."""
    monkeypatch.setattr(git_ancestry, "FETCH_DEPTH", 1)
    monkeypatch.setattr(git_ancestry, "DEEPEN_STEPS", ("--deepen=1", "--unshallow"))
    c1, c5 = origin.shas[0], origin.shas[4]
    clone = origin.clone(tmp_path / "ci", at=c1, depth=1)
    found = strict_ancestry(clone, c1, c5)
    assert found.answer == "ancestor", found.detail
    assert not is_shallow(clone)


def test_no_remote_is_unknown_with_the_reason(origin: Origin, tmp_path: Path) -> None:
    c2, c4 = origin.shas[1], origin.shas[3]
    clone = origin.clone(tmp_path / "ci", at=c2, depth=1)
    git(clone, "remote", "remove", "origin")
    found = strict_ancestry(clone, c2, c4)
    assert found.answer == "unknown"
    assert c4[:12] in found.detail and "no remote 'origin'" in found.detail


def test_a_commit_the_remote_lacks_is_unknown(origin: Origin, tmp_path: Path) -> None:
    clone = origin.clone(tmp_path / "ci", depth=1)
    found = strict_ancestry(clone, origin.shas[4], "f" * 40)
    assert found.answer == "unknown" and "not in this clone" in found.detail


def test_a_shallow_clone_that_cannot_deepen_is_unknown(origin: Origin, tmp_path: Path) -> None:
    c3, c5 = origin.shas[2], origin.shas[4]
    clone = origin.clone(tmp_path / "ci", depth=1)  # c5
    git(clone, "fetch", "-q", "--depth=1", "origin", c3)  # both present, history cut
    shutil.rmtree(origin.path)
    found = strict_ancestry(clone, c3, c5)
    assert found.answer == "unknown" and "could not be deepened" in found.detail


def test_not_a_repository_is_unknown(tmp_path: Path) -> None:
    found = strict_ancestry(tmp_path, "a" * 40, "b" * 40)
    assert found.answer == "unknown" and "not a git repository" in found.detail
