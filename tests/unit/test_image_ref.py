"""The one image-reference parser and loopback rule, pinned by a table."""

from __future__ import annotations

import pytest

from pipeline.rules.image_ref import (
    ImageRefError,
    daytona_image_problem,
    image_repository,
    is_loopback,
    parse_image_ref,
    split_host,
)

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("image", "host", "repository", "tag", "digest"),
    [
        ("debian", "docker.io", "library/debian", None, None),
        ("debian:12", "docker.io", "library/debian", "12", None),
        ("acme/app:1", "docker.io", "acme/app", "1", None),
        ("ghcr.io/iterate/sandbox:sha-abc", "ghcr.io", "iterate/sandbox", "sha-abc", None),
        ("127.0.0.1:5000/x/y:t", "127.0.0.1:5000", "x/y", "t", None),
        ("localhost/x:t", "localhost", "x", "t", None),
        (f"ghcr.io/a/b@{DIGEST}", "ghcr.io", "a/b", None, DIGEST),
        (f"ghcr.io/a/b:t@{DIGEST}", "ghcr.io", "a/b", "t", DIGEST),
    ],
)
def test_parse(image: str, host: str, repository: str, tag: str | None, digest: str | None) -> None:
    ref = parse_image_ref(image)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == (host, repository, tag, digest)


@pytest.mark.parametrize("image", ["", "ghcr.io//x:t", "x@sha256:zz", "x:bad tag", "/x:t"])
def test_nonsense_is_refused(image: str) -> None:
    with pytest.raises(ImageRefError):
        parse_image_ref(image)


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("ghcr.io/a/b:sha-1", None),
        # Daytona turns repo@sha256:<hex> into an invalid name (daytonaio/daytona#4532)
        (f"ghcr.io/a/b@{DIGEST}", "a tag, not a digest"),
        (f"ghcr.io/a/b:v1@{DIGEST}", "a tag, not a digest"),
        ("ghcr.io/a/b", "an image with a tag"),
        ("ghcr.io/a/b:latest", "floating tags"),
        ("ghcr.io/a/b@sha256:1", "sha256:<64"),
        ("ghcr.io/a/b:bad!", "[A-Za-z0-9_.-]"),
    ],
)
def test_daytona_image_problem(image: str, problem: str | None) -> None:
    found = daytona_image_problem(image)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1:5000", True),
        ("127.8.9.1", True),
        ("localhost:1", True),
        ("[::1]:5000", True),
        ("ghcr.io", False),
        ("10.0.0.1:5000", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_split_host() -> None:
    assert split_host("ghcr.io/iterate/sandbox") == ("ghcr.io", "iterate/sandbox")
    assert split_host("iterate/sandbox") == ("docker.io", "iterate/sandbox")


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("ghcr.io/iterate/sandbox:sha-1", "ghcr.io/iterate/sandbox"),
        (f"ghcr.io/iterate/sandbox@{DIGEST}", "ghcr.io/iterate/sandbox"),
        (f"ghcr.io/iterate/sandbox:main@{DIGEST}", "ghcr.io/iterate/sandbox"),
        ("127.0.0.1:5000/a/b:sha-1", "127.0.0.1:5000/a/b"),  # the port is no tag
        ("debian:12", "debian"),  # the name as written, no docker.io/library/
    ],
)
def test_image_repository_drops_tag_and_digest_and_keeps_the_name(
    image: str, repository: str
) -> None:
    assert image_repository(image) == repository
