"""`daytona_registry` on the in-memory fake: one entry per host, updated in place, duplicates
deleted, the password never shown; and the plan rule behind it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from pipeline.catalog import COMMANDS
from pipeline.errors import ConfigError, DaytonaAuthError, DaytonaError
from pipeline.rules.daytona_models import DockerRegistry
from pipeline.rules.registry_entries import entry_url, matches_repository, plan_entries
from pipeline.rules.sandbox_rules import start_failure_fix
from pipeline.rules.snapshot_names import failure_fix
from pipeline.sessions.daytona_registry import daytona_registry
from pipeline.settings.build import BuildSettings, ReportSettings, env_names
from pipeline.settings.daytona import DaytonaSettings, RegistryEntrySettings, SnapshotSettings
from tests.helpers.fake_daytona import KEY, URL, FakeDaytona, error_body

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
    assert plan.keep is not None and plan.keep.id == "id-1" and plan.action == "update"
    assert [e.id for e in plan.delete] == ["id-2", "id-3"]
    assert [e.id for e in plan.shadowing] == ["id-0"]
    empty = plan_entries([entry("docker.io", 5)], "ghcr.io", REPOSITORY)
    assert (empty.keep, empty.delete, empty.action) == (None, (), "create")


# --- the session on the fake ----------------------------------------------------------------


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
        "GITHUB_OUTPUT": str(tmp_path / "outputs"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return report


def run(fake: FakeDaytona, *argv: str) -> None:
    with fake.client() as api:
        daytona_registry(list(argv), client=api)


def writes(fake: FakeDaytona) -> list[str]:
    return [line for line in fake.log if not line.startswith("GET ")]


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


def test_a_first_run_creates_the_entry_and_a_second_updates_it_in_place(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeDaytona()
    run(fake)
    assert writes(fake) == ["POST /docker-registry"]
    (made,) = fake.registries.values()
    assert (made["url"], made["name"], made["username"]) == ("ghcr.io", "ghcr.io", "reader")
    assert fake.passwords[made["id"]] == PASSWORD
    section = json.loads(env.read_text())["daytona_registry"]
    assert section == {
        "registry": "ghcr.io",
        "id": made["id"],
        "url": "ghcr.io",
        "username": "reader",
        "action": "created",
        "deleted": [],
    }
    first = capsys.readouterr()

    fake.log.clear()
    rotated = PASSWORD + "-rotated"
    monkeypatch.setenv("DAYTONA_REGISTRY_PASSWORD", rotated)
    run(fake)
    assert writes(fake) == [f"PATCH /docker-registry/{made['id']}"]  # nothing new
    assert list(fake.registries) == [made["id"]] and fake.passwords[made["id"]] == rotated
    assert json.loads(env.read_text())["daytona_registry"]["action"] == "updated"
    second = capsys.readouterr()
    files = [env, env.with_name("outputs"), env.with_name("summary")]
    for text in (*first, *second, *(path.read_text() for path in files)):
        assert PASSWORD not in text and rotated not in text
    assert "password:   from DAYTONA_REGISTRY_PASSWORD (never shown)" in first.err


def test_duplicates_of_the_host_are_named_in_the_plan_then_deleted(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeDaytona()
    oldest = fake.add_registry("ghcr.io", name="ghcr", createdAt="2026-11-01T00:00:00Z")
    newer = fake.add_registry("https://ghcr.io", createdAt="2026-11-02T00:00:00Z")
    newest = fake.add_registry("ghcr.io/", createdAt="2026-11-03T00:00:00Z")
    scoped = fake.add_registry("ghcr.io/iterate", createdAt="2026-10-01T00:00:00Z")
    other = fake.add_registry("docker.io")
    run(fake)
    err = capsys.readouterr().err
    assert f"action:     update in place {oldest['id']} ('ghcr'" in err
    assert f"delete:     {newer['id']} " in err and f"delete:     {newest['id']} " in err
    assert f"entry {scoped['id']} " in err and "may pull with its credentials" in err
    assert set(fake.registries) == {oldest["id"], scoped["id"], other["id"]}
    assert fake.registries[oldest["id"]]["name"] == "ghcr"  # a person's name is kept
    assert fake.passwords[oldest["id"]] == PASSWORD and fake.passwords[scoped["id"]] == "old"
    section = json.loads(env.read_text())["daytona_registry"]
    assert sorted(section["deleted"]) == sorted([newer["id"], newest["id"]])
    assert "POST /docker-registry" not in fake.log


def test_dry_run_lists_and_changes_nothing(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeDaytona()
    fake.add_registry("ghcr.io")
    fake.add_registry("ghcr.io")
    run(fake, "--dry-run")
    assert fake.log == ["GET /docker-registry"]
    err = capsys.readouterr().err
    assert "delete:     " in err and "nothing changed" in err
    assert not env.exists()


@pytest.mark.parametrize("missing", ["DAYTONA_REGISTRY_USERNAME", "DAYTONA_REGISTRY_PASSWORD"])
def test_missing_credentials_are_one_config_line(
    env: Path, missing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(missing)
    fake = FakeDaytona()
    with pytest.raises(ConfigError) as caught:
        run(fake)
    assert f"{missing} not set" in str(caught.value) and "read:packages" in str(caught.value)
    assert fake.log == []


def test_the_jobs_github_token_is_refused_and_the_push_token_warned_about(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", PASSWORD)
    fake = FakeDaytona()
    with pytest.raises(ConfigError, match="GITHUB_TOKEN, which expires"):
        run(fake)
    assert fake.log == []
    monkeypatch.delenv("GITHUB_TOKEN")
    monkeypatch.setenv("REGISTRY_PASSWORD", PASSWORD)
    run(fake)
    assert "is the push token (REGISTRY_PASSWORD)" in capsys.readouterr().err


def test_an_answer_echoing_the_password_does_not_show_it(env: Path) -> None:
    def echo(request: httpx.Request) -> httpx.Response | None:
        if request.method != "POST":
            return None
        return httpx.Response(400, json=error_body(400, f"bad body {request.content.decode()}"))

    fake = FakeDaytona(fail_next=[lambda _: None, echo])  # the list passes, the POST echoes
    with pytest.raises(DaytonaError) as caught:
        run(fake)
    assert PASSWORD not in str(caught.value) and "***" in str(caught.value)


def test_a_lost_create_answer_is_looked_up_not_posted_again(env: Path) -> None:
    fake = FakeDaytona()

    def landed_then_lost(request: httpx.Request) -> httpx.Response:
        fake.handle(request)  # the entry is made, but the answer never arrives
        return httpx.Response(502, text="bad gateway")

    fake.fail_next = [lambda _: None, landed_then_lost]
    run(fake)
    assert fake.count("POST /docker-registry") == 1 and len(fake.registries) == 1
    (made,) = fake.registries.values()
    assert fake.passwords[made["id"]] == PASSWORD


def test_a_lost_create_that_did_not_land_says_nothing_was_made(env: Path) -> None:
    fake = FakeDaytona(fail_next=[lambda _: None, lambda _: httpx.Response(503, text="down")])
    with pytest.raises(DaytonaError, match=r"no entry for ghcr\.io was made"):
        run(fake)
    assert fake.count("POST /docker-registry") == 1 and fake.registries == {}


def test_a_concurrent_run_settles_on_one_entry(env: Path) -> None:
    fake = FakeDaytona()
    theirs: list[str] = []

    def other_run_first(request: httpx.Request) -> None:
        # Another run listed nothing either, and its POST landed a moment before ours.
        theirs.append(fake.add_registry("ghcr.io", createdAt="2026-01-01T00:00:00Z")["id"])

    fake.fail_next = [lambda _: None, other_run_first]
    run(fake)
    assert list(fake.registries) == theirs  # the older one stays, ours is gone
    assert fake.passwords[theirs[0]] == PASSWORD
    assert json.loads(env.read_text())["daytona_registry"]["id"] == theirs[0]


def test_a_key_without_registry_permissions_names_them(env: Path) -> None:
    forbidden = httpx.Response(403, json=error_body(403, "Forbidden resource"))
    fake = FakeDaytona(fail_next=[lambda _: None, lambda _: forbidden])
    with pytest.raises(DaytonaAuthError, match="write:registries and delete:registries"):
        run(fake)


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
