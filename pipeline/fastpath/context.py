"""The build context as buildx sends it: the walk, the ignore file it honours, and file digests
kept in a stat cache so that an unchanged tree re-reads no file.

The walk mirrors tonistiigi/fsutil's FilterFS (buildx 0.13): lstat only (symlinks are sent as
links), an excluded directory is skipped unless an exception may match below it, and one that is
excluded itself is still sent when something inside it is.
"""

from __future__ import annotations

import hashlib
import operator
import os
import stat
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.fastpath.files import keep_newest, read_json, write_json
from pipeline.rules.dockerignore import Matcher, ignore_file_candidates, read_patterns

CACHE_FORMAT = 1
CACHE_KEEP = 16
# A file changed within this long of being hashed may keep its mtime (coarse file system clocks):
# such entries are not trusted next time (git's "racily clean" rule).
RACY_MARGIN_NS = 2_000_000_000
_STAT_KEY = operator.attrgetter(
    "st_size", "st_mtime_ns", "st_ctime_ns", "st_ino", "st_dev", "st_mode"
)


class ContextError(ConfigError):
    pass


_KINDS = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "dir",
    stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "char",
    stat.S_IFBLK: "block",
}


# One path as buildx sends it: (path, st_mode, payload), the payload being a file's content digest,
# a symlink's target, a device's number, empty for a directory.
Entry = tuple[str, int, str]


def context_digest(entries: Iterable[Entry]) -> str:
    """The file set as one digest, independent of the order the walk found it in (here, not in
    rules/fingerprint.py: the replay digests the context in nox's own interpreter). Times are
    left out: BuildKit's cache ignores them, so a touched but unchanged file yields the same
    image. So is ownership (written as 0:0): COPY and ADD create context files as 0:0 (or
    --chown's), and the copy buildx is sent from (mirror.py) belongs to whoever runs the build."""
    digest = hashlib.sha256()
    for path, mode, payload in sorted(
        entries, key=lambda e: e[0].encode("utf-8", "surrogateescape")
    ):
        kind, perms = _KINDS.get(stat.S_IFMT(mode), "other"), stat.S_IMODE(mode)
        line = "\0".join((path, kind, f"{perms:o}", "0", "0", payload)) + "\n"  # uid, gid: 0
        digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


@dataclass(frozen=True)
class IgnoreRules:
    path: Path | None  # the ignore file buildx uses, None when there is none
    text: str
    matcher: Matcher


def ignore_rules(dockerfile: Path, context: Path) -> IgnoreRules:
    for candidate in ignore_file_candidates(dockerfile, context):
        path = Path(candidate)
        try:
            raw = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as error:
            raise ContextError(
                f"cannot read {path}: {error.strerror}", "fix its permissions"
            ) from None
        text = raw.decode("utf-8", "surrogateescape")
        return IgnoreRules(path, text, Matcher.from_patterns(read_patterns(text)))
    return IgnoreRules(None, "", Matcher(()))


def walk(context: Path, matcher: Matcher) -> Iterator[tuple[str, os.stat_result]]:
    """(path relative to the context, lstat) for everything buildx would send."""
    yield from _walk_dir(os.path.realpath(context), "", None, [], matcher)


@dataclass
class _Dir:
    path: str
    info: os.stat_result
    sent: bool


def _walk_dir(
    directory: str,
    relative: str,
    parent: tuple[bool, ...] | None,
    ancestors: list[_Dir],
    matcher: Matcher,
) -> Iterator[tuple[str, os.stat_result]]:
    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except PermissionError:
        if ancestors and not ancestors[-1].sent:
            return  # buildx, too, passes over an excluded directory it cannot read
        raise ContextError(
            f"cannot read {directory}: permission denied", "fix its permissions or exclude it"
        ) from None
    for entry in entries:
        path = f"{relative}/{entry.name}" if relative else entry.name
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed while we walked
        is_dir = stat.S_ISDIR(info.st_mode)
        excluded, results = matcher.match(path, parent)
        if excluded:
            if is_dir and matcher.descend_excluded(path):
                inner = [*ancestors, _Dir(path, info, sent=False)]
                yield from _walk_dir(entry.path, path, results, inner, matcher)
            continue
        for ancestor in ancestors:  # an excluded directory is sent when something in it is
            if not ancestor.sent:
                ancestor.sent = True
                yield ancestor.path, ancestor.info
        yield path, info
        if is_dir:
            inner = [*ancestors, _Dir(path, info, sent=True)]
            yield from _walk_dir(entry.path, path, results, inner, matcher)


