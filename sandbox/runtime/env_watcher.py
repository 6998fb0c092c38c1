#!/usr/bin/python3
"""Restart services after ~/.iterate/.env changes: OpenCode 0.5 s after, the daemon 5 s after.

inotify (inotifywait from inotify-tools) watches the file's directory, so editors that replace
the file by rename count too. Each service's timer restarts on every event (debounce): a burst of
writes gives one restart. Supervisor does the restarting; this only asks it to. The egress proxy
is not listed on purpose. SANDBOX_ENV_WATCH="name=seconds,..." overrides the table.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import xmlrpc.client
from pathlib import Path

DEFAULT_DELAYS = "opencode=0.5,daemon=5"


def delays(spec: str) -> dict[str, float]:
    table = {}
    for item in spec.split(","):
        name, _, seconds = item.strip().partition("=")
        if name:
            table[name] = float(seconds)
    return table


def log(message: str) -> None:
    print(f"env-watcher: {message}", flush=True)


def supervisor() -> xmlrpc.client.ServerProxy:
    """Supervisor's XML-RPC API (what supervisorctl uses), minus supervisorctl's start-up time."""
    from supervisor.xmlrpc import SupervisorTransport  # type: ignore[import-not-found]

    url = os.environ.get("SUPERVISOR_SERVER_URL") or "unix:///tmp/supervisor.sock"
    return xmlrpc.client.ServerProxy(
        "http://127.0.0.1", transport=SupervisorTransport(None, None, url)
    )


def restart(service: str, changed_at: float) -> None:
    log(f"restarting {service} ({time.monotonic() - changed_at:.2f} s after the change)")
    api = supervisor()
    try:
        api.supervisor.stopProcess(service, True)
    except xmlrpc.client.Fault as fault:
        if "NOT_RUNNING" not in fault.faultString:
            log(f"cannot stop {service}: {fault.faultString}")
            return
    try:
        api.supervisor.startProcess(service, True)
    except xmlrpc.client.Fault as fault:
        log(f"cannot start {service}: {fault.faultString}")
        return
    log(f"restarted {service}")


def main() -> int:
    env_file = Path(os.environ.get("ITERATE_ENV_FILE") or Path.home() / ".iterate" / ".env")
    table = delays(os.environ.get("SANDBOX_ENV_WATCH") or DEFAULT_DELAYS)
    env_file.parent.mkdir(parents=True, exist_ok=True)
    watcher = subprocess.Popen(
        [
            "inotifywait",
            "--monitor",
            "--quiet",
            "--format",
            "%e %f",
            "--event",
            "close_write,moved_to,moved_from,create,delete",
            str(env_file.parent),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    log(f"watching {env_file}: " + ", ".join(f"{k} after {v:g} s" for k, v in table.items()))
    timers: dict[str, threading.Timer] = {}
    assert watcher.stdout is not None
    for line in watcher.stdout:
        events, _, name = line.rstrip("\n").partition(" ")
        if name != env_file.name:
            continue
        changed_at = time.monotonic()
        log(f"{env_file} changed ({events})")
        for service, seconds in table.items():
            if service in timers:
                timers[service].cancel()
            timers[service] = threading.Timer(seconds, restart, [service, changed_at])
            timers[service].daemon = True
            timers[service].start()
    return watcher.wait() or 1  # inotifywait ended (directory gone): supervisor restarts us


if __name__ == "__main__":
    sys.exit(main())
