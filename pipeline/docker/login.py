"""A registry login that lives only as long as the push: a temporary Docker config, logged in
right before and deleted right after (also on an error, Ctrl-C or SIGTERM).

`auths`, `credsStore` and `credHelpers` are left out of the copy of the user's config (so the
login lands in the temporary file, not in the user's keychain); the rest (proxies, current
context) and links to their `buildx`, `cli-plugins` and `contexts` folders keep docker and buildx
behaving as usual. The password goes to `docker login --password-stdin`, never into argv.
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.docker.cli import Docker
from pipeline.errors import Interrupted, RegistryError
from pipeline.fastpath.files import json_object
from pipeline.process_group import sigterm_interrupts
from pipeline.rules.auth_words import says_auth_refused

if TYPE_CHECKING:  # registry/credentials.py imports this room: a type only, no import cycle
    from pipeline.registry.credentials import Credentials

SECRET_KEYS = frozenset({"auths", "credsStore", "credHelpers"})
SHARED_DIRS = ("buildx", "cli-plugins", "contexts")
LOGIN_TIMEOUT_S = 60.0


def login(
    docker: Docker, host: str, credentials: Credentials, *, timeout_s: float = LOGIN_TIMEOUT_S
) -> None:
    """`docker login` into the CLI's config folder; RegistryError when refused or silent."""
    secret = credentials.password.get_secret_value()
    args = ("login", "--username", credentials.username, "--password-stdin", host)
    done = docker.run(*args, stdin=secret.encode(), timeout_s=timeout_s)
    if done.timed_out:
        raise RegistryError(
            f"`docker login {host}` did not finish within {timeout_s:g} s",
            f"check that {host} answers from this machine (and from DOCKER_HOST's engine)",
        )
    if done.code == 0:
        return
    reason = done.last_line().replace(secret, "***")
    if says_auth_refused(reason):
        raise RegistryError(
            f"{host} refused the credentials from {credentials.source} ({reason})",
            f"check {credentials.source}; for ghcr.io the token needs write:packages",
        )
    raise RegistryError(
        f"login to {host} failed: {reason}",
        f"check that {host} is reachable from this machine (and DOCKER_HOST's engine)",
    )


@contextmanager
def logged_in(docker: Docker, host: str, credentials: Credentials) -> Iterator[Docker]:
    """The docker CLI with a temporary config folder logged in to `host`, for one push. SIGTERM
    (a cancelled CI job) unwinds the stack, so the credential is deleted, then exits as SIGTERM
    would; a command stopped meanwhile still says what it stopped."""
    try:
        with sigterm_interrupts(), temporary_config(docker.location.config_dir) as config:
            pushing = docker.with_config(config)
            login(pushing, host, credentials)
            yield pushing
    except Interrupted as stop:
        if stop.done or stop.signum != signal.SIGTERM:
            raise
        raise SystemExit(128 + signal.SIGTERM) from None


@contextmanager
def temporary_config(source: Path) -> Iterator[Path]:
    """A 0700 Docker config folder holding the user's settings without their credentials."""
    config = Path(tempfile.mkdtemp(prefix="sandbox-pipeline-docker-config-"))
    try:
        kept = {
            k: v for k, v in json_object(source / "config.json").items() if k not in SECRET_KEYS
        }
        (config / "config.json").write_text(json.dumps(kept))
        for name in SHARED_DIRS:
            if (source / name).is_dir():
                (config / name).symlink_to((source / name).resolve(), target_is_directory=True)
        yield config
    finally:
        # rmtree unlinks the symlinks and never follows them into the user's folders.
        shutil.rmtree(config, ignore_errors=True)
