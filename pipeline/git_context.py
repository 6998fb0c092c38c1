"""A one-commit git repository for the `git-meta` build context.

The image excludes `.git` from its context (it would bust the cache on every commit and leak
history); instead the Dockerfile copies this shallow clone into the baked-in checkout, so a
sandbox without dev sync is still a git repository at the image's commit.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pipeline.errors import GitError

CONTEXT_NAME = "git-meta"


def dockerfile_wants_git_context(dockerfile: Path) -> bool:
    try:
        return f"AS {CONTEXT_NAME}" in dockerfile.read_text()
    except OSError:
        return False


def make_git_context(
    common_dir: Path, sha: str, branch: str | None, source_url: str | None, dest: Path
) -> Path:
    """Clone one commit of `sha` into `dest`; returns the directory holding its git dir."""
    dest.mkdir(parents=True, exist_ok=True)

    def git(*args: str) -> None:
        done = subprocess.run(
            ["git", "-C", str(dest), *args], capture_output=True, text=True, check=False
        )
        if done.returncode:
            raise GitError(
                f"could not prepare the git-meta build context: {done.stderr.strip()}",
                f"check that commit {sha} exists in {common_dir}",
            )

    git("init", "-q")
    git("fetch", "-q", "--depth", "1", f"file://{common_dir}", sha)
    git("symbolic-ref", "HEAD", f"refs/heads/{branch or 'main'}")
    git("reset", "-q", sha)  # index = the commit's tree, so `git status` inside compares content
    if source_url:
        git("remote", "add", "origin", f"{source_url}.git")
    # Reflogs and fetch notes carry timestamps: without them an unchanged rebuild gets identical
    # bytes and the COPY of this context stays cached.
    for volatile in ("logs", "FETCH_HEAD", "ORIG_HEAD"):
        path = dest / ".git" / volatile
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    # buildx takes a context path ending in ".git" for a git URL: hand it over under another name.
    context = dest.parent / f"{dest.name}-context"
    (dest / ".git").rename(context)
    return context
