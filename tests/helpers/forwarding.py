"""Byte pipes between network namespaces, for the tests' own engines (tests/helpers/engines.py).

An engine in a network namespace of its own has its own 127.0.0.1. `Forwarder` serves a
listening socket by piping each connection to a fresh upstream connection; `listen_elsewhere`
opens a listener inside another namespace (through a command prefix such as
`nsenter --net=/proc/PID/ns/net`) and hands it back over a unix socket, so this process can
serve the engine's 127.0.0.1:PORT with a connection to the host's.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

# Run inside the engine's network namespace: opens a listener on its 127.0.0.1:PORT and hands
# the socket to the test process over a unix socket; the test process then serves it.
_LISTENER = """\
import socket, sys
port, path = int(sys.argv[1]), sys.argv[2]
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(64)
with socket.socket(socket.AF_UNIX) as channel:
    channel.connect(path)
    socket.send_fds(channel, [b"listener"], [listener.fileno()])
"""


class Forwarder:
    """Serves a listening socket: each connection is piped to a fresh `connect()`."""

    def __init__(self, listener: socket.socket, connect: Callable[[], socket.socket]) -> None:
        self.listener = listener
        self.port: int = listener.getsockname()[1]  # still known after close()
        self._connect = connect
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        try:
            upstream = self._connect()
        except OSError:
            client.close()  # as an engine that is gone: the connection ends at once
            return
        with self._lock:
            self._open.update((client, upstream))
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        with self._lock:
            self._open.difference_update((client, upstream))
        client.close()
        upstream.close()

    def close(self) -> None:
        # shutdown() wakes a blocked accept(); close() alone would not, on Linux.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        # Half-close: docker's hijacked streams (build sessions, attach) rely on it.
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def loopback_listener() -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))  # a free port, chosen by the kernel: no race
    listener.listen(64)
    return listener


def unix_connection(path: Path) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        raise
    return conn


def listen_elsewhere(prefix: list[str], port: int, rendezvous: Path) -> socket.socket:
    """A listener on 127.0.0.1:`port` in the namespace that `prefix` enters, to serve here."""
    with socket.socket(socket.AF_UNIX) as channel:
        channel.bind(str(rendezvous))
        channel.listen(1)
        channel.settimeout(20)
        argv = [*prefix, sys.executable, "-I", "-c", _LISTENER, str(port), str(rendezvous)]
        opener = subprocess.Popen(argv, stderr=subprocess.PIPE)
        try:
            conn, _ = channel.accept()
        except OSError as error:
            opener.kill()
            stderr = opener.communicate()[1].decode(errors="replace")
            raise RuntimeError(f"no listener for port {port} there: {stderr}") from error
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 64, 1)
        opener.wait(timeout=20)
    rendezvous.unlink()
    return socket.socket(fileno=fds[0])
