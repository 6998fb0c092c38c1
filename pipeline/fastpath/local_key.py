"""A random key that never leaves this machine, for keyed digests of secret values.

A plain hash of a weak secret could be tested against guesses wherever the hash is kept (an
image label, a cache file); an HMAC under this key cannot. Standard library only.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

KEY_FILE_NAME = "fingerprint-key"


def local_key(key_dir: Path) -> bytes:
    """The key in `key_dir`, made on first use (mode 0600; the first writer wins a race)."""
    path = key_dir / KEY_FILE_NAME
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    key_dir.mkdir(parents=True, exist_ok=True)
    tmp = key_dir / f".{KEY_FILE_NAME}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(32))
    try:
        os.link(tmp, path)  # the first writer wins; everyone then reads the same key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes()
