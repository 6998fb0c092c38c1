"""One credential resolver for the push and the image check: the order, the scope of each
source, the Docker config and its helpers, and the temporary Docker config of a push."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import httpx
import pytest

from pipeline.docker.login import temporary_config
from pipeline.errors import RegistryError
from pipeline.registry import credentials as registry_auth
from pipeline.registry.client import RegistryReader
from pipeline.registry.credentials import push_login_credentials, resolve_credentials
from pipeline.settings.build import BuildSettings

VARIABLES = (
    "REGISTRY_USERNAME",
    "REGISTRY_PASSWORD",
    "GITHUB_ACTOR",
    "GITHUB_TOKEN",
    "SANDBOX_IMAGE_REPOSITORY",
)


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No credential variables, an empty Docker config, and a PATH with only a bin dir of ours
    in front (for fake `gh` and credential helpers) so the developer's tools never answer."""
    for key in VARIABLES:
        monkeypatch.delenv(key, raising=False)
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return bin_dir


def script(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


FAKE_GH = """case "$1 $2" in
  "auth token") echo gho_from_the_gh_cli ;;
  "config get") echo octo ;;
  *) exit 1 ;;
esac
"""


def test_the_image_check_uses_gh_like_the_push(clean: Path) -> None:
    """The bug this resolver fixes: a private image pushed with `gh` credentials was then
    reported as refused by the image check, which did not ask `gh`."""
    script(clean, "gh", FAKE_GH)
    settings = BuildSettings()  # ghcr.io/iterate/sandbox
    pushed_with = push_login_credentials(settings)
    checked_with = resolve_credentials(settings, "ghcr.io")  # what snapshot_daytona calls
    assert pushed_with is not None and checked_with == pushed_with
    assert (checked_with.username, checked_with.source) == ("octo", "`gh auth token`")

    seen: list[httpx.Request] = []

    def ghcr(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/token":
            expected = base64.b64encode(b"octo:gho_from_the_gh_cli").decode()
            if request.headers.get("Authorization") != f"Basic {expected}":
                return httpx.Response(403)
            return httpx.Response(200, json={"token": "pull-token"})
        if request.headers.get("Authorization") != "Bearer pull-token":
            challenge = 'Bearer realm="https://ghcr.io/token",service="ghcr.io"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return httpx.Response(200, headers={"Docker-Content-Digest": "sha256:" + "d" * 64})

    image = "ghcr.io/iterate/sandbox:sha-1"
    with RegistryReader(image, checked_with, transport=httpx.MockTransport(ghcr)) as reader:
        digest = reader.digest()
    assert digest == "sha256:" + "d" * 64
    assert [r.url.path for r in seen] == [
        "/v2/iterate/sandbox/manifests/sha-1",
        "/token",
        "/v2/iterate/sandbox/manifests/sha-1",
    ]


def test_gh_is_never_asked_for_another_registry(clean: Path) -> None:
    script(clean, "gh", FAKE_GH)
    settings = BuildSettings()
    assert resolve_credentials(settings, "quay.io") is None
    assert resolve_credentials(settings, "127.0.0.1:5000") is None


def test_a_failing_gh_is_no_credentials(clean: Path) -> None:
    script(clean, "gh", "echo 'not logged in' >&2; exit 1\n")
    assert resolve_credentials(BuildSettings()) is None


def test_registry_variables_only_for_the_configured_registry(
    clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDBOX_IMAGE_REPOSITORY", "127.0.0.1:5000/iterate/sandbox")
    monkeypatch.setenv("REGISTRY_USERNAME", "bot")
    monkeypatch.setenv("REGISTRY_PASSWORD", "push-secret")
    settings = BuildSettings()
    found = resolve_credentials(settings)
    assert found is not None and found.username == "bot"
    assert resolve_credentials(settings, "127.0.0.1:5000") == found
    # Another image host (a base image, a SANDBOX_IMAGE elsewhere) never gets them.
    for other in ("127.0.0.1:5001", "ghcr.io", "docker.io", "registry.example.com"):
        assert resolve_credentials(settings, other) is None, other


def test_docker_config_auths_entry(clean: Path) -> None:
    config = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    auth = base64.b64encode(b"robot:stored-secret").decode()
    config.write_text(json.dumps({"auths": {"registry.example.com": {"auth": auth}}}))
    found = resolve_credentials(BuildSettings(), "registry.example.com")
    assert found is not None and found.stored
    assert (found.username, found.password.get_secret_value()) == ("robot", "stored-secret")
    assert "stored-secret" not in repr(found)
    assert resolve_credentials(BuildSettings(), "quay.io") is None


def test_docker_credential_helper(clean: Path) -> None:
    config = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    config.write_text(json.dumps({"credHelpers": {"registry.example.com": "fake"}}))
    # The helper protocol: the server on stdin, JSON on stdout.
    script(
        clean,
        "docker-credential-fake",
        'read server\n[ "$1" = get ] && [ "$server" = registry.example.com ] || exit 1\n'
        'echo \'{"ServerURL":"registry.example.com","Username":"ci","Secret":"from-helper"}\'\n',
    )
    found = resolve_credentials(BuildSettings(), "registry.example.com")
    assert found is not None and found.password.get_secret_value() == "from-helper"
    assert found.source == "the Docker credential helper docker-credential-fake"


def test_identity_tokens_are_left_to_docker(clean: Path) -> None:
    config = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    config.write_text(json.dumps({"credsStore": "fake"}))
    script(clean, "docker-credential-fake", 'echo \'{"Username":"<token>","Secret":"refresh"}\'\n')
    assert resolve_credentials(BuildSettings(), "registry.example.com") is None
    # …but docker has them, so a push needs no login of ours.
    assert registry_auth.docker_config_has_auth(
        BuildSettings().docker_config_dir, "registry.example.com"
    )


def test_push_logs_in_only_with_credentials_docker_lacks(
    clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDBOX_IMAGE_REPOSITORY", "registry.example.com/iterate/sandbox")
    with pytest.raises(RegistryError, match=r"no credentials for registry\.example\.com"):
        push_login_credentials(BuildSettings())
    config = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    auth = base64.b64encode(b"robot:stored").decode()
    config.write_text(json.dumps({"auths": {"registry.example.com": {"auth": auth}}}))
    assert push_login_credentials(BuildSettings()) is None  # docker already has them
    monkeypatch.setenv("SANDBOX_IMAGE_REPOSITORY", "127.0.0.1:5000/iterate/sandbox")
    assert push_login_credentials(BuildSettings()) is None  # a loopback registry without auth


def test_temporary_docker_config_keeps_settings_not_secrets(tmp_path: Path) -> None:
    user = tmp_path / "user-config"
    (user / "buildx" / "instances").mkdir(parents=True)
    (user / "buildx" / "instances" / "ci").write_text("{}")
    (user / "cli-plugins").mkdir()
    (user / "trust" / "private").mkdir(parents=True)  # notary keys: never linked
    (user / "config.json").write_text(
        json.dumps(
            {
                "auths": {"ghcr.io": {"auth": "c2VjcmV0"}},
                "credsStore": "desktop",
                "credHelpers": {"quay.io": "pass"},
                "currentContext": "remote",
                "proxies": {"default": {"httpProxy": "http://proxy:3128"}},
            }
        )
    )
    with temporary_config(user) as config:
        assert stat.S_IMODE(config.stat().st_mode) == 0o700
        kept = json.loads((config / "config.json").read_text())
        assert kept == {
            "currentContext": "remote",
            "proxies": {"default": {"httpProxy": "http://proxy:3128"}},
        }
        assert (config / "buildx" / "instances" / "ci").is_file()  # BUILDX_BUILDER still works
        assert (config / "cli-plugins").is_dir()
        assert not (config / "trust").exists()
    assert not config.exists()
    assert (user / "buildx" / "instances" / "ci").is_file()  # the user's folders are untouched
    assert (user / "cli-plugins").is_dir()
