"""The git-meta build context: one commit, deterministic bytes, no timestamps."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from pipeline.git.meta_context import (
    CACHE_KEEP,
    cached_git_context,
    dockerfile_wants_git_context,
    make_git_context,
)


def _repo(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (
        ["init", "-q", "-b", "main"],
        ["commit", "-q", "--allow-empty", "-m", "a"],
        ["commit", "-q", "--allow-empty", "-m", "b"],
    ):
        subprocess.run(
            ["git", "-c", "user.email=t@e.invalid", "-c", "user.name=t", *args],
            cwd=repo,
            check=True,
            capture_output=True,
        )
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD~1"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    return repo, sha


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_one_commit_at_the_sha_and_same_bytes_twice(tmp_path: Path) -> None:
    repo, sha = _repo(tmp_path)
    first = make_git_context(repo / ".git", sha, "main", "https://github.com/i/i", tmp_path / "a")
    time.sleep(1.1)  # reflogs would differ by their timestamps
    second = make_git_context(repo / ".git", sha, "main", "https://github.com/i/i", tmp_path / "b")
    assert _files(first) == _files(second)
    assert not first.name.endswith(".git")  # buildx would take it for a git URL
    log = subprocess.run(
        ["git", f"--git-dir={first}", "log", "--format=%H"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert log == [sha]


def test_dockerfile_detection(tmp_path: Path) -> None:
    with_stage, without = tmp_path / "a", tmp_path / "b"
    with_stage.write_text("FROM scratch AS git-meta\nFROM x\n")
    without.write_text("FROM x\n")
    assert dockerfile_wants_git_context(with_stage)
    assert not dockerfile_wants_git_context(without)
    assert not dockerfile_wants_git_context(tmp_path / "missing")


def test_cache_reuses_and_trims(tmp_path: Path) -> None:
    root = tmp_path / "cache" / "git-meta"
    repo, sha = _repo(tmp_path)
    first = cached_git_context(root, repo / ".git", sha, "main", None)
    marker = first / "reused-marker"
    marker.write_text("x")
    assert cached_git_context(root, repo / ".git", sha, "main", None) == first and marker.exists()
    other = cached_git_context(root, repo / ".git", sha, "feature", None)
    assert other != first
    for i in range(CACHE_KEEP + 2):
        cached_git_context(root, repo / ".git", sha, f"b{i}", None)
    assert len([p for p in first.parent.iterdir() if not p.name.startswith(".")]) == CACHE_KEEP


def test_unknown_sha_is_one_git_error_line(tmp_path: Path) -> None:
    from pipeline.errors import GitError

    repo, _ = _repo(tmp_path)
    with pytest.raises(GitError) as caught:
        make_git_context(repo / ".git", "f" * 40, "main", None, tmp_path / "clone")
    message = str(caught.value)
    assert "could not prepare the git-meta build context" in message
    assert f"check that commit {'f' * 40} exists" in message
    assert "\n" not in message
