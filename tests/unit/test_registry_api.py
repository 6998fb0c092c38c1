"""The image-exists check (`pipeline.registry.client`): reference parsing, the auth protocol
(anonymous Bearer tokens, Basic), plain HTTP for loopback — with `httpx.MockTransport`."""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr

from pipeline.errors import ConfigError, RegistryError
from pipeline.registry import credentials as registry_auth
from pipeline.registry.client import RegistryReader, parse_challenge, parse_image
from pipeline.registry.credentials import Credentials, resolve_credentials
from pipeline.rules.image_ref import is_loopback
from pipeline.settings.build import BuildSettings

DIGEST = "sha256:" + "c" * 64


def check_image(
    image: str, credentials: Credentials | None = None, *, transport: httpx.BaseTransport
) -> str | None:
    with RegistryReader(image, credentials, timeout=5.0, transport=transport) as reader:
        return reader.digest()


CREDS = Credentials(
    username="bot", password=SecretStr("pa55"), source="REGISTRY_USERNAME/REGISTRY_PASSWORD"
)


@pytest.mark.parametrize(
    ("image", "ref"),
    [
        ("ghcr.io/iterate/sandbox:sha-1", ("ghcr.io", "iterate/sandbox", "sha-1")),
        ("127.0.0.1:5000/a/b:v1", ("127.0.0.1:5000", "a/b", "v1")),
        ("localhost/x:1", ("localhost", "x", "1")),
        ("debian:12", ("docker.io", "library/debian", "12")),
        ("acme/app:1", ("docker.io", "acme/app", "1")),
        (f"ghcr.io/a/b@{DIGEST}", ("ghcr.io", "a/b", DIGEST)),
        (f"ghcr.io/a/b:v1@{DIGEST}", ("ghcr.io", "a/b", DIGEST)),
    ],
)
def test_parse_image(image: str, ref: tuple[str, str, str]) -> None:
    parsed = parse_image(image)  # the one parser, rules.image_ref, behind a ConfigError
    assert (parsed.host, parsed.repository, parsed.reference) == ref


@pytest.mark.parametrize("image", ["ghcr.io/a/b", "127.0.0.1:5000/a", "", "x:"])
def test_parse_image_needs_a_tag(image: str) -> None:
    with pytest.raises(ConfigError):
        parse_image(image)


@pytest.mark.parametrize(
    ("host", "plain"),
    [
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("localhost:5000", True),
        ("localhost", True),
        ("[::1]:5000", True),
        ("localhost.example.com", False),
        ("127.example.com", False),
        ("ghcr.io", False),
        ("10.0.0.1:5000", False),
        ("docker.io", False),
    ],
)
def test_plain_http_only_for_loopback(host: str, plain: bool) -> None:
    assert is_loopback(host) is plain
    assert parse_image(f"{host}/a:1").base_url.startswith("http://" if plain else "https://")


def test_urls() -> None:
    hub = parse_image("debian:12")
    assert (hub.base_url, hub.repository, hub.reference) == (
        "https://registry-1.docker.io",
        "library/debian",
        "12",
    )
    assert parse_image("127.0.0.1:5000/a:1").base_url == "http://127.0.0.1:5000"


def test_parse_challenge() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://ghcr.io/token",
        "service": "ghcr.io",
        "scope": "repository:a/b:pull",
    }
    assert parse_challenge('Basic realm="registry"') == ("basic", {"realm": "registry"})
    assert parse_challenge("") == ("", {})


def build_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> BuildSettings:
    for key in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD", "GITHUB_ACTOR", "GITHUB_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("SANDBOX_IMAGE_REPOSITORY", raising=False)
    # Neither the developer's `gh` login nor their Docker config may answer for these tests.
    monkeypatch.setattr(registry_auth, "_gh_auth_token", lambda: None)
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent/sandbox-pipeline-test")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return BuildSettings()


def test_credentials_prefer_registry_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = build_settings(
        monkeypatch,
        REGISTRY_USERNAME="u",
        REGISTRY_PASSWORD="p",
        GITHUB_ACTOR="gh",
        GITHUB_TOKEN="t",
    )
    found = resolve_credentials(settings, "ghcr.io")
    assert found is not None and found.username == "u"


