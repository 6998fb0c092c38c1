"""Pytest fixtures for tests that talk to the Daytona emulator (and the local OCI registry).

Import the fixtures you use into your test module (pytest finds them by name):

    from tests.helpers.emulator import daytona_emulator, push_tiny_image

- `daytona_emulator`: a running `EmulatorServer` (API URL `.base_url`, key `.api_key`, knobs
  `.knobs`), reset before and after each test. One server per test session, stopped at the end.
  Extra keys: `SANDBOX_ONLY_KEY` (same organization, no snapshot permissions) and
  `OTHER_ORG_KEY` (a second organization).
- `daytona_emulator_with_registry`: `daytona_emulator` whose organization (EMULATOR_KEY's) has a
  registry entry with the credentials of conftest's `registry` fixture, as a real user gives
  Daytona one (`nox -s daytona_registry`), so snapshots of `<registry.host>/<name>:<tag>` images
  pull for real. The emulator lends no credentials of its own, as Daytona does not.
- `set_registry_entry(server, url, username, password)`: that entry for another registry (or
  other credentials), made in-process so it shows in no request log.
- `push_tiny_image(registry, name, tag)`: put a one-layer image into that registry through its
  HTTP API (no engine needed, milliseconds).
- `push_busybox_image(registry, name, tag, entrypoint=..., files=...)`: the same way, an image
  that really runs: a static busybox (from the host) as its whole rootfs, plus extra files.
- `token_registry_host`: a registry with GHCR's auth scheme (Bearer challenge, token realm).

Time: the emulator runs on real time; a test that wants to move time itself calls
`server.freeze_clock()` and then `server.advance_clock(seconds)` (the reset unfreezes it).

The fixtures depend only on pytest built-ins and conftest's `registry`, so importing the ones
you use is enough.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import ssl
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from daytona_emulator.config import SANDBOX_ONLY_PERMISSIONS, ApiKey, EmulatorConfig
from daytona_emulator.registries import RegistryEntry
from daytona_emulator.server import EmulatorServer, listening_socket, uvicorn_config
from pipeline.registry.server import LocalRegistry

EMULATOR_KEY = "dtn_emulator_test_key"
SANDBOX_ONLY_KEY = "dtn_emulator_sandbox_only_key"
OTHER_ORG_KEY = "dtn_emulator_other_org_key"
EMULATOR_ORG_ID = "5c1e3f0a-7d2b-4c8e-9a61-3b0f2d4e6a10"
OTHER_ORG_ID = "8a2d4c6e-1f3b-4d5a-8e7c-9b0a1c2d3e4f"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

_EMULATOR = pytest.StashKey[EmulatorServer]()


def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(
        api_keys=(
            ApiKey(key=EMULATOR_KEY, organization_id=EMULATOR_ORG_ID),
            ApiKey(
                key=SANDBOX_ONLY_KEY,
                organization_id=EMULATOR_ORG_ID,
                permissions=SANDBOX_ONLY_PERMISSIONS,
            ),
            ApiKey(key=OTHER_ORG_KEY, organization_id=OTHER_ORG_ID),
        )
    )


def shared_emulator(config: pytest.Config) -> EmulatorServer:
    server = config.stash.get(_EMULATOR, None)
    if server is None:
        server = EmulatorServer(emulator_config()).start()
        config.stash[_EMULATOR] = server
        config.add_cleanup(server.stop)
    return server


@pytest.fixture
def daytona_emulator(pytestconfig: pytest.Config) -> Iterator[EmulatorServer]:
    server = shared_emulator(pytestconfig)
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def daytona_emulator_with_registry(
    pytestconfig: pytest.Config, registry: LocalRegistry
) -> Iterator[EmulatorServer]:
    server = shared_emulator(pytestconfig)
    server.reset()
    set_registry_entry(server, registry.host, registry.username, registry.password)
    yield server
    server.reset()


def set_registry_entry(
    server: EmulatorServer,
    url: str,
    username: str,
    password: str,
    organization_id: str = EMULATOR_ORG_ID,
) -> None:
    """The organization's one registry entry for `url` (replacing any other for that URL), as
    `POST /docker-registry` would store it; in-process, so request logs stay the test's own."""
    store = server.state.registries
    with store.lock:
        for entry in store.of(organization_id):
            if entry.url == url:
                store.remove(entry.id)
        moment = server.clock.now()
        store.insert(
            RegistryEntry(
                id=str(uuid.uuid4()),
                organization_id=organization_id,
                name=f"test-{url.replace(':', '-').replace('.', '-')}",
                url=url,
                username=username,
                password=password,
                project="",
                created_at=moment,
                updated_at=moment,
            )
        )


