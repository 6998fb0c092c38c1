"""The environment of a settings-reading test: the pipeline's variables cleared, the fixture repo
as the build context, plus what the test sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.settings.build import BuildSettings, ReportSettings, env_names


def use_repo_settings(monkeypatch: pytest.MonkeyPatch, repo: Path, **variables: str) -> None:
    for name in env_names(BuildSettings, ReportSettings):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SANDBOX_BUILD_CONTEXT", str(repo))
    monkeypatch.setenv("SANDBOX_DOCKERFILE", str(repo / "sandbox" / "Dockerfile"))
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
