"""Where registry credentials may go (issue 11, item 4), against real HTTP servers on 127.0.0.1
that record every Authorization header they receive:
- REGISTRY_USERNAME/REGISTRY_PASSWORD only to the configured repository's registry;
- a token realm gets them only over https (loopback excepted);
- redirects are followed without credentials."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.errors import RegistryError
from pipeline.registry import credentials as registry_auth
from pipeline.registry.client import resolve_digest
from pipeline.settings.build import BuildSettings

DIGEST = "sha256:" + "e" * 64
BASIC = "Basic " + base64.b64encode(b"bot:push-secret").decode()
Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None


@dataclass
class Recorder:
    """An HTTP server on 127.0.0.1 that answers with `reply` and records each request."""

    reply: Callable[[Seen], Reply]
    seen: list[Seen] = field(default_factory=list)
    host: str = ""

    @property
    def authorizations(self) -> list[str | None]:
        return [s.authorization for s in self.seen]


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen = Seen(self.command, self.path, self.headers.get("Authorization"))
            recorder.seen.append(seen)
            status, headers, body = recorder.reply(seen)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[Seen], Reply]], Recorder]]:
    servers: list[ThreadingHTTPServer] = []

    def start(reply: Callable[[Seen], Reply]) -> Recorder:
        recorder = Recorder(reply)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
        recorder.host = f"127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        servers.append(server)
        return recorder

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def settings_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[str], BuildSettings]:
    """Settings with REGISTRY_USERNAME/REGISTRY_PASSWORD for repository `host/iterate/sandbox`."""
    for key in ("GITHUB_TOKEN", "GITHUB_ACTOR", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setattr(registry_auth, "_gh_auth_token", lambda: None)
    monkeypatch.setenv("REGISTRY_USERNAME", "bot")
    monkeypatch.setenv("REGISTRY_PASSWORD", "push-secret")

    def make(host: str) -> BuildSettings:
        monkeypatch.setenv("SANDBOX_IMAGE_REPOSITORY", f"{host}/iterate/sandbox")
        return BuildSettings()

    return make


def basic_registry(seen: Seen) -> Reply:
    if seen.authorization != BASIC:
        return 401, {"WWW-Authenticate": 'Basic realm="registry"'}, b""
    return 200, {"Docker-Content-Digest": DIGEST}, b""


def test_the_password_goes_to_the_configured_registry_only(
    serve: Callable[[Callable[[Seen], Reply]], Recorder],
    settings_for: Callable[[str], BuildSettings],
) -> None:
    configured, other = serve(basic_registry), serve(basic_registry)
    settings = settings_for(configured.host)

    assert resolve_digest(f"{configured.host}/iterate/sandbox:v1", settings) == DIGEST
    assert configured.authorizations == [None, BASIC]

    with pytest.raises(RegistryError, match="anonymously") as caught:
        resolve_digest(f"{other.host}/iterate/sandbox:v1", settings)
    assert "push-secret" not in str(caught.value)
    assert other.seen and other.authorizations == [None]  # asked, but never with the password


def test_a_plain_http_realm_gets_no_credentials(
    serve: Callable[[Callable[[Seen], Reply]], Recorder],
    settings_for: Callable[[str], BuildSettings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The realm is a non-loopback http URL; an http proxy on 127.0.0.1 stands in for its host,
    # so what would have been sent to it is recorded.
    def realm(seen: Seen) -> Reply:
        return 200, {"Content-Type": "application/json"}, b'{"token": "anonymous-token"}'

    proxy = serve(realm)

    def registry(seen: Seen) -> Reply:
        if seen.authorization == "Bearer anonymous-token":
            return 200, {"Docker-Content-Digest": DIGEST}, b""
        challenge = 'Bearer realm="http://realm.example.test/token",service="test"'
        return 401, {"WWW-Authenticate": challenge}, b""

    served = serve(registry)
    monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.host}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    settings = settings_for(served.host)

    assert resolve_digest(f"{served.host}/iterate/sandbox:v1", settings) == DIGEST
    assert [s.path.split("?")[0] for s in proxy.seen] == ["http://realm.example.test/token"]
    assert proxy.authorizations == [None]  # the realm was asked anonymously


def test_a_refusing_plain_http_realm_says_why_nothing_was_sent(
    serve: Callable[[Callable[[Seen], Reply]], Recorder],
    settings_for: Callable[[str], BuildSettings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = serve(lambda seen: (401, {}, b""))

    def registry(seen: Seen) -> Reply:
        challenge = 'Bearer realm="http://realm.example.test/token",service="test"'
        return 401, {"WWW-Authenticate": challenge}, b""

    served = serve(registry)
    monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.host}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with pytest.raises(RegistryError) as caught:
        resolve_digest(f"{served.host}/iterate/sandbox:v1", settings_for(served.host))
    text = str(caught.value)
    assert "REGISTRY_USERNAME/REGISTRY_PASSWORD not sent" in text and "plain http" in text
    assert proxy.authorizations == [None]


def test_a_loopback_realm_gets_them_over_http(
    serve: Callable[[Callable[[Seen], Reply]], Recorder],
    settings_for: Callable[[str], BuildSettings],
) -> None:
    host = ""

    def registry(seen: Seen) -> Reply:
        if seen.path.startswith("/token"):
            if seen.authorization != BASIC:
                return 401, {}, b""
            return 200, {"Content-Type": "application/json"}, b'{"token": "granted"}'
        if seen.authorization == "Bearer granted":
            return 200, {"Docker-Content-Digest": DIGEST}, b""
        challenge = f'Bearer realm="http://{host}/token",service="test"'
        return 401, {"WWW-Authenticate": challenge}, b""

    served = serve(registry)
    host = served.host
    assert resolve_digest(f"{host}/iterate/sandbox:v1", settings_for(host)) == DIGEST
    assert served.authorizations == [None, BASIC, "Bearer granted"]


def test_redirects_are_followed_without_credentials(
    serve: Callable[[Callable[[Seen], Reply]], Recorder],
    settings_for: Callable[[str], BuildSettings],
) -> None:
    elsewhere = serve(lambda seen: (200, {"Docker-Content-Digest": DIGEST}, b""))

    def registry(seen: Seen) -> Reply:
        if seen.authorization != BASIC:
            return 401, {"WWW-Authenticate": 'Basic realm="registry"'}, b""
        return 307, {"Location": f"http://{elsewhere.host}{seen.path}"}, b""

    served = serve(registry)
    assert resolve_digest(f"{served.host}/iterate/sandbox:v1", settings_for(served.host)) == DIGEST
    assert served.authorizations == [None, BASIC]
    assert elsewhere.authorizations == [None]


def test_a_redirected_realm_gets_no_credentials(
    serve: Callable[[Callable[[Seen], Reply]], Recorder],
    settings_for: Callable[[str], BuildSettings],
) -> None:
    moved = serve(
        lambda seen: (200, {"Content-Type": "application/json"}, b'{"token": "from-moved"}')
    )
    host = ""

    def registry(seen: Seen) -> Reply:
        if seen.path.startswith("/token"):
            return 302, {"Location": f"http://{moved.host}/token"}, b""
        if seen.authorization == "Bearer from-moved":
            return 200, {"Docker-Content-Digest": DIGEST}, b""
        challenge = f'Bearer realm="http://{host}/token",service="test"'
        return 401, {"WWW-Authenticate": challenge}, b""

    served = serve(registry)
    host = served.host
    assert resolve_digest(f"{host}/iterate/sandbox:v1", settings_for(host)) == DIGEST
    assert served.authorizations == [None, BASIC, "Bearer from-moved"]
    assert moved.authorizations == [None]
