"""Registry credentials: the one resolver the push and every registry read ask, so they cannot
disagree. Order, for a registry host:
1. REGISTRY_USERNAME/REGISTRY_PASSWORD, only for the host of SANDBOX_IMAGE_REPOSITORY: they are
   never sent to any other image host;
2. GITHUB_ACTOR/GITHUB_TOKEN, then `gh auth token`, for ghcr.io only;
3. what `docker login` stored in the Docker config (`auths`, `credHelpers`, `credsStore`).
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, SecretStr

from pipeline.errors import ConfigError, RegistryError
from pipeline.fastpath.files import json_object
from pipeline.process_group import run
from pipeline.rules.image_ref import DOCKER_HUB, is_loopback

GHCR = "ghcr.io"
DOCKER_HUB_KEY = "https://index.docker.io/v1/"  # how docker names Docker Hub in its config
HELPER_TIMEOUT_S = 10
DOCKER_CONFIG_SOURCE = "the Docker config (docker login)"


class Credentials(BaseModel):
    model_config = ConfigDict(frozen=True)

    username: str
    password: SecretStr
    source: str  # which variables (or tool) they came from, for messages
    stored: bool = False  # read from the Docker config: docker itself already has them


class Sources(Protocol):  # BuildSettings is one
    @property
    def registry_host(self) -> str: ...
    @property
    def registry_username(self) -> str | None: ...
    @property
    def registry_password(self) -> SecretStr | None: ...
    @property
    def github_actor(self) -> str | None: ...
    @property
    def github_token(self) -> SecretStr | None: ...
    @property
    def docker_config_dir(self) -> Path: ...


def resolve_credentials(settings: Sources, host: str | None = None) -> Credentials | None:
    configured = settings.registry_host
    host = host or configured
    user, password = settings.registry_username, settings.registry_password
    if (user is None) != (password is None):
        missing = "REGISTRY_PASSWORD" if password is None else "REGISTRY_USERNAME"
        partner = "REGISTRY_USERNAME" if missing == "REGISTRY_PASSWORD" else "REGISTRY_PASSWORD"
        raise ConfigError(
            f"{missing} is not set but its partner is",
            f"set both or neither of {missing} and {partner}",
        )
    if user is not None and password is not None and host == configured:
        return Credentials(
            username=user, password=password, source="REGISTRY_USERNAME/REGISTRY_PASSWORD"
        )
    if host == GHCR:
        if settings.github_token is not None:
            return Credentials(
                username=settings.github_actor or "github-actions",
                password=settings.github_token,
                source="GITHUB_ACTOR/GITHUB_TOKEN",
            )
        if token := _gh_auth_token():
            return Credentials(
                username=settings.github_actor or _gh_user() or "gh",
                password=SecretStr(token),
                source="`gh auth token`",
            )
    return docker_config_credentials(settings.docker_config_dir, host)


def push_login_credentials(settings: Sources, host: str | None = None) -> Credentials | None:
    """What to log in with before a push; None when docker can push as it is (credentials in
    the Docker config, or a loopback registry). Raises when there is nothing to push with."""
    host = host or settings.registry_host
    found = resolve_credentials(settings, host)
    if found is not None and not found.stored:
        return found
    if found or docker_config_has_auth(settings.docker_config_dir, host) or is_loopback(host):
        return None
    raise RegistryError(
        f"no credentials for {host}",
        "set REGISTRY_USERNAME/REGISTRY_PASSWORD"
        + (", or GITHUB_ACTOR/GITHUB_TOKEN, or run `gh auth login`" if host == GHCR else "")
        + f", or run `docker login {host}`",
    )


def _config_keys(host: str) -> list[str]:
    keys = [host, f"https://{host}", f"http://{host}"]
    return [DOCKER_HUB_KEY, *keys] if host == DOCKER_HUB else keys


def docker_config_has_auth(config_dir: Path, host: str) -> bool:
    config = json_object(config_dir / "config.json")
    named = {**(config.get("auths") or {}), **(config.get("credHelpers") or {})}
    return bool(named.keys() & set(_config_keys(host))) or bool(config.get("credsStore"))


def docker_config_credentials(config_dir: Path, host: str) -> Credentials | None:
    """What docker would use for `host`: its credential helper, else a base64 `auths` entry.
    Identity tokens (Docker Desktop's OAuth refresh tokens) are not a password: left to docker."""
    config = json_object(config_dir / "config.json")
    helper = (config.get("credHelpers") or {}).get(host) or config.get("credsStore")
    if isinstance(helper, str) and helper:
        for key in _config_keys(host):
            if found := _from_helper(helper, key):
                return found
    auths = config.get("auths") or {}
    for key in _config_keys(host):
        entry = auths.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("auth"), str):
            try:
                user, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                continue
            if user and secret:
                return _stored(user, secret, DOCKER_CONFIG_SOURCE)
    return None


def _from_helper(helper: str, server: str) -> Credentials | None:
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        return None
    try:
        done = run([program, "get"], HELPER_TIMEOUT_S, stdin=server.encode())
        answer = json.loads(done.out) if done.code == 0 else {}
    except (OSError, ValueError):
        return None
    answer = answer if isinstance(answer, dict) else {}
    user, secret = answer.get("Username"), answer.get("Secret")
    # "<token>": an identity token, which only docker's own OAuth flow can use
    if not isinstance(user, str) or not isinstance(secret, str) or not secret or user == "<token>":
        return None
    return _stored(user, secret, f"the Docker credential helper docker-credential-{helper}")


def _stored(user: str, secret: str, source: str) -> Credentials:
    return Credentials(username=user, password=SecretStr(secret), source=source, stored=True)


def _gh(*args: str) -> str | None:
    if shutil.which("gh") is None:
        return None
    try:
        done = run(["gh", *args], HELPER_TIMEOUT_S)
    except OSError:
        return None
    return (done.out.strip() or None) if done.code == 0 else None


def _gh_auth_token() -> str | None:
    return _gh("auth", "token", "--hostname", "github.com")


def _gh_user() -> str | None:
    return _gh("config", "get", "user", "--host", "github.com")
