"""The push's registry login: credentials from the one resolver (registry/credentials.py), logged
in to a temporary Docker config that lives only as long as the push (docker/login.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.console import step
from pipeline.docker.cli import find_docker
from pipeline.docker.login import logged_in
from pipeline.registry.credentials import push_login_credentials
from pipeline.settings.build import BuildSettings


@contextmanager
def push_credentials(settings: BuildSettings) -> Iterator[Path | None]:
    """The Docker config folder to push with (`docker --config DIR`), or None when docker can
    push as it is (the user's Docker config already holds credentials for the host, or it is a
    loopback registry without any). RegistryError when there are no credentials at all, or the
    registry refuses them."""
    host = settings.registry_host
    credentials = push_login_credentials(settings, host)
    if credentials is None:
        yield None
        return
    with logged_in(find_docker(settings.docker), host, credentials) as pushing:
        step(f"logged in to {host} with {credentials.source}, for this push only")
        yield pushing.config
