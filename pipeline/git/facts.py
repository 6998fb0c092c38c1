"""Facts about the git repository that holds the build context, read once and frozen.

Read with the git CLI (three short calls): gitpython's import alone costs more than the
whole read, and an unchanged `snapshot_local` has little time to spend.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import GitError
from pipeline.rules.git_facts import GitFacts, browsable_url

GIT_TIMEOUT_S = 60
_LOCATION = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR")


def _git(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The repository is the one holding `path`: variables naming another must not redirect git.
    env = {k: v for k, v in os.environ.items() if k not in _LOCATION}
    try:
        return subprocess.run(
            ["git", *args], cwd=path, env=env, capture_output=True, text=True,
            timeout=GIT_TIMEOUT_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise GitError(
            f"`git {args[0]}` did not finish within {GIT_TIMEOUT_S} s in {path}",
            "check the repository (git fsck, a hung filesystem) and rerun",
        ) from None


def read_git_facts(path: Path, env: Mapping[str, str]) -> GitFacts:
    """Read sha, dirtiness, branch and git dirs of the repository containing `path`."""
    if not path.exists():
        raise GitError(
            f"{path} does not exist",
            "point SANDBOX_BUILD_CONTEXT at a folder inside a git checkout",
        )
    if shutil.which("git") is None:
        raise GitError("git is not on PATH", "install git (Debian: apt-get install git)")
    where = _git(path, "rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir")
    lines = where.stdout.splitlines()
    if where.returncode or len(lines) != 3:
        raise GitError(
            f"{path} is not inside a git repository",
            "run from a git checkout or set SANDBOX_BUILD_CONTEXT to a folder inside one",
        )
    work_tree = Path(lines[0]).resolve()
    head = _git(path, "log", "-1", "--format=%H %ct", "HEAD")
    if head.returncode or not head.stdout.strip():
        raise GitError(
            f"the repository at {work_tree} has no commits yet",
            "commit once (`git commit`), then rerun: a build names the commit it builds",
        )
    sha, committed = head.stdout.split()
    # What `git status --porcelain` prints is the definition of dirty: untracked files count,
    # ignored ones do not.
    status = _git(path, "status", "--porcelain", "-b")
    if status.returncode:
        raise GitError(
            f"`git status` failed in {work_tree}: {_last_line(status.stderr)}",
            "run `git status` there and fix what it reports",
        )
    state = status.stdout.splitlines()
    common = Path(lines[2])
    return GitFacts(
        sha=sha,
        dirty=len(state) > 1,
        branch=_branch(state[0] if state else "", env),
        work_tree=work_tree,
        git_dir=Path(lines[1]).resolve(),
        common_dir=(common if common.is_absolute() else path / common).resolve(),
        commit_time=datetime.fromtimestamp(int(committed), tz=UTC),
        source_url=_source_url(path, env),
    )


def _branch(header: str, env: Mapping[str, str]) -> str | None:
    # "## main...origin/main [ahead 1]", "## HEAD (no branch)", "## No commits yet on main"
    name = header.removeprefix("## ").split("...")[0].split(" ")[0]
    if name and name != "HEAD":
        return name
    # CI checks out a detached HEAD; the workflow knows the branch it was asked for.
    return env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME") or None


def _source_url(path: Path, env: Mapping[str, str]) -> str | None:
    server, slug = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY")
    if server and slug:
        return f"{server.rstrip('/')}/{slug}"
    url = _git(path, "config", "--get", "remote.origin.url").stdout.strip()
    return browsable_url(url) if url else None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
