"""Git facts read with the git CLI (git/facts.py): what `git status -b` headers say about the
branch, and that the process's git variables cannot point the read at another repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.git.facts import read_git_facts
from pipeline.rules.git_facts import CiRefs
from tests.helpers.git import git
from tests.unit.test_gitfacts import repo

__all__ = ["repo"]  # a fixture, used by name


def test_branch_with_slash_and_an_upstream_ahead(repo: Path, tmp_path: Path) -> None:
    upstream = tmp_path / "upstream.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(upstream))
    git(repo, "remote", "add", "origin", str(upstream))
    git(repo, "fetch", "-q", "origin")
    git(repo, "checkout", "-q", "-b", "feature/a-b.c", "--track", "origin/main")
    (repo / "b.txt").write_text("b\n")
    git(repo, "add", "b.txt")
    git(repo, "commit", "-qm", "ahead")  # "## feature/a-b.c...origin/main [ahead 1]"
    facts = read_git_facts(repo, CiRefs())
    # git refuses ".." in branch names: the header's "..." always starts the upstream
    assert facts.branch == "feature/a-b.c"
    assert facts.dirty is False and facts.sha == git(repo, "rev-parse", "HEAD")
    (repo / "untracked.txt").write_text("u\n")
    assert read_git_facts(repo, CiRefs()).dirty is True  # the "## " header is not a change


def test_git_variables_of_the_caller_do_not_redirect_the_read(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "elsewhere")
    (other / "o.txt").write_text("o\n")
    git(other, "add", "-A")
    git(other, "commit", "-qm", "other")
    # A git hook or an editor's terminal may export these; the build context decides.
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    facts = read_git_facts(repo, CiRefs())
    assert facts.work_tree == repo.resolve() and facts.branch == "main"
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_WORK_TREE")
    assert facts.sha == git(repo, "rev-parse", "HEAD")
