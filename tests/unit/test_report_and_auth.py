"""Report outputs and the order in which registry credentials are found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, PipelineError
from pipeline.registry import credentials as registry_auth
from pipeline.report import output_lines, publish
from pipeline.settings.build import BuildSettings, ReportSettings


def test_output_lines() -> None:
    lines = output_lines(
        {
            "digest": "sha256:1",
            "tags": ["a", "b"],
            "pushed": True,
            "branch": None,
            "labels": {"x": "y"},
            "steps": 3,
        }
    )
    assert lines == ["digest=sha256:1", "tags=a,b", "pushed=true", "branch=", "steps=3"]


def test_multiline_value_cannot_inject_keys() -> None:
    lines = "\n".join(output_lines({"reason": "line one\nevil=1"})).splitlines()
    assert lines[0].startswith("reason<<EOF_") and lines[-1] == lines[0].split("<<")[1]
    assert lines[1:-1] == ["line one", "evil=1"]  # inside the heredoc, as data


def test_publish_merges_sections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report, outputs, summary = tmp_path / "r.json", tmp_path / "out", tmp_path / "summary.md"
    monkeypatch.setenv("PIPELINE_REPORT", str(report))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    settings = ReportSettings()
    publish("build", {"digest": "sha256:1"}, settings, summary=[("digest", "`sha256:1`")])
    publish("snapshot", {"snapshot_name": "n"}, settings)
    assert json.loads(report.read_text()) == {
        "build": {"digest": "sha256:1"},
        "snapshot": {"snapshot_name": "n"},
    }
    assert outputs.read_text().splitlines() == ["digest=sha256:1", "snapshot_name=n"]
    assert "| digest | `sha256:1` |" in summary.read_text()


CREDENTIAL_VARS = (
    "REGISTRY_USERNAME",
    "REGISTRY_PASSWORD",
    "GITHUB_ACTOR",
    "GITHUB_TOKEN",
    "SANDBOX_IMAGE_REPOSITORY",
)


@pytest.fixture
def no_gh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in CREDENTIAL_VARS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(registry_auth, "_gh_auth_token", lambda: None)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty-docker-config"))


@pytest.mark.usefixtures("no_gh")
def test_explicit_credentials_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_USERNAME", "me")
    monkeypatch.setenv("REGISTRY_PASSWORD", "pw")
    monkeypatch.setenv("GITHUB_TOKEN", "gh")
    found = registry_auth.resolve_credentials(BuildSettings())
    assert found is not None and found.username == "me"
    assert found.source == "REGISTRY_USERNAME/REGISTRY_PASSWORD"


@pytest.mark.usefixtures("no_gh")
def test_github_token_for_ghcr_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTOR", "octo")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_x")
    found = registry_auth.resolve_credentials(BuildSettings())
    assert found is not None and (found.username, found.source) == (
        "octo",
        "GITHUB_ACTOR/GITHUB_TOKEN",
    )
    monkeypatch.setenv("SANDBOX_IMAGE_REPOSITORY", "registry.example.com/x")
    assert registry_auth.resolve_credentials(BuildSettings()) is None


@pytest.mark.usefixtures("no_gh")
def test_gh_auth_token_is_the_last_resort(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_auth, "_gh_auth_token", lambda: "gho_from_gh")
    monkeypatch.setattr(registry_auth, "_gh_user", lambda: "dev")
    found = registry_auth.resolve_credentials(BuildSettings())
    assert found is not None and found.source == "`gh auth token`" and found.username == "dev"
    assert "gho_from_gh" not in repr(found)


@pytest.mark.usefixtures("no_gh")
def test_half_a_pair_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_USERNAME", "me")
    with pytest.raises(ConfigError, match="REGISTRY_PASSWORD is not set"):
        registry_auth.resolve_credentials(BuildSettings())


@pytest.mark.usefixtures("no_gh")
def test_docker_config_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    config = BuildSettings().docker_config_dir
    assert config == tmp_path
    assert not registry_auth.docker_config_has_auth(config, "ghcr.io")
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"ghcr.io": {"auth": "x"}}}))
    assert registry_auth.docker_config_has_auth(config, "ghcr.io")
    assert not registry_auth.docker_config_has_auth(config, "quay.io")


def test_error_format() -> None:
    error = PipelineError("a\n  multi-line   cause", "do this")
    assert str(error) == "a multi-line cause — fix: do this"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("localhost:5000", True),
        ("[::1]:5000", True),
        ("localhost.example.com", False),
        ("127.example.com", False),
        ("ghcr.io", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert registry_auth.is_loopback(host) is loopback
