"""A Docker engine of the tests' own: a second `dockerd` that shares nothing with the user's.

    engine = start_engine(containerd_store=True, tcp=True)   # ~2-3 s; EngineStartError if not
    engine.host                 # "unix:///tmp/iterate-test-engine-…/docker.sock" (DOCKER_HOST)
    engine.tcp_host             # "tcp://127.0.0.1:PORT" when tcp=True, else None
    engine.env(tcp=True)        # {"DOCKER_HOST": …} for a subprocess
    engine.docker("info")       # the docker CLI against it (CompletedProcess, text)
    engine.reach_host_port(port)  # the engine can then push to the host's 127.0.0.1:port
    engine.kill()               # SIGKILL: the engine dies at once, as a crashing engine does
    engine.stop()               # clean shutdown, then its directory is removed
    start_engine(egress=True)   # RUN steps reach the internet (slirp4netns, user space)
    with started_engine() as engine: …                        # start, and stop on exit
    own_engine_problem()        # why no own engine can run here (None when it can)

Why it is built this way (each point was a real failure or a real risk here):
- `dockerd --bridge=none` deletes the host's `docker0` interface when it starts (moby's
  `removeDefaultBridgeInterface`): that is how a second engine once took the host engine's bridge
  down. So the engine runs in network, mount and PID namespaces of its own
  (`unshare --net --mount --pid`): its default bridge, `docker0`, lives in its own namespace and
  RUN steps build with the default network; the host's interfaces, routes and iptables are
  never touched (iptables is off, or with egress=True on in the engine's namespace only).
- Its own containerd: dockerd uses a system containerd when `/run/containerd/containerd.sock`
  exists (GitHub's runners have one, holding the host engine's images). A tmpfs over
  `/run/containerd` and `/run/docker` inside the private mount namespace hides the host's, so
  dockerd starts a containerd of its own under the engine's exec-root; `start_engine` checks so.
- Its own --data-root, --exec-root, --pidfile, socket and --config-file (daemon.json in its
  directory; never /etc/docker/daemon.json).
- Loopback across namespaces: the engine's 127.0.0.1 is not the host's. The TCP API is a
  forwarder in this process from host 127.0.0.1:PORT to the engine's unix socket (OrbStack's and
  Docker Desktop's 127.0.0.1:2375 are forwarders too), and `reach_host_port` lets the engine
  reach a host service (the test registry) at the same 127.0.0.1:PORT address.
- The engine is PID 1's child in its PID namespace: killing that init kills containerd, shims
  and build steps with it, so nothing outlives `kill()` or `stop()`; its mounts live only in its
  mount namespace and vanish with it. The engine also dies if the process that started it does.
- Not root: every privileged step goes through `sudo -n` (the socket's group is the caller's).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.waiting import Interval, PollTimeout, poll
from tests.helpers.forwarding import (
    Forwarder,
    listen_elsewhere,
    loopback_listener,
    unix_connection,
)

DIR_PREFIX = "iterate-test-engine-"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0

# PID 1 of the engine's namespaces: loopback up, the host's containerd and engine state hidden,
# then dockerd as its child; SIGTERM is passed on (an init ignores signals it has no trap for).
_INIT = """\
set -e
ip link set lo up
for hidden in /run/containerd /run/docker; do
  if [ -d "$hidden" ]; then mount -t tmpfs -o mode=0711 iterate-test-engine "$hidden"; fi
