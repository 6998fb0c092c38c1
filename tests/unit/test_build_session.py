"""The build session's refusals that need no engine: a missing docker CLI, a context folder that
does not exist, a repository without commits. Each is one line, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.build.facts import gather
from pipeline.errors import ConfigError
from pipeline.settings.build import BuildSettings, env_names
from tests.conftest import make_fixture_repo, run_pipeline


def path_with(tmp_path: Path, *tools: str) -> str:
    """A PATH folder holding links to just these tools."""
    folder = tmp_path / "path"
    folder.mkdir(exist_ok=True)
    for tool in tools:
        found = shutil.which(tool)
        assert found, f"{tool} is needed for this test"
        (folder / tool).symlink_to(found)
    return str(folder)


def test_no_docker_cli_on_path_is_one_line(tmp_path: Path) -> None:
    repo = make_fixture_repo(tmp_path / "repo", "127.0.0.1:5000")
    only = path_with(tmp_path, "git")  # python runs by its full path, as nox runs it
    run = run_pipeline("snapshot_local", env=repo.env(PATH=only))
    assert run.returncode == 3, run.output
    assert "Traceback" not in run.output
    line = run.error_line()
    assert "the docker CLI is not on PATH" in line and "install Docker's CLI" in line


def test_context_folder_that_does_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in env_names(BuildSettings):
        monkeypatch.delenv(name, raising=False)
    missing = tmp_path / "no-such-folder"
    monkeypatch.setenv("SANDBOX_BUILD_CONTEXT", str(missing))
    with pytest.raises(ConfigError) as caught:
        gather(BuildSettings(), "local", None, dry_run=True)
    line = str(caught.value)
    assert f"SANDBOX_BUILD_CONTEXT={missing} does not exist" in line
    assert "git repository" not in line
    run = run_pipeline("snapshot_local", "--dry-run", env={"SANDBOX_BUILD_CONTEXT": str(missing)})
    assert run.returncode == 2 and "does not exist" in run.error_line()


def test_repository_without_commits_does_not_suggest_git_sha(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    env = {"SANDBOX_BUILD_CONTEXT": str(repo), "GIT_SHA": "a" * 40}
    run = run_pipeline("snapshot_local", "--dry-run", env=env)
    assert run.returncode == 4
    line = run.error_line()
    assert "no commits yet" in line and "commit once" in line
    assert "set GIT_SHA" not in line