def test_github_token_only_goes_to_ghcr(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = build_settings(monkeypatch, GITHUB_ACTOR="gh", GITHUB_TOKEN="t")
    found = resolve_credentials(settings, "ghcr.io")
    assert found is not None and found.username == "gh"
    assert found.source == "GITHUB_ACTOR/GITHUB_TOKEN"
    assert resolve_credentials(settings, "registry.example.com") is None
    assert resolve_credentials(build_settings(monkeypatch), "ghcr.io") is None


def ghcr_like(
    *, exists: bool = True, private: bool = False, log: list[httpx.Request] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    """A registry that answers 401 + Bearer challenge, and gives tokens at /token."""

    def handler(request: httpx.Request) -> httpx.Response:
        if log is not None:
            log.append(request)
        if request.url.path == "/token":
            authorized = request.headers.get("Authorization", "").startswith("Basic ")
            if private and not authorized:
                return httpx.Response(403, json={"errors": [{"code": "DENIED"}]})
            return httpx.Response(200, json={"token": "tok-123"})
        if request.headers.get("Authorization") != "Bearer tok-123":
            return httpx.Response(
                401,
                headers={
                    "WWW-Authenticate": 'Bearer realm="https://ghcr.io/token",service="ghcr.io",'
                    'scope="repository:iterate/sandbox:pull"'
                },
            )
        if not exists:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        return httpx.Response(200, headers={"Docker-Content-Digest": DIGEST})

    return handler


def test_anonymous_bearer_flow() -> None:
    log: list[httpx.Request] = []
    digest = check_image(
        "ghcr.io/iterate/sandbox:sha-1", transport=httpx.MockTransport(ghcr_like(log=log))
    )
    assert digest == DIGEST
    first, token, second = log
    assert first.method == "HEAD" and str(first.url) == (
        "https://ghcr.io/v2/iterate/sandbox/manifests/sha-1"
    )
    for media in (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ):
        assert media in first.headers["Accept"]
    assert token.url.params["scope"] == "repository:iterate/sandbox:pull"
    assert token.url.params["service"] == "ghcr.io"
    assert "Authorization" not in token.headers  # anonymous
    assert second.headers["Authorization"] == "Bearer tok-123"


def test_bearer_flow_with_credentials_for_private_images() -> None:
    log: list[httpx.Request] = []
    check_image(
        "ghcr.io/iterate/sandbox:sha-1",
        CREDS,
        transport=httpx.MockTransport(ghcr_like(private=True, log=log)),
    )
    assert log[1].headers["Authorization"] == "Basic " + base64.b64encode(b"bot:pa55").decode()


def test_missing_image_fails_with_the_fix() -> None:
    with pytest.raises(RegistryError) as caught:
        check_image(
            "ghcr.io/iterate/sandbox:sha-1", transport=httpx.MockTransport(ghcr_like(exists=False))
        )
    text = str(caught.value)
    assert "does not exist in ghcr.io (MANIFEST_UNKNOWN)" in text and "snapshot_push" in text
    assert caught.value.exit_code == 7


def test_private_image_without_credentials() -> None:
    with pytest.raises(RegistryError, match=r"anonymously.*REGISTRY_USERNAME.*GITHUB_TOKEN"):
        check_image(
            "ghcr.io/iterate/sandbox:sha-1", transport=httpx.MockTransport(ghcr_like(private=True))
        )


def basic_registry(log: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        log.append(request)
        expected = "Basic " + base64.b64encode(b"bot:pa55").decode()
        if request.headers.get("Authorization") != expected:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="registry"'})
        if request.method == "HEAD":
            return httpx.Response(405)  # some registries do not do HEAD
        return httpx.Response(200)

    return handler


def test_basic_auth_over_plain_http_for_loopback() -> None:
    log: list[httpx.Request] = []
    assert (
        check_image(
            "127.0.0.1:5000/a/b:v1", CREDS, transport=httpx.MockTransport(basic_registry(log))
        )
        is None
    )
    assert [r.method for r in log] == ["HEAD", "HEAD", "GET"]
    assert all(r.url.scheme == "http" for r in log)


def test_basic_auth_without_credentials_says_which_variables() -> None:
    with pytest.raises(RegistryError, match="REGISTRY_USERNAME/REGISTRY_PASSWORD") as caught:
        check_image("127.0.0.1:5000/a/b:v1", transport=httpx.MockTransport(basic_registry([])))
    assert "GITHUB_TOKEN" not in str(caught.value)  # only suggested for ghcr.io


def test_wrong_credentials_name_their_source() -> None:
    wrong = Credentials(
        username="bot", password=SecretStr("nope"), source="GITHUB_ACTOR/GITHUB_TOKEN"
    )
    with pytest.raises(RegistryError) as caught:
        check_image(
            "127.0.0.1:5000/a/b:v1", wrong, transport=httpx.MockTransport(basic_registry([]))
        )
    assert "refused GITHUB_ACTOR/GITHUB_TOKEN" in str(caught.value)
    assert "nope" not in str(caught.value)


def test_unreachable_registry() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(RegistryError, match=r"cannot reach registry ghcr\.io"):
        check_image("ghcr.io/a/b:1", transport=httpx.MockTransport(handler))