done
set +e
exec 3<&0  # a background job's stdin would be /dev/null: keep the pipe as fd 3
"$@" </dev/null 3<&- &
engine=$!
trap 'kill -TERM "$engine" 2>/dev/null' TERM INT
# stdin is a pipe from the process that started the engine (sudo passes stdin on, and nothing
# else): it ends when that process does, however it ends (SIGKILL included), and so does this.
{ cat <&3 >/dev/null; kill -TERM "$engine" 2>/dev/null; } &
while kill -0 "$engine" 2>/dev/null; do wait "$engine"; done
"""
# Where Debian keeps daemons: not on a normal user's PATH (sudo's secure_path has them).
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class EngineStartError(Exception):
    """The own engine did not start; the message says why (and ends with its log's tail)."""


def _privileged() -> list[str]:
    return [] if os.geteuid() == 0 else ["sudo", "-n"]


def tool(name: str) -> str | None:
    """A program on PATH, or in the sbin folders a normal user's PATH lacks."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN])
    return shutil.which(name, path=path)


def own_engine_problem(egress: bool = False) -> str | None:
    """Why an own engine cannot run on this machine, or None."""
    if sys.platform != "linux":
        return "an own engine needs Linux (dockerd and namespaces)"
    tools = ("dockerd", "docker", "unshare", "nsenter", "setpriv", "ip")
    missing = [t for t in (*tools, *(["slirp4netns"] if egress else [])) if not tool(t)]
    if missing:
        return f"an own engine needs {', '.join(missing)} on PATH"
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            return "an own engine needs root or passwordless sudo"
        done = subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False)
        if done.returncode:
            return "an own engine needs root or passwordless sudo (sudo -n true failed)"
    return None


@dataclass
class OwnEngine:
    """A running engine of the tests' own (see the module's docstring)."""

    root: Path
    containerd_store: bool
    process: subprocess.Popen[bytes]
    init_pid: int
    started_s: float  # how long start_engine took
    _tcp: Forwarder | None = None
    _reached: dict[int, Forwarder] = field(default_factory=dict)
    _helpers: list[subprocess.Popen[bytes]] = field(default_factory=list)  # slirp4netns
    _down: bool = False

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def tcp_host(self) -> str | None:
        if self._tcp is None:
            return None
        return f"tcp://127.0.0.1:{self._tcp.port}"

    def env(self, tcp: bool = False) -> dict[str, str]:
        host = self.tcp_host if tcp else self.host
        if host is None:
            raise ValueError("this engine was started without tcp=True")
        return {"DOCKER_HOST": host}

    def docker(
        self, *args: str, tcp: bool = False, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_CONTEXT", "DOCKER_HOST")}
        env.update(self.env(tcp=tcp))
        return subprocess.run(
            ["docker", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def alive(self) -> bool:
        return not self._down and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        log = self.root / "dockerd.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def reach_host_port(self, port: int) -> None:
        """Make the host's 127.0.0.1:`port` reachable from the engine at the same address."""
        if port in self._reached:
            return
        if not self.alive():
            raise RuntimeError("the engine is not running")
        prefix = [*_privileged(), "nsenter", f"--net=/proc/{self.init_pid}/ns/net"]
        listener = listen_elsewhere(prefix, port, self.root / f"reach-{port}.sock")
        self._reached[port] = Forwarder(
            listener, lambda: socket.create_connection(("127.0.0.1", port), timeout=10)
        )

    def _close_forwarders(self) -> None:
        for forwarder in [self._tcp, *self._reached.values()]:
            if forwarder is not None:
                forwarder.close()
        for helper in self._helpers:  # slirp4netns holds the namespace's tap: end it
            helper.terminate()  # sudo passes SIGTERM on
            try:
                helper.wait(timeout=10)
            except subprocess.TimeoutExpired:
                helper.kill()
                helper.wait(timeout=10)

    def _signal(self, signum: int) -> None:
        if self.process.poll() is not None:
            return
        if self.init_pid <= 1:  # never found: signal the starter (never kill(-1) or init)
            self.process.send_signal(signal.SIGKILL)
            return
        if os.geteuid() == 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init_pid, signum)
        else:  # the shell's own kill: procps (/bin/kill) is not on a minimal Debian
            command = 'kill -"$1" "$2"'
            subprocess.run(
                [*_privileged(), "sh", "-c", command, "kill", str(int(signum)), str(self.init_pid)],
                capture_output=True,
                check=False,
            )

    def kill(self) -> None:
        """SIGKILL: dockerd, containerd and every build step die at once; the TCP port and the
        unix socket then refuse connections. `stop()` still removes what is left."""
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_S)
        self._close_forwarders()
        self._down = True

    def stop(self) -> None:
        """Shut the engine down cleanly (SIGKILL after STOP_TIMEOUT_S) and remove its directory."""
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_S)
        self._close_forwarders()
        if self.process.stdin is not None:
            self.process.stdin.close()
        self._down = True
        _remove_engine_dir(self.root)


def _remove_engine_dir(root: Path) -> None:
    # Mounts normally live only in the engine's namespace; any that reached the host's
    # (no private mount namespace, an older unshare) would make the removal fail: unmount them.
    inside = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4] == str(root) or line.split()[4].startswith(f"{root}/")
    ]
    for mountpoint in sorted(inside, key=len, reverse=True):
        subprocess.run(
            [*_privileged(), "umount", "-l", mountpoint], capture_output=True, check=False
        )
    if os.geteuid() == 0:
        shutil.rmtree(root, ignore_errors=True)
    else:
        subprocess.run(
            [*_privileged(), "rm", "-rf", "--one-file-system", str(root)],
            capture_output=True,
            check=False,
        )
    if root.exists():
        raise RuntimeError(f"could not remove the own engine's directory {root}")


def _sweep_stale() -> None:
    """Remove directories of own engines whose starter is gone (a test run that was killed)."""
    for root in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        owner = root / "owner.pid"
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            continue
        if not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(RuntimeError):
                _remove_engine_dir(root)


def _dockerd_argv(root: Path, nat: bool) -> list[str]:
    argv = [
        tool("dockerd") or "dockerd",
        f"--data-root={root / 'data'}",
        f"--exec-root={root / 'exec'}",
        f"--pidfile={root / 'dockerd.pid'}",
        f"--host=unix://{root / 'docker.sock'}",
        f"--config-file={root / 'daemon.json'}",
        # iptables (in the engine's own namespace) only for NAT to slirp4netns's egress.
        f"--iptables={str(nat).lower()}",
        "--ip6tables=false",
        f"--ip-masq={str(nat).lower()}",
        # Belt and braces: even a shared containerd would keep this engine's objects apart.
        "--containerd-namespace=iterate-test-engine",
        "--containerd-plugins-namespace=iterate-test-engine-plugins",
    ]
    if os.geteuid() != 0:
        argv.append(f"--group={os.getgid()}")  # the caller may use the socket
    return argv


