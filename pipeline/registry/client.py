"""Reading a registry's v2 API: does a tag exist, which digest it has now, which labels its image
carries. Used before Daytona is asked to pull an image (which would otherwise report a missing
one minutes later) and by the release chain (the built digest, `:main`'s revision).

A `Bearer` challenge (ghcr.io, Docker Hub) is answered with a token from the realm, a `Basic`
one (htpasswd registries) with credentials. Where credentials go is narrow on purpose: only to
the image's own host (credentials.py), to a token realm only over https (loopback excepted),
and never along a redirect (blobs on a CDN, a moved realm). Loopback registries are plain HTTP,
as docker treats them.
"""

from __future__ import annotations

import hashlib
import re
from contextlib import suppress
from typing import Any

import httpx

from pipeline.errors import ConfigError, RegistryError
from pipeline.http_auth import BearerAuth
from pipeline.registry.credentials import GHCR, Credentials, Sources, resolve_credentials
from pipeline.rules.image_ref import ImageRef, ImageRefError, is_loopback, parse_image_ref
from pipeline.rules.release import digest_mismatch, platform_manifest

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_TYPES = (
    INDEX_TYPES[0],
    "application/vnd.oci.image.manifest.v1+json",
    INDEX_TYPES[1],
    "application/vnd.docker.distribution.manifest.v2+json",
)
MAX_REDIRECTS = 5
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')
_NO_AUTH = httpx.Auth()  # the base class sends the request unchanged
PUSH_FIX = (
    "push it first (nox -s snapshot_push), or set SANDBOX_IMAGE / GIT_SHA to an image that exists"
)


def parse_image(image: str) -> ImageRef:
    fix = "use a reference like ghcr.io/acme/app:sha-…"
    try:
        ref = parse_image_ref(image)
    except ImageRefError as error:
        raise ConfigError(str(error), fix) from None
    if ref.tag is None and ref.digest is None:
        raise ConfigError(f"image {image!r} has no tag or digest", fix)
    return ref


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…"` → ("bearer", {"realm": …, "service": …})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m[1].lower(): m[2] if m[2] is not None else m[3] for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params


