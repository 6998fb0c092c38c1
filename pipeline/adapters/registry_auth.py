"""Registry credentials: where they come from, and a login that keeps the secret off argv.

Order: REGISTRY_USERNAME/REGISTRY_PASSWORD, then GITHUB_ACTOR/GITHUB_TOKEN and `gh auth token`
(for ghcr.io only: a GitHub token means nothing elsewhere), then what `docker login` already
stored in the Docker config.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, SecretStr

from pipeline.errors import ConfigError, RegistryError
from pipeline.settings.build import BuildSettings

if TYPE_CHECKING:
    from python_on_whales import DockerClient

GHCR = "ghcr.io"
_LOOPBACK = re.compile(r"^(?:127(?:\.\d{1,3}){3}|localhost|\[::1\])(?::\d+)?$")


class Credentials(BaseModel):
    model_config = ConfigDict(frozen=True)

    username: str
    password: SecretStr
    source: str  # which variables (or tool) they came from, for messages


def resolve_credentials(settings: BuildSettings) -> Credentials | None:
    host = settings.registry_host
    user, password = settings.registry_username, settings.registry_password
    if (user is None) != (password is None):
        missing = "REGISTRY_PASSWORD" if password is None else "REGISTRY_USERNAME"
        raise ConfigError(
            f"{missing} is not set but its partner is",
            f"set both or neither of {missing} and "
            + ("REGISTRY_USERNAME" if missing == "REGISTRY_PASSWORD" else "REGISTRY_PASSWORD"),
        )
    if user is not None and password is not None:
        return Credentials(
            username=user, password=password, source="REGISTRY_USERNAME/REGISTRY_PASSWORD"
        )
    if host != GHCR:
        return None
    if settings.github_token is not None:
        return Credentials(
            username=settings.github_actor or "github-actions",
            password=settings.github_token,
            source="GITHUB_ACTOR/GITHUB_TOKEN",
        )
    token = _gh_auth_token()
    if token:
        return Credentials(
            username=settings.github_actor or _gh_user() or "gh",
            password=SecretStr(token),
            source="`gh auth token`",
        )
    return None


def docker_config_has_auth(host: str) -> bool:
    """Whether `docker login HOST` (or a credential helper) already holds credentials."""
    config_dir = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    try:
        config = json.loads((config_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    auths = config.get("auths") or {}
    helpers = config.get("credHelpers") or {}
    keys = {host, f"https://{host}", f"http://{host}"}
    if host == "docker.io":
        keys.add("https://index.docker.io/v1/")
    return bool(keys & (auths.keys() | helpers.keys())) or bool(config.get("credsStore"))


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, localhost or [::1], with an optional port; not e.g. localhost.example.com."""
    return _LOOPBACK.fullmatch(host) is not None


def ensure_login(client: DockerClient, settings: BuildSettings) -> str:
    """Log in for a push; returns where the credentials came from. Raises when there are none."""
    host = settings.registry_host
    credentials = resolve_credentials(settings)
    if credentials is None:
        if docker_config_has_auth(host) or is_loopback(host):
            return "docker config"
        raise RegistryError(
            f"no credentials for {host}",
            "set REGISTRY_USERNAME/REGISTRY_PASSWORD"
            + (", or GITHUB_ACTOR/GITHUB_TOKEN, or run `gh auth login`" if host == GHCR else "")
            + f", or run `docker login {host}`",
        )
    login(client, host, credentials)
    return credentials.source


def login(client: DockerClient, host: str, credentials: Credentials) -> None:
    secret = credentials.password.get_secret_value()
    # The password goes on stdin, never argv; output is captured so docker's "stored
    # unencrypted" notice does not read like a pipeline warning.
    argv = [*client.client_config.docker_cmd, "login", "--username", credentials.username]
    done = subprocess.run(
        [*argv, "--password-stdin", host],
        input=secret,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        return
    detail = (done.stderr or done.stdout).replace(secret, "***").strip().splitlines()
    reason = detail[-1] if detail else f"exit code {done.returncode}"
    if any(w in reason.lower() for w in ("unauthorized", "incorrect", "denied", "401")):
        raise RegistryError(
            f"{host} refused the credentials from {credentials.source} ({reason})",
            f"check {credentials.source}; for ghcr.io the token needs write:packages",
        )
    raise RegistryError(
        f"login to {host} failed: {reason}",
        f"check that {host} is reachable from this machine (and DOCKER_HOST's engine)",
    )


def _gh_auth_token() -> str | None:
    if shutil.which("gh") is None:
        return None
    result = subprocess.run(
        ["gh", "auth", "token", "--hostname", "github.com"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    token = result.stdout.strip()
    return token if result.returncode == 0 and token else None


def _gh_user() -> str | None:
    result = subprocess.run(
        ["gh", "config", "get", "user", "--host", "github.com"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return result.stdout.strip() or None