def _ns_init_pid(starter: int) -> int | None:
    """The host pid of PID 1 in the engine's namespace: a descendant of `starter`."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    family, queue = [], [starter]
    while queue:
        pid = queue.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        family += children
        queue += children
    for pid in family:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            nspids = next(line for line in status.splitlines() if line.startswith("NSpid:"))
            if nspids.split()[-1] == "1" and len(nspids.split()) > 2:
                return pid
    return None


def _wait_ready(engine: OwnEngine, timeout_s: float) -> None:
    def probe() -> str:
        if engine.process.poll() is not None:
            return "exited"
        done = engine.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=10)
        return "ready" if done.returncode == 0 else "waiting"

    try:
        state = poll(
            probe,
            lambda s: s != "waiting",
            timeout_s=timeout_s,
            interval=Interval(first_s=0.1, factor=1.5, max_s=1.0),
        )
    except PollTimeout:
        state = f"no answer within {timeout_s:.0f} s"
    if state != "ready":
        raise EngineStartError(f"own engine: {state}\n{engine.log_tail()}")
    containerd = engine.root / "exec" / "containerd" / "containerd.sock"
    seen = subprocess.run([*_privileged(), "test", "-S", str(containerd)], check=False)
    if seen.returncode:  # the exec-root is root's alone
        raise EngineStartError(f"own engine: no containerd of its own at {containerd}")


# Dies with this process (setpriv); --kill-child then takes the namespace's init along.
_UNSHARE = ["setpriv", "--pdeathsig", "KILL", "unshare", "--net", "--mount", "--pid", "--fork"]
_UNSHARE += ["--mount-proc", "--kill-child", "--propagation", "private"]


def start_engine(
    *,
    containerd_store: bool = True,
    tcp: bool = True,
    egress: bool = False,
    timeout_s: float = START_TIMEOUT_S,
) -> OwnEngine:
    """Start an own engine and wait until it answers; EngineStartError (with its log) if not.

    `egress=True` gives its RUN steps the internet (apt, npm) through slirp4netns, a user-space
    network stack that changes nothing on the host; it needs the slirp4netns package.
    """
    problem = own_engine_problem(egress=egress)
    if problem:
        raise EngineStartError(problem)
    _sweep_stale()
    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))  # short: unix socket paths are limited
    (root / "owner.pid").write_text(str(os.getpid()))
    features = {"containerd-snapshotter": containerd_store}
    (root / "daemon.json").write_text(json.dumps({"features": features}))
    argv = [*_privileged(), *_UNSHARE, "sh", "-c", _INIT, "iterate-test-engine"]
    argv += _dockerd_argv(root, nat=egress)
    with (root / "dockerd.log").open("wb") as log:
        # stdin stays open (a pipe nothing writes to) for as long as this process lives
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=log)
    try:
        init_pid = poll(
            lambda: _ns_init_pid(process.pid),
            lambda pid: pid is not None or process.poll() is not None,
            timeout_s=10,
            interval=0.05,
        )
    except PollTimeout:
        init_pid = None
    engine = OwnEngine(root, containerd_store, process, init_pid or 0, 0.0)
    try:
        if init_pid is None:
            raise EngineStartError(f"own engine: unshare exited\n{engine.log_tail()}")
        if egress:
            engine._helpers.append(_start_egress(root, init_pid))
        _wait_ready(engine, timeout_s)
        if tcp:
            engine._tcp = Forwarder(loopback_listener(), lambda: unix_connection(engine.socket))
    except BaseException:
        engine.stop()
        raise
    engine.started_s = time.monotonic() - began
    return engine


def _start_egress(root: Path, init_pid: int) -> subprocess.Popen[bytes]:
    with (root / "slirp4netns.log").open("wb") as log:
        slirp = subprocess.Popen(
            [
                *_privileged(),
                *_UNSHARE[:3],  # setpriv --pdeathsig KILL: it ends with this process too
                "slirp4netns",
                "--configure",
                "--mtu=65520",
                "--disable-host-loopback",
                str(init_pid),
                "tap0",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    route = [*_privileged(), "nsenter", f"--net=/proc/{init_pid}/ns/net", "ip", "route"]

    def routed() -> bool:
        done = subprocess.run(route, capture_output=True, text=True, check=False)
        return slirp.poll() is not None or "default" in done.stdout

    poll(lambda: routed(), bool, timeout_s=10, interval=0.05)
    if slirp.poll() is not None:
        raise EngineStartError(f"own engine: slirp4netns exited: {(root / 'slirp4netns.log')}")
    return slirp


@contextlib.contextmanager
def started_engine(
    *, containerd_store: bool = True, tcp: bool = True, egress: bool = False
) -> Iterator[OwnEngine]:
    engine = start_engine(containerd_store=containerd_store, tcp=tcp, egress=egress)
    try:
        yield engine
    finally:
        engine.stop()
