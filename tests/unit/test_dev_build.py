"""The dev-loop helpers the build job calls: a ref's export in place of the checkout, and the
plan that must never skip a build it cannot vouch for."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.build import facts as dev_build
from pipeline.errors import ConfigError
from pipeline.rules.fingerprint import LABEL, InputFacts, LocalImage
from pipeline.settings.build import BuildSettings, ReportSettings, env_names
from tests.helpers.git import git as _git
from tests.helpers.plans import git_facts, make_plan

REF_VARIABLE = "SANDBOX_ITERATE_REPO_REF"


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
    monkeypatch.delenv(REF_VARIABLE, raising=False)
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
    monkeypatch.setenv(REF_VARIABLE, "feature")
    with dev_build.ref_source(BuildSettings()) as (used, tree):
        assert tree is not None
        assert used.build_context == tree.path
        assert used.dockerfile == tree.path / "sandbox" / "Dockerfile"
        assert "COPY sandbox /s" in used.dockerfile.read_text()  # the ref's Dockerfile
        facts = dev_build.git_facts(used, tree)
        assert facts.sha == _git(repo, "rev-parse", "feature") and not facts.dirty
        assert facts.branch == "feature"
    assert "COPY . /" in (repo / "sandbox" / "Dockerfile").read_text()  # checkout as it was


def _unchanged_local(settings: BuildSettings) -> InputFacts:
    """Inputs whose fingerprint `:local`'s label already carries (what a skip needs)."""
    inputs = InputFacts(context="c", dockerfile="d", summary="1 path")
    probe = make_plan("local", settings, git_facts(), inputs=inputs)
    label = probe.fingerprint or ""
    return inputs.model_copy(
        update={"local_image": LocalImage(id="sha256:1", labels={LABEL: label})}
    )


def test_unchanged_inputs_are_tagged_not_built(repo: Path) -> None:
    settings = BuildSettings()
    plan = make_plan("local", settings, git_facts(), inputs=_unchanged_local(settings))
    assert plan.action == "tag" and plan.image_id == "sha256:1"


@pytest.mark.parametrize(
    "env",
    [
        {"PUSH": "1"},  # a pushed image gets no machine-local label, so it is never skipped
        {"SANDBOX_BUILD_PLATFORM": "linux/amd64,linux/arm64"},  # refused by the plan
    ],
)
def test_fast_path_declines_what_it_cannot_vouch_for(
    repo: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    inputs = _unchanged_local(BuildSettings())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = BuildSettings()
    try:
        skipped = make_plan("local", settings, git_facts(), inputs=inputs).action == "tag"
    except ConfigError:
        skipped = False
    assert skipped is False


def test_unknown_inputs_are_built(repo: Path) -> None:
    unknown = InputFacts(unknown="a base image is not in the engine")
    plan = make_plan("local", BuildSettings(), git_facts(), inputs=unknown)
    assert plan.action == "build" and plan.fingerprint is None
    assert "a base image is not in the engine" in plan.fingerprint_note


def test_a_missing_dockerfile_is_named_before_anything_is_read(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDBOX_DOCKERFILE", "/nonexistent/Dockerfile")
    with pytest.raises(ConfigError, match="SANDBOX_DOCKERFILE=/nonexistent/Dockerfile"):
        dev_build.gather(BuildSettings(), "local", None)
