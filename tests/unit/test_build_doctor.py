"""doctor's credential check: missing push credentials are a problem only where this machine
pushes (PUSH=1); a machine that only builds :local gets a note with what pushing would need."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.registry import credentials as registry_auth
from pipeline.sessions.doctor import Finding, _credentials
from pipeline.settings.build import BuildSettings, ReportSettings, env_names


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in env_names(BuildSettings, ReportSettings):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty-docker-config"))
    monkeypatch.setattr(registry_auth, "_gh_auth_token", lambda: None)  # a developer's gh login
    monkeypatch.setenv("SANDBOX_IMAGE_REPOSITORY", "ghcr.io/iterate/sandbox")


@pytest.mark.usefixtures("no_credentials")
def test_local_only_machine_gets_a_note_not_a_failure() -> None:
    found = _credentials(BuildSettings(), None, skip_login=False)
    assert found.ok and found.note
    line = found.line()
    assert line.startswith("note  registry credentials: none for ghcr.io; local builds need none")
    assert "to push, set REGISTRY_USERNAME/REGISTRY_PASSWORD" in line and "\n" not in line


@pytest.mark.usefixtures("no_credentials")
def test_a_machine_that_pushes_fails_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSH", "1")
    found = _credentials(BuildSettings(), None, skip_login=False)
    assert not found.ok and not found.note
    assert found.line().startswith("FAIL  registry credentials: none for ghcr.io (PUSH=1) — fix:")


def test_line_forms() -> None:
    assert Finding(True, "x", "fine").line() == "ok    x: fine"
    assert Finding(False, "x", "broken", "mend it").line() == "FAIL  x: broken — fix: mend it"
    assert Finding(True, "x", "unused", "to use it, add it", note=True).line() == (
        "note  x: unused — to use it, add it"
    )
