"""What a build knows about its commit, and how a git remote becomes a label-safe URL (pure)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

_USERINFO = re.compile(r"^(?P<scheme>[a-z+]+://)[^/@]*@", re.IGNORECASE)
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>.+)$")


class CiRefs(BaseModel, frozen=True):
    """What a GitHub Actions run says about the commit it checked out."""

    head_ref: str | None = None  # GITHUB_HEAD_REF: a pull request's branch
    ref_name: str | None = None  # GITHUB_REF_NAME
    server_url: str | None = None  # GITHUB_SERVER_URL
    repository: str | None = None  # GITHUB_REPOSITORY (owner/name)


class GitFacts(BaseModel, frozen=True):
    sha: str
    dirty: bool
    branch: str | None  # None on a detached HEAD with no CI ref to name it
    work_tree: Path
    git_dir: Path  # per-worktree dir (differs from common_dir in a linked worktree)
    common_dir: Path
    commit_time: datetime
    source_url: str | None  # origin as a browsable https URL, never with credentials


def browsable_url(remote_url: str) -> str | None:
    """An https URL for a git remote, with any user or token removed (it ends up in a label);
    None for a remote that is no web address (a clone of a local path, file://)."""
    url = _USERINFO.sub(r"\g<scheme>", remote_url.strip())
    if "://" not in url and (scp := _SCP_LIKE.match(url)):
        url = f"https://{scp['host']}/{scp['path']}"
    url = re.sub(r"^(?:ssh|git)://", "https://", url)
    if not url.startswith(("https://", "http://")):
        return None
    return url.removesuffix(".git").removesuffix("/")
