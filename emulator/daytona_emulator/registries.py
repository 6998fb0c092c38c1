"""Organization registry entries (`/api/docker-registry`): the table, its DTO, its checks, and
Daytona's rule for which entry a pull uses.

Daytona stores an entry's password and never returns it. When a snapshot's image is pulled, the
organization's entry whose URL (scheme stripped) starts the image name at a boundary (`/`, `:`
or the end) lends its credentials; an image without a registry host uses the organization's
`docker.io` entry (docker-registry.service.ts v0.190, `findRegistryByImageName`). No entry: the
pull is anonymous (what the emulator does then instead is `pull_source.credential_for`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from daytona_emulator.config import RegistryCredential
from daytona_emulator.daytona_images import (
    DOCKER_HUB,
    is_docker_hub_url,
    parse_docker_image,
    url_matches,
)
from daytona_emulator.errors import bad_request, not_found
from daytona_emulator.validation import display_name_messages
from daytona_emulator.wire import iso

MAX_REGISTRIES = 100
ORGANIZATION = "organization"  # RegistryType of every entry made through the API


@dataclass
class RegistryEntry:
    id: str
    organization_id: str
    name: str
    url: str
    username: str
    password: str = field(repr=False)
    project: str
    created_at: datetime
    updated_at: datetime
    registry_type: str = ORGANIZATION

    @property
    def credential(self) -> RegistryCredential | None:
        # The runner sends credentials only with both a username and a password
        # (apps/runner/pkg/api/dto/registry.go `HasAuth`); otherwise it asks anonymously.
        if not (self.username and self.password):
            return None
        return RegistryCredential(username=self.username, password=self.password)


def registry_wire(entry: RegistryEntry) -> dict[str, Any]:
    """`DockerRegistryDto`: `project` is a string (`""`, never null); no password."""
    return {
        "id": entry.id,
        "name": entry.name,
        "url": entry.url,
        "username": entry.username,
        "project": entry.project,
        "registryType": entry.registry_type,
        "createdAt": iso(entry.created_at),
        "updatedAt": iso(entry.updated_at),
    }


# Checks of `CreateDockerRegistryDto` / `UpdateDockerRegistryDto` (class-validator, in order).

_LABEL = re.compile(r"^[a-z0-9\u00a1-\uffff-]{1,63}$", re.IGNORECASE)
_TLD = re.compile(r"^(?:[a-z\u00a1-\uffff]{2,}|xn[a-z0-9-]{2,})$", re.IGNORECASE)
_IPV4 = re.compile(
    r"^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$"
)


def _is_host(host: str) -> bool:
    if _IPV4.fullmatch(host) or (host.startswith("[") and host.endswith("]") and ":" in host):
        return True
    labels = host.split(".")
    if len(labels) < 2 or not _TLD.fullmatch(labels[-1]):
        return False
    return all(
        _LABEL.fullmatch(label) and not label.startswith("-") and not label.endswith("-")
        for label in labels
    )


def is_url(value: object) -> bool:
    """validator.js `isURL` with class-validator's defaults: http(s)/ftp or no scheme, a host
    that is an IP or a name with a top-level domain (so `localhost:5000` is refused)."""
    if not isinstance(value, str) or not value or len(value) > 2083 or re.search(r"\s", value):
        return False
    rest = value
    if "://" in rest:
        scheme, _, rest = rest.partition("://")
        if scheme.lower() not in ("http", "https", "ftp"):
            return False
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host_port = authority.rpartition("@")[2]
    host, colon, port = host_port.rpartition(":") if not host_port.endswith("]") else ("", "", "")
    if not colon:
        host, port = host_port, ""
    elif not port.isdigit() or not 0 < int(port) <= 65535:
        return False
    return bool(host) and _is_host(host)


@dataclass(frozen=True)
class RegistryFields:
    name: str
    url: str
    username: str
    password: str | None
    project: str | None


def parse_registry_body(body: object, *, password_required: bool) -> RegistryFields:
    fields: dict[str, Any] = body if isinstance(body, dict) else {}
    messages: list[str] = display_name_messages("name", fields.get("name"))
    if not is_url(fields.get("url")):
        messages.append("url must be a URL address")
    if not isinstance(fields.get("username"), str):
        messages.append("username must be a string")
    password = fields.get("password")
    if (password_required or password is not None) and not isinstance(password, str):
        messages.append("password must be a string")
    project = fields.get("project")
    if project is not None and not isinstance(project, str):
        messages.append("project must be a string")
    if messages:
        raise bad_request(", ".join(messages))
    return RegistryFields(
        name=str(fields["name"]),
        url=normalize_url(str(fields["url"])),
        username=str(fields["username"]),
        password=password,
        project=project,
    )


def normalize_url(url: str) -> str:
    """`normalizeRegistryUrl`: any Docker Hub spelling is `docker.io`; no trailing slashes."""
    if not url.strip() or "docker.io" in url.lower():
        return DOCKER_HUB
    return url.strip().rstrip("/")


# Which entry a pull uses


def entry_for_image(entries: Sequence[RegistryEntry], image: str) -> RegistryEntry | None:
    """The organization entry Daytona pulls `image` with (`findRegistryByImageName`), or None
    (an anonymous pull). Raises `ImageNameError` where Daytona's parser throws."""
    if parse_docker_image(image).registry:
        return next((entry for entry in entries if url_matches(entry.url, image)), None)
    # No registry in the name: the organization's Docker Hub entry, if it has one.
    return next((entry for entry in entries if is_docker_hub_url(entry.url)), None)


class RegistryStore:
    """Entries by id, under one lock (routes run on the loop, tests may look from threads)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._rows: dict[str, RegistryEntry] = {}

    def clear(self) -> None:
        with self.lock:
            self._rows.clear()

    def of(self, organization_id: str) -> list[RegistryEntry]:
        """The organization's entries, newest first (the list's order)."""
        with self.lock:
            rows = [r for r in self._rows.values() if r.organization_id == organization_id]
        return sorted(rows, key=lambda row: row.created_at, reverse=True)

    def insert(self, entry: RegistryEntry) -> None:
        with self.lock:
            if len(self.of(entry.organization_id)) >= MAX_REGISTRIES:
                raise bad_request("You have reached the maximum number of registries")
            self._rows[entry.id] = entry

    def resolve(self, organization_id: str, registry_id: str) -> RegistryEntry:
        """`DockerRegistryAccessGuard`: unknown, another organization's and not-a-UUID alike
        end as the same 404 (the guard turns its own 403s into it)."""
        with self.lock:
            row = self._rows.get(registry_id.lower())
            if row is None or row.organization_id != organization_id:
                raise not_found(f"Docker registry with ID {registry_id} not found")
            return row

    def remove(self, registry_id: str) -> None:
        with self.lock:
            self._rows.pop(registry_id, None)
