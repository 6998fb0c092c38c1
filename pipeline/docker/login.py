"""The push credential lives only as long as the push: a temporary Docker config, logged in right
before the push and deleted right after (also on an error, Ctrl-C or SIGTERM).

Nothing secret is copied from the user's Docker config: `auths`, `credsStore` and `credHelpers`
are left out (so the login lands in the temporary file, not in the user's keychain). What the
docker CLI and buildx need to behave as usual is kept: the rest of config.json (proxies, current
context), and links to the user's `buildx` (builders), `cli-plugins` and `contexts` folders.
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from pipeline.console import step
from pipeline.docker.buildx import docker_client
from pipeline.registry.credentials import docker_config_dir, login, push_login_credentials
from pipeline.registry.credentials import read_docker_config as _read_config
from pipeline.settings.build import BuildSettings

SECRET_KEYS = frozenset({"auths", "credsStore", "credHelpers"})
SHARED_DIRS = ("buildx", "cli-plugins", "contexts")


@contextmanager
def push_credentials(settings: BuildSettings, host: str | None = None) -> Iterator[Path | None]:
    """Yield the Docker config folder to push with (`docker --config DIR` / DOCKER_CONFIG=DIR),
    or None when docker can push as it is (the user's Docker config already holds credentials
    for the host, or it is a loopback registry without any). Raises RegistryError when there
    are no credentials at all, or the registry refuses them."""
    host = host or settings.registry_host
    credentials = push_login_credentials(settings, host)
    if credentials is None:
        yield None
        return
    with _deleted_on_sigterm(), temporary_docker_config() as config:
        # `login` enforces its own timeout in Python (no coreutils `timeout`: macOS has none).
        login(docker_client(settings.docker_host, config), host, credentials)
        step(f"logged in to {host} with {credentials.source}, for this push only")
        yield config


@contextmanager
def temporary_docker_config(source: Path | None = None) -> Iterator[Path]:
    """A 0700 Docker config folder holding the user's settings without their credentials."""
    source = source or docker_config_dir()
    config = Path(tempfile.mkdtemp(prefix="sandbox-pipeline-docker-config-"))
    try:
        kept = {k: v for k, v in _read_config(source).items() if k not in SECRET_KEYS}
        (config / "config.json").write_text(json.dumps(kept))
        for name in SHARED_DIRS:
            if (source / name).is_dir():
                (config / name).symlink_to((source / name).resolve(), target_is_directory=True)
        yield config
    finally:
        # rmtree unlinks the symlinks and never follows them into the user's folders.
        shutil.rmtree(config, ignore_errors=True)


class _Terminated(BaseException):
    """SIGTERM (a cancelled CI job) as an exception, so `finally` blocks run."""


@contextmanager
def _deleted_on_sigterm() -> Iterator[None]:
    """While the credential exists, SIGTERM unwinds the stack instead of killing at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    except _Terminated:
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
