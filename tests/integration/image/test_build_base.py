"""Which base a build uses (base_image/choose.py), decided against the real engine.

Stand-ins are busybox images with test-prefixed tags (TEST_IMAGE_NAMESPACE), removed at the end;
no test here writes the developer's offline base tag; "cannot be pulled" is a loopback registry
port nothing listens on (the engine fails at once, as it does offline for Docker Hub). The offline
base's "current" case is an image carrying the recipe label, so no mmdebstrap runs here; making
it for real is the sandbox tier's job (test_local_docker.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.base_image import rootfs as base_rootfs
from pipeline.base_image.rootfs import BaseImageError
from pipeline.docker import images
from pipeline.rules.base_image_plan import DEFAULT_TAG, RECIPE_LABEL
from tests.conftest import (
    TEST_IMAGE_NAMESPACE,
    TEST_OFFLINE_BASE,
    docker_here,
    offline_base_for_tests,
)
from tests.conftest import choose_base as choose_build_base
from tests.helpers.engines import OwnEngine

# Port 9 (discard): nothing listens.
UNPULLABLE = f"127.0.0.1:9/{TEST_IMAGE_NAMESPACE}unpullable:none"


@pytest.fixture(scope="module")
def nonce() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def made(engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Tags the tests made; every one is removed at the end."""
    tags: list[str] = []
    yield tags
    if tags:
        subprocess.run(["docker", "image", "rm", *tags], capture_output=True, check=False)


def busybox_image(tmp: Path, tag: str, label: str = "") -> str:
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copy("/bin/busybox", tmp / "busybox")
    (tmp / "Dockerfile").write_text(f"FROM scratch\nCOPY busybox /bin/busybox\n{label}\n")
    subprocess.run(
        ["docker", "buildx", "build", "--load", "-q", "-t", tag, str(tmp)],
        capture_output=True,
        check=True,
        timeout=300,
    )
    return tag


def dockerfile(tmp: Path, default_base: str) -> Path:
    path = tmp / "Dockerfile"
    path.write_text(f"ARG BASE_IMAGE={default_base}\nFROM ${{BASE_IMAGE}}\n")
    return path


def image_id(tag: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", tag],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_a_configured_base_the_engine_has_is_used(
    made: list[str], nonce: str, tmp_path: Path
) -> None:
    tag = busybox_image(tmp_path / "b", f"{TEST_IMAGE_NAMESPACE}configured-base:{nonce}")
    made.append(tag)
    assert choose_build_base(tag, dockerfile(tmp_path, UNPULLABLE)) == tag


def test_a_configured_base_that_cannot_be_had_is_one_line(made: list[str], tmp_path: Path) -> None:
    with pytest.raises(BaseImageError) as caught:
        choose_build_base(UNPULLABLE, dockerfile(tmp_path, UNPULLABLE))
    line = str(caught.value)
    assert f"SANDBOX_BASE_IMAGE={UNPULLABLE} is not in the engine and cannot be pulled" in line
    assert "fix: unset SANDBOX_BASE_IMAGE" in line and "\n" not in line


def test_the_dockerfiles_own_base_in_the_engine_costs_one_look_up(
    made: list[str], nonce: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    official = busybox_image(tmp_path / "o", f"{TEST_IMAGE_NAMESPACE}official-base:{nonce}")
    made.append(official)
    # The real docker CLI behind a wrapper that writes down each call.
    calls = tmp_path / "calls"
    wrapper = tmp_path / "bin" / "docker"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {shutil.which("docker")} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    assert choose_build_base(None, dockerfile(tmp_path, official)) is None
    # One look-up over the engine's socket (docker/images.py): not even a docker CLI start,
    # and no pull.
    assert not calls.exists()


def test_a_current_offline_base_is_used_without_asking_the_network(
    made: list[str], nonce: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offline = f"{TEST_IMAGE_NAMESPACE}offline-base:{nonce}"
    recipe = base_rootfs.plan_here(offline).recipe
    made.append(busybox_image(tmp_path / "f", offline, f"LABEL {RECIPE_LABEL}={recipe}"))
    before = image_id(offline)
    calls = tmp_path / "calls"
    wrapper = tmp_path / "bin" / "docker"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {shutil.which("docker")} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    assert choose_build_base(None, dockerfile(tmp_path, UNPULLABLE), offline_tag=offline) == offline
    # One look-up of both over the engine's socket and no docker CLI call, so no pull: a
    # network that drops connections cannot stall an unchanged run.
    assert not calls.exists()
    monkeypatch.undo()
    assert image_id(offline) == before  # kept, not remade


def test_without_mmdebstrap_the_missing_tool_is_named_in_one_line(
    made: list[str], nonce: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PATH with the docker CLI only, as on a machine without the test tools.
    only_docker = tmp_path / "bin"
    only_docker.mkdir()
    (only_docker / "docker").symlink_to(str(shutil.which("docker")))
    monkeypatch.setenv("PATH", str(only_docker))
    offline = f"{TEST_IMAGE_NAMESPACE}never-made:{nonce}"
    with pytest.raises(BaseImageError) as caught:
        choose_build_base(None, dockerfile(tmp_path, UNPULLABLE), offline_tag=offline)
    line = str(caught.value)
    assert line.startswith(f"{UNPULLABLE} cannot be pulled (")
    assert "mmdebstrap is not installed" in line
    sudo = "" if os.geteuid() == 0 else "sudo "  # a normal user is told to use sudo
    assert f"fix: {sudo}apt-get install --no-install-recommends mmdebstrap" in line
    assert images.label(docker_here(), offline, RECIPE_LABEL) is None  # nothing half-made


@pytest.mark.parametrize(
    ("developers_base", "used"),
    [
        ("current", DEFAULT_TAG),  # read, never written
        ("stale", TEST_OFFLINE_BASE),  # remaking it would overwrite the developer's tag
        ("unlabelled", TEST_OFFLINE_BASE),
        ("none", TEST_OFFLINE_BASE),
    ],
)
def test_the_sandbox_tier_never_writes_the_developers_offline_base(
    own_engine: OwnEngine, tmp_path: Path, developers_base: str, used: str
) -> None:
    """The base a test build of the real image makes when it must: the developer's tag only when
    it is current as it is. Decided on an engine of the tests' own, holding a stand-in of it."""
    recipe = {"current": base_rootfs.plan_here(DEFAULT_TAG).recipe, "stale": "0" * 16}
    if developers_base != "none":
        label = (
            f"LABEL {RECIPE_LABEL}={recipe[developers_base]}" if developers_base in recipe else ""
        )
        shutil.copy("/bin/busybox", tmp_path / "busybox")
        (tmp_path / "Dockerfile").write_text(f"FROM scratch\nCOPY busybox /bin/busybox\n{label}\n")
        own_engine.docker("buildx", "build", "-q", "-t", DEFAULT_TAG, str(tmp_path))
    try:
        assert offline_base_for_tests(own_engine.host) == used
    finally:
        own_engine.docker("image", "rm", DEFAULT_TAG, check=False)