class RegistryReader:
    """One repository of one registry; answers the auth challenge once, then reuses it."""

    def __init__(
        self,
        image: str,
        credentials: Credentials | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        actions: str = "pull",
    ) -> None:
        self.image = image
        self.ref = parse_image(image)
        self.credentials = credentials
        # "pull", or "pull,push" for a reader that also writes tags (registry/tags.py): the
        # token is then asked for both at once, whatever scope the first challenge named.
        self.actions = actions
        self.withheld = ""  # why credentials were not sent to the realm, for the refusal message
        self._auth: httpx.Auth | None = None
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)

    def __enter__(self) -> RegistryReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def url(self, kind: str, reference: str) -> str:
        return f"{self.ref.base_url}/v2/{self.ref.repository}/{kind}/{reference}"

    def request(
        self, method: str, url: str, headers: dict[str, str], content: bytes | None = None
    ) -> httpx.Response:
        """Authenticated as the registry asks; RegistryError when unreachable."""
        try:
            response = self._send(method, url, headers, self._auth, content=content)
            if response.status_code == 401 and self._auth is None:
                self._auth = self._answer_challenge(response)
                response = self._send(method, url, headers, self._auth, content=content)
        except httpx.TransportError as error:
            raise RegistryError(
                f"cannot reach registry {self.ref.api_host} to check {self.image} "
                f"({str(error) or type(error).__name__})",
                "check the network, or the registry host in SANDBOX_IMAGE / "
                "SANDBOX_IMAGE_REPOSITORY",
            ) from None
        return response

    def manifest(self, reference: str | None = None, method: str = "HEAD") -> httpx.Response:
        url = self.url("manifests", reference or self.ref.reference)
        accept = {"Accept": ", ".join(MANIFEST_TYPES)}
        response = self.request(method, url, accept)
        if response.status_code == 405 and method == "HEAD":  # a registry without HEAD support
            response = self.request("GET", url, accept)
        return response

    def ok(self, response: httpx.Response) -> httpx.Response:
        if response.status_code != 200:
            raise self.fail(response)
        return response

    def digest(self) -> str | None:
        """The digest the registry names for the reference (None: it names none); RegistryError
        unless the reference exists."""
        return self.ok(self.manifest()).headers.get("Docker-Content-Digest") or None

    def _send(
        self,
        method: str,
        url: str | httpx.URL,
        headers: dict[str, str],
        auth: httpx.Auth | None,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        response = self._http.request(
            method, url, headers=headers, params=params, auth=auth or _NO_AUTH, content=content
        )
        for _ in range(MAX_REDIRECTS):
            if not response.has_redirect_location:
                return response
            # A redirect is followed without credentials: a blob's CDN or a moved endpoint
            # must never see the registry's password or token.
            target = response.url.join(response.headers["Location"])
            response = self._http.request(
                method, target, headers=headers, auth=_NO_AUTH, content=content
            )
        if response.has_redirect_location:
            raise RegistryError(
                f"registry {self.ref.api_host} redirected {url} more than {MAX_REDIRECTS} times",
                "check the registry's status and retry",
            )
        return response

    def _answer_challenge(self, response: httpx.Response) -> httpx.Auth:
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        creds = self.credentials
        basic = (
            httpx.BasicAuth(creds.username, creds.password.get_secret_value()) if creds else None
        )
        if scheme == "basic":
            if basic is None:
                raise self.refused(401)
            return basic
        if scheme != "bearer" or not params.get("realm"):
            raise RegistryError(
                f"registry {self.ref.api_host} asks for an authentication this client does not "
                f"speak ({scheme or 'no challenge'})",
                "check the image, or skip the check with --skip-image-check",
            )
        realm = httpx.URL(params["realm"])
        if basic and realm.scheme != "https" and not is_loopback(realm.netloc.decode("ascii")):
            self.withheld = f"its token realm {realm} is plain http"
            basic = None
        scope = f"repository:{self.ref.repository}:{self.actions}"
        query = {"scope": scope if self.actions != "pull" else params.get("scope") or scope}
        if params.get("service"):
            query["service"] = params["service"]
        token_response = self._send("GET", realm, {}, basic, params=query)
        if token_response.status_code in (401, 403):
            raise self.refused(token_response.status_code)
        body = json_body(token_response)
        token = body.get("token") or body.get("access_token")
        if token_response.status_code != 200 or not isinstance(token, str):
            raise RegistryError(
                f"registry {self.ref.api_host} gave no token for {self.image} "
                f"(HTTP {token_response.status_code} from {realm})",
                "check the registry's status and retry",
            )
        return BearerAuth(token)

    def refused(self, status: int) -> RegistryError:
        ref, creds = self.ref, self.credentials
        if creds is None or self.withheld:
            why = f" ({creds.source} not sent: {self.withheld})" if creds else ""
            return RegistryError(
                f"registry {ref.host} did not let us read {self.image} anonymously ({status}): "
                f"the image is private or does not exist{why}",
                "set REGISTRY_USERNAME/REGISTRY_PASSWORD"
                + (" (or GITHUB_TOKEN with read:packages)" if ref.host == GHCR else "")
                + "; if it is private, Daytona also needs a registry entry for "
                + ref.host,
            )
        return RegistryError(
            f"registry {ref.host} refused {creds.source} for {self.image} ({status})",
            f"check {creds.source}; the token needs read access to {ref.repository}",
        )

    def fail(self, response: httpx.Response, writing: str = "") -> RegistryError:
        """`writing`: the tag a failed manifest PUT was for."""
        status = response.status_code
        if status == 404 and not writing:
            return RegistryError(
                f"image {self.image} does not exist in {self.ref.host} ({error_code(response)})",
                PUSH_FIX,
            )
        if status in (401, 403) and writing:
            who = self.credentials.source if self.credentials else "no credentials"
            return RegistryError(
                f"registry {self.ref.host} refused to write {writing} with {who} ({status})",
                "use credentials that may push to the repository (REGISTRY_USERNAME/"
                "REGISTRY_PASSWORD"
                + (", or GITHUB_TOKEN with packages: write" if self.ref.host == GHCR else "")
                + ")",
            )
        if status in (401, 403):
            return self.refused(status)
        to = f"to writing {writing}" if writing else f"for {self.image}"
        return RegistryError(
            f"registry {self.ref.api_host} answered {status} {to} ({error_code(response)})",
            "check the registry's status and retry",
        )


def json_body(response: httpx.Response) -> dict[str, Any]:
    with suppress(ValueError):
        if isinstance(body := response.json(), dict):
            return body
    return {}


def error_code(response: httpx.Response) -> str:
    """The registry's error code (MANIFEST_UNKNOWN, NAME_UNKNOWN…) or the status phrase."""
    try:
        errors = response.json().get("errors") or []
        return str(errors[0].get("code")) if errors else response.reason_phrase
    except (ValueError, AttributeError, IndexError):
        return response.reason_phrase or f"HTTP {response.status_code}"


def content_digest(response: httpx.Response) -> str:
    return "sha256:" + hashlib.sha256(response.content).hexdigest()


REVISION_LABEL = "org.opencontainers.image.revision"


def reader_for(image: str, settings: Sources, *, actions: str = "pull") -> RegistryReader:
    credentials = resolve_credentials(settings, parse_image(image).host)
    return RegistryReader(image, credentials, actions=actions)


def resolve_digest(image: str, settings: Sources) -> str:
    """The digest the registry serves for `image` now. For a multi-platform image (or one with
    attestations) that is the index's digest, which is what buildx reports as
    `containerimage.digest`; Daytona pulls by it too."""
    with reader_for(image, settings) as reader:
        # no header: the digest of the bytes served
        return reader.digest() or content_digest(reader.ok(reader.manifest(method="GET")))


def verify_digest(image: str, expected: str, settings: Sources) -> str:
    """RegistryError naming both digests unless `image` resolves to `expected`
    (SANDBOX_IMAGE_DIGEST: the tag is still the image that was built and tested)."""
    actual = resolve_digest(image, settings)
    if problem := digest_mismatch(expected, actual):
        raise RegistryError(
            f"{image}: {problem}",
            f"find out who pushed the tag again; to ship {expected}, promote it under a tag of "
            "its own (snapshot_stage -- --from <snapshot>), or set SANDBOX_IMAGE_DIGEST to the "
            "digest of the build that pushed the tag last, if that one was tested",
        )
    return actual


def image_labels(
    image: str, settings: Sources, *, platform: str | None = None
) -> dict[str, str] | None:
    """The labels of `image` (manifest → config blob); None when the tag does not exist. For an
    index, the manifest of `platform` if any (else any of its images)."""
    with reader_for(image, settings) as reader:
        response = reader.manifest(method="GET")
        if response.status_code == 404:
            return None
        manifest = json_body(reader.ok(response))
        if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
            # Every platform of one build carries the same labels: any image answers when the
            # wanted platform is not there (SANDBOX_BUILD_PLATFORM changed since that build).
            chosen = platform_manifest(manifest, platform) or platform_manifest(manifest, None)
            if chosen is None:
                raise RegistryError(
                    f"{image} is an index without any image manifest",
                    "check that the tag points at a container image",
                )
            manifest = json_body(reader.ok(reader.manifest(chosen, method="GET")))
        config = manifest.get("config")
        digest = config.get("digest") if isinstance(config, dict) else None
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            raise RegistryError(
                f"the manifest of {image} names no config blob",
                "check that the tag points at a container image",
            )
        blob = reader.request("GET", reader.url("blobs", digest), {"Accept": "*/*"})
        if blob.status_code != 200 or content_digest(blob) != digest:
            raise RegistryError(
                f"registry {reader.ref.api_host} did not serve config blob {digest} of {image} "
                f"(HTTP {blob.status_code})",
                "check the registry's status and retry",
            )
    labels = (json_body(blob).get("config") or {}).get("Labels") or {}
    return {str(key): str(value) for key, value in labels.items()}


def image_revision(image: str, settings: Sources) -> str | None:
    return (image_labels(image, settings) or {}).get(REVISION_LABEL)
