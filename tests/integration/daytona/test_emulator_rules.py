"""The emulator's own reading of image names: Daytona's (ported from its server) and docker's
(distribution/reference), and nothing borrowed from the client it tests."""

from __future__ import annotations

import ast
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daytona_emulator.daytona_images import (
    DockerImage,
    ImageNameError,
    image_name_error,
    parse_docker_image,
    runner_inspect_name,
)
from daytona_emulator.docker_reference import Reference, ReferenceError, parse_normalized_named
from daytona_emulator.registries import RegistryEntry

pytestmark = pytest.mark.emulator

EMULATOR = Path(__file__).resolve().parents[3] / "emulator"
HEX = "0123456789abcdef" * 4
INVALID = "invalid reference format"


def pipeline_imports(source: str) -> list[str]:
    """Every import of `pipeline` (or a module under it) in `source`, static or by name."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args:
            called = ast.unparse(node.func)
            first = node.args[0]
            if called.endswith(("import_module", "__import__")) and isinstance(first, ast.Constant):
                names = [str(first.value)]
        found += [name for name in names if name.split(".")[0] == "pipeline"]
    return found


def test_the_detector_sees_every_kind_of_import() -> None:
    source = (
        "import pipeline\nfrom pipeline.rules.image_ref import ImageRef\n"
        "import importlib\nimportlib.import_module('pipeline.rules')\n"
        "from pipelines import x\nimport pipeline_other\n"
    )
    assert pipeline_imports(source) == ["pipeline", "pipeline.rules.image_ref", "pipeline.rules"]


def test_no_emulator_module_imports_the_pipeline() -> None:
    files = sorted(EMULATOR.rglob("*.py"))
    assert len(files) > 20  # the walk found the package
    offenders = {
        str(path.relative_to(EMULATOR)): names
        for path in files
        if (names := pipeline_imports(path.read_text()))
    }
    assert offenders == {}


def test_the_emulator_does_not_depend_on_the_pipeline() -> None:
    project = tomllib.loads((EMULATOR / "pyproject.toml").read_text())
    assert not [d for d in project["project"]["dependencies"] if "sandbox-pipeline" in d]


# Daytona's parser (docker-image.util.ts), with the examples of its own doc comment


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        (
            "registry:5000/test/image:latest",
            DockerImage("image", registry="registry:5000", project="test", tag="latest"),
        ),
        (
            "docker.io/library/ubuntu:20.04",
            DockerImage("ubuntu", registry="docker.io", project="library", tag="20.04"),
        ),
        ("ubuntu:20.04", DockerImage("ubuntu", tag="20.04")),
        ("ubuntu", DockerImage("ubuntu")),
        ("acme/team/app:v1", DockerImage("app", project="acme/team", tag="v1")),
        (f"ghcr.io/acme/app@sha256:{HEX}", DockerImage("app", "ghcr.io", "acme", f"sha256:{HEX}")),
        # The tag stays inside the repository when a digest follows it.
        (
            f"ghcr.io/acme/app:v1@sha256:{HEX}",
            DockerImage("app:v1", "ghcr.io", "acme", f"sha256:{HEX}"),
        ),
    ],
)
def test_daytona_parses_image_names_by_hand(name: str, parsed: DockerImage) -> None:
    assert parse_docker_image(name) == parsed


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Image name cannot be empty"),
        ("ghcr.io/app@sha256:abc", "Invalid digest format. Must be image@sha256:64_hex_characters"),
        (f"ghcr.io//app@sha256:{HEX}", "Invalid image name. A part is empty"),
    ],
)
def test_daytona_parser_errors(name: str, message: str) -> None:
    with pytest.raises(ImageNameError) as refused:
        parse_docker_image(name)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("image", "registry_url", "inspected"),
    [
        ("ghcr.io/acme/app:sha-1", None, "ghcr.io/acme/app:sha-1"),
        ("debian:12", None, "docker.io/debian:12"),
        ("acme/app:v1", "https://docker.io", "docker.io/acme/app:v1"),
        # daytonaio/daytona#4532: the digest comes back as a tag.
        (f"ghcr.io/acme/app@sha256:{HEX}", "ghcr.io", f"ghcr.io/acme/app:sha256:{HEX}"),
        (f"ghcr.io/acme/app:v1@sha256:{HEX}", None, f"ghcr.io/acme/app:v1:sha256:{HEX}"),
    ],
)
def test_the_name_daytona_hands_its_runner(
    image: str, registry_url: str | None, inspected: str
) -> None:
    assert runner_inspect_name(image, registry_url) == inspected


def test_docker_refuses_what_daytona_makes_of_a_digest() -> None:
    """Why a digest-pinned snapshot ends in `error` on Daytona v0.190 (the emulator is kinder
    today: pull_source.inspected_name)."""
    for image in (f"ghcr.io/acme/app@sha256:{HEX}", f"ghcr.io/acme/app:v1@sha256:{HEX}"):
        assert parse_normalized_named(image).digest == f"sha256:{HEX}"
        with pytest.raises(ReferenceError) as refused:
            parse_normalized_named(runner_inspect_name(image, None))
        assert str(refused.value) == INVALID


# Docker's grammar (distribution/reference ParseNormalizedNamed)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("debian", Reference("docker.io", "library/debian")),
        ("debian:12", Reference("docker.io", "library/debian", tag="12")),
        ("docker.io/debian:12", Reference("docker.io", "library/debian", tag="12")),
        ("index.docker.io/acme/app:1", Reference("docker.io", "acme/app", tag="1")),
        ("localhost/app:1", Reference("localhost", "app", tag="1")),
        ("127.0.0.1:5000/iterate/app:1", Reference("127.0.0.1:5000", "iterate/app", tag="1")),
        ("[::1]:5000/app:1", Reference("[::1]:5000", "app", tag="1")),
        ("Registry.Example/app:V1", Reference("Registry.Example", "app", tag="V1")),
        (
            f"ghcr.io/acme/app:v1@sha256:{HEX}",
            Reference("ghcr.io", "acme/app", tag="v1", digest=f"sha256:{HEX}"),
        ),
    ],
)
def test_docker_reads_references(name: str, reference: Reference) -> None:
    assert parse_normalized_named(name) == reference


def test_a_reference_prints_and_names_its_manifest_as_docker_does() -> None:
    pinned = parse_normalized_named(f"ghcr.io/acme/app:v1@sha256:{HEX}")
    assert str(pinned) == f"ghcr.io/acme/app:v1@sha256:{HEX}"
    assert pinned.manifest_reference == f"sha256:{HEX}"  # the digest wins over the tag
    assert parse_normalized_named("debian").manifest_reference == "latest"
    assert str(parse_normalized_named("debian:12")) == "docker.io/library/debian:12"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", INVALID),  # normalized first, to `docker.io/library/`
        ("ghcr.io/acme/app:", "invalid reference format"),
        ("ghcr.io/acme//app:1", "invalid reference format"),
        (f"ghcr.io/acme/app:{'t' * 129}", "invalid reference format"),
        ("ghcr.io/Acme/App:1", f"{INVALID}: repository name (Acme/App) must be lowercase"),
        (HEX, f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"),
        ("ghcr.io/acme/app@sha256:abc", "invalid reference format"),
        (f"ghcr.io/acme/app@sha256:{HEX}0", "invalid checksum digest length"),
        (f"ghcr.io/acme/app@sha256:{HEX.upper()}", "invalid checksum digest format"),
        (f"ghcr.io/acme/app@md5:{HEX}", "unsupported digest algorithm"),
        (f"ghcr.io/{'a' * 256}:1", "repository name must not be more than 255 characters"),
    ],
)
def test_docker_refuses_references(name: str, message: str) -> None:
    with pytest.raises(ReferenceError) as refused:
        parse_normalized_named(name)
    assert str(refused.value) == message


# validateImageName, where Python's and JavaScript's string functions differ


def test_image_name_checks_follow_javascript() -> None:
    # `$` in JavaScript is the end of the text, not a place before a final newline.
    assert image_name_error("ghcr.io/acme/app:v1\n") is not None
    # `split` keeps the first two pieces: a second digest goes unchecked.
    assert image_name_error(f"ghcr.io/acme/app@sha256:{HEX}@sha256:{HEX}") is None
    assert image_name_error(f"Ghcr.io/ACME/App:v1@sha256:{HEX}") is None  # no other check


@pytest.mark.parametrize(
    ("username", "password", "lends"), [("u", "p", True), ("u", "", False), ("", "p", False)]
)
def test_an_entry_lends_credentials_only_with_both_parts(
    username: str, password: str, lends: bool
) -> None:
    """The runner's `RegistryDTO.HasAuth`: otherwise it asks the registry anonymously."""
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    entry = RegistryEntry(
        id="e",
        organization_id="org",
        name="ghcr",
        url="ghcr.io",
        username=username,
        password=password,
        project="",
        created_at=moment,
        updated_at=moment,
    )
    assert (entry.credential is not None) == lends
