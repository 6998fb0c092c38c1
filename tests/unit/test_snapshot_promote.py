"""`snapshot_stage -- --from`: promotion and rollback without a build (rules by table, what the
session refuses before asking anyone), which image check a run makes, and how
SANDBOX_IMAGE_DIGEST shows in plans and settings. The session against Daytona's behaviour is in
tests/integration/daytona/test_daytona_promote.py; the registry side (a commit's tag resolved to
its digest, a tag that moved) in test_daytona_release_emulator.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from pipeline.errors import ConfigError
from pipeline.rules.daytona_models import Snapshot
from pipeline.rules.snapshot_names import (
    ImageCheck,
    PromoteFrom,
    SnapshotSpec,
    image_check,
    missing_source_fix,
    promote_source,
    pulled_digest,
    pulled_problem,
    resources_note,
)
from pipeline.sessions.daytona_common import Seams
from pipeline.sessions.snapshot_daytona import snapshot_daytona
from pipeline.sessions.snapshot_stage import snapshot_stage
from pipeline.settings.build import BuildSettings, ReportSettings, env_names, load
from pipeline.settings.daytona import (
    DaytonaSettings,
    DigestSettings,
    SnapshotSettings,
    StageSettings,
)
from tests.helpers.daytona_wire import KEY, URL, mock_client

SHA = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32
REPOSITORY = "ghcr.io/iterate/sandbox"
NOW = datetime(2026, 11, 24, 9, 30, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        (SHA, "commit", SHA),
        (f" {SHA.upper()} ", "commit", SHA),
        ("prd--20261123-120000", "snapshot", "prd--20261123-120000"),
        (f"iterate-sandbox-{SHA}", "snapshot", f"iterate-sandbox-{SHA}"),
        ("0123456", "snapshot", "0123456"),  # a short sha is only a name; the miss says so
    ],
)
def test_from_names_a_commit_or_a_snapshot(text: str, kind: str, value: str) -> None:
    assert promote_source(text) == PromoteFrom(kind, value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "Prd--x", "ghcr.io/iterate/sandbox:sha-1", "a" * 64])
def test_from_refuses_anything_else_in_one_line(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        promote_source(text)
    assert "neither a 40-character commit sha nor a snapshot name" in str(caught.value)


def test_a_missed_short_sha_is_told_to_use_the_full_one() -> None:
    assert "full 40-character sha" in missing_source_fix("0123456")
    assert "full 40-character sha" not in missing_source_fix("prd--20261123-120000")


def snapshot(ref: str | None) -> Snapshot:
    return Snapshot.model_validate({"id": "1", "name": "n", "ref": ref, "createdAt": NOW})


@pytest.mark.parametrize(
    ("ref", "pulled", "problem"),
    [
        (f"registry.daytona.internal/daytona/daytona-{'ab' * 32}:daytona", DIGEST, None),
        (f"harbor.x/project/daytona-{'cd' * 32}:daytona", OTHER_DIGEST, "not the expected"),
        (None, None, "does not say which digest"),
        ("registry.x/daytona/some-build:daytona", None, "does not say which digest"),
    ],
)
def test_the_digest_daytona_pulled_is_read_from_ref(
    ref: str | None, pulled: str | None, problem: str | None
) -> None:
    assert pulled_digest(snapshot(ref)) == pulled
    found = pulled_problem(snapshot(ref), DIGEST)
    assert (found is None) if problem is None else (found is not None and problem in found)
    assert pulled_problem(snapshot(ref), None) is None  # nothing expected: nothing to hold


def test_a_rollback_with_other_resources_is_noted() -> None:
    source = Snapshot.model_validate(
        {"id": "1", "name": "prd--1", "cpu": 4, "mem": 8, "disk": 10, "createdAt": NOW}
    )
    same = SnapshotSpec(name="prd--2", image="x:sha-1", cpu=4, memory=8, disk=10)
    other = SnapshotSpec(name="prd--2", image="x:sha-1", cpu=2, memory=4, disk=10)
    assert resources_note(source, same) is None
    note = resources_note(source, other)
    assert note is not None and "prd--1 had 4 vCPU, 8 GB memory" in note and "--cpu" in note


# --- the session on the fake ----------------------------------------------------------------


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    classes = (BuildSettings, ReportSettings, DaytonaSettings, SnapshotSettings, StageSettings)
    for name in env_names(*classes):
        monkeypatch.delenv(name, raising=False)
    report = tmp_path / "report.json"
    values = {
        "DAYTONA_API_URL": URL,
        "DAYTONA_API_KEY": KEY,
        "SANDBOX_IMAGE_REPOSITORY": REPOSITORY,
        "APP_STAGE": "prd",
        "PIPELINE_REPORT": str(report),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return report


def nothing(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"Daytona was asked: {request.method} {request.url}")


def test_from_and_image_together_are_refused(env: Path) -> None:
    argv = ["--from", SHA, "--image", f"{REPOSITORY}:sha-{SHA}"]
    with pytest.raises(ConfigError, match="--from and --image both name the image"):
        # Daytona is not asked
        snapshot_stage(argv, Seams(client=mock_client(nothing), now=lambda: NOW))


@pytest.mark.parametrize(
    ("digest", "skip", "check"),
    [
        (None, False, ImageCheck.TAG),
        (None, True, ImageCheck.NONE),
        (DIGEST, False, ImageCheck.DIGEST),
        (DIGEST, True, ImageCheck.DIGEST),  # the pushed digest is checked all the same
    ],
)
def test_which_image_check_a_run_makes(digest: str | None, skip: bool, check: ImageCheck) -> None:
    assert image_check(image_digest=digest, skip_tag_check=skip) is check


# --- SANDBOX_IMAGE_DIGEST in settings and plans ---------------------------------------------


@pytest.mark.parametrize("value", ["ab" * 32, "sha256:" + "AB" * 32, "sha256:abc", "sha512:" + "a"])
def test_a_bad_image_digest_is_one_config_line(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_IMAGE_DIGEST", value)
    with pytest.raises(ConfigError) as caught:
        load(DigestSettings)
    text = str(caught.value)
    assert f"SANDBOX_IMAGE_DIGEST={value!r} is not valid" in text and "sha256:<64" in text


def test_an_empty_image_digest_fails_instead_of_turning_the_check_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`${{ needs.image.outputs.digest }}` of a job that gave none is an empty variable: every
    other variable reads that as unset, which here would quietly skip the digest check."""
    monkeypatch.setenv("SANDBOX_IMAGE_DIGEST", "")
    with pytest.raises(ConfigError) as caught:
        load(DigestSettings)
    assert "SANDBOX_IMAGE_DIGEST='' is not valid" in str(caught.value)
    assert "set but empty" in str(caught.value)
    monkeypatch.delenv("SANDBOX_IMAGE_DIGEST")
    assert load(DigestSettings).image_digest is None  # unset: no digest given


@pytest.mark.parametrize("session", [snapshot_daytona, snapshot_stage])
def test_the_digest_is_in_the_plan_of_a_dry_run(
    session: Callable[..., None],
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SANDBOX_IMAGE_DIGEST", DIGEST)
    monkeypatch.setenv("SANDBOX_IMAGE", f"{REPOSITORY}:sha-{SHA}")
    # Daytona is not asked
    session(["--dry-run", "--skip-image-check"], Seams(client=mock_client(nothing)))
    err = capsys.readouterr().err
    assert f"digest:     {DIGEST} (the tag must resolve to it" in err
    assert "image check: the tag resolves to the expected digest" in err  # despite --skip-…
    assert "were not contacted" in err
