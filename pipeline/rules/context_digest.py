"""The build context's file set as one digest (pure, standard library only: the replay digests
the context inside nox's own interpreter, so this is kept apart from rules/fingerprint.py).
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterable
from dataclasses import dataclass

_KINDS = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "dir",
    stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "char",
    stat.S_IFBLK: "block",
}


@dataclass(frozen=True)
class ContextEntry:
    """One path as buildx sends it. `payload`: a file's content digest, a symlink's target, a
    device's number; empty for directories. Times are left out: BuildKit's cache ignores them,
    so a touched but unchanged file yields the same image."""

    path: str
    mode: int  # st_mode: type and permission bits
    uid: int
    gid: int
    payload: str

    @property
    def kind(self) -> str:
        return _KINDS.get(stat.S_IFMT(self.mode), "other")

    def line(self) -> str:
        perms = stat.S_IMODE(self.mode)
        return f"{self.path}\0{self.kind}\0{perms:o}\0{self.uid}\0{self.gid}\0{self.payload}\n"


def context_digest(entries: Iterable[ContextEntry]) -> str:
    """Independent of the order the walk found the entries in."""
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: e.path.encode("utf-8", "surrogateescape")):
        digest.update(entry.line().encode("utf-8", "surrogateescape"))
    return digest.hexdigest()
