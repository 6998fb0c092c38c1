"""The dev-loop helpers the build session calls: a ref's export in place of the checkout, and
the fast path that must never skip a build it cannot vouch for."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.build import local as dev_build
from pipeline.settings.build import BuildSettings, ReportSettings, env_names
from tests.helpers.git import git as _git


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    (root / "sandbox").mkdir(parents=True)
    (root / "sandbox" / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "main")
    _git(root, "checkout", "-q", "-b", "feature")
    (root / "sandbox" / "Dockerfile").write_text("FROM scratch\nCOPY sandbox /s\n")
    _git(root, "commit", "-qam", "feature")
    _git(root, "checkout", "-q", "main")
    for name in env_names(BuildSettings, ReportSettings):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(dev_build.REF_VARIABLE, raising=False)
    monkeypatch.setenv("SANDBOX_BUILD_CONTEXT", str(root))
    monkeypatch.setenv("SANDBOX_DOCKERFILE", str(root / "sandbox" / "Dockerfile"))
    return root


def test_without_a_ref_the_settings_are_untouched(repo: Path) -> None:
    settings = BuildSettings()
    with dev_build.ref_source(settings) as (used, tree):
        assert used is settings and tree is None


def test_ref_points_context_and_dockerfile_into_the_export(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(dev_build.REF_VARIABLE, "feature")
    with dev_build.ref_source(BuildSettings()) as (used, tree):
        assert tree is not None
        assert used.build_context == tree.path
        assert used.dockerfile == tree.path / "sandbox" / "Dockerfile"
        assert "COPY sandbox /s" in used.dockerfile.read_text()  # the ref's Dockerfile
        facts = dev_build.git_facts(used, tree)
        assert facts.sha == _git(repo, "rev-parse", "feature") and not facts.dirty
        assert facts.branch == "feature"
    assert "COPY . /" in (repo / "sandbox" / "Dockerfile").read_text()  # checkout as it was


@pytest.mark.parametrize(
    "env",
    [
        {"PUSH": "1"},  # a pushed image gets no machine-local label, so it is never skipped
        {dev_build.REF_VARIABLE: "feature"},  # ref builds take the full path
        {"SANDBOX_DOCKERFILE": "/nonexistent/Dockerfile"},  # the full path names the problem
        {"SANDBOX_BUILD_PLATFORM": "linux/amd64,linux/arm64"},  # refused by the plan
    ],
)
def test_fast_path_declines_what_it_cannot_vouch_for(
    repo: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    skipped, _ = dev_build.skip_if_unchanged()
    assert skipped is False
