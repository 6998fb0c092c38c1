"""The copy of the build context that buildx is sent from: what is built is exactly what was
fingerprinted, whatever happens to the checkout meanwhile.

Two gaps close this way (both reproduced against buildx 0.13):
- A file edited after its digest was taken but before buildx sent it (and maybe edited back):
  the copy changes only here, before the build, and its digest is of what was written into it.
- buildx resends a file only when its size or mtime changed, so a same-size edit whose mtime is
  put back (`touch -r`, archives with fixed times) stays invisible to it, even with --no-cache.
  Where the content changed while size and mtime did not, the copy's mtime moves by 1 ns.

Unchanged files are not copied again. One build uses a copy at a time (a lock); the user's files
are only ever read. Standard library only.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.fastpath.context import (
    ContextError,
    Entry,
    IgnoreRules,
    context_digest,
    file_digest,
    walk,
)
from pipeline.fastpath.files import read_json, write_json
from pipeline.rules.dockerignore import Matcher

MANIFEST_FORMAT = 1
# path -> [source size, mtime, ctime, inode, copy's size, copy's mtime, content digest]
Manifest = dict[str, list[int | str]]


@dataclass(frozen=True)
class Mirror:
    context: Path  # the copy of the files buildx sends
    dockerfile: Path  # the Dockerfile (and beside it its ignore file, when it has one)
    digest: str  # context_digest of what the copy holds
    dockerfile_digest: str  # sha256 of the Dockerfile's bytes in the copy
    copied: int  # files written this time


@contextmanager
def mirrored(context: Path, rules: IgnoreRules, dockerfile: Path, root: Path) -> Iterator[Mirror]:
    """The context and Dockerfile synced into `root`, locked for as long as the build reads them."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another build of this context waits its turn
        yield _sync(context, rules, dockerfile, root)


def _sync(context: Path, rules: IgnoreRules, dockerfile: Path, root: Path) -> Mirror:
    source_root = os.path.realpath(context)
    target_root = root / "context"
    target_root.mkdir(exist_ok=True)
    for folder, _, _ in os.walk(target_root):  # folders copied read-only: writable while synced
        if (folder_mode := os.stat(folder).st_mode) & 0o700 != 0o700:
            os.chmod(folder, folder_mode | 0o700)
    files = read_json(root / "manifest.json", MANIFEST_FORMAT).get("files")
    old: Manifest = files if isinstance(files, dict) else {}
    new: Manifest = {}
    entries: list[Entry] = []
    directories: list[tuple[str, os.stat_result]] = []
    copied = 0
    for path, info in walk(context, rules.matcher):
        source, target = os.path.join(source_root, path), target_root / path
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            _clear_if(target, lambda m: not stat.S_ISDIR(m))
            target.mkdir(exist_ok=True)
            directories.append((path, info))
            payload = ""
        elif stat.S_ISLNK(mode):
            payload = os.readlink(source)
            if not (target.is_symlink() and os.readlink(target) == payload):
                _clear_if(target, lambda m: True)
                target.symlink_to(payload)
        elif stat.S_ISREG(mode):
            recorded = old.get(path)
            new[path] = _sync_file(source, target, info, recorded)
            copied += new[path] is not recorded
            payload = str(new[path][6])
        else:
            raise ContextError(
                f"{source} is neither file, folder nor link (a socket or device)",
                "exclude it in the .dockerignore",
            )
        entries.append((path, mode, payload))
    present = {path for path, _ in walk(target_root, Matcher(()))}
    for extra in sorted(present - {entry[0] for entry in entries}, key=len, reverse=True):
        gone = target_root / extra
        if gone.is_dir() and not gone.is_symlink():
            shutil.rmtree(gone, ignore_errors=True)
        else:
            gone.unlink(missing_ok=True)
    for path, info in reversed(directories):  # deepest first: a child's write moves its parent
        os.chmod(target_root / path, stat.S_IMODE(info.st_mode))
        os.utime(target_root / path, ns=(info.st_atime_ns, info.st_mtime_ns))
    write_json(root / "manifest.json", {"format": MANIFEST_FORMAT, "files": new})
    recipe = root / "dockerfile"
    shutil.rmtree(recipe, ignore_errors=True)
    recipe.mkdir()
    content = dockerfile.read_bytes()
    (recipe / dockerfile.name).write_bytes(content)
    if rules.path is not None and rules.path.parent == dockerfile.parent:
        # <Dockerfile>.dockerignore: the very rules the files above were chosen by
        (recipe / rules.path.name).write_bytes(rules.text.encode("utf-8", "surrogateescape"))
    return Mirror(
        target_root,
        recipe / dockerfile.name,
        context_digest(entries),
        hashlib.sha256(content).hexdigest(),
        copied,
    )


def _sync_file(
    source: str, target: Path, info: os.stat_result, recorded: list[int | str] | None
) -> list[int | str]:
    """The file's manifest entry: the recorded one when neither the source nor the copy changed
    since it was written, else a new copy's (hashing what is written), with the source's mode
    and mtime (see the module)."""
    mode = stat.S_IMODE(info.st_mode)
    seen: list[int | str] = [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]
    try:
        copy = target.lstat()
        kept = recorded is not None and recorded[:6] == [*seen, copy.st_size, copy.st_mtime_ns]
    except FileNotFoundError:
        kept = False
    if kept and recorded is not None:
        if stat.S_IMODE(copy.st_mode) != mode:
            os.chmod(target, mode)
        return recorded
    _clear_if(target, lambda m: not stat.S_ISREG(m))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.sync")
    digest = file_digest(source, tmp)
    size, mtime = tmp.stat().st_size, info.st_mtime_ns
    if recorded is not None and recorded[4:6] == [size, mtime] and recorded[6] != digest:
        mtime += 1  # same size and time as what buildx has, other content: make it look
    os.chmod(tmp, mode)
    os.utime(tmp, ns=(time.time_ns(), mtime))
    tmp.replace(target)
    return [*seen, size, mtime, digest]


def _clear_if(target: Path, wrong: Callable[[int], bool]) -> None:
    try:
        mode = target.lstat().st_mode
    except FileNotFoundError:
        return
    if wrong(mode):
        if stat.S_ISDIR(mode):
            shutil.rmtree(target)
        else:
            target.unlink()
