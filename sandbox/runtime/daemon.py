#!/usr/bin/python3
"""The sandbox daemon on :3000 — tiny, standard library only.

GET /api/health     {"ok": true, "gitSha": $GIT_SHA, "uptimeSeconds": N}
GET /api/processes  the supervised processes, read-only (from `supervisorctl status`)
GET /api/versions   versions of the agent CLIs and tools (asked once, then cached)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = time.monotonic()
VERSION_COMMANDS = {
    "node": ["node", "--version"],
    "npm": ["npm", "--version"],
    "pnpm": ["pnpm", "--version"],
    "tsx": ["tsx", "--version"],
    "claude": ["claude", "--version"],
    "opencode": ["opencode", "--version"],
    "pi": ["pi", "--version"],
    "bun": ["bun", "--version"],
    "gh": ["gh", "--version"],
    "git": ["git", "--version"],
    "mitmproxy": ["mitmdump", "--version"],
    "supervisor": ["supervisord", "--version"],
}
# "daemon    RUNNING   pid 12, uptime 0:01:02" / "opencode  FATAL     Exited too quickly"
STATUS_LINE = re.compile(r"^(?P<name>\S+)\s+(?P<state>[A-Z]+)\s*(?P<description>.*)$")
PID = re.compile(r"pid (\d+)")
UPTIME = re.compile(r"uptime (?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")

_versions: dict[str, str | None] | None = None
_versions_lock = threading.Lock()


def parse_status(text: str) -> list[dict[str, object]]:
    processes: list[dict[str, object]] = []
    for line in text.splitlines():
        match = STATUS_LINE.match(line.strip())
        if not match:
            continue
        description = match["description"].strip()
        pid = PID.search(description)
        uptime = UPTIME.search(description)
        seconds = None
        if uptime:
            days, hours, minutes, secs = (int(g or 0) for g in uptime.groups())
            seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
        processes.append(
            {
                "name": match["name"],
                "state": match["state"],
                "running": match["state"] == "RUNNING",
                "pid": int(pid.group(1)) if pid else None,
                "uptimeSeconds": seconds,
                "description": description,
            }
        )
    return processes


def supervised_processes() -> list[dict[str, object]]:
    done = subprocess.run(
        ["supervisorctl", "status"], capture_output=True, text=True, timeout=10, check=False
    )
    return parse_status(done.stdout)


def _version(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0].strip() if done.returncode == 0 and text else None


def versions() -> dict[str, str | None]:
    global _versions
    with _versions_lock:
        if _versions is None:
            with ThreadPoolExecutor(max_workers=4) as pool:
                found = dict(
                    zip(
                        VERSION_COMMANDS, pool.map(_version, VERSION_COMMANDS.values()), strict=True
                    )
                )
            pinned = {
                key[len("SANDBOX_") :].lower(): value
                for key, value in os.environ.items()
                if key.startswith("SANDBOX_") and key.endswith("_VERSION")
            }
            _versions = {**found, "pinned": pinned}  # type: ignore[dict-item]
        return _versions


class Handler(BaseHTTPRequestHandler):
    server_version = "sandbox-daemon/1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/api/health":
            body: object = {
                "ok": True,
                "gitSha": os.environ.get("GIT_SHA") or None,
                "uptimeSeconds": round(time.monotonic() - STARTED, 3),
            }
        elif path == "/api/processes":
            body = {"processes": supervised_processes()}
        elif path == "/api/versions":
            body = {"versions": versions()}
        else:
            self._send(404, {"ok": False, "error": f"no route {path or '/'}"})
            return
        self._send(200, body)

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("SANDBOX_DAEMON_HOST", "0.0.0.0"))  # noqa: S104
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("SANDBOX_DAEMON_PORT", 3000))
    )
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    threading.Thread(target=versions, daemon=True).start()  # warm the cache (~5 s of CLIs)
    print(
        f"daemon listening on {args.host}:{args.port} (git sha {os.environ.get('GIT_SHA')})",
        flush=True,
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
