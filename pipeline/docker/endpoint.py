"""Where the Docker engine is and where docker keeps its configuration, decided exactly as the
docker CLI decides it (cli/command/cli.go `resolveContextName`, docker 26): `DOCKER_HOST` wins,
then `DOCKER_CONTEXT`, then config.json's `currentContext` (set by `docker context use`,
OrbStack, Docker Desktop), then the default socket. And images straight from the engine's API:
`docker image inspect` costs a process start (~40 ms) and cannot tell which of several
references is missing; a request per reference over the socket costs about a millisecond. Only
plain `unix://` and `tcp://` endpoints; anything else raises `Unsupported` and the caller uses
the CLI. The replay runs in nox's interpreter before any settings load (`Location.from_env`):
standard library only, Python 3.10 syntax.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

DEFAULT_HOST = "unix:///var/run/docker.sock"
TIMEOUT_S = 5.0


class Unsupported(Exception):
    """The engine cannot be asked over a plain socket (TLS, ssh, an unreadable context)."""


@dataclass(frozen=True)
class Location:
    host: str | None = None  # DOCKER_HOST
    context: str | None = None  # DOCKER_CONTEXT
    config: Path | None = None  # DOCKER_CONFIG (None: ~/.docker)
    buildx_config: Path | None = None  # BUILDX_CONFIG (None: <config>/buildx)
    builder: str | None = None  # BUILDX_BUILDER
    tls: bool = False  # DOCKER_TLS_VERIFY or DOCKER_CERT_PATH set

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Location:
        def path(name: str) -> Path | None:
            return Path(env[name]) if env.get(name) else None

        return cls(
            host=env.get("DOCKER_HOST") or None,
            context=env.get("DOCKER_CONTEXT") or None,
            config=path("DOCKER_CONFIG"),
            buildx_config=path("BUILDX_CONFIG"),
            builder=env.get("BUILDX_BUILDER") or None,
            tls=bool(env.get("DOCKER_TLS_VERIFY") or env.get("DOCKER_CERT_PATH")),
        )

    @property
    def config_dir(self) -> Path:
        return self.config or Path.home() / ".docker"

    def engine_host(self) -> str:
        if self.host:
            return self.host
        name = self.context
        if not name:
            try:
                document = json.loads((self.config_dir / "config.json").read_text())
            except FileNotFoundError:
                document = {}
            except (OSError, ValueError) as error:
                raise Unsupported(f"docker's config.json is not readable: {error}") from None
            current = document.get("currentContext") if isinstance(document, dict) else None
            name = current if isinstance(current, str) and current else "default"
        if name == "default":
            return DEFAULT_HOST
        key = hashlib.sha256(name.encode()).hexdigest()
        contexts = self.config_dir / "contexts"
        if (contexts / "tls" / key).exists():
            raise Unsupported(f"docker context {name} uses TLS")
        try:
            meta = json.loads((contexts / "meta" / key / "meta.json").read_text())
            host = meta["Endpoints"]["docker"]["Host"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise Unsupported(f"docker context {name} is not readable: {error}") from None
        if not isinstance(host, str) or not host:
            raise Unsupported(f"docker context {name} names no engine")
        return host

    def connect(self) -> http.client.HTTPConnection:
        """Unsupported unless the engine is on a plain socket."""
        host = self.engine_host()
        if self.tls:
            raise Unsupported("the engine is reached over TLS")
        if host.startswith("unix://"):
            return _UnixConnection(host.removeprefix("unix://"))
        if host.startswith("tcp://"):
            parts = urlsplit(host)
            if not parts.hostname or parts.path not in ("", "/"):
                raise Unsupported(f"DOCKER_HOST={host} is not host:port")
            return http.client.HTTPConnection(parts.hostname, parts.port or 2375, timeout=TIMEOUT_S)
        raise Unsupported(f"the engine at {host} is not a plain unix or tcp endpoint")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT_S)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT_S)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def inspect_images(location: Location, refs: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """Each reference's inspect document, None where the engine has no such image; Unsupported
    when the engine answers anything but found / not found."""
    connection = location.connect()
    found: dict[str, dict[str, Any] | None] = {}
    try:
        for ref in dict.fromkeys(refs):
            # the CLI sends references unescaped (slashes included); only odd bytes are quoted
            connection.request("GET", f"/images/{quote(ref, safe='/:@')}/json")
            response = connection.getresponse()
            body = response.read()
            if response.status == 404:
                found[ref] = None
            elif response.status == 200:
                document = json.loads(body)
                if not isinstance(document, dict) or not isinstance(document.get("Id"), str):
                    raise Unsupported(f"the engine's answer for {ref} has no Id")
                found[ref] = document
            else:
                raise Unsupported(f"the engine answered {response.status} for {ref}")
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise Unsupported(f"the engine did not answer: {error}") from None
    finally:
        connection.close()
    return found


def image_ids(location: Location, refs: Sequence[str]) -> dict[str, str | None]:
    return {ref: doc["Id"] if doc else None for ref, doc in inspect_images(location, refs).items()}


def builder_identity(location: Location) -> str:
    """Which builder buildx builds with, as `name:driver:endpoint`, decided from its files as
    buildx decides it (BUILDX_BUILDER, else `current` under BUILDX_CONFIG or <config>/buildx,
    else the engine's `default`)."""
    config = location.buildx_config or location.config_dir / "buildx"
    builder = location.builder
    if builder is None:
        try:
            current = json.loads((config / "current").read_text())
        except FileNotFoundError:
            current = {}
        except (OSError, ValueError) as error:
            raise Unsupported(f"buildx's current builder is not readable: {error}") from None
        builder = str(current.get("Name") or "") if isinstance(current, dict) else ""
    if builder in ("", "default"):
        return "default:docker:"
    try:
        instance = json.loads((config / "instances" / builder).read_text())
        nodes = instance.get("Nodes") or [{}]
        endpoint = str(nodes[0].get("Endpoint") or "")
        return f"{builder}:{instance['Driver']}:{endpoint}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        return f"{builder}:unknown:"  # a context named as builder, or unreadable: not ours