def file_digest(path: str, copy_to: Path | None = None) -> str:
    """A context file's sha256, written to `copy_to` on the way when given (so the copy holds
    exactly the bytes digested). Not hashlib.file_digest: nox's Python may be 3.10."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as reader, open(copy_to, "wb") if copy_to else nullcontext() as out:
            for block in iter(lambda: reader.read(1 << 20), b""):
                digest.update(block)
                if out is not None:
                    out.write(block)
        return digest.hexdigest()
    except OSError as error:
        if copy_to is not None:
            copy_to.unlink(missing_ok=True)
        raise ContextError(
            f"cannot read {path} from the build context: {error.strerror}",
            "fix its permissions or exclude it in the .dockerignore",
        ) from None


@dataclass(frozen=True)
class ContextDigest:
    digest: str
    ignore: IgnoreRules
    files: int
    hashed_files: int  # read this time (stat cache misses)
    hashed_bytes: int


def digest_context(context: Path, rules: IgnoreRules, cache_file: Path | None) -> ContextDigest:
    """The context's digest. A file's digest is read from the stat cache while its size, mtime,
    ctime, inode, device and mode are unchanged; entries too fresh to trust are not kept."""
    started_ns = time.time_ns()
    loaded = read_json(cache_file, CACHE_FORMAT).get("entries") if cache_file else None
    cached: dict[str, list[int | str]] = loaded if isinstance(loaded, dict) else {}
    seen: dict[str, list[int | str]] = {}
    hashed_files = hashed_bytes = 0
    root = os.path.realpath(context)
    entries: list[Entry] = []
    for path, info in walk(context, rules.matcher):
        absolute = os.path.join(root, path)
        mode = info.st_mode
        if stat.S_ISREG(mode):
            key: list[int | str] = list(_STAT_KEY(info))
            known = cached.get(path)
            if known is not None and known[:-1] == key:
                payload = str(known[-1])
            else:
                payload = file_digest(absolute)
                hashed_files += 1
                hashed_bytes += info.st_size
            seen[path] = [*key, payload]
        elif stat.S_ISLNK(mode):
            payload = os.readlink(absolute)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            payload = str(info.st_rdev)
        else:
            payload = ""
        entries.append((path, mode, payload))
    trusted = {
        path: entry
        for path, entry in seen.items()
        if max(int(entry[1]), int(entry[2])) < started_ns - RACY_MARGIN_NS
    }
    if cache_file is not None and trusted != cached:
        write_json(cache_file, {"format": CACHE_FORMAT, "entries": trusted})
        keep_newest(cache_file.parent.glob("context-*.json"), CACHE_KEEP)
    return ContextDigest(context_digest(entries), rules, len(entries), hashed_files, hashed_bytes)


def cache_file_for(cache_dirs: Sequence[Path], context: Path, rules: IgnoreRules) -> Path | None:
    """Where this context's stat cache lives: the first of `cache_dirs` whose file buildx would
    not send (inside the context and sent, the cache would change what it fingerprints)."""
    root = Path(os.path.realpath(context))
    key = hashlib.sha256(f"{root}\0{rules.path}".encode("utf-8", "surrogateescape")).hexdigest()
    for directory in cache_dirs:
        target = Path(os.path.realpath(directory)) / f"context-{key[:20]}.json"
        if not is_sent(target, root, rules.matcher):
            return target
    return None


def is_sent(path: Path, root: Path, matcher: Matcher) -> bool:
    """Whether a path (existing or not) would be part of the context rooted at `root`."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return False
    parent: tuple[bool, ...] | None = None
    excluded = False
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        excluded, parent = matcher.match(prefix, parent)
        if excluded and depth < len(parts) and not matcher.descend_excluded(prefix):
            return False
    return not excluded
