"""Images straight from the Docker engine's API, without starting the docker CLI.

`docker image inspect` costs a process start (~40 ms) and cannot tell which of several
references is missing; a request per reference over the engine's socket costs about a
millisecond. Only plain `unix://` and `tcp://` endpoints (endpoint.py); anything else raises
`Unsupported` and the caller uses the CLI. Standard library only: the replay runs in nox.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from pipeline.docker.endpoint import Location, Unsupported

__all__ = ["Unsupported", "builder_identity", "image_ids", "inspect_images"]


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
    return {
        ref: (doc["Id"] if doc is not None else None)
        for ref, doc in inspect_images(location, refs).items()
    }


def builder_identity(location: Location) -> str:
    """Which builder buildx builds with, as `name:driver:endpoint`, decided from its files as
    buildx decides it (BUILDX_BUILDER, else `current` under BUILDX_CONFIG or <config>/buildx,
    else the engine's `default`)."""
    config = location.buildx_dir
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
