"""Is the commit being built a strict ancestor of the one `:main` points at?

A shallow clone (CI's default checkout) cannot say "no": its history stops at the boundary. So
the answer is taken only when certain (either commit reaches the other, or the whole history is
here); otherwise the history is deepened step by step, up to `--unshallow`. When even that fails
the answer is "unknown", with the reason, and the caller keeps `:main` where it is.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.errors import GitError
from pipeline.git.runner import LONG_TIMEOUT_S, git
from pipeline.process_group import Finished
from pipeline.rules.release import Ancestry

FETCH_DEPTH = 64
DEEPEN_STEPS = ("--deepen=64", "--deepen=1024", "--unshallow")
_USERINFO = re.compile(r"://[^/@\s]+@")  # a token in a remote URL must not reach a log


def strict_ancestry(repo: Path, building: str, current: str, *, remote: str = "origin") -> Ancestry:
    if building == current:
        return Ancestry("not-ancestor", "the same commit")
    try:
        if missing := [sha for sha in (building, current) if not _has_commit(repo, sha)]:
            depth = [f"--depth={FETCH_DEPTH}"] if _shallow(repo) else []
            if problem := _fetch(repo, remote, depth, missing):
                names = ", ".join(sha[:12] for sha in missing)
                return Ancestry("unknown", f"{names} is not in this clone ({problem})")
        for step in (None, *DEEPEN_STEPS):
            if step is not None and (problem := _fetch(repo, remote, [step], [building, current])):
                return Ancestry("unknown", f"the shallow clone could not be deepened ({problem})")
            if _is_ancestor(repo, building, current):
                return Ancestry("ancestor", f"{current[:12]} descends from {building[:12]}")
            if _is_ancestor(repo, current, building):
                return Ancestry("not-ancestor", f"{building[:12]} descends from {current[:12]}")
            if not _shallow(repo):
                return Ancestry("not-ancestor", "the two commits are on diverged histories")
    except GitError as error:
        return Ancestry("unknown", error.cause)
    return Ancestry("unknown", "the clone is still shallow after `git fetch --unshallow`")


def _git(repo: Path, *args: str) -> Finished:
    try:
        return git(repo, *args, timeout_s=LONG_TIMEOUT_S)
    except OSError as error:
        raise GitError(f"git cannot run ({error})") from None


def _has_commit(repo: Path, sha: str) -> bool:
    return _git(repo, "cat-file", "-e", f"{sha}^{{commit}}").code == 0


def _shallow(repo: Path) -> bool:
    done = _git(repo, "rev-parse", "--is-shallow-repository")
    if done.code != 0:
        raise GitError(f"{repo} is not a git repository ({_last_line(done)})")
    return done.out.strip() == "true"


def _is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    done = _git(repo, "merge-base", "--is-ancestor", ancestor, descendant)
    if done.code not in (0, 1):
        raise GitError(f"git merge-base failed ({_last_line(done)})")
    return done.code == 0


def _fetch(repo: Path, remote: str, options: list[str], shas: list[str]) -> str | None:
    if _git(repo, "remote", "get-url", remote).code != 0:
        return f"there is no remote {remote!r} to fetch from"
    done = _git(repo, "fetch", "--quiet", "--no-tags", *options, remote, *shas)
    return None if done.code == 0 else f"git fetch {remote}: {_last_line(done)}"


def _last_line(done: Finished) -> str:
    lines = (done.err or done.out).strip().splitlines()
    return _USERINFO.sub("://***@", lines[-1]) if lines else f"exit code {done.code}"
