"""`daytona_registry`'s rules: which entry to keep, update and delete, which passwords Daytona
may keep; what the session refuses before asking Daytona. The session against Daytona's
behaviour (one entry per host, updated in place, races, lost answers) runs on the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from pipeline.catalog import COMMANDS
from pipeline.errors import ConfigError, DaytonaError
from pipeline.rules.daytona_models import DockerRegistry
from pipeline.rules.registry_entries import (
    PullPassword,
    entry_url,
    judge_pull_password,
    matches_repository,
    plan_entries,
)
from pipeline.rules.sandbox_rules import start_failure_fix
from pipeline.rules.snapshot_names import failure_fix
from pipeline.sessions.daytona_common import Seams
from pipeline.sessions.daytona_registry import daytona_registry
from pipeline.settings.build import BuildSettings, ReportSettings, env_names
from pipeline.settings.daytona import DaytonaSettings, RegistryEntrySettings, SnapshotSettings
from tests.helpers.daytona_wire import KEY, URL, error_body, mock_client

PASSWORD = "ghp_" + "r3ad0nly" * 5
REPOSITORY = "ghcr.io/iterate/sandbox"


def entry(url: str, minute: int, entry_id: str | None = None) -> DockerRegistry:
    return DockerRegistry.model_validate(
        {
            "id": entry_id or f"id-{minute}",
            "name": url,
            "url": url,
            "username": "u",
            "registryType": "organization",
            "createdAt": datetime(2026, 11, 23, 10, minute, tzinfo=UTC).isoformat(),
        }
    )


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("ghcr.io", "ghcr.io"),
        ("https://GHCR.io/", "ghcr.io"),
        ("http://127.0.0.1:5000", "127.0.0.1:5000"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("ghcr.io/acme/", "ghcr.io/acme"),
    ],
)
def test_entry_urls_compare_as_daytona_stores_them(url: str, normalized: str) -> None:
    assert entry_url(url) == normalized


@pytest.mark.parametrize(
    ("url", "matches"),
    [
        ("ghcr.io", True),
        ("ghcr.io/iterate", True),
        ("ghcr.io/iterate/sandbox", True),
        ("ghcr.io/iter", False),  # not at a boundary
        ("ghcr.io/acme", False),
        ("ghcr.iox", False),
    ],
)
def test_which_urls_daytona_would_pull_the_repository_with(url: str, matches: bool) -> None:
    assert matches_repository(url, REPOSITORY) is matches


def test_the_plan_keeps_the_oldest_entry_of_the_host_and_deletes_the_rest() -> None:
    entries = [
        entry("https://ghcr.io/", 3),
        entry("ghcr.io", 1),
        entry("GHCR.IO", 2),
        entry("ghcr.io/iterate", 0),  # path-scoped: named, never deleted
        entry("ghcr.io/acme", 4),  # another owner's: ignored
        entry("docker.io", 5),
    ]
    plan = plan_entries(entries, "ghcr.io", REPOSITORY)
    assert plan.keep is not None and plan.keep.id == "id-1"
    assert [e.id for e in plan.delete] == ["id-2", "id-3"]
    assert [e.id for e in plan.shadowing] == ["id-0"]
    empty = plan_entries([entry("docker.io", 5)], "ghcr.io", REPOSITORY)
    assert (empty.keep, empty.delete) == (None, ())


# --- the session, as far as it goes without Daytona's behaviour (the rest: emulator) -------
# tests/integration/daytona/test_daytona_registry_emulator.py runs it against the emulator.


@pytest.mark.parametrize(
    ("password", "github_token", "push_password", "judged"),
    [
        ("r3ad", None, None, PullPassword.READ_ONLY),
        ("r3ad", "job", "push", PullPassword.READ_ONLY),
        ("job", "job", None, PullPassword.EXPIRES_WITH_JOB),  # refused: it expires with the job
        ("job", "job", "job", PullPassword.EXPIRES_WITH_JOB),  # refusing wins over warning
        ("push", None, "push", PullPassword.CAN_PUSH),  # warned: Daytona would keep it
        ("", "", "", PullPassword.READ_ONLY),  # an unset token matches nothing
    ],
)
def test_which_pull_passwords_daytona_may_keep(
    password: str, github_token: str | None, push_password: str | None, judged: PullPassword
) -> None:
    verdict = judge_pull_password(password, github_token=github_token, push_password=push_password)
    assert verdict is judged


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    classes = (BuildSettings, ReportSettings, DaytonaSettings, SnapshotSettings)
    for name in env_names(*classes, RegistryEntrySettings):
        monkeypatch.delenv(name, raising=False)
    report = tmp_path / "report.json"
    values = {
        "DAYTONA_API_URL": URL,
        "DAYTONA_API_KEY": KEY,
        "SANDBOX_IMAGE_REPOSITORY": REPOSITORY,
        "DAYTONA_REGISTRY_USERNAME": "reader",
        "DAYTONA_REGISTRY_PASSWORD": PASSWORD,
        "PIPELINE_REPORT": str(report),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return report


def nothing(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"Daytona was asked: {request.method} {request.url}")


def test_the_session_is_a_command() -> None:
    assert (
        COMMANDS["daytona_registry"].command
        == "pipeline.sessions.daytona_registry:daytona_registry"
    )


def test_help_and_exit_code_through_python_m_pipeline() -> None:
    names = env_names(BuildSettings, ReportSettings, DaytonaSettings, RegistryEntrySettings)
    env = {k: v for k, v in os.environ.items() if k not in names}
    command = [sys.executable, "-m", "pipeline", "daytona_registry"]
    shown = subprocess.run(
        [*command, "--help"], env=env, capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0 and "list Daytona's registry entries" in shown.stdout
    env["DAYTONA_REGISTRY_USERNAME"] = "reader"
    refused = subprocess.run(
        [*command, "--dry-run"], env=env, capture_output=True, text=True, check=False
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: DAYTONA_REGISTRY_PASSWORD not set — fix: ")


@pytest.mark.parametrize("missing", ["DAYTONA_REGISTRY_USERNAME", "DAYTONA_REGISTRY_PASSWORD"])
def test_missing_credentials_are_one_config_line(
    env: Path, missing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(missing)
    with pytest.raises(ConfigError) as caught:
        daytona_registry([], Seams(client=mock_client(nothing)))  # Daytona is never asked
    assert f"{missing} not set" in str(caught.value) and "read:packages" in str(caught.value)


def test_an_answer_echoing_the_password_does_not_show_it(env: Path) -> None:
    # A proxy that echoes the request body in its error (the emulator does not).
    def echo(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=[])
        return httpx.Response(400, json=error_body(400, f"bad body {request.content.decode()}"))

    with pytest.raises(DaytonaError) as caught:
        daytona_registry([], Seams(client=mock_client(echo)))
    assert PASSWORD not in str(caught.value) and "***" in str(caught.value)


def test_a_refused_pull_points_at_the_registry_session() -> None:
    reason = "unauthorized: authentication required"
    assert "nox -s daytona_registry" in failure_fix(reason)
    assert "registry entry" in failure_fix(reason) and "--force" in failure_fix(reason)
    assert "nox -s daytona_registry" in start_failure_fix("pull access denied for x")
    assert "daytona_registry" not in failure_fix("manifest unknown")


def test_a_pull_without_any_credentials_points_at_the_registry_session() -> None:
    reason = (
        'Error response from daemon: Head "http://r/v2/a/manifests/t": no basic auth credentials'
    )
    assert "nox -s daytona_registry" in failure_fix(reason)