# Plain-HTTP loopback clients never use TLS, but httpx builds a context per client, and loading
# the CA bundle costs ~50 ms each time: share one.
_TLS = ssl.create_default_context()


def api_client(server: EmulatorServer, key: str | None = None) -> httpx.Client:
    """An httpx client on the emulator's `/api`, authenticated like Daytona's SDK."""
    return httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {key or server.api_key}"},
        timeout=10,
        trust_env=False,
        verify=_TLS,
    )


def admin_client(server: EmulatorServer) -> httpx.Client:
    """An httpx client on the emulator's root, for the `/_emulator/*` knob API."""
    return httpx.Client(base_url=server.root_url, timeout=10, trust_env=False, verify=_TLS)


def wait_for_state(
    client: httpx.Client,
    id_or_name: str,
    states: Sequence[str],
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Poll `GET /snapshots/{x}` until its state is one of `states`; the last body."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/snapshots/{id_or_name}")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        if body["state"] in states:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{id_or_name} still {body['state']} after {timeout} s")
        time.sleep(0.05)


# Pushing through the registry's HTTP API: no engine, a few milliseconds per image.


@dataclass(frozen=True)
class PushedImage:
    reference: str  # what Daytona gets as imageName: "<host>/<name>:<tag>"
    digest: str  # of the manifest (or index) the tag points at
    size: int  # compressed bytes of config + layers (of the amd64 image)


