"""Snapshots pull from a real OCI registry: the emulator asks it, as Daytona's runner would."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from daytona_emulator.server import EmulatorServer
from pipeline.registry.server import LocalRegistry
from tests.helpers.emulator import (
    admin_client,
    api_client,
    daytona_emulator,
    daytona_emulator_with_registry,
    push_tiny_image,
    set_registry_entry,
    token_registry_host,
    wait_for_state,
)

# fixtures, found by name
__all__ = ["daytona_emulator", "daytona_emulator_with_registry", "token_registry_host"]

pytestmark = [pytest.mark.emulator, pytest.mark.registry]

GIB = 1024**3


@pytest.fixture
def emulator(daytona_emulator_with_registry: EmulatorServer) -> EmulatorServer:
    daytona_emulator_with_registry.knobs.timings.pending_seconds = 0.05
    daytona_emulator_with_registry.knobs.timings.pulling_seconds = 0.05
    # Time moves when `settle` says so (the fixture's reset unfreezes it).
    daytona_emulator_with_registry.freeze_clock()
    return daytona_emulator_with_registry


@pytest.fixture
def client(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with api_client(emulator) as http:
        yield http


def create(client: httpx.Client, name: str, image: str) -> None:
    response = client.post("/snapshots", json={"name": name, "imageName": image})
    assert response.status_code == 200, response.text


def settle(server: EmulatorServer, client: httpx.Client, name: str) -> dict[str, object]:
    """A minute passes on the frozen clock: the pull has ended, one way or the other."""
    server.advance_clock(60)
    return wait_for_state(client, name, ["active", "error", "build_failed"], timeout=0)


def test_pull_goes_pending_then_pulling_then_active(
    daytona_emulator_with_registry: EmulatorServer, registry: LocalRegistry
) -> None:
    image = push_tiny_image(registry, "iterate/sandbox", "sha-abc", entrypoint=["/bin/sh"])
    server = daytona_emulator_with_registry
    server.freeze_clock()
    dwell = server.knobs.timings.pending_seconds  # pulling lasts as long by default
    with api_client(server) as client:
        create(client, "ci-img-sha-abc", image.reference)
        states: list[str] = []
        sizes: set[object] = set()
        for _ in range(4):
            body = client.get("/snapshots/ci-img-sha-abc").json()
            if not states or states[-1] != body["state"]:
                states.append(body["state"])
            if body["state"] != "active":
                sizes.add(body["size"])
            server.advance_clock(dwell)

    assert states == ["pending", "pulling", "active"]
    assert sizes == {None}  # the size is known once the image is ready
    assert body["errorReason"] is None
    assert body["size"] == pytest.approx(image.size / GIB)
    assert body["entrypoint"] == ["/bin/sh"]  # from the image config, as Daytona does
    assert body["ref"] == (
        f"registry.daytona.internal/daytona/daytona-{image.digest.removeprefix('sha256:')}:daytona"
    )
    assert body["initialRunnerId"]


def test_index_is_pulled_through_its_amd64_entry(
    emulator: EmulatorServer, client: httpx.Client, registry: LocalRegistry
) -> None:
    image = push_tiny_image(registry, "iterate/multi", "v1", architectures=("arm64", "amd64"))
    create(client, "multi", image.reference)

    body = settle(emulator, client, "multi")

    assert body["state"] == "active"
    assert body["size"] == pytest.approx(image.size / GIB)
    assert body["entrypoint"] == ["sleep", "infinity"]  # no ENTRYPOINT in the image


@pytest.mark.parametrize("form", ["repo@digest", "repo:tag@digest"])
def test_digest_references_end_in_error_as_on_daytona(
    emulator: EmulatorServer, client: httpx.Client, registry: LocalRegistry, form: str
) -> None:
    """Daytona v0.190 accepts the POST, then rebuilds `repo@sha256:<hex>` as `repo:sha256:<hex>`
    (`repo:tag@…` as `repo:tag:sha256:<hex>`) for its runner, whose docker refuses the name:
    `pending` → `error`, never `pulling` (daytonaio/daytona#4532). The emulator used to pull the
    digest, so a client that sent Daytona digests passed here and failed there."""
    image = push_tiny_image(registry, "iterate/pinned", "v1")
    name = f"{registry.host}/iterate/pinned" + (":v1" if form == "repo:tag@digest" else "")
    create(client, "pinned", f"{name}@{image.digest}")
    seen = client.get("/snapshots/pinned").json()

    body = settle(emulator, client, "pinned")

    assert seen["state"] == "pending"
    assert body["state"] == "error" and body["ref"] is None
    assert body["errorReason"] == (
        "bad request: Error response from daemon: invalid reference format"
    )
    # the same image by its tag pulls: the refusal is the name's, not the image's
    create(client, "tagged", image.reference)
    assert settle(emulator, client, "tagged")["state"] == "active"


def test_no_entry_means_an_anonymous_pull_without_fallback_credentials(
    daytona_emulator: EmulatorServer, registry: LocalRegistry
) -> None:
    """Without an organization entry for the image's registry Daytona inspects anonymously
    (createTemporaryRegistryConfig: empty credentials), even where it holds credentials of its
    own: a private image fails until `nox -s daytona_registry` made the entry. The emulator
    used to pull with per-host credentials of its own, so a release passed here without one."""
    image = push_tiny_image(registry, "iterate/private", "v2")
    daytona_emulator.freeze_clock()
    with api_client(daytona_emulator) as client:
        create(client, "no-entry", image.reference)
        refused = settle(daytona_emulator, client, "no-entry")
        set_registry_entry(daytona_emulator, registry.host, registry.username, registry.password)
        create(client, "with-entry", image.reference)
        pulled = settle(daytona_emulator, client, "with-entry")

    assert refused["state"] == "error"
    assert "no basic auth credentials" in str(refused["errorReason"])
    assert pulled["state"] == "active"


def test_image_for_another_platform_fails(
    emulator: EmulatorServer, client: httpx.Client, registry: LocalRegistry
) -> None:
    single = push_tiny_image(registry, "iterate/arm", "v1", architectures=("arm64",))
    index = push_tiny_image(
        registry, "iterate/arm-index", "v1", architectures=("arm64",), as_index=True
    )
    create(client, "arm", single.reference)
    create(client, "arm-index", index.reference)

    arm, arm_index = settle(emulator, client, "arm"), settle(emulator, client, "arm-index")

    assert arm["state"] == "error"
    assert "does not match the specified platform: wanted linux/amd64, actual: linux/arm64" in str(
        arm["errorReason"]
    )
    assert arm_index["state"] == "error"
    assert "no matching manifest for linux/amd64" in str(arm_index["errorReason"])


def test_missing_tag_is_manifest_unknown(
    emulator: EmulatorServer, client: httpx.Client, registry: LocalRegistry
) -> None:
    push_tiny_image(registry, "iterate/tagged", "v1")
    reference = f"{registry.host}/iterate/tagged:nope"
    create(client, "missing", reference)

    body = settle(emulator, client, "missing")

    assert body["state"] == "error"
    assert body["errorReason"] == (
        f"Error response from daemon: manifest for {reference} not found: "
        "manifest unknown: manifest unknown"
    )
    assert body["size"] is None


def test_missing_repository_fails(
    emulator: EmulatorServer, client: httpx.Client, registry: LocalRegistry
) -> None:
    create(client, "nowhere", f"{registry.host}/iterate/never-pushed:v1")

    body = settle(emulator, client, "nowhere")

    assert body["state"] == "error"
    assert "not found" in str(body["errorReason"])
    assert "unknown" in str(body["errorReason"])


def test_registry_without_configured_credentials_fails(
    daytona_emulator: EmulatorServer, registry: LocalRegistry
) -> None:
    image = push_tiny_image(registry, "iterate/private", "v1")
    daytona_emulator.freeze_clock()
    with api_client(daytona_emulator) as client:
        create(client, "anonymous", image.reference)
        body = settle(daytona_emulator, client, "anonymous")

    assert body["state"] == "error"
    assert "no basic auth credentials" in str(body["errorReason"])


def test_wrong_credentials_are_unauthorized(
    emulator: EmulatorServer, client: httpx.Client, registry: LocalRegistry
) -> None:
    image = push_tiny_image(registry, "iterate/private", "v1")
    set_registry_entry(emulator, registry.host, registry.username, "wrong-password")
    create(client, "badauth", image.reference)

    body = settle(emulator, client, "badauth")

    assert body["state"] == "error"
    assert str(body["errorReason"]).endswith("unauthorized: authentication required")


def test_refused_connection_is_reported(emulator: EmulatorServer, client: httpx.Client) -> None:
    create(client, "refused", "127.0.0.1:1/iterate/sandbox:v1")

    body = settle(emulator, client, "refused")

    assert body["state"] == "error"
    assert str(body["errorReason"]).endswith("dial tcp 127.0.0.1:1: connect: connection refused")


def test_mirror_serves_production_image_names_offline(
    emulator: EmulatorServer, client: httpx.Client, registry: LocalRegistry
) -> None:
    push_tiny_image(registry, "iterate/sandbox", "sha-mirror")
    with admin_client(emulator) as admin:
        mirrored = admin.put("/_emulator/registry-mirrors/ghcr.io", json={"target": registry.host})
    assert mirrored.status_code == 204
    set_registry_entry(emulator, "ghcr.io", registry.username, registry.password)
    create(client, "mirrored", "ghcr.io/iterate/sandbox:sha-mirror")

    assert settle(emulator, client, "mirrored")["state"] == "active"


def test_oversized_snapshots_fail(
    emulator: EmulatorServer, client: httpx.Client, registry: LocalRegistry
) -> None:
    image = push_tiny_image(registry, "iterate/sandbox", "sha-big")
    emulator.knobs.limits.max_snapshot_size_gb = 1e-9
    create(client, "big", image.reference)

    body = settle(emulator, client, "big")

    assert body["state"] == "error"
    assert "exceeds maximum allowed size of 1e-09GB" in str(body["errorReason"])


def test_activation_pulls_again(
    emulator: EmulatorServer, client: httpx.Client, registry: LocalRegistry
) -> None:
    image = push_tiny_image(registry, "iterate/sandbox", "sha-react")
    create(client, "react", image.reference)
    snapshot_id = settle(emulator, client, "react")["id"]
    assert client.post(f"/snapshots/{snapshot_id}/deactivate").status_code == 204

    activated = client.post(f"/snapshots/{snapshot_id}/activate")

    assert activated.json()["state"] == "pending"
    assert settle(emulator, client, "react")["state"] == "active"


# A registry with a token server (GHCR's scheme): the emulator answers the Bearer challenge.


def test_bearer_token_challenge(emulator: EmulatorServer, token_registry_host: str) -> None:
    set_registry_entry(emulator, token_registry_host, "robot", "s3cret")
    with api_client(emulator) as client:
        create(client, "tokened", f"{token_registry_host}/acme/app:v1")
        body = settle(emulator, client, "tokened")
        set_registry_entry(emulator, token_registry_host, "robot", "wrong")
        create(client, "refused-token", f"{token_registry_host}/acme/app:v1")
        refused = settle(emulator, client, "refused-token")

    assert body["state"] == "active", body["errorReason"]
    assert refused["state"] == "error"
    assert "unauthorized" in str(refused["errorReason"])
