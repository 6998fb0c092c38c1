"""Which processes are still running, read from /proc (procps' pgrep is not on a fresh Debian)."""

from __future__ import annotations

from pathlib import Path


def processes_matching(*needles: str) -> list[str]:
    """Command lines of the running processes that contain any of `needles`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(needle in text for needle in needles):
            found.append(text.strip())
    return found


def processes_with_env(entry: str) -> list[int]:
    """Pids of the running processes whose environment holds `entry` (`NAME=value`)."""
    found = []
    wanted = entry.encode()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if wanted in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except (OSError, ValueError):
            continue
    return found
