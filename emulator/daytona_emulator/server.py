"""Run the emulator with uvicorn on a background thread, for tests and demos.

    with EmulatorServer() as emulator:
        Daytona(DaytonaConfig(api_key=emulator.api_key, api_url=emulator.base_url,
                              use_deprecated_polling=True))
        emulator.knobs.add_fault(FaultRule(kind="rate_limit", count=2))
        emulator.freeze_clock()
        emulator.advance_clock(60)  # a minute passes at once: dwell times, auto-stop, ...

The listening socket is bound before the thread starts, so the port is known and race-free.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import Self

import uvicorn

from daytona_emulator.app import create_app
from daytona_emulator.clock import Clock, ManualClock
from daytona_emulator.config import ApiKey, EmulatorConfig
from daytona_emulator.knobs import Knobs
from daytona_emulator.state import EmulatorState


def uvicorn_config(app: object, **overrides: object) -> uvicorn.Config:
    settings: dict[str, object] = {
        "log_level": "warning",
        "access_log": False,
        # h11 is what `traffic.py` knows how to drop connections on; `ws="none"` makes the
        # SDK's Socket.IO upgrade an ordinary request that gets Daytona's 404 (rule E10).
        "http": "h11",
        "ws": "none",
        "lifespan": "on",
        "timeout_graceful_shutdown": 2,
        **overrides,
    }
    return uvicorn.Config(app, **settings)  # type: ignore[arg-type]


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn's `sockets=`.

    The protocol must be explicit: asyncio only sets TCP_NODELAY on accepted sockets whose
    `proto` is IPPROTO_TCP, and without it Nagle plus delayed ACKs add 40 ms to every response.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # Listening at once lets clients connect (and queue) before uvicorn's loop accepts.
    sock.listen(128)
    return sock


class EmulatorServer:
    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        start_timeout: float = 10.0,
    ) -> None:
        self.config = (config or EmulatorConfig()).with_generated_key()
        self._host = host
        self._port = port
        self._start_timeout = start_timeout
        app, self.state = create_app(self.config, clock)
        self._server = uvicorn.Server(uvicorn_config(app))
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the emulator is not running")
        port: int = self._socket.getsockname()[1]
        return port

    @property
    def root_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What Daytona clients take as the API URL (`DAYTONA_API_URL`)."""
        return f"{self.root_url}/api"

    @property
    def api_keys(self) -> tuple[ApiKey, ...]:
        return self.config.api_keys

    @property
    def api_key(self) -> str:
        """The first configured key (a generated full-permission one if none was given)."""
        return self.config.api_keys[0].key

    @property
    def knobs(self) -> Knobs:
        return self.state.knobs

    def reset(self) -> None:
        """Forget snapshots, registry entries, sandboxes (removing their containers), faults,
        outcomes, the request log and runtime settings; the clock is the configured one again."""
        self.state.reset()

    @property
    def clock(self) -> Clock:
        return self.state.clock

    def freeze_clock(self) -> ManualClock:
        """Stop time: from now on it moves only through `advance_clock` (until a reset)."""
        return self.state.freeze_clock()

    def advance_clock(self, seconds: float, timeout: float = 180.0) -> None:
        """Move the frozen clock forward; returns once every transition due meanwhile (and the
        work it started, such as a registry probe or a container stop) has happened."""
        loop = self.state.loop
        if self._thread is None or loop is None:
            raise RuntimeError("the emulator is not running")
        if not isinstance(self.state.clock, ManualClock):
            raise RuntimeError("the clock is not frozen: call freeze_clock() first")
        future = asyncio.run_coroutine_threadsafe(self.state.advance_clock(seconds), loop)
        future.result(timeout)

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        sock = listening_socket(self._host, self._port)
        self._socket = sock
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"daytona-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Daytona emulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._server.should_exit = True
            thread.join(timeout=10)
            if thread.is_alive():
                self._server.force_exit = True
                thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


__all__ = ["EmulatorServer", "EmulatorState", "uvicorn_config"]
