"""Small local files: JSON read leniently; written whole and readable by their owner only: JSON
documents, logs trimmed to the newest, and a random key for keyed digests of secret values (a
plain hash of a weak secret could be tested against guesses wherever it is kept, in an image label
or a cache file; an HMAC under a key that never leaves this machine cannot). Standard library only.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

KEY_FILE_NAME = "fingerprint-key"


def local_key(key_dir: Path) -> bytes:
    """The key in `key_dir`, made on first use."""
    path = key_dir / KEY_FILE_NAME
    try:
        return path.read_bytes()
    except FileNotFoundError:
        write_private(path, secrets.token_bytes(32), first_wins=True)
    return path.read_bytes()


def json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding an object ({} when absent, unreadable or anything else): docker's
    config, buildx's metadata, the report, and the documents below."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_json(path: Path, version: int) -> dict[str, Any]:
    """A document `write_json` wrote in format `version`; empty when absent, damaged or older."""
    data = json_object(path)
    return data if data.get("format") == version else {}


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    write_private(path, json.dumps(document).encode())


def write_private(path: Path, content: bytes, *, first_wins: bool = False) -> None:
    """Whole or not at all (readers never see half a file), mode 0600. `first_wins`: a file
    already there stays, so that racing writers all read the same one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    if not first_wins:
        tmp.replace(path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def keep_newest(paths: Iterable[Path], count: int) -> None:
    """Delete all but the `count` newest (tests and ref builds fingerprint many short-lived
    folders; every build writes a log)."""
    for stale in sorted(paths, key=_mtime)[:-count]:
        stale.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # another process trimmed it first
        return 0.0
