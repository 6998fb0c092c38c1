"""Docker's image-reference grammar, for what the emulator's runner hands docker and registries.

Written from distribution/reference v0.6.0 (`regexp.go`, `normalize.go`, `reference.go`), the
grammar vendored by docker v28.5.2, the Docker module Daytona's runner is built with
(apps/runner/go.mod at daytonaio/daytona b5a5d9e78, v0.190). The daemon parses the name of a
runner's `DistributionInspect` with it (`reference.ParseAnyReference`,
api/server/router/distribution), so a name it refuses ends a Daytona snapshot with its words:
"invalid reference format". Digest checks are go-digest's (`digest.Parse`).

Not Daytona's own reading of names: that is `daytona_images.py`, and the two disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
REPOSITORY_NAME_TOTAL_LENGTH_MAX = 255

# regexp.go, piece by piece (RE2: `\w` is ASCII, `$` is the end of the text).
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_NAME_COMPONENT}(?:\.{_DOMAIN_NAME_COMPONENT})*"
_IPV6_ADDRESS = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = rf"(?:{_DOMAIN_NAME}|{_IPV6_ADDRESS})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_NAME = rf"(?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME}"
REFERENCE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_ANCHORED_NAME = re.compile(rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})", re.ASCII)
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")
# go-digest: the algorithms docker registers, and the encoded form each accepts.
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


class ReferenceError(ValueError):
    """A name docker's grammar refuses; `str()` is docker's message."""


# reference.go's errors, in docker's words
INVALID_FORMAT = "invalid reference format"
NAME_CONTAINS_UPPERCASE = "repository name must be lowercase"
NAME_EMPTY = "repository name must have at least one component"
NAME_TOO_LONG = (
    f"repository name must not be more than {REPOSITORY_NAME_TOTAL_LENGTH_MAX} characters"
)


@dataclass(frozen=True)
class Reference:
    """A normalized named reference: `docker.io/library/debian:12`, not the familiar `debian:12`."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def manifest_reference(self) -> str:
        """What a registry's manifest endpoint takes: the digest wins over a tag beside it;
        neither means `latest` (`TagNameOnly`)."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.name}{tag}{digest}"


def _check_digest(value: str) -> None:
    """go-digest `Parse` then `Validate`."""
    algorithm, _, encoded = value.partition(":")
    length = _DIGEST_HEX_LENGTHS.get(algorithm)
    if length is None:
        raise ReferenceError("unsupported digest algorithm")
    if len(encoded) != length:
        raise ReferenceError("invalid checksum digest length")
    if not re.fullmatch(r"[a-f0-9]+", encoded):
        raise ReferenceError("invalid checksum digest format")


def parse(text: str) -> Reference:
    """`reference.Parse`: the grammar as written, no normalization (the domain may be empty)."""
    if not text:
        raise ReferenceError(NAME_EMPTY)
    match = REFERENCE.fullmatch(text)
    if match is None:
        lowered = text.lower()
        if lowered != text and REFERENCE.fullmatch(lowered):
            raise ReferenceError(NAME_CONTAINS_UPPERCASE)
        raise ReferenceError(INVALID_FORMAT)
    name, tag, digest = match.groups()
    name_match = _ANCHORED_NAME.fullmatch(name)
    domain, path = (name_match.group(1) or "", name_match.group(2)) if name_match else ("", name)
    if len(path) > REPOSITORY_NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError(NAME_TOO_LONG)
    if digest:
        _check_digest(digest)
    return Reference(domain=domain, path=path, tag=tag or None, digest=digest or None)


def split_docker_domain(name: str) -> tuple[str, str]:
    """`splitDockerDomain`: `ubuntu` → (`docker.io`, `library/ubuntu`); a first component is a
    domain if it is `localhost`, holds `.` or `:`, or is not lower-case."""
    maybe_domain, slash, maybe_remote = name.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif (
        maybe_domain == "localhost"
        or "." in maybe_domain
        or ":" in maybe_domain
        or maybe_domain.lower() != maybe_domain
    ):
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def parse_normalized_named(text: str) -> Reference:
    """`reference.ParseNormalizedNamed`: what `docker pull NAME` and the daemon accept as a name,
    fully qualified. Raises `ReferenceError` with docker's message."""
    if _IDENTIFIER.fullmatch(text):
        raise ReferenceError(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = split_docker_domain(text)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise ReferenceError(f"{INVALID_FORMAT}: repository name ({remote}) must be lowercase")
    return parse(f"{domain}/{remainder}")