def _layer(architecture: str) -> bytes:
    """A gzipped tar with one file, deterministic so equal inputs give equal digests."""
    payload = f"tiny image for linux/{architecture}\n".encode()
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as archive:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    return gzip.compress(tar_bytes.getvalue(), mtime=0)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _upload_blob(client: httpx.Client, name: str, data: bytes) -> str:
    digest = _digest(data)
    started = client.post(f"/v2/{name}/blobs/uploads/")
    started.raise_for_status()
    # The upload URL carries its own `_state` query, which `params=` would replace.
    location = started.headers["Location"]
    separator = "&" if "?" in location else "?"
    finished = client.put(
        f"{location}{separator}digest={digest}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    finished.raise_for_status()
    return digest


def _put_manifest(
    client: httpx.Client, name: str, reference: str, media_type: str, body: bytes
) -> None:
    response = client.put(
        f"/v2/{name}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
    )
    response.raise_for_status()


def _push_platform(
    client: httpx.Client,
    name: str,
    architecture: str,
    entrypoint: list[str] | None,
    layer: bytes | None = None,
) -> tuple[bytes, int]:
    layer = layer or _layer(architecture)
    uncompressed = gzip.decompress(layer)
    config = json.dumps(
        {
            "architecture": architecture,
            "os": "linux",
            "config": {"Entrypoint": entrypoint, "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(uncompressed)]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _upload_blob(client, name, config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _upload_blob(client, name, layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return manifest, len(config) + len(layer)


def push_tiny_image(
    registry: LocalRegistry,
    name: str,
    tag: str,
    *,
    architectures: Sequence[str] = ("amd64",),
    as_index: bool = False,
    entrypoint: list[str] | None = None,
) -> PushedImage:
    """Push a one-layer image (an OCI index when `as_index` or several architectures)."""
    with registry.client() as client:
        pushed = [(arch, *_push_platform(client, name, arch, entrypoint)) for arch in architectures]
        if len(pushed) == 1 and not as_index:
            _, manifest, size = pushed[0]
            _put_manifest(client, name, tag, OCI_MANIFEST, manifest)
            return PushedImage(f"{registry.host}/{name}:{tag}", _digest(manifest), size)
        entries = []
        for arch, manifest, _ in pushed:
            _put_manifest(client, name, _digest(manifest), OCI_MANIFEST, manifest)
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": _digest(manifest),
                    "size": len(manifest),
                    "platform": {"architecture": arch, "os": "linux"},
                }
            )
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        ).encode()
        _put_manifest(client, name, tag, OCI_INDEX, index)
        amd64_size = next((size for arch, _, size in pushed if arch == "amd64"), 0)
        return PushedImage(f"{registry.host}/{name}:{tag}", _digest(index), amd64_size)


BUSYBOX = Path("/bin/busybox")  # static (Debian's busybox-static), as the engine tests use it
BUSYBOX_APPLETS = ("sh", "sleep", "echo", "cat", "pwd", "env", "httpd", "ls", "kill", "ps")


def _busybox_layer(files: Mapping[str, str]) -> bytes:
    """A gzipped rootfs: /bin/busybox, applet links, /tmp, and `files` (path -> text)."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as archive:
        for directory in ("bin", "tmp", "root"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            archive.addfile(info)
        binary = BUSYBOX.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(binary), 0o755
        archive.addfile(info, io.BytesIO(binary))
        for applet in BUSYBOX_APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            archive.addfile(info)
        for path, text in sorted(files.items()):
            payload = text.encode()
            parts = path.strip("/").split("/")
            for depth in range(1, len(parts)):
                info = tarfile.TarInfo("/".join(parts[:depth]))
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode = len(payload), 0o644
            archive.addfile(info, io.BytesIO(payload))
    return gzip.compress(tar_bytes.getvalue(), mtime=0)


def push_busybox_image(
    registry: LocalRegistry,
    name: str,
    tag: str,
    *,
    entrypoint: list[str] | None = None,
    files: Mapping[str, str] | None = None,
) -> PushedImage:
    """Push a runnable linux/amd64 image: busybox (`sh`, `httpd`, ...) plus `files`."""
    with registry.client() as client:
        manifest, size = _push_platform(
            client, name, "amd64", entrypoint, layer=_busybox_layer(files or {})
        )
        _put_manifest(client, name, tag, OCI_MANIFEST, manifest)
    return PushedImage(f"{registry.host}/{name}:{tag}", _digest(manifest), size)


# A registry with a token server (GHCR's scheme: a Bearer challenge, tokens for Basic credentials).

TOKEN = "fake-registry-token"
TOKEN_REGISTRY_USER = "robot"
TOKEN_REGISTRY_PASSWORD = "s3cret"


def _token_registry(username: str, password: str) -> Starlette:
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {}}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": config_digest, "size": len(config)},
            "layers": [{"digest": "sha256:" + "0" * 64, "size": 1000}],
        }
    ).encode()

    def challenge(request: Request) -> Response | None:
        if request.headers.get("authorization") == f"Bearer {TOKEN}":
            return None
        realm = f"{request.base_url}token"
        return JSONResponse(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            status_code=401,
            headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="fake",scope="pull"'},
        )

    async def token(request: Request) -> Response:
        expected = base64.b64encode(f"{username}:{password}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return JSONResponse({"errors": [{"code": "DENIED", "message": "bad"}]}, 401)
        return JSONResponse({"token": TOKEN})

    async def manifests(request: Request) -> Response:
        return challenge(request) or Response(
            manifest, media_type="application/vnd.oci.image.manifest.v1+json"
        )

    async def blobs(request: Request) -> Response:
        return challenge(request) or Response(config, media_type="application/json")

    return Starlette(
        routes=[
            Route("/token", token),
            Route("/v2/{name:path}/manifests/{reference}", manifests),
            Route("/v2/{name:path}/blobs/{digest}", blobs),
        ]
    )


@pytest.fixture
def token_registry_host() -> Iterator[str]:
    """`host:port` of a registry that serves one image (`<host>/<any>/<name>:<any>`) and wants
    a token from its realm, which it gives for TOKEN_REGISTRY_USER/PASSWORD only."""
    sock = listening_socket("127.0.0.1", 0)
    server = uvicorn.Server(
        uvicorn_config(
            _token_registry(TOKEN_REGISTRY_USER, TOKEN_REGISTRY_PASSWORD), lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()
