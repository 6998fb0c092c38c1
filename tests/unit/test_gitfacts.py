"""Git facts from real (temporary) repositories: dirtiness, detached HEAD, worktrees, URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import GitError
from pipeline.git.facts import read_git_facts
from pipeline.rules.git_facts import CiRefs, browsable_url
from tests.helpers.git import git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / ".gitignore").write_text("ignored.log\n")
    (path / "a.txt").write_text("a\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "init")
    return path


def test_clean(repo: Path) -> None:
    facts = read_git_facts(repo, CiRefs())
    assert facts.sha == git(repo, "rev-parse", "HEAD") and not facts.dirty
    assert facts.branch == "main" and facts.git_dir == facts.common_dir == repo / ".git"


@pytest.mark.parametrize("change", ["untracked", "unstaged", "staged"])
def test_dirty_means_git_status_porcelain(repo: Path, change: str) -> None:
    if change == "untracked":
        (repo / "new.txt").write_text("x")
    else:
        (repo / "a.txt").write_text("changed\n")
        if change == "staged":
            git(repo, "add", "a.txt")
    assert read_git_facts(repo, CiRefs()).dirty


def test_ignored_files_are_not_dirty(repo: Path) -> None:
    (repo / "ignored.log").write_text("noise")
    assert not read_git_facts(repo, CiRefs()).dirty


def test_detached_head_takes_branch_from_ci(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    assert read_git_facts(repo, CiRefs()).branch is None
    assert read_git_facts(repo, CiRefs(ref_name="main")).branch == "main"
    assert read_git_facts(repo, CiRefs(head_ref="pr", ref_name="1/merge")).branch == "pr"


def test_worktree_dirs(repo: Path, tmp_path: Path) -> None:
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(worktree))
    facts = read_git_facts(worktree, CiRefs())
    assert facts.branch == "feature"
    assert facts.common_dir == repo / ".git"
    assert facts.git_dir == repo / ".git" / "worktrees" / "wt"


def test_subfolder_finds_repository(repo: Path) -> None:
    (repo / "sandbox").mkdir()
    assert read_git_facts(repo / "sandbox", CiRefs()).work_tree == repo


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="not inside a git repository"):
        read_git_facts(tmp_path, CiRefs())


def test_no_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    with pytest.raises(GitError, match="no commits yet") as caught:
        read_git_facts(tmp_path, CiRefs())
    # GIT_SHA cannot stand in for a commit (the build must name the commit it builds).
    assert "commit once" in str(caught.value) and "GIT_SHA" not in str(caught.value)


def test_folder_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(GitError) as caught:
        read_git_facts(tmp_path / "nowhere", CiRefs())
    assert f"{tmp_path / 'nowhere'} does not exist" in str(caught.value)
    assert "not inside a git repository" not in str(caught.value)


def test_git_missing_from_path(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(GitError, match="git is not on PATH") as caught:
        read_git_facts(repo, CiRefs())
    assert "install git" in str(caught.value)


def test_source_from_github_env(repo: Path) -> None:
    ci = CiRefs(server_url="https://github.com", repository="iterate/iterate")
    assert read_git_facts(repo, ci).source_url == "https://github.com/iterate/iterate"


@pytest.mark.parametrize(
    ("remote", "url"),
    [
        ("git@github.com:iterate/iterate.git", "https://github.com/iterate/iterate"),
        (
            "https://x-access-token:ghs_SECRET@github.com/iterate/iterate.git",
            "https://github.com/iterate/iterate",
        ),
        ("ssh://git@github.com/iterate/iterate.git", "https://github.com/iterate/iterate"),
        ("https://github.com/iterate/iterate/", "https://github.com/iterate/iterate"),
        ("/home/me/src/iterate", None),  # a clone of a local path: no web address to name
        ("../iterate.git", None),
        ("file:///home/me/src/iterate", None),
    ],
)
def test_browsable_url_drops_credentials(remote: str, url: str | None) -> None:
    assert browsable_url(remote) == url


def test_origin_with_token_is_not_leaked(repo: Path) -> None:
    git(repo, "remote", "add", "origin", "https://u:tok3n@github.com/iterate/iterate.git")
    assert read_git_facts(repo, CiRefs()).source_url == "https://github.com/iterate/iterate"
