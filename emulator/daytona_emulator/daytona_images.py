"""Daytona's own reading of image names, ported from its server (v0.190, daytonaio/daytona
b5a5d9e78), quirks included. Not docker's grammar (`docker_reference.py`): Daytona splits names by
hand, and where the two readings differ Daytona's runner can hand docker a name docker refuses.

- `image_name_error`: apps/api/src/sandbox/services/snapshot.service.ts (`validateImageName`).
- `parse_docker_image`, `DockerImage.full_name`: apps/api/src/common/utils/docker-image.util.ts
  (`parseDockerImage`, `getFullName`). A digest is kept as the *tag* `sha256:<hex>`, so the full
  name of `repo@sha256:<hex>` is `repo:sha256:<hex>` (daytonaio/daytona#4532).
- `runner_inspect_name`: apps/api/src/sandbox/managers/snapshot.manager.ts,
  `handleSnapshotStatePending`: the name the API hands the runner's `inspectSnapshotInRegistry`.
- `strip_scheme`, `url_matches`: apps/api/src/docker-registry/services/docker-registry.service.ts
  (`findRegistryByUrlMatch` and the `replace(/^(https?:\\/\\/)/, '')` it and its callers use).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

DOCKER_HUB = "docker.io"  # docker-registry.service.ts `DOCKER_HUB_URL`
_SCHEME = re.compile(r"^(https?://)")
_HEX64 = re.compile(r"[a-f0-9]{64}")
# snapshot.service.ts `IMAGE_NAME_REGEX`; `validateSnapshotName` checks snapshot names with it too.
IMAGE_NAME_REGEX = re.compile(r"^[a-zA-Z0-9_.\-:]+(\/[a-zA-Z0-9_.\-:]+)*(@sha256:[a-f0-9]{64})?$")
_BAD_DIGEST = "Invalid digest format. Must be image@sha256:64_hex_characters"


def image_name_error(image_name: str) -> str | None:
    """`validateImageName` (snapshot.service.ts), checks in Daytona's order: the message of the
    400 `POST /snapshots` answers, or None. A digest name skips every other check."""
    if "@sha256:" in image_name:
        # JS `split` cuts at every occurrence; the destructuring keeps the first two pieces.
        repository, digest = image_name.split("@sha256:")[:2]
        if not repository or not _HEX64.fullmatch(digest):
            return _BAD_DIGEST
        return None
    if ":" not in image_name or re.search(r":\s*\Z", image_name):
        return "Image name must include a tag (e.g., ubuntu:22.04) or digest (@sha256:...)"
    if image_name.endswith(":latest"):
        return 'Images with tag ":latest" are not allowed'
    if not IMAGE_NAME_REGEX.fullmatch(image_name):
        return (
            "Invalid image name format. Must be lowercase, may contain digits, dots, dashes, "
            "and single slashes between components"
        )
    return None


class ImageNameError(ValueError):
    """`parseDockerImage` threw; `str()` is Daytona's message (it becomes `errorReason`)."""


@dataclass(frozen=True)
class DockerImage:
    """`DockerImageInfo`: `registry:5000/test/image:latest` → registry `registry:5000`, project
    `test`, repository `image`, tag `latest`."""

    repository: str
    registry: str | None = None
    project: str | None = None
    tag: str | None = None  # a tag, or `sha256:<hex>` for a digest

    def full_name(self) -> str:
        """`getFullName`: `[registry/][project/]repository[:tag]`; the digest comes back after a
        colon, not an `@`."""
        name = self.repository
        if self.project:
            name = f"{self.project}/{name}"
        if self.registry:
            name = f"{self.registry}/{name}"
        if self.tag:
            name = f"{name}:{self.tag}"
        return name


def parse_docker_image(image_name: str) -> DockerImage:
    """`parseDockerImage`, line by line. Raises `ImageNameError`."""
    if not image_name:
        raise ImageNameError("Image name cannot be empty")
    tag: str | None = None
    if "@sha256:" in image_name:
        # JS `split` cuts at every occurrence; the destructuring keeps the first two pieces.
        pieces = image_name.split("@sha256:")
        name_without_digest, digest = pieces[0], pieces[1]
        if not name_without_digest or not digest or not _HEX64.fullmatch(digest):
            raise ImageNameError(_BAD_DIGEST)
        tag = f"sha256:{digest}"
        parts = name_without_digest.split("/")
        if "" in parts:
            raise ImageNameError("Invalid image name. A part is empty")
    else:
        last_slash, last_colon = image_name.rfind("/"), image_name.rfind(":")
        has_tag = last_colon > last_slash
        if has_tag:
            tag = image_name[last_colon + 1 :]
        parts = (image_name[:last_colon] if has_tag else image_name).split("/")
    registry: str | None = None
    first = parts[0]
    if len(parts) >= 2 and ("." in first or ":" in first or first == "localhost"):
        registry, parts = first, parts[1:]
    if len(parts) >= 2:
        return DockerImage(
            repository=parts[-1], registry=registry, project="/".join(parts[:-1]), tag=tag
        )
    return DockerImage(repository=parts[0], registry=registry, tag=tag)


def strip_scheme(url: str) -> str:
    return _SCHEME.sub("", url, count=1)


def url_matches(url: str, target: str) -> bool:
    """`findRegistryByUrlMatch`'s test: the URL (scheme stripped) starts `target` at a boundary
    (`/`, `:` or the end), so `registry.depot.dev` does not match `registry.depot.dev-evil.com`."""
    prefix = strip_scheme(url)
    return target.startswith(prefix) and target[len(prefix) : len(prefix) + 1] in ("", "/", ":")


def is_docker_hub_url(url: str) -> bool:
    """`findDockerHubRegistryForOrganization`'s test of an entry's URL."""
    stripped = strip_scheme(url)
    return stripped == DOCKER_HUB or stripped.startswith(f"{DOCKER_HUB}/")


def runner_inspect_name(image_name: str, registry_url: str | None) -> str:
    """The name Daytona's API asks its runner to inspect (`handleSnapshotStatePending`):

        const image = parseDockerImage(snapshot.imageName)
        if (registry && !image.registry) { image.registry = registry.url.replace(...) }
        const imageName = image.getFullName()

    `registry_url` is the URL of the entry `findRegistryByImageName` chose; with none it returns
    a temporary entry for the name's own registry, `https://docker.io` for a name without one, so
    a registry is always there. `repo@sha256:<hex>` comes out as `repo:sha256:<hex>` and
    `repo:tag@sha256:<hex>` as `repo:tag:sha256:<hex>`: docker refuses both."""
    image = parse_docker_image(image_name)
    if not image.registry:
        image = replace(image, registry=strip_scheme(registry_url or f"https://{DOCKER_HUB}"))
    return image.full_name()
