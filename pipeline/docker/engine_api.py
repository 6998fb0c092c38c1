"""Image ids straight from the Docker engine's API, without starting the docker CLI.

One `docker image inspect` costs a process start (~40 ms) before it asks anything; the replay of
an unchanged build (fastpath/replay.py) has less than that to spend. The endpoint is found the
way the docker CLI finds it: DOCKER_HOST, else the context DOCKER_CONTEXT or config.json names,
else the default socket. Only plain `unix://` and `tcp://` endpoints are spoken to here; TLS,
ssh and anything unusual raise `Unsupported`, and the caller then takes its ordinary path
(which uses the CLI). Standard library only: this runs inside nox's own interpreter.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote, urlsplit

DEFAULT_HOST = "unix:///var/run/docker.sock"
TIMEOUT_S = 5.0


class Unsupported(Exception):
    """The engine cannot be asked this way (the caller falls back to the docker CLI)."""


def docker_config_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get("DOCKER_CONFIG") or Path.home() / ".docker")


def engine_host(env: Mapping[str, str]) -> str:
    """The endpoint the docker CLI would talk to with this environment."""
    context = env.get("DOCKER_CONTEXT")
    if env.get("DOCKER_HOST") and not context:
        return env["DOCKER_HOST"]
    config = docker_config_dir(env)
    if not context:
        try:
            document = json.loads((config / "config.json").read_text())
        except FileNotFoundError:
            document = {}
        except (OSError, ValueError) as error:
            raise Unsupported(f"docker config.json is not readable: {error}") from None
        context = document.get("currentContext") if isinstance(document, dict) else None
    if not context or context == "default":
        return env.get("DOCKER_HOST") or DEFAULT_HOST
    key = hashlib.sha256(context.encode()).hexdigest()
    if (config / "contexts" / "tls" / key).exists():
        raise Unsupported(f"docker context {context} uses TLS")
    try:
        meta = json.loads((config / "contexts" / "meta" / key / "meta.json").read_text())
        host = meta["Endpoints"]["docker"]["Host"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise Unsupported(f"docker context {context} is not readable: {error}") from None
    if not isinstance(host, str) or not host:
        raise Unsupported(f"docker context {context} names no engine")
    return host


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


def connect(env: Mapping[str, str]) -> http.client.HTTPConnection:
    host = engine_host(env)
    if env.get("DOCKER_TLS_VERIFY") or env.get("DOCKER_CERT_PATH"):
        raise Unsupported("the engine is reached over TLS")
    if host.startswith("unix://"):
        return _UnixConnection(host.removeprefix("unix://"))
    if host.startswith("tcp://"):
        parts = urlsplit(host)
        if not parts.hostname or parts.path not in ("", "/"):
            raise Unsupported(f"DOCKER_HOST={host} is not host:port")
        return http.client.HTTPConnection(parts.hostname, parts.port or 2375, timeout=TIMEOUT_S)
    raise Unsupported(f"the engine at {host} is not a plain unix or tcp endpoint")


def image_ids(refs: Sequence[str], env: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Each reference's image id, None where the engine has no such image. Raises Unsupported
    when the engine cannot be asked (or answers anything but found / not found)."""
    connection = connect(os.environ if env is None else env)
    found: dict[str, str | None] = {}
    try:
        for ref in dict.fromkeys(refs):
            # the CLI sends references unescaped (slashes included); only odd bytes are quoted
            connection.request("GET", f"/images/{quote(ref, safe='/:@')}/json")
            response = connection.getresponse()
            body = response.read()
            if response.status == 404:
                found[ref] = None
            elif response.status == 200:
                image_id = json.loads(body).get("Id")
                if not isinstance(image_id, str):
                    raise Unsupported(f"the engine's answer for {ref} has no Id")
                found[ref] = image_id
            else:
                raise Unsupported(f"the engine answered {response.status} for {ref}")
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise Unsupported(f"the engine did not answer: {error}") from None
    finally:
        connection.close()
    return found


def uses_engine_images(builder: str | None, env: Mapping[str, str]) -> bool:
    """Whether buildx builds with the engine's `docker` driver, which takes a FROM image from
    the engine when it has it (checked: a newer tag in the registry is not looked at). Another
    driver resolves tags remotely, so a local image id says nothing about its input."""
    config = docker_config_dir(env) / "buildx"
    builder = builder or env.get("BUILDX_BUILDER")
    if builder is None:
        try:
            current = json.loads((config / "current").read_text())
        except FileNotFoundError:
            return True
        except (OSError, ValueError):
            return False
        builder = str(current.get("Name") or "") if isinstance(current, dict) else None
        if builder is None:
            return False
    if builder in ("", "default"):
        return True
    try:
        instance = json.loads((config / "instances" / builder).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(instance, dict) and instance.get("Driver") == "docker"
