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
