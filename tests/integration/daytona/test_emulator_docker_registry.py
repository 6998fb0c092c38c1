"""Organization registry entries (`/api/docker-registry`) and the pulls they open.

The API over plain HTTP and through Daytona's generated client (the high-level SDK has no
registry calls); then snapshots of private images, which fail until an entry for their
registry exists and pull with its credentials once it does.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import daytona_api_client
import httpx
import pytest

from daytona_emulator.registries import RegistryEntry, entry_for_image
from daytona_emulator.server import EmulatorServer
from pipeline.registry.server import LocalRegistry
from tests.helpers.emulator import (
    OTHER_ORG_KEY,
    SANDBOX_ONLY_KEY,
    TOKEN_REGISTRY_PASSWORD,
    TOKEN_REGISTRY_USER,
    api_client,
    daytona_emulator,
    push_tiny_image,
    token_registry_host,
    wait_for_state,
)

__all__ = ["daytona_emulator", "token_registry_host"]  # fixtures, found by name

pytestmark = pytest.mark.emulator

ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
GHCR = {"name": "ghcr", "url": "ghcr.io", "username": "octocat", "password": "ghp_read_only"}


@pytest.fixture
def client(daytona_emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with api_client(daytona_emulator) as http:
        yield http


def add(client: httpx.Client, **fields: str) -> dict[str, Any]:
    response = client.post("/docker-registry", json={**GHCR, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def message(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    text: str = response.json()["message"]
    return text


# The API


def test_create_answers_201_and_never_shows_the_password(client: httpx.Client) -> None:
    body = add(client)

    assert set(body) == {
        *("id", "name", "url", "username", "project", "registryType", "createdAt", "updatedAt"),
    }
    assert uuid.UUID(body["id"]).version == 4
    assert (body["name"], body["url"], body["username"]) == ("ghcr", "ghcr.io", "octocat")
    assert body["project"] == ""  # a string, never null: the SDK's model refuses null
    assert body["registryType"] == "organization"
    assert ISO_MS_Z.match(body["createdAt"]) and body["createdAt"] == body["updatedAt"]
    assert "ghp_read_only" not in client.get("/docker-registry").text


def test_list_get_update_delete(daytona_emulator: EmulatorServer, client: httpx.Client) -> None:
    daytona_emulator.freeze_clock()
    older = add(client, name="first", url="127.0.0.1:5000")
    daytona_emulator.advance_clock(1)
    newer = add(client, name="second", project="acme")

    listed = client.get("/docker-registry").json()
    fetched = client.get(f"/docker-registry/{older['id']}").json()
    daytona_emulator.advance_clock(60)
    patched = client.patch(
        f"/docker-registry/{newer['id']}",
        json={"name": "renamed", "url": "https://ghcr.io/", "username": "robot"},
    )
    deleted = client.delete(f"/docker-registry/{older['id']}")

    assert [entry["name"] for entry in listed] == ["second", "first"]  # newest first
    assert fetched == older
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["url"], body["username"]) == ("renamed", "https://ghcr.io", "robot")
    assert body["project"] == "acme"  # left out of the PATCH: kept
    assert body["createdAt"] == newer["createdAt"] and body["updatedAt"] > body["createdAt"]
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert message(client.get(f"/docker-registry/{older['id']}"), 404) == (
        f"Docker registry with ID {older['id']} not found"
    )
    assert [entry["id"] for entry in client.get("/docker-registry").json()] == [newer["id"]]


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (
            {},
            "name must be a string, url must be a URL address, username must be a string, "
            "password must be a string",
        ),
        (
            {**GHCR, "name": "<b>x</b>"},
            "name must not contain HTML tags, URLs, or control characters",
        ),
        ({**GHCR, "url": "localhost:5000"}, "url must be a URL address"),  # isURL wants a TLD
        ({**GHCR, "url": "not a url"}, "url must be a URL address"),
        ({**GHCR, "url": "ssh://ghcr.io"}, "url must be a URL address"),
        ({**GHCR, "url": "127.0.0.1:99999"}, "url must be a URL address"),
        ({**GHCR, "password": 5}, "password must be a string"),
        ({**GHCR, "project": 5}, "project must be a string"),
    ],
)
def test_create_validation(client: httpx.Client, body: dict[str, Any], text: str) -> None:
    assert message(client.post("/docker-registry", json=body), 400) == text


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("registry-1.Docker.IO", "docker.io"),
        ("ghcr.io/acme//", "ghcr.io/acme"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("[::1]:5000", "[::1]:5000"),
    ],
)
def test_urls_are_normalised_as_daytona_stores_them(
    client: httpx.Client, url: str, stored: str
) -> None:
    assert add(client, url=url)["url"] == stored


def test_a_patch_without_the_required_fields_is_400(client: httpx.Client) -> None:
    entry = add(client)
    response = client.patch(f"/docker-registry/{entry['id']}", json={"password": "new"})
    assert message(response, 400) == (
        "name must be a string, url must be a URL address, username must be a string"
    )


def test_permissions_and_organizations(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    entry = add(client)
    path = f"/docker-registry/{entry['id']}"
    with api_client(daytona_emulator, SANDBOX_ONLY_KEY) as limited:
        assert message(limited.post("/docker-registry", json=GHCR), 403) == "Access denied"
        assert message(limited.patch(path, json=GHCR), 403) == "Access denied"
        assert message(limited.delete(path), 403) == "Access denied"
        assert limited.get(path).json()["id"] == entry["id"]  # reads need no permission
    with api_client(daytona_emulator, OTHER_ORG_KEY) as other:
        assert other.get("/docker-registry").json() == []
        # The access guard turns "not yours" into the same 404 as "no such entry".
        for response in (other.get(path), other.patch(path, json=GHCR), other.delete(path)):
            assert message(response, 404) == f"Docker registry with ID {entry['id']} not found"
    anonymous = httpx.get(f"{daytona_emulator.base_url}/docker-registry")
    assert message(anonymous, 401) == "Invalid credentials"
    assert message(client.get("/docker-registry/not-a-uuid"), 404) == (
        "Docker registry with ID not-a-uuid not found"
    )


def test_at_most_100_entries(client: httpx.Client) -> None:
    for index in range(100):
        add(client, name=f"r{index}")
    refused = client.post("/docker-registry", json=GHCR)
    assert message(refused, 400) == "You have reached the maximum number of registries"


def test_daytonas_generated_client(daytona_emulator: EmulatorServer) -> None:
    configuration = daytona_api_client.Configuration(
        host=daytona_emulator.base_url, access_token=daytona_emulator.api_key
    )
    with daytona_api_client.ApiClient(configuration) as api_client_:
        api = daytona_api_client.DockerRegistryApi(api_client_)
        created = api.create_registry(daytona_api_client.CreateDockerRegistry(**GHCR))
        listed = api.list_registries()
        updated = api.update_registry(
            created.id,
            daytona_api_client.UpdateDockerRegistry(
                name="ghcr", url="ghcr.io/acme", username="octocat", password="rotated"
            ),
        )
        fetched = api.get_registry(created.id)
        api.delete_registry(created.id)
        remaining = api.list_registries()

    assert created is not None  # a 201 the client knows, so it parsed the body
    assert created.registry_type == "organization" and created.project == ""
    assert created.created_at.tzinfo is not None
    assert [entry.id for entry in listed] == [created.id]
    assert updated.url == "ghcr.io/acme" and fetched.url == "ghcr.io/acme"
    assert remaining == []


# Which entry a pull uses (Daytona's findRegistryByUrlMatch)


def _entry(url: str) -> RegistryEntry:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    return RegistryEntry(
        id=url,
        organization_id="org",
        name=url,
        url=url,
        username="u",
        password="p",
        project="",
        created_at=moment,
        updated_at=moment,
    )


@pytest.mark.parametrize(
    ("urls", "image", "chosen"),
    [
        (["ghcr.io"], "ghcr.io/iterate/sandbox:sha-1", "ghcr.io"),
        (["https://ghcr.io"], "ghcr.io/iterate/sandbox:sha-1", "https://ghcr.io"),
        (["ghcr.io/acme"], "ghcr.io/iterate/sandbox:sha-1", None),  # another owner
        (["ghcr.io/iterate"], "ghcr.io/iterate/sandbox:sha-1", "ghcr.io/iterate"),
        (["127.0.0.1:5000"], "127.0.0.1:50001/x:1", None),  # a prefix, but not at a boundary
        (["ghcr.io"], "ghcr.io.evil.example/x:1", None),
        (["docker.io"], "debian:12", "docker.io"),  # no host in the name: Docker Hub's entry
        (["ghcr.io"], "debian:12", None),
        ([], "ghcr.io/iterate/sandbox:sha-1", None),
    ],
)
def test_the_entry_a_pull_uses(urls: list[str], image: str, chosen: str | None) -> None:
    entry = entry_for_image([_entry(url) for url in urls], image)
    assert (entry.url if entry else None) == chosen


# Private images: the pull fails until the organization has an entry for the registry


def snapshot_state(server: EmulatorServer, client: httpx.Client, name: str, image: str) -> Any:
    created = client.post("/snapshots", json={"name": name, "imageName": image})
    assert created.status_code == 200, created.text
    server.advance_clock(60)
    return wait_for_state(client, name, ["active", "error"], timeout=0)


@pytest.mark.registry
def test_a_private_image_pulls_only_with_an_entry_for_its_registry(
    daytona_emulator: EmulatorServer, client: httpx.Client, registry: LocalRegistry
) -> None:
    image = push_tiny_image(registry, "iterate/private-sandbox", "sha-1").reference
    daytona_emulator.freeze_clock()

    anonymous = snapshot_state(daytona_emulator, client, "no-entry", image)
    entry = add(client, url=registry.host, username=registry.username, password="wrong")
    refused = snapshot_state(daytona_emulator, client, "wrong-password", image)
    fixed = client.patch(
        f"/docker-registry/{entry['id']}",
        json={
            "name": "local",
            "url": registry.host,
            "username": registry.username,
            "password": registry.password,
        },
    )
    assert fixed.status_code == 200, fixed.text
    pulled = snapshot_state(daytona_emulator, client, "with-entry", image)

    # Docker's words for a basic-auth registry asked without credentials, then with bad ones.
    assert anonymous["state"] == "error"
    assert anonymous["errorReason"] == (
        f'Error response from daemon: Head "http://{registry.host}/v2/iterate/private-sandbox'
        '/manifests/sha-1": no basic auth credentials'
    )
    assert refused["state"] == "error"
    assert refused["errorReason"].endswith("unauthorized: authentication required")
    assert pulled["state"] == "active", pulled["errorReason"]
    # Another organization's entry opens nothing for this one.
    with api_client(daytona_emulator, OTHER_ORG_KEY) as other:
        assert snapshot_state(daytona_emulator, other, "theirs", image)["state"] == "error"


def test_a_ghcr_style_registry_refuses_until_an_entry_exists(
    daytona_emulator: EmulatorServer, client: httpx.Client, token_registry_host: str
) -> None:
    image = f"{token_registry_host}/iterate/sandbox:sha-1"
    daytona_emulator.freeze_clock()

    refused = snapshot_state(daytona_emulator, client, "no-entry", image)
    add(
        client,
        url=f"http://{token_registry_host}/iterate",  # an owner's entry, scheme and all
        username=TOKEN_REGISTRY_USER,
        password=TOKEN_REGISTRY_PASSWORD,
    )
    pulled = snapshot_state(daytona_emulator, client, "with-entry", image)

    assert refused["state"] == "error"
    assert "unauthorized" in refused["errorReason"] and "denied" in refused["errorReason"]
    assert pulled["state"] == "active", pulled["errorReason"]


def test_a_reset_forgets_the_entries(
    daytona_emulator: EmulatorServer, client: httpx.Client
) -> None:
    add(client)
    daytona_emulator.reset()
    assert client.get("/docker-registry").json() == []
