"""Which base image a build uses, so that `snapshot_local` alone works on every machine. The
first that holds, in order (the usual case is one image look-up):
1. `SANDBOX_BASE_IMAGE` is set: the engine has it → use it; it is the offline base's tag →
   make (or refresh) it; otherwise pull it, or say in one line that it cannot be had.
2. The Dockerfile's own default (`ARG BASE_IMAGE=node:24-bookworm`) is in the engine, or can be
   pulled → None: build FROM the official image.
3. The offline base is current → use it; else make it, or say in one line what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.base_image import rootfs
from pipeline.base_image.rootfs import BaseImageError
from pipeline.console import say, step
from pipeline.docker import images
from pipeline.docker.cli import Docker
from pipeline.rules.base_image_plan import DEFAULT_TAG, RECIPE_LABEL, dockerfile_default_base

MakeBase = Callable[[str], str]  # tag -> tag: makes the offline base under that tag


def candidates(
    configured: str | None, dockerfile: Path, offline_tag: str = DEFAULT_TAG
) -> list[str]:
    """The images whose presence decides the base (what a replay of the decision watches)."""
    if configured:
        return [configured]
    try:
        official = dockerfile_default_base(dockerfile.read_text())
    except OSError:
        return []
    return [official, offline_tag] if official else []


def choose_build_base(
    docker: Docker,
    configured: str | None,
    dockerfile: Path,
    make: MakeBase,
    offline_tag: str = DEFAULT_TAG,
) -> str | None:
    """The BASE_IMAGE build argument (None: the Dockerfile's own default)."""
    if configured:
        return _configured_base(docker, configured, make, offline_tag)
    wanted = candidates(None, dockerfile, offline_tag)
    if not wanted:
        return None  # no Dockerfile (the build says so) or no BASE_IMAGE argument to choose
    official = wanted[0]
    found = images.inspect(docker, wanted)
    if found[official] is not None:
        return None
    # An offline base made here earlier (because the official one could not be pulled) is used
    # without asking the network again: the unchanged path stays one look-up, and a network
    # that drops connections cannot stall every run.
    offline = found[offline_tag]
    if offline and offline.labels.get(RECIPE_LABEL) == rootfs.plan_here(offline_tag).recipe:
        return offline_tag
    step(f"{official} is not in the engine: pulling it")
    why_not = images.pull(docker, official)
    if why_not is None:
        return None
    # the daemon's own cause ("no such host", "connection refused") without the URL chain
    reason = why_not.rsplit(": ", 1)[-1].strip() or why_not
    say(f"{official} cannot be pulled ({reason}); using the offline base {offline_tag}")
    try:
        return make(offline_tag)
    except BaseImageError as error:
        raise BaseImageError(
            f"{official} cannot be pulled ({reason}), and {error.cause}", error.fix, error.details
        ) from None


def _configured_base(docker: Docker, configured: str, make: MakeBase, offline_tag: str) -> str:
    recipe = images.label(docker, configured, RECIPE_LABEL)
    if configured == offline_tag:
        if recipe != rootfs.plan_here(offline_tag).recipe:
            make(offline_tag)
        return configured
    if recipe is not None:
        return configured
    step(f"SANDBOX_BASE_IMAGE={configured} is not in the engine: pulling it")
    why_not = images.pull(docker, configured)
    if why_not is not None:
        raise BaseImageError(
            f"SANDBOX_BASE_IMAGE={configured} is not in the engine and cannot be pulled "
            f"({why_not})",
            f"unset SANDBOX_BASE_IMAGE to use the Dockerfile's base, or make it with "
            f"`nox -s base_image -- --tag {configured}`",
        )
    return configured
