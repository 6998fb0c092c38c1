"""A pushed image to test instead of building one: `SANDBOX_TEST_IMAGE=<repo>@sha256:…`.

On main, CI builds and pushes the image once; the image tier then boots exactly that digest,
pulled, and the release promotes the same digest (README: Releasing). The pull logs in the way
the pipeline's push does: credentials from the one resolver (registry/credentials.py), in a
temporary Docker config deleted right after, so no token is left on disk for later steps.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from pipeline.docker.cli import find_docker
from pipeline.docker.endpoint import Location
from pipeline.docker.login import logged_in
from pipeline.registry.client import REVISION_LABEL
from pipeline.registry.credentials import resolve_credentials
from pipeline.rules.image_ref import parse_image_ref
from pipeline.settings.build import BuildSettings

VARIABLE = "SANDBOX_TEST_IMAGE"


@dataclass(frozen=True)
class GivenImage:
    reference: str  # as given: <repo>@sha256:… (or a tag)
    digest: str  # the repository digest the engine holds it under
    revision: str  # org.opencontainers.image.revision: the commit it was built from


def given_reference() -> str | None:
    value = os.environ.get(VARIABLE, "").strip()
    return value or None


def pull_given(reference: str) -> GivenImage:
    """Pull `reference` with the resolver's credentials for its registry (logged in to a
    temporary config), and read what the engine then holds."""
    host = parse_image_ref(reference).host
    docker = find_docker(Location.from_env(os.environ))
    credentials = resolve_credentials(BuildSettings(), host)
    if credentials is not None and not credentials.stored:
        with logged_in(docker, host, credentials) as pulling:
            done = pulling.run("pull", "--quiet", reference, timeout_s=1200)
    else:
        done = docker.run("pull", "--quiet", reference, timeout_s=1200)
    assert done.code == 0, f"cannot pull {VARIABLE}={reference}: {done.last_line()}"
    inspected = subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            "--format",
            f'{{{{json .RepoDigests}}}} {{{{index .Config.Labels "{REVISION_LABEL}"}}}}',
            reference,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    digests, revision = inspected[0], inspected[1] if len(inspected) > 1 else ""
    wanted = parse_image_ref(reference).digest
    found = [d.split("@", 1)[1] for d in _json_list(digests)]
    digest = wanted if wanted in found else (found[0] if found else "")
    assert digest, f"{reference} has no repository digest after the pull"
    return GivenImage(reference, digest, revision)


def _json_list(text: str) -> list[str]:
    import json

    value = json.loads(text)
    return [str(item) for item in value] if isinstance(value, list) else []
