"""Facts about the git repository that holds the build context, read once and frozen, with the
git CLI: gitpython's import alone costs more than the three calls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import GitError
from pipeline.git.runner import git
from pipeline.process_group import last_line
from pipeline.rules.git_facts import CiRefs, GitFacts, browsable_url


@dataclass(frozen=True)
class Where:
    work_tree: Path
    git_dir: Path  # per-worktree (differs from common_dir in a linked worktree)
    common_dir: Path


def locate(path: Path) -> Where:
    if not path.exists():
        raise GitError(
            f"{path} does not exist",
            "point SANDBOX_BUILD_CONTEXT at a folder inside a git checkout",
        )
    done = git(path, "rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir")
    lines = done.out.splitlines()
    if done.code or len(lines) != 3:
        raise GitError(
            f"{path} is not inside a git repository",
            "run from a git checkout or set SANDBOX_BUILD_CONTEXT to a folder inside one",
        )
    return Where(
        work_tree=Path(lines[0]).resolve(),
        git_dir=Path(lines[1]).resolve(),
        common_dir=(path / lines[2]).resolve(),  # relative to `path` unless absolute
    )


def read_git_facts(path: Path, ci: CiRefs) -> GitFacts:
    """`ci`: what the CI run says about the branch and the repository (a detached checkout)."""
    where = locate(path)
    head = git(path, "log", "-1", "--format=%H %ct", "HEAD")
    if head.code or not head.out.strip():
        raise GitError(
            f"the repository at {where.work_tree} has no commits yet",
            "commit once (`git commit`), then rerun: a build names the commit it builds",
        )
    sha, committed = head.out.split()
    # What `git status --porcelain` prints is the definition of dirty: untracked files count,
    # ignored ones do not.
    status = git(path, "status", "--porcelain", "-b")
    if status.code:
        raise GitError(
            f"`git status` failed in {where.work_tree}: {last_line(status.err)}",
            "run `git status` there and fix what it reports",
        )
    state = status.out.splitlines()
    # "## main...origin/main [ahead 1]", "## HEAD (no branch)", "## No commits yet on main"
    branch = (state[0] if state else "").removeprefix("## ").split("...")[0].split(" ")[0]
    return GitFacts(
        sha=sha,
        dirty=len(state) > 1,
        # CI checks out a detached HEAD; the workflow knows the branch it was asked for.
        branch=branch if branch not in ("", "HEAD") else ci.head_ref or ci.ref_name or None,
        work_tree=where.work_tree,
        git_dir=where.git_dir,
        common_dir=where.common_dir,
        commit_time=datetime.fromtimestamp(int(committed), tz=UTC),
        source_url=_source_url(path, ci),
    )


def _source_url(path: Path, ci: CiRefs) -> str | None:
    if ci.server_url and ci.repository:
        return f"{ci.server_url.rstrip('/')}/{ci.repository}"
    # `remote.origin.url` as git's whole config resolves it
    done = git(path, "config", "--get", "remote.origin.url")
    if done.code not in (0, 1):  # 1: not set
        raise GitError(f"git config failed: {last_line(done.err)}", "run `git config -l` there")
    return browsable_url(done.out.strip()) if done.out.strip() else None
