"""Settings from the environment: defaults, accepted forms, and one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings.build import (
    PROJECT_ROOT,
    BuildSettings,
    ReportSettings,
    ViewSettings,
    env_names,
    load,
)

VARIABLES = env_names(BuildSettings)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in VARIABLES:
        monkeypatch.delenv(key, raising=False)


def test_defaults() -> None:
    s = load(BuildSettings)
    assert s.image_repository == "ghcr.io/iterate/sandbox"
    assert s.dockerfile == PROJECT_ROOT / "sandbox" / "Dockerfile"
    assert s.build_context == PROJECT_ROOT
    assert s.platforms == ("linux/amd64",)
    assert s.push is False and s.git_sha is None and s.builder is None
    assert s.build_timeout == 900
    assert s.attestations == ()
    assert s.registry_host == "ghcr.io"


def test_relative_paths_are_the_projects(monkeypatch: pytest.MonkeyPatch) -> None:
    # A launcher started elsewhere and the worker it starts in the project root must agree.
    monkeypatch.setenv("PIPELINE_BACKGROUND_DIR", "state/bg")
    monkeypatch.setenv("SANDBOX_DOCKERFILE", "other/Dockerfile")
    s = load(BuildSettings)
    assert s.background_dir == PROJECT_ROOT / "state" / "bg"
    assert s.dockerfile == PROJECT_ROOT / "other" / "Dockerfile"
    monkeypatch.setenv("PIPELINE_BACKGROUND_DIR", "/abs/bg")
    assert load(BuildSettings).background_dir == Path("/abs/bg")


@pytest.mark.parametrize(("value", "expected"), [("my-feature", "my-feature"), ("", None)])
def test_repo_ref(monkeypatch: pytest.MonkeyPatch, value: str, expected: str | None) -> None:
    # SANDBOX_ITERATE_REPO_REF= in a shell means "the checkout", like every other variable
    monkeypatch.setenv("SANDBOX_ITERATE_REPO_REF", value)
    assert load(BuildSettings).repo_ref == expected
    assert "SANDBOX_ITERATE_REPO_REF" in VARIABLES  # tests drop it from a developer's shell


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("yes", True), ("0", False), ("false", False), ("", False)],
)
def test_push_forms(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("PUSH", value)
    assert load(BuildSettings).push is expected


@pytest.mark.parametrize(
    ("variable", "value", "accepts"),
    [
        ("PUSH", "maybe", "1, 0, true, false, yes or no"),
        ("SANDBOX_IMAGE_REPOSITORY", "ghcr.io/Iterate/sandbox", "lower-case"),
        ("SANDBOX_IMAGE_REPOSITORY", "ghcr.io/iterate/sandbox:v1", "without tag"),
        ("SANDBOX_BUILD_PLATFORM", "amd64", "os/arch"),
        ("SANDBOX_BUILD_PLATFORM", ",", "os/arch"),
        ("GIT_SHA", "abc123", "40-character"),
        ("GIT_SHA", "z" * 40, "40-character"),
        ("GIT_SHA", "a" * 40 + "\n", "40-character"),
        ("SANDBOX_IMAGE_REPOSITORY", "ghcr.io/iterate/sandbox\n", "lower-case"),
        ("DOCKER_HOST", "127.0.0.1:2375", "tcp://HOST:PORT"),
        ("SANDBOX_BUILD_TIMEOUT", "soon", "a number of seconds"),
        ("SANDBOX_BUILD_TIMEOUT", "0", "greater than 0"),
        ("SANDBOX_BUILD_TIMEOUT", "inf", "a finite number of seconds"),
        ("SANDBOX_BUILD_TIMEOUT", "nan", "a finite number of seconds"),
        ("SANDBOX_BUILD_PLATFORM", "linux/mips99", "not an OCI platform"),
        ("SANDBOX_BUILD_PLATFORM", "linux/amd64,linux/aarch64", "did you mean linux/arm64?"),
        ("SANDBOX_BUILD_CACHE", "sometimes", "'auto', 'off', 'read' or 'readwrite'"),
        ("SANDBOX_ATTESTATIONS", "slsa", "provenance"),
    ],
)
def test_bad_values_name_variable_and_what_it_accepts(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, accepts: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load(BuildSettings)
    message = str(caught.value)
    assert f"{variable}={value!r} is not valid" in message
    assert accepts in message
    assert "\n" not in message


def test_accepted_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    monkeypatch.setenv("SANDBOX_IMAGE_REPOSITORY", "localhost:5000/team/sandbox_img")
    monkeypatch.setenv("SANDBOX_BUILD_PLATFORM", "linux/amd64, linux/arm64/v8")
    monkeypatch.setenv("SANDBOX_ATTESTATIONS", "none")
    s = load(BuildSettings)
    assert s.docker_host == "tcp://127.0.0.1:2375"
    assert s.registry_host == "localhost:5000"
    assert s.platforms == ("linux/amd64", "linux/arm64/v8")
    assert s.attestations == ()


@pytest.mark.parametrize(
    ("repository", "host"),
    [
        ("iterate/sandbox", "docker.io"),
        ("sandbox", "docker.io"),
        ("ghcr.io/iterate/sandbox", "ghcr.io"),
        ("127.0.0.1:5000/x", "127.0.0.1:5000"),
    ],
)
def test_registry_host(monkeypatch: pytest.MonkeyPatch, repository: str, host: str) -> None:
    monkeypatch.setenv("SANDBOX_IMAGE_REPOSITORY", repository)
    assert load(BuildSettings).registry_host == host


def test_password_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_USERNAME", "u")
    monkeypatch.setenv("REGISTRY_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_tokentoken")
    s = load(BuildSettings)
    assert "hunter2-secret" not in repr(s) + str(s)
    assert "ghs_tokentoken" not in repr(s) + str(s)


def test_report_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("PIPELINE_REPORT", "/tmp/r.json")
    s = load(ReportSettings)
    assert s.github_actions is True and str(s.report_path) == "/tmp/r.json"


def test_the_readme_configuration_table_names_every_variable_a_build_reads() -> None:
    """A variable the build reads but the README does not name is a behaviour nobody can find."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("### Configuration", 1)[1].split("\n### ", 1)[0]
    named = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", section))
    # Set by the system or by Actions and described where they matter, not configuration.
    ambient = {"HOME", "TERM", "CI", "GITHUB_ACTIONS"}
    missing = set(env_names(BuildSettings, ReportSettings, ViewSettings)) - named - ambient
    assert not missing, f"README's Configuration table does not name {sorted(missing)}"
