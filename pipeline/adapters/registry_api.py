"""Does an image tag exist? One manifest request to the registry's v2 API, before Daytona is
asked to pull it (Daytona would otherwise report a missing image minutes later, as `error`).

Speaks the distribution auth protocol: a `WWW-Authenticate: Bearer` challenge (ghcr.io, Docker
Hub) is answered with a token from the realm (anonymous, or with credentials when we have
them); a `Basic` challenge (htpasswd registries) with credentials. Loopback registries are plain
HTTP, as docker treats them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Generator
from dataclasses import dataclass

import httpx

from pipeline.adapters.registry_auth import GHCR, Credentials
from pipeline.errors import ConfigError, RegistryError
from pipeline.settings.build import BuildSettings

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')
PUSH_FIX = (
    "push it first (nox -s snapshot_push), or set SANDBOX_IMAGE / GIT_SHA to an image that exists"
)


@dataclass(frozen=True)
class ImageRef:
    host: str  # as docker names it: "docker.io" for Docker Hub
    repository: str  # path inside the registry ("library/debian" for "debian")
    reference: str  # tag or sha256 digest

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    @property
    def base_url(self) -> str:
        scheme = "http" if plain_http(self.host) else "https"
        return f"{scheme}://{self.api_host}"

    @property
    def manifest_url(self) -> str:
        return f"{self.base_url}/v2/{self.repository}/manifests/{self.reference}"


def parse_image(image: str) -> ImageRef:
    """Split `host/path:tag` or `host/path@sha256:…` the way docker does."""
    name, at, digest = image.strip().partition("@")
    tag = ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    reference = digest if at else tag
    if not name or not reference:
        raise ConfigError(
            f"image {image!r} has no tag or digest", "use a reference like ghcr.io/acme/app:sha-…"
        )
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        host, repository = first, rest
    else:
        host, repository = DOCKER_HUB, name
        if "/" not in repository:
            repository = f"library/{repository}"
    if not repository or repository.startswith("/") or "//" in repository:
        raise ConfigError(f"image {image!r} is not a valid reference", "use host/path:tag")
    return ImageRef(host=host, repository=repository, reference=reference)


def plain_http(host: str) -> bool:
    """Docker's default insecure registries: 127.0.0.0/8 and localhost (any port)."""
    hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    hostname = hostname.removeprefix("[").split("]")[0]
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def registry_credentials(host: str, settings: BuildSettings) -> Credentials | None:
    """REGISTRY_USERNAME/REGISTRY_PASSWORD, else GITHUB_ACTOR/GITHUB_TOKEN for ghcr.io only
    (a GitHub token means nothing to, and must not be sent to, any other registry)."""
    if settings.registry_username and settings.registry_password:
        return Credentials(
            username=settings.registry_username,
            password=settings.registry_password,
            source="REGISTRY_USERNAME/REGISTRY_PASSWORD",
        )
    if host == GHCR and settings.github_token is not None:
        return Credentials(
            username=settings.github_actor or "github-actions",
            password=settings.github_token,
            source="GITHUB_ACTOR/GITHUB_TOKEN",
        )
    return None


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…"` → ("bearer", {"realm": …, "service": …})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m[1].lower(): m[2] if m[2] is not None else m[3] for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params


def check_image(
    image: str,
    credentials: Credentials | None = None,
    *,
    timeout: float = 5.0,
    transport: httpx.BaseTransport | None = None,
) -> str | None:
    """Raise RegistryError unless `image` exists; returns its digest when the registry says it."""
    ref = parse_image(image)
    with httpx.Client(timeout=timeout, transport=transport, follow_redirects=True) as http:
        try:
            response = _manifest(http, ref, None)
            if response.status_code == 401:
                auth = _answer_challenge(http, ref, response, credentials, image)
                response = _manifest(http, ref, auth)
        except httpx.TransportError as error:
            raise RegistryError(
                f"cannot reach registry {ref.api_host} to check {image} "
                f"({str(error) or type(error).__name__})",
                "check the network, or the registry host in SANDBOX_IMAGE / "
                "SANDBOX_IMAGE_REPOSITORY",
            ) from None
    status = response.status_code
    if status == 200:
        digest = response.headers.get("Docker-Content-Digest")
        return str(digest) if digest else None
    if status == 404:
        raise RegistryError(
            f"image {image} does not exist in {ref.host} ({_code(response)})", PUSH_FIX
        )
    if status in (401, 403):
        raise _refused(image, ref, credentials, status)
    raise RegistryError(
        f"registry {ref.api_host} answered {status} for {image} ({_code(response)})",
        "check the registry's status and retry",
    )


def _manifest(http: httpx.Client, ref: ImageRef, auth: httpx.Auth | None) -> httpx.Response:
    headers = {"Accept": ", ".join(MANIFEST_TYPES)}
    use = auth or httpx.Auth()  # the base class sends the request unchanged
    response = http.head(ref.manifest_url, headers=headers, auth=use)
    if response.status_code == 405:  # a registry without HEAD support
        response = http.get(ref.manifest_url, headers=headers, auth=use)
    return response


def _answer_challenge(
    http: httpx.Client,
    ref: ImageRef,
    response: httpx.Response,
    credentials: Credentials | None,
    image: str,
) -> httpx.Auth:
    scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
    basic = (
        httpx.BasicAuth(credentials.username, credentials.password.get_secret_value())
        if credentials
        else None
    )
    if scheme == "basic":
        if basic is None:
            raise _refused(image, ref, None, 401)
        return basic
    if scheme != "bearer" or not params.get("realm"):
        raise RegistryError(
            f"registry {ref.api_host} asks for an authentication this client does not speak "
            f"({scheme or 'no challenge'})",
            "check the image, or skip the check with --skip-image-check",
        )
    query = {"scope": params.get("scope") or f"repository:{ref.repository}:pull"}
    if params.get("service"):
        query["service"] = params["service"]
    token_response = http.get(params["realm"], params=query, auth=basic)
    if token_response.status_code in (401, 403):
        raise _refused(image, ref, credentials, token_response.status_code)
    try:
        body = token_response.json()
        token = body.get("token") or body.get("access_token")
    except (ValueError, AttributeError):
        token = None
    if token_response.status_code != 200 or not isinstance(token, str):
        raise RegistryError(
            f"registry {ref.api_host} gave no token for {image} "
            f"(HTTP {token_response.status_code} from {params['realm']})",
            "check the registry's status and retry",
        )
    return _TokenAuth(token)


class _TokenAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def __repr__(self) -> str:
        return "_TokenAuth(***)"


def _refused(
    image: str, ref: ImageRef, credentials: Credentials | None, status: int
) -> RegistryError:
    if credentials is None:
        return RegistryError(
            f"registry {ref.host} did not let us read {image} anonymously ({status}): the image "
            "is private or does not exist",
            "set REGISTRY_USERNAME/REGISTRY_PASSWORD"
            + (" (or GITHUB_TOKEN with read:packages)" if ref.host == GHCR else "")
            + "; if it is private, Daytona also needs a registry entry for "
            + ref.host,
        )
    return RegistryError(
        f"registry {ref.host} refused {credentials.source} for {image} ({status})",
        f"check {credentials.source}; the token needs read access to {ref.repository}",
    )


def _code(response: httpx.Response) -> str:
    """The registry's error code (MANIFEST_UNKNOWN, NAME_UNKNOWN…) or the status phrase."""
    try:
        errors = response.json().get("errors") or []
        return str(errors[0].get("code")) if errors else response.reason_phrase
    except (ValueError, AttributeError, IndexError):
        return response.reason_phrase or f"HTTP {response.status_code}"
