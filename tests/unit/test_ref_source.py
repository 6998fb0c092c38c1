"""Building a ref without checking it out: the commit's files in a temporary directory, and the
user's checkout, index, untracked files and .git exactly as they were."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import GitError
from pipeline.git.refs import export_ref, resolve_ref
from pipeline.rules.build_plan import sha_tag
from pipeline.rules.git_facts import GitFacts
from tests.helpers.git import git

FEATURE_TIME = 1_790_000_000


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """main: app.txt=main; feature: app.txt=feature plus a script and a link; tag v1 on main.
    The checkout is on main with a modified file, a staged file and an untracked one."""
    root = tmp_path / "checkout"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "app.txt").write_text("main\n")
    (root / ".gitattributes").write_text("secret.txt export-ignore\n")
    (root / "secret.txt").write_text("kept by checkout-index, dropped by git archive\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "main")
    git(root, "tag", "v1")
    git(root, "checkout", "-q", "-b", "feature")
    (root / "app.txt").write_text("feature\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    os.symlink("app.txt", root / "link")
    git(root, "add", "-A")
    stamp = f"@{FEATURE_TIME} +0000"
    git(root, "commit", "-qm", "feature", GIT_COMMITTER_DATE=stamp, GIT_AUTHOR_DATE=stamp)
    git(root, "checkout", "-q", "main")
    (root / "app.txt").write_text("uncommitted edit\n")
    (root / "staged.txt").write_text("staged\n")
    git(root, "add", "staged.txt")
    (root / "untracked.txt").write_text("untracked\n")
    return root


def _snapshot(repo: Path) -> tuple[str, bytes, list[str], str]:
    return (
        git(repo, "status", "--porcelain", "--untracked-files=all"),
        (repo / ".git" / "index").read_bytes(),
        sorted(p.name for p in (repo / ".git").iterdir()),
        (repo / "app.txt").read_text(),
    )


def test_branch_is_exported_without_touching_the_checkout(repo: Path) -> None:
    before = _snapshot(repo)
    with export_ref(repo, "feature") as tree:
        assert (tree.path / "app.txt").read_text() == "feature\n"
        assert os.readlink(tree.path / "link") == "app.txt"
        assert stat.S_IMODE((tree.path / "run.sh").stat().st_mode) & 0o111
        assert not (tree.path / "untracked.txt").exists()
        assert not (tree.path / "staged.txt").exists()
        assert not (tree.path / ".git").exists()
        assert (tree.path / "secret.txt").exists()  # no export-ignore: a checkout's files
        assert tree.sha == git(repo, "rev-parse", "feature")
        assert tree.resolved.branch == "feature"
        assert tree.resolved.commit_time == datetime.fromtimestamp(FEATURE_TIME, tz=UTC)
        assert _snapshot(repo) == before  # also while the export exists
        exported = tree.path
    assert not exported.exists() and not exported.parent.exists()
    assert _snapshot(repo) == before
    assert "worktrees" not in before[2]


def test_tag_and_short_sha(repo: Path) -> None:
    main_sha = git(repo, "rev-parse", "main")
    with export_ref(repo, "v1") as tree:
        assert tree.sha == main_sha and tree.resolved.branch is None
        assert (tree.path / "app.txt").read_text() == "main\n"  # the commit, not the edit
    with export_ref(repo, main_sha[:10]) as tree:
        assert tree.sha == main_sha


def test_origin_branch_that_is_not_local(repo: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--branch", "main", str(repo), str(clone))
    resolved = resolve_ref(clone, "feature")
    assert resolved.sha == git(repo, "rev-parse", "feature")
    assert resolved.branch == "feature"


@pytest.mark.parametrize("ref", ["no-such-branch", "v9", "deadbeef" * 5])
def test_unknown_ref_is_one_line_naming_it(repo: Path, ref: str) -> None:
    with pytest.raises(GitError) as caught, export_ref(repo, ref):
        pass  # pragma: no cover - never reached
    message = str(caught.value)
    assert ref in message and "\n" not in message and "SANDBOX_ITERATE_REPO_REF" in message


@pytest.mark.parametrize("ref", ["--output=/tmp/x", "-h", "", "a b", "main\n"])
def test_option_like_or_blank_ref_is_refused(repo: Path, ref: str) -> None:
    with pytest.raises(GitError, match="SANDBOX_ITERATE_REPO_REF"):
        resolve_ref(repo, ref)


def test_export_is_removed_when_the_build_fails(repo: Path) -> None:
    seen: list[Path] = []

    def failing_build() -> None:
        with export_ref(repo, "feature") as tree:
            seen.append(tree.path)
            raise RuntimeError("build failed")

    with pytest.raises(RuntimeError):
        failing_build()
    assert seen and not seen[0].exists()


def test_map_and_facts(repo: Path) -> None:
    checkout = GitFacts(
        sha=git(repo, "rev-parse", "HEAD"),
        dirty=True,
        branch="main",
        work_tree=repo,
        git_dir=repo / ".git",
        common_dir=repo / ".git",
        commit_time=datetime(2026, 1, 1, tzinfo=UTC),
        source_url="https://github.com/iterate/iterate",
    )
    with export_ref(repo / "", "feature") as tree:
        assert tree.map(repo / "sandbox" / "Dockerfile") == tree.path / "sandbox" / "Dockerfile"
        assert tree.map(repo) == tree.path
        assert tree.map(Path("/etc/ssl/ca.pem")) == Path("/etc/ssl/ca.pem")
        facts = tree.facts(checkout)
    assert facts.sha == tree.sha and facts.dirty is False and facts.branch == "feature"
    assert facts.common_dir == checkout.common_dir and facts.source_url == checkout.source_url
    assert sha_tag(facts.sha, facts.dirty) == f"sha-{tree.sha}"  # never -dirty


def test_linked_worktree_checkout(repo: Path, tmp_path: Path) -> None:
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "--detach", str(linked), "v1")
    with export_ref(linked, "feature") as tree:
        assert (tree.path / "app.txt").read_text() == "feature\n"
        assert tree.common_dir == (repo / ".git").resolve()


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="not inside a git repository"), export_ref(tmp_path, "main"):
        pass  # pragma: no cover - never reached
