"""Image references the way docker reads them: one parser for the whole project (pure)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
FLOATING_TAGS = frozenset({"latest", "lts", "stable"})

DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# docker's reference grammar for a repository without tag or digest: an optional registry
# host[:port], then lower-case path components separated by "/".
REPOSITORY = re.compile(
    r"^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)


class ImageRefError(ValueError):
    pass


@dataclass(frozen=True)
class ImageRef:
    host: str  # as docker names it: "docker.io" for Docker Hub
    repository: str  # path inside the registry ("library/debian" for "debian")
    tag: str | None
    digest: str | None

    @property
    def reference(self) -> str:
        """What the registry's manifest endpoint takes: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    @property
    def base_url(self) -> str:
        scheme = "http" if is_loopback(self.host) else "https"
        return f"{scheme}://{self.api_host}"


def split_host(name: str) -> tuple[str, str]:
    """`host/path` → (host, path); a first component with `.`, `:` or `localhost` is a host."""
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return DOCKER_HUB, name


def parse_image_ref(image: str) -> ImageRef:
    name, at, digest = image.strip().partition("@")
    tag: str | None = None
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    host, repository = split_host(name)
    if host == DOCKER_HUB and repository and "/" not in repository:
        repository = f"library/{repository}"
    if not name or not repository or repository.startswith("/") or "//" in repository:
        raise ImageRefError(f"{image!r} is not an image reference like host/path:tag")
    if at and not DIGEST.fullmatch(digest):
        raise ImageRefError(f"{image!r} has a digest that is not sha256:<64 lower-case hex>")
    if tag is not None and not TAG.fullmatch(tag):
        raise ImageRefError(f"{image!r} has a tag outside [A-Za-z0-9_.-] (at most 128)")
    return ImageRef(host=host, repository=repository, tag=tag, digest=digest if at else None)


DAYTONA_DIGEST_PROBLEM = (
    "a tag, not a digest: Daytona rewrites repo@sha256:<hex> into repo:sha256:<hex>, which "
    "fails with invalid reference format (daytonaio/daytona#4532)"
)


def daytona_image_problem(image: str) -> str | None:
    """Why Daytona would refuse `image` for a snapshot, or fail to pull it; None for a fixed tag
    (a digest passes Daytona's validation, then fails: see DAYTONA_DIGEST_PROBLEM)."""
    try:
        ref = parse_image_ref(image)
    except ImageRefError:
        if "@" in image:
            return "a digest of the form image@sha256:<64 lower-case hex>"
        if ":" in image.rsplit("/", 1)[-1]:
            return "a tag of [A-Za-z0-9_.-], at most 128 characters"
        return "an image reference like ghcr.io/iterate/sandbox:sha-<sha>"
    if ref.digest:
        return DAYTONA_DIGEST_PROBLEM
    if ref.tag is None:
        return "an image with a tag, like ghcr.io/iterate/sandbox:sha-<sha>"
    if ref.tag.lower() in FLOATING_TAGS:
        return f"a fixed tag; Daytona refuses floating tags like :{ref.tag}"
    return None


def is_loopback(host: str) -> bool:
    """Docker's default insecure registries: 127.0.0.0/8, ::1 and localhost, any port."""
    hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    hostname = hostname.removeprefix("[").split("]")[0]
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def image_repository(image: str) -> str:
    """`image` without its tag or digest, as written (no docker.io/library/ added):
    `ghcr.io/a/b:sha-1` → `ghcr.io/a/b`, where a tag that stands for it is made."""
    ref = parse_image_ref(image)  # raises ImageRefError for no reference at all
    name = image.strip().partition("@")[0]
    return name.removesuffix(f":{ref.tag}") if ref.tag else name
