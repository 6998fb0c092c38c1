"""Ask a real OCI registry about an image, the way Daytona's runner does before pulling it.

Registry v2 API only: `GET /v2/<name>/manifests/<ref>` with the OCI and Docker media types, then
the `linux/amd64` entry of an index, then the config blob (platform, entrypoint). Basic auth and
the bearer-token challenge are supported. Failures are raised as `PullError` carrying the text
Docker would print, because that is what ends up in a Daytona snapshot's `errorReason`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import httpx

from daytona_emulator.config import RegistryCredential
from daytona_emulator.docker_reference import Reference
from daytona_emulator.pull_source import PullSource

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = frozenset(MANIFEST_TYPES[0::2])
# Daytona's runner pulls with --platform linux/amd64.
WANTED_OS, WANTED_ARCH = "linux", "amd64"


class PullError(Exception):
    """The image cannot be pulled; `str()` is the runner-style reason."""


@dataclass(frozen=True)
class ImageDetails:
    digest: str
    size_bytes: int
    entrypoint: list[str] | None
    os: str
    architecture: str


def _registry_errors(response: httpx.Response) -> str:
    """Distribution's error body the way Docker prints it: `<code words>: <message>`."""
    try:
        errors = response.json().get("errors") or []
    except (json.JSONDecodeError, AttributeError):
        errors = []
    texts = [
        f"{str(error.get('code', '')).lower().replace('_', ' ')}: {error.get('message', '')}"
        for error in errors
        if isinstance(error, dict)
    ]
    return "; ".join(texts) or f"unexpected status code {response.status_code}"


def _cause(error: BaseException) -> str:
    """Go's wording for the socket error under httpx's wrapper ("connection refused")."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, OSError) and current.strerror:
            return current.strerror.lower()
        current = current.__cause__ or current.__context__
    return str(error) or type(error).__name__


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, params = header.partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', params))


class _RegistrySession:
    """One registry, one image: remembers the Authorization that worked."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        credential: RegistryCredential | None,
    ) -> None:
        self._client = client
        self._base_url = base_url
        self._credential = credential
        self._authorization: str | None = None

    async def get(self, path: str, accept: str | None = None) -> httpx.Response:
        url = f"{self._base_url}{path}"
        headers = {"Accept": accept} if accept else {}
        response = await self._send(url, headers)
        if response.status_code == 401 and self._authorization is None:
            self._authorization = await self._answer(response)
            if self._authorization is not None:
                response = await self._send(url, headers)
        if response.status_code == 401:
            raise PullError(f'Head "{url}": {_registry_errors(response)}')
        return response

    async def _send(self, url: str, headers: dict[str, str]) -> httpx.Response:
        if self._authorization:
            headers = {**headers, "Authorization": self._authorization}
        try:
            return await self._client.get(url, headers=headers, follow_redirects=True)
        except httpx.TimeoutException as error:
            raise PullError(
                f'Get "{url}": net/http: request canceled while waiting for connection '
                "(Client.Timeout exceeded while awaiting headers)"
            ) from error
        except httpx.TransportError as error:
            host = httpx.URL(url).netloc.decode()
            raise PullError(f'Get "{url}": dial tcp {host}: connect: {_cause(error)}') from error

    async def _answer(self, response: httpx.Response) -> str | None:
        """Answer a 401 challenge with the configured credentials (Basic, or a Bearer token)."""
        scheme, params = _challenge(response.headers.get("WWW-Authenticate", ""))
        credential = self._credential
        if scheme == "basic":
            if credential is None:
                raise PullError(f'Head "{response.url}": no basic auth credentials')
            pair = f"{credential.username}:{credential.password}".encode()
            return f"Basic {base64.b64encode(pair).decode()}"
        if scheme == "bearer" and "realm" in params:
            query: dict[str, str] = {k: params[k] for k in ("service", "scope") if k in params}
            auth = httpx.BasicAuth(credential.username, credential.password) if credential else None
            token_response = await self._client.get(params["realm"], params=query, auth=auth)
            if token_response.status_code != 200:
                raise PullError(
                    f'Head "{response.url}": unauthorized: {_registry_errors(token_response)}'
                )
            body: dict[str, Any] = token_response.json()
            token = body.get("token") or body.get("access_token")
            return f"Bearer {token}" if token else None
        return None


async def inspect_image(source: PullSource, *, timeout: float) -> ImageDetails:
    """Digest, compressed size, entrypoint and platform of the image, or `PullError`."""
    host = source.ref.domain
    if not source.reachable:
        raise PullError(
            f'Error response from daemon: Get "https://{host}/v2/": dial tcp: lookup '
            f"{host}: no such host (registry unreachable from the emulator: use a "
            "127.0.0.1 registry, or configure registry auth or a mirror for this host)"
        )
    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
        session = _RegistrySession(client, source.base_url, source.credential)
        try:
            return await _inspect(session, source.ref)
        except PullError as error:
            raise PullError(f"Error response from daemon: {error}") from error


async def _inspect(session: _RegistrySession, ref: Reference) -> ImageDetails:
    manifest_path = f"/v2/{ref.path}/manifests/"
    response = await session.get(manifest_path + ref.manifest_reference, ", ".join(MANIFEST_TYPES))
    if response.status_code == 404:
        raise PullError(f"manifest for {ref} not found: {_registry_errors(response)}")
    if response.status_code != 200:
        raise PullError(f"pull access denied for {ref}: {_registry_errors(response)}")
    digest = response.headers.get("Docker-Content-Digest") or (
        "sha256:" + hashlib.sha256(response.content).hexdigest()
    )
    manifest: dict[str, Any] = response.json()
    media_type = manifest.get("mediaType") or response.headers.get("Content-Type", "")
    if media_type in INDEX_TYPES or "manifests" in manifest:
        entry = next(
            (
                item
                for item in manifest.get("manifests", [])
                if item.get("platform", {}).get("os") == WANTED_OS
                and item.get("platform", {}).get("architecture") == WANTED_ARCH
            ),
            None,
        )
        if entry is None:
            raise PullError(
                f"no matching manifest for {WANTED_OS}/{WANTED_ARCH} in the manifest list entries"
            )
        response = await session.get(manifest_path + entry["digest"], entry.get("mediaType"))
        if response.status_code != 200:
            raise PullError(f"manifest for {ref} not found: {_registry_errors(response)}")
        manifest = response.json()
    config_descriptor: dict[str, Any] = manifest.get("config", {})
    layers: list[dict[str, Any]] = manifest.get("layers", [])
    size = int(config_descriptor.get("size", 0)) + sum(
        int(layer.get("size", 0)) for layer in layers
    )
    config_response = await session.get(f"/v2/{ref.path}/blobs/{config_descriptor['digest']}")
    if config_response.status_code != 200:
        raise PullError(
            f"failed to fetch image config of {ref}: {_registry_errors(config_response)}"
        )
    config: dict[str, Any] = config_response.json()
    os_name, architecture = config.get("os", ""), config.get("architecture", "")
    if (os_name, architecture) != (WANTED_OS, WANTED_ARCH):
        raise PullError(
            f"image with reference {ref} was found but does not match the specified platform: "
            f"wanted {WANTED_OS}/{WANTED_ARCH}, actual: {os_name}/{architecture}"
        )
    entrypoint = (config.get("config") or {}).get("Entrypoint")
    return ImageDetails(
        digest=digest,
        size_bytes=size,
        entrypoint=list(entrypoint) if entrypoint else None,
        os=os_name,
        architecture=architecture,
    )
