"""Extract a downloaded tarball without letting it write outside its destination.

Python 3.11.4+ has `extractall(..., filter="data")`; on Debian bookworm's 3.11.2 the same checks
run here, member by member, with paths resolved against what is already on disk (a symlink
extracted earlier cannot carry a later member outside).
"""

from __future__ import annotations

import copy
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

# True on 3.11.4+ (and 3.12+); bookworm's 3.11.2 has no extraction filters.
HAS_DATA_FILTER = hasattr(tarfile, "data_filter")


class UnsafeMemberError(tarfile.TarError):
    pass


def extract_all(
    archive: tarfile.TarFile,
    destination: Path,
    members: Iterable[tarfile.TarInfo],
    *,
    use_builtin_filter: bool = HAS_DATA_FILTER,
) -> None:
    if use_builtin_filter:
        archive.extractall(destination, members=members, filter="data")
        return
    root = os.path.realpath(destination)
    # Checked above; "fully_trusted" only keeps 3.12+ from warning about the default filter.
    no_filter: dict[str, str] = {"filter": "fully_trusted"} if HAS_DATA_FILTER else {}
    for member in members:
        archive.extract(checked_member(member, root), root, **no_filter)  # type: ignore[arg-type]


def checked_member(member: tarfile.TarInfo, root: str) -> tarfile.TarInfo:
    """A copy of `member` safe to extract under `root` (a realpath), or UnsafeMemberError."""
    name = member.name
    if name.startswith("/") or os.path.isabs(name):
        raise UnsafeMemberError(f"{name!r} is an absolute path")
    _inside(root, os.path.join(root, name), f"{name!r} leaves the destination")
    if member.issym() or member.islnk():
        if member.linkname.startswith("/") or os.path.isabs(member.linkname):
            raise UnsafeMemberError(f"link {name!r} -> {member.linkname!r} is absolute")
        base = os.path.join(root, os.path.dirname(name)) if member.issym() else root
        _inside(
            root,
            os.path.join(base, member.linkname),
            f"link {name!r} -> {member.linkname!r} points outside the destination",
        )
    elif not (member.isreg() or member.isdir()):
        raise UnsafeMemberError(f"{name!r} is a device, fifo or other special file")
    safe = copy.copy(member)
    safe.mode = _safe_mode(member)
    # The archive's owners are ignored: files belong to whoever extracts them.
    safe.uid, safe.gid, safe.uname, safe.gname = os.geteuid(), os.getegid(), "", ""
    return safe


def _inside(root: str, path: str, problem: str) -> None:
    resolved = os.path.realpath(path)
    if os.path.commonpath([resolved, root]) != root:
        raise UnsafeMemberError(problem)


def _safe_mode(member: tarfile.TarInfo) -> int:
    mode = member.mode & 0o755  # no setuid/setgid/sticky, no group/other write
    if member.isdir():
        return mode | 0o700
    if not mode & 0o100:
        mode &= ~0o111  # a file its owner cannot run, no one can
    return mode | 0o600
