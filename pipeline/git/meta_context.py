"""A one-commit git repository for the `git-meta` build context: the image excludes `.git` (it
would bust the cache on every commit and leak history), and the Dockerfile copies this shallow
clone in instead, so a sandbox without dev sync is still a git repository at its commit.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from pipeline.errors import GitError
from pipeline.git.runner import LONG_TIMEOUT_S, git
from pipeline.rules.dockerfile import parse, stage_names

CONTEXT_NAME = "git-meta"
CACHE_KEEP = 5


def cached_git_context(
    root: Path, common_dir: Path, sha: str, branch: str | None, source_url: str | None
) -> Path:
    """The git-meta context for (sha, branch, source), made once under `root` and reused: its
    bytes depend on nothing else, and an unchanged rebuild then spends no git calls on it."""
    ready = cache_path(root, sha, branch, source_url)
    if ready.is_dir():
        os.utime(ready)  # most recently used survives the trim below
        return ready
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".making-") as tmp:
        made = make_git_context(common_dir, sha, branch, source_url, Path(tmp) / "clone")
        try:
            made.rename(ready)  # atomic: a concurrent build either sees all of it or none
        except OSError:
            if not ready.is_dir():
                raise
    for stale in sorted(root.iterdir(), key=lambda p: p.stat().st_mtime)[:-CACHE_KEEP]:
        if not stale.name.startswith("."):
            shutil.rmtree(stale, ignore_errors=True)
    return ready


def cache_path(root: Path, sha: str, branch: str | None, source_url: str | None) -> Path:
    key = hashlib.sha256(f"{sha}\0{branch}\0{source_url}".encode()).hexdigest()[:24]
    return root / key


def dockerfile_wants_git_context(dockerfile: Path) -> bool:
    try:
        return CONTEXT_NAME in stage_names(parse(dockerfile.read_text()))
    except OSError:
        return False


def make_git_context(
    common_dir: Path, sha: str, branch: str | None, source_url: str | None, dest: Path
) -> Path:
    """Clone commit `sha` into `dest`; returns the directory holding its git dir."""
    dest.mkdir(parents=True, exist_ok=True)

    def in_clone(*args: str) -> None:
        done = git(dest, *args, timeout_s=LONG_TIMEOUT_S)
        if done.code:
            raise GitError(
                f"could not prepare the git-meta build context: {done.err.strip()}",
                f"check that commit {sha} exists in {common_dir}",
            )

    in_clone("init", "-q")
    in_clone("fetch", "-q", "--depth", "1", f"file://{common_dir}", sha)
    in_clone("symbolic-ref", "HEAD", f"refs/heads/{branch or 'main'}")
    # index = the commit's tree, so `git status` inside compares content
    in_clone("reset", "-q", sha)
    if source_url:
        in_clone("remote", "add", "origin", f"{source_url}.git")
    # Reflogs and fetch notes carry timestamps: without them an unchanged rebuild gets identical
    # bytes and the COPY of this context stays cached.
    if (dest / ".git" / "logs").is_dir():
        shutil.rmtree(dest / ".git" / "logs")
    for volatile in ("FETCH_HEAD", "ORIG_HEAD"):
        (dest / ".git" / volatile).unlink(missing_ok=True)
    # buildx takes a context path ending in ".git" for a git URL: hand it over under another name.
    context = dest.parent / f"{dest.name}-context"
    (dest / ".git").rename(context)
    return context
