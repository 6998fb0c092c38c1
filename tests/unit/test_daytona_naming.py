"""The pure Daytona rules — names, stages, prefixes, resolution, retention — pinned by tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipeline.errors import ConfigError
from pipeline.rules.daytona_models import Snapshot
from pipeline.rules.image_ref import daytona_image_problem
from pipeline.rules.retention import Verdict, plan_retention
from pipeline.rules.snapshot_names import (
    MAX_NAME_LENGTH,
    Action,
    decide,
    is_dev_prefix,
    match_prefix,
    pick_latest,
    resolve_stage,
    sanitize_stage,
    sha_image,
    sha_snapshot_name,
    snapshot_name_problem,
    stage_snapshot_name,
)

SHA = "0123456789abcdef0123456789abcdef01234567"
NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
IMAGE = f"ghcr.io/iterate/sandbox:sha-{SHA}"


def snap(
    name: str,
    state: str = "active",
    *,
    age_days: float = 0,
    image: str | None = IMAGE,
    reason: str | None = None,
    general: bool = False,
    id_: str | None = None,
) -> Snapshot:
    return Snapshot.model_validate(
        {
            "id": id_ or f"id-{name}",
            "name": name,
            "state": state,
            "imageName": image,
            "errorReason": reason,
            "general": general,
            "createdAt": (NOW - timedelta(days=age_days)).isoformat(),
        }
    )


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        (f"iterate-sandbox-{SHA}", True),
        (f"iterate-sandbox-{SHA}-dirty", True),
        ("prd--20261123-120000", True),
        ("a", True),
        ("0.1_x-y", True),
        ("a" * MAX_NAME_LENGTH, True),
        ("a" * (MAX_NAME_LENGTH + 1), False),
        ("", False),
        ("Prd", False),  # upper case
        ("-prd", False),
        (".prd", False),
        ("prd/eu", False),  # the hosted API reportedly refuses `/` and `:`
        ("prd:1", False),
        ("prd eu", False),
        ("prd\n", False),
        ("prü", False),
    ],
)
def test_snapshot_names(name: str, ok: bool) -> None:
    assert (snapshot_name_problem(name) is None) is ok


@pytest.mark.parametrize(
    ("image", "ok"),
    [
        (IMAGE, True),
        ("ghcr.io/iterate/sandbox:sha-abc-dirty", True),
        ("127.0.0.1:5000/iterate/sandbox:v1", True),
        ("localhost:5000/sandbox:1.0", True),
        ("debian:12", True),
        # valid references, but Daytona fails digest references (daytonaio/daytona#4532)
        ("ghcr.io/iterate/sandbox@sha256:" + "a" * 64, False),
        ("ghcr.io/iterate/sandbox:v1@sha256:" + "b" * 64, False),
        ("127.0.0.1:5000/iterate/sandbox", False),  # the port's colon is no tag
        ("ghcr.io/iterate/sandbox", False),
        ("ghcr.io/iterate/sandbox:", False),
        ("ghcr.io/iterate/sandbox:latest", False),
        ("ghcr.io/iterate/sandbox:LATEST", False),
        ("ghcr.io/iterate/sandbox:lts", False),
        ("ghcr.io/iterate/sandbox:stable", False),
        ("ghcr.io/iterate/sandbox@sha256:abc", False),
        ("ghcr.io/iterate/sandbox@sha256:" + "A" * 64, False),
        ("ghcr.io/iterate/sandbox:bad tag", False),
        ("", False),
        (":tag", False),
        ("ghcr.io//sandbox:1", False),
    ],
)
def test_image_references(image: str, ok: bool) -> None:
    assert (daytona_image_problem(image) is None) is ok


def test_sha_names_follow_the_image_tags() -> None:
    assert sha_snapshot_name(SHA, False) == f"iterate-sandbox-{SHA}"
    assert sha_snapshot_name(SHA, True) == f"iterate-sandbox-{SHA}-dirty"
    assert sha_image("ghcr.io/iterate/sandbox", SHA, False) == IMAGE
    assert sha_image("127.0.0.1:5000/x", SHA, True) == f"127.0.0.1:5000/x:sha-{SHA}-dirty"
    assert snapshot_name_problem(sha_snapshot_name(SHA, True)) is None  # fits in 63


@pytest.mark.parametrize(
    ("raw", "stage"),
    [
        ("prd", "prd"),
        ("dev-jonas", "dev-jonas"),
        ("dev-Jonas.Smith", "dev-jonas.smith"),
        ("dev-jonas smith", "dev-jonas-smith"),
        ("dev-jo@nas/x", "dev-jo-nas-x"),
        ("  staging  ", "staging"),
        ("prd--eu", "prd-eu"),  # "--" is reserved for the stage/timestamp boundary
        ("-prd-", "prd"),
        ("dev-ü", "dev"),
        ("...", ""),
        ("x" * 80, "x" * 46),
        ("a" * 45 + "-b", "a" * 45),  # a cut must not end in a separator
    ],
)
def test_sanitize_stage(raw: str, stage: str) -> None:
    assert sanitize_stage(raw) == stage


@pytest.mark.parametrize(
    ("prefix", "user", "app", "expected"),
    [
        (None, "jonas", "prd", ("dev-jonas", "ITERATE_USER")),
        (None, None, "prd", ("prd", "APP_STAGE")),
        ("custom", "jonas", "prd", ("custom", "DAYTONA_SNAPSHOT_PREFIX")),
        (None, "  ", "stg", ("stg", "APP_STAGE")),  # blank means unset
        (None, "Jonas Smith", None, ("dev-jonas-smith", "ITERATE_USER")),
    ],
)
def test_resolve_stage(
    prefix: str | None, user: str | None, app: str | None, expected: tuple[str, str]
) -> None:
    assert resolve_stage(prefix=prefix, iterate_user=user, app_stage=app) == expected


@pytest.mark.parametrize(
    ("prefix", "user", "app", "names"),
    [
        (None, None, None, "DAYTONA_SNAPSHOT_PREFIX, ITERATE_USER, APP_STAGE"),
        (None, "@@", None, "ITERATE_USER='@@'"),
        (None, None, "---", "APP_STAGE='---'"),
    ],
)
def test_resolve_stage_errors_name_the_variables(
    prefix: str | None, user: str | None, app: str | None, names: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_stage(prefix=prefix, iterate_user=user, app_stage=app)
    assert names in str(caught.value)


def test_stage_names_are_utc_and_sortable() -> None:
    berlin = timezone(timedelta(hours=1))
    when = datetime(2026, 1, 2, 0, 30, 5, tzinfo=berlin)
    assert stage_snapshot_name("prd", when) == "prd--20260101-233005"
    longest = stage_snapshot_name("x" * 46, NOW)
    assert snapshot_name_problem(longest) is None
    assert stage_snapshot_name("prd", NOW) > stage_snapshot_name("prd", NOW - timedelta(seconds=1))
    with pytest.raises(ValueError, match="aware"):
        stage_snapshot_name("prd", datetime(2026, 1, 1))  # naive: the point of the test


@pytest.mark.parametrize(
    ("prefix", "matched"),
    [
        ("prd", "prd--"),
        ("prd--", "prd--"),
        ("dev-jonas", "dev-jonas--"),
        ("iterate-sandbox-", "iterate-sandbox-"),
        ("v1.", "v1."),
        (" prd ", "prd--"),
    ],
)
def test_match_prefix(prefix: str, matched: str) -> None:
    assert match_prefix(prefix) == matched


@pytest.mark.parametrize("prefix", ["", "  ", "-", "--", "._-"])
def test_a_prefix_must_not_match_everything(prefix: str) -> None:
    with pytest.raises(ConfigError, match="every snapshot"):
        match_prefix(prefix)


@pytest.mark.parametrize(
    ("prefix", "dev"),
    [
        ("dev-jonas", True),
        ("dev-jonas--", True),
        ("local-ci", True),
        ("DEV-x", True),
        ("prd", False),
        ("developer", False),
        ("devx-", False),
        ("iterate-sandbox-", False),
    ],
)
def test_dev_prefixes_are_not_cached(prefix: str, dev: bool) -> None:
    assert is_dev_prefix(prefix) is dev


def test_pick_latest_keeps_only_real_active_matches() -> None:
    items = [
        snap("xprd--20261123-110000", age_days=0),  # substring match only
        snap("prd-eu--20261123-100000", age_days=0.01),  # another stage
        snap("PRD--20261123-100000", age_days=0.02),  # the filter is case-insensitive; we are not
        snap("prd--20261123-090000", "pulling", age_days=0.03),
        snap("prd--20261122-090000", "error", age_days=1),
        snap("prd--20261121-090000", age_days=2),
        snap("prd--20261120-090000", age_days=3),
        snap("prd--general", age_days=0, general=True),
    ]
    latest = pick_latest(items, "prd--")
    assert latest is not None and latest.name == "prd--20261121-090000"
    assert pick_latest(items[:5], "prd--") is None
    assert pick_latest([], "prd--") is None


@pytest.mark.parametrize(
    ("current", "force", "action", "why"),
    [
        (None, False, Action.CREATE, "no snapshot"),
        (snap("n"), False, Action.DONE, "already active"),
        (snap("n", "active", image=None), False, Action.DONE, "active"),  # no image to compare
        (snap("n", "pending"), False, Action.WAIT, "pending"),
        (snap("n", "pulling"), False, Action.WAIT, "pulling"),
        (snap("n", "building"), False, Action.WAIT, "building"),
        (snap("n", "snapshotting"), False, Action.WAIT, "snapshotting"),
        (snap("n", "validating"), False, Action.WAIT, "new to us"),  # a state we do not know
        (snap("n", "inactive"), False, Action.ACTIVATE, "inactive"),
        (snap("n", "removing"), False, Action.WAIT_GONE, "being deleted"),
        (snap("n", "removing"), True, Action.WAIT_GONE, "being deleted"),
        (snap("n", "error", reason="manifest unknown"), False, Action.FAIL, "manifest unknown"),
        (snap("n", "build_failed", reason="boom\nline 2"), False, Action.FAIL, "boom line 2"),
        (snap("n", "error"), False, Action.FAIL, "no reason"),
        (snap("n", "error", reason="x"), True, Action.REPLACE, "--force"),
        (snap("n", "build_failed"), True, Action.REPLACE, "--force"),
        (snap("n", image="other:1"), False, Action.FAIL, "with image other:1"),
        (snap("n", "pending", image="other:1"), True, Action.REPLACE, "with image other:1"),
    ],
)
def test_decide(current: Snapshot | None, force: bool, action: Action, why: str) -> None:
    decision = decide(current, image=IMAGE, force=force)
    assert decision.action is action
    assert why in decision.why
    assert "\n" not in decision.why


def sized(state: str, cpu: int, mem: int, disk: int) -> Snapshot:
    return snap("x", state).model_copy(update={"cpu": cpu, "mem": mem, "disk": disk})


DIFFER = "it exists with 2 vCPU, 4 GB memory, 10 GB disk, not the requested 999 vCPU, 4 GB"
ASKED = (2, 4, 10)
MORE = (999, 4, 10)


@pytest.mark.parametrize(
    ("current", "wanted", "force", "action", "why"),
    [
        (sized("active", 2, 4, 10), ASKED, False, Action.DONE, "already active"),
        (sized("active", 2, 4, 10), MORE, False, Action.FAIL, DIFFER),
        (sized("pending", 2, 4, 10), MORE, False, Action.FAIL, "--force deletes and re-creates"),
        (sized("inactive", 2, 4, 10), MORE, True, Action.REPLACE, "--force replaces it"),
        (sized("active", 0, 0, 0), MORE, False, Action.DONE, "already active"),  # reports none
        (sized("error", 2, 4, 10), MORE, False, Action.FAIL, "is in state error"),  # reason first
    ],
)
def test_decide_refuses_other_resources(
    current: Snapshot, wanted: tuple[int, int, int], force: bool, action: Action, why: str
) -> None:
    decision = decide(current, image=IMAGE, force=force, resources=wanted)
    assert decision.action is action
    assert why in decision.why and "\n" not in decision.why


# --- retention ---------------------------------------------------------------------------------


def verdicts(items: list[Snapshot], keep: int = 2, days: float = 7) -> dict[str, Verdict]:
    plan = plan_retention(items, "prd--", keep=keep, days=days, now=NOW)
    return {d.snapshot.name: d.verdict for d in plan.decisions}


def test_retention_keeps_newest_n_recent_and_newest_active() -> None:
    items = [
        snap("prd--10", "error", age_days=10),
        snap("prd--20", "error", age_days=20),
        snap("prd--30", age_days=30),  # the newest active: kept although old
        snap("prd--40", age_days=40),
        snap("prd--50", "pending", age_days=50),  # stuck for weeks: deleted
        snap("prd--01", age_days=1),
    ]
    result = verdicts(items[:5], keep=2, days=7)
    assert result == {
        "prd--10": Verdict.KEEP,
        "prd--20": Verdict.KEEP,
        "prd--30": Verdict.KEEP,
        "prd--40": Verdict.DELETE,
        "prd--50": Verdict.DELETE,
    }
    # Once a newer active one exists, the old active one is just old.
    result = verdicts(items, keep=2, days=7)
    assert result["prd--01"] is Verdict.KEEP
    assert result["prd--30"] is Verdict.DELETE


@pytest.mark.parametrize(
    ("keep", "days", "deleted"),
    [
        (5, 7, []),
        (0, 0, ["prd--b", "prd--c", "prd--d"]),  # never the newest active
        (1, 0, ["prd--b", "prd--c", "prd--d"]),  # the newest is also the newest active
        (2, 0, ["prd--c", "prd--d"]),
        (0, 2.5, ["prd--d"]),
        (10, 0, []),
    ],
)
def test_retention_table(keep: int, days: float, deleted: list[str]) -> None:
    items = [
        snap("prd--a", age_days=0.5),
        snap("prd--b", age_days=1.5),
        snap("prd--c", "error", age_days=2),
        snap("prd--d", age_days=3),
    ]
    plan = plan_retention(items, "prd--", keep=keep, days=days, now=NOW)
    assert [s.name for s in plan.to_delete] == deleted


def test_retention_ignores_others_and_removing_and_duplicates() -> None:
    items = [
        snap("prd-eu--old", age_days=100),  # another stage under the substring filter
        snap("xprd--old", age_days=100),
        snap("prd--gone", "removing", age_days=100),
        snap("prd--general", age_days=100, general=True),
        snap("prd--new", age_days=0),
        snap("prd--old", age_days=100, id_="same"),
        snap("prd--old", age_days=100, id_="same"),  # seen twice while paging
    ]
    plan = plan_retention(items, "prd--", keep=0, days=0, now=NOW)
    by_name = {d.snapshot.name: d.verdict for d in plan.decisions}
    assert "prd-eu--old" not in by_name and "xprd--old" not in by_name
    assert by_name["prd--gone"] is Verdict.SKIP
    assert by_name["prd--general"] is Verdict.SKIP
    assert [s.name for s in plan.to_delete] == ["prd--old"]
    assert len(plan.decisions) == 4
    text = "\n".join(plan.describe())
    assert "1 to delete" in text and "newest active" in text


def test_retention_refuses_negative_numbers() -> None:
    with pytest.raises(ValueError, match="negative"):
        plan_retention([], "prd--", keep=-1, days=1, now=NOW)


def test_retention_of_nothing_is_an_empty_plan() -> None:
    plan = plan_retention([], "prd--", keep=5, days=7, now=NOW)
    assert plan.decisions == () and plan.to_delete == ()
