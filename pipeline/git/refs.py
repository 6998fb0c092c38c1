"""A commit's tree as a temporary directory, for building a branch, tag or sha without checking
it out (`SANDBOX_ITERATE_REPO_REF`).

`git read-tree` into a temporary index and `git checkout-index` into a temporary folder leave the
user's checkout, index and `.git` as they were (no worktree entry left behind if the process
dies, no hooks run). Unlike `git archive` it honours no `export-ignore`/`export-subst` and
applies a checkout's attributes and filters: the files are those a checkout would have.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import GitError
from pipeline.git.facts import locate
from pipeline.git.runner import LONG_TIMEOUT_S, git
from pipeline.rules.git_facts import GitFacts


@dataclass(frozen=True)
class ResolvedRef:
    sha: str
    commit_time: datetime
    branch: str | None  # the branch it names (local, or origin's), None for a tag or a sha


@dataclass(frozen=True)
class ExportedTree:
    path: Path  # the commit's files
    work_tree: Path  # the checkout it was read from (untouched)
    common_dir: Path
    resolved: ResolvedRef

    @property
    def sha(self) -> str:
        return self.resolved.sha

    def map(self, path: Path) -> Path:
        """A path in the checkout as the same path in the export; other paths unchanged."""
        try:
            return self.path / Path(os.path.realpath(path)).relative_to(self.work_tree)
        except ValueError:
            return path

    def facts(self, checkout: GitFacts) -> GitFacts:
        """Git facts for a build of this commit: clean by definition, its own sha and time."""
        return checkout.model_copy(
            update={
                "sha": self.resolved.sha,
                "dirty": False,
                "branch": self.resolved.branch,
                "work_tree": self.path,
                "commit_time": self.resolved.commit_time,
            }
        )


def resolve_ref(work_tree: Path, ref: str) -> ResolvedRef:
    """The commit `ref` names: as git reads it, else origin's branch of that name."""
    if not ref or ref.startswith("-") or any(c.isspace() or c == "\0" for c in ref):
        raise GitError(
            f"SANDBOX_ITERATE_REPO_REF={ref!r} is not a branch, tag or sha",
            "give a branch, tag or commit sha, e.g. SANDBOX_ITERATE_REPO_REF=my-feature-branch",
        )
    for candidate in (ref, f"refs/remotes/origin/{ref}"):
        done = git(work_tree, "rev-parse", "--verify", "--quiet", "--end-of-options",
                   f"{candidate}^{{commit}}")  # fmt: skip
        if done.code == 0:
            sha = done.out.strip()
            break
    else:
        raise GitError(
            f"SANDBOX_ITERATE_REPO_REF={ref!r} names no commit in {work_tree}",
            f"check the name (git branch -a, git tag), or fetch it first: git fetch origin {ref}",
        )
    shown = git(work_tree, "show", "-s", "--format=%ct", sha)
    # `candidate` starts with no "-" (checked above), so git cannot take it for an option
    full = git(work_tree, "rev-parse", "--symbolic-full-name", candidate).out.strip()
    heads = ("refs/heads/", "refs/remotes/origin/")
    return ResolvedRef(
        sha=sha,
        commit_time=datetime.fromtimestamp(int(shown.out.strip()), tz=UTC),
        branch=next((full.removeprefix(p) for p in heads if full.startswith(p)), None),
    )


@contextmanager
def export_ref(repo_path: Path, ref: str) -> Iterator[ExportedTree]:
    where = locate(repo_path)
    resolved = resolve_ref(where.work_tree, ref)
    scratch = Path(tempfile.mkdtemp(prefix=f"sandbox-ref-{resolved.sha[:12]}-"))
    try:
        tree = scratch / "tree"
        tree.mkdir()
        index = {"GIT_INDEX_FILE": str(scratch / "index")}
        repo = (f"--git-dir={where.git_dir}", f"--work-tree={tree}")
        for step in (("read-tree", resolved.sha), ("checkout-index", "--all", "--force")):
            done = git(tree, *repo, *step, env=index, timeout_s=LONG_TIMEOUT_S)
            if done.code:
                raise GitError(
                    f"could not export {ref} ({resolved.sha[:12]}): {done.err.strip()}",
                    "check that the commit's objects are present (git fsck), then rerun",
                )
        yield ExportedTree(tree, where.work_tree, where.common_dir, resolved)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
