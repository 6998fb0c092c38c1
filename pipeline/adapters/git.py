"""Facts about the git repository that holds the build context, read once and frozen."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import GitError
from pipeline.rules.git_facts import GitFacts, browsable_url


def read_git_facts(path: Path, env: Mapping[str, str]) -> GitFacts:
    """Read sha, dirtiness, branch and git dirs of the repository containing `path`."""
    if not path.exists():
        raise GitError(
            f"{path} does not exist",
            "point SANDBOX_BUILD_CONTEXT at a folder inside a git checkout",
        )
    if shutil.which("git") is None:  # gitpython would fail its import with a page of advice
        raise GitError("git is not on PATH", "install git (Debian: apt-get install git)")
    import git  # gitpython costs ~0.15 s to import; only sessions that need git pay for it

    logging.getLogger("git").setLevel(logging.WARNING)  # nox shows DEBUG; its Popen lines are noise
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitError(
            f"{path} is not inside a git repository",
            "run from a git checkout or set SANDBOX_BUILD_CONTEXT to a folder inside one",
        ) from None
    with repo:
        try:
            commit = repo.head.commit
        except ValueError:
            raise GitError(
                f"the repository at {repo.working_tree_dir} has no commits yet",
                "commit once (`git commit`), then rerun: a build names the commit it builds",
            ) from None
        # What `git status --porcelain` prints is the definition of dirty: untracked files count,
        # ignored ones do not (is_dirty() would miss untracked files).
        dirty = bool(repo.git.status("--porcelain"))
        branch = _branch(repo, env)
        return GitFacts(
            sha=commit.hexsha,
            dirty=dirty,
            branch=branch,
            # gitpython gives a worktree's common dir as ".../worktrees/NAME/../.."; resolve it,
            # since these paths are mounted into containers for dev sync.
            work_tree=Path(repo.working_tree_dir or path).resolve(),
            git_dir=Path(repo.git_dir).resolve(),
            common_dir=Path(repo.common_dir).resolve(),
            commit_time=datetime.fromtimestamp(commit.committed_date, tz=UTC),
            source_url=_source_url(repo, env),
        )


def _branch(repo: object, env: Mapping[str, str]) -> str | None:
    head = repo.head  # type: ignore[attr-defined]
    if not head.is_detached:
        return str(head.reference.name)
    # CI checks out a detached HEAD; the workflow knows the branch it was asked for.
    return env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME") or None


def _source_url(repo: object, env: Mapping[str, str]) -> str | None:
    server, slug = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY")
    if server and slug:
        return f"{server.rstrip('/')}/{slug}"
    try:
        url = next(repo.remote("origin").urls)  # type: ignore[attr-defined]
    except (ValueError, StopIteration):
        return None
    return browsable_url(url)
