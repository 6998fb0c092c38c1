"""Pure rules: snapshot names, stage prefixes, image references, and what to do with what exists.

Nothing here talks to the network; every rule is pinned by a table in
tests/unit/test_daytona_naming.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pipeline.errors import ConfigError
from pipeline.rules.build_plan import sha_tag
from pipeline.rules.daytona_models import ACTIVE, IN_PROGRESS_STATES, INACTIVE, REMOVING, Snapshot

# The hosted API is stricter than the last public server source (it reportedly rejects `/` and
# `:`), so we stay inside what every version accepts.
MAX_NAME_LENGTH = 63
SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
SHA_NAME_PREFIX = "iterate-sandbox-"
STAGE_SEPARATOR = "--"
TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
_TIMESTAMP_LENGTH = len("20260101-000000")
MAX_STAGE_LENGTH = MAX_NAME_LENGTH - len(STAGE_SEPARATOR) - _TIMESTAMP_LENGTH
# Daytona resolves these tags at pull time, so a snapshot would not pin what it contains.
FLOATING_TAGS = frozenset({"latest", "lts", "stable"})
DEV_PREFIXES = ("dev-", "local-")
_SEPARATORS = "-._"
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_NOT_STAGE_CHARS = re.compile(r"[^a-z0-9._-]+")
_DASH_RUNS = re.compile(r"-{2,}")


def snapshot_name_problem(name: str) -> str | None:
    """Why Daytona (any version) could refuse `name`, or None when it is safe."""
    if not name:
        return "a non-empty snapshot name"
    if len(name) > MAX_NAME_LENGTH:
        return f"at most {MAX_NAME_LENGTH} characters (got {len(name)})"
    if not SAFE_NAME.fullmatch(name):
        return "lower-case letters, digits, '.', '_' and '-', starting with a letter or digit"
    return None


def image_problem(image: str) -> str | None:
    """Why Daytona would refuse `image` for a snapshot, or None when it pins a tag or digest."""
    name, at, digest = image.partition("@")
    if at:
        if not _DIGEST.fullmatch(digest):
            return "a digest of the form image@sha256:<64 lower-case hex>"
        name = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    last = name.rsplit("/", 1)[-1]
    if not name or not last or name.startswith("/") or "//" in name:
        return "an image reference like ghcr.io/iterate/sandbox:sha-<sha>"
    if at:
        return None
    repository, colon, tag = last.partition(":")
    if not colon or not repository:
        return "an image with a tag or digest, like ghcr.io/iterate/sandbox:sha-<sha>"
    if not _TAG.fullmatch(tag):
        return "a tag of [A-Za-z0-9_.-], at most 128 characters"
    if tag.lower() in FLOATING_TAGS:
        return f"a fixed tag or digest; Daytona refuses floating tags like :{tag}"
    return None


def sha_snapshot_name(sha: str, dirty: bool) -> str:
    return f"{SHA_NAME_PREFIX}{sha}{'-dirty' if dirty else ''}"


def sha_image(repository: str, sha: str, dirty: bool) -> str:
    """The tag snapshot_push / snapshot_local give the image of a commit."""
    return f"{repository}:{sha_tag(sha, dirty)}"


def sanitize_stage(raw: str) -> str:
    """A stage as it may appear in a snapshot name: lower-case, odd characters become '-'."""
    stage = _NOT_STAGE_CHARS.sub("-", raw.strip().lower())
    stage = _DASH_RUNS.sub("-", stage)  # "--" separates stage from timestamp; keep it unique
    stage = stage.strip(_SEPARATORS)[:MAX_STAGE_LENGTH]
    return stage.rstrip(_SEPARATORS)


def resolve_stage(
    *, prefix: str | None, iterate_user: str | None, app_stage: str | None
) -> tuple[str, str]:
    """The stage and the variable it came from: DAYTONA_SNAPSHOT_PREFIX, then
    dev-$ITERATE_USER (a developer's own snapshots), then APP_STAGE."""
    candidates = (
        ("DAYTONA_SNAPSHOT_PREFIX", prefix, ""),
        ("ITERATE_USER", iterate_user, "dev-"),
        ("APP_STAGE", app_stage, ""),
    )
    for variable, value, stage_prefix in candidates:
        if value is None or not value.strip():
            continue
        stage = sanitize_stage(stage_prefix + value.strip())
        if not stage or stage == "dev":
            raise ConfigError(
                f"{variable}={value!r} leaves no usable stage name",
                "use letters or digits, e.g. APP_STAGE=prd or ITERATE_USER=jonas",
            )
        return stage, variable
    raise ConfigError(
        "no stage for the snapshot name: none of DAYTONA_SNAPSHOT_PREFIX, ITERATE_USER, "
        "APP_STAGE is set",
        "set ITERATE_USER=<you> for dev snapshots, APP_STAGE=<stage> in deployments, "
        "or DAYTONA_SNAPSHOT_PREFIX",
    )


def stage_snapshot_name(stage: str, now: datetime) -> str:
    """`<stage>--<YYYYMMDD-HHMMSS>` in UTC, so names sort like creation times."""
    if now.tzinfo is None:
        raise ValueError("stage_snapshot_name needs an aware datetime")
    return f"{stage}{STAGE_SEPARATOR}{now.astimezone(UTC).strftime(TIMESTAMP_FORMAT)}"


def match_prefix(prefix: str) -> str:
    """The exact leading text a name must have to belong to `prefix`.

    A bare stage (`prd`) means its stage snapshots (`prd--…`), so that `prd` does not also take
    `prd-eu--…`; a prefix that already ends in a separator (`iterate-sandbox-`) is used as is.
    """
    cleaned = prefix.strip()
    if not cleaned.strip(_SEPARATORS):
        raise ConfigError(
            f"snapshot prefix {prefix!r} would match every snapshot",
            "give a stage like prd or dev-jonas, or a prefix like iterate-sandbox-",
        )
    return cleaned if cleaned.endswith(tuple(_SEPARATORS)) else cleaned + STAGE_SEPARATOR


def is_dev_prefix(prefix: str) -> bool:
    """Developers make snapshots minutes apart and want the newest at once: never cache."""
    return prefix.strip().lower().startswith(DEV_PREFIXES)


def pick_latest(items: Iterable[Snapshot], matched_prefix: str) -> Snapshot | None:
    """The newest active snapshot whose name really starts with `matched_prefix`.

    The server's `name` filter is a case-insensitive substring match, so its answer is only a
    superset of what belongs to the prefix.
    """
    candidates = [
        s
        for s in items
        if s.name.startswith(matched_prefix) and s.state == ACTIVE and not s.general
    ]
    return max(candidates, key=lambda s: (s.created_at, s.name), default=None)


class Action(StrEnum):
    DONE = "done"  # an active snapshot with this name and image exists
    CREATE = "create"
    WAIT = "wait"  # being made (by us earlier or a concurrent run): wait for active
    ACTIVATE = "activate"  # inactive after two unused weeks: activate, then wait
    WAIT_GONE = "wait_gone"  # being deleted: the name is reserved until the row is gone
    REPLACE = "replace"  # delete, wait for it to disappear, create again (--force only)
    FAIL = "fail"


@dataclass(frozen=True)
class Decision:
    action: Action
    why: str


def decide(current: Snapshot | None, *, image: str, force: bool) -> Decision:
    """What to do about the snapshot that has the name we want (None when there is none)."""
    if current is None:
        return Decision(Action.CREATE, "no snapshot has this name yet")
    if current.state == REMOVING:
        return Decision(Action.WAIT_GONE, "it is being deleted; the name frees up when it is gone")
    if current.image_name and current.image_name != image:
        why = f"it exists with image {current.image_name}, not {image}"
        if force:
            return Decision(Action.REPLACE, f"{why}; --force replaces it")
        return Decision(
            Action.FAIL, f"{why} (snapshots are immutable; --force deletes and re-creates it)"
        )
    if current.failed:
        reason = one_line(current.error_reason) or "Daytona gave no reason"
        why = f"it is in state {current.state}: {reason}"
        if force:
            return Decision(Action.REPLACE, f"{why}; --force replaces it")
        return Decision(Action.FAIL, why)
    if current.state == ACTIVE:
        return Decision(Action.DONE, "it is already active")
    if current.state == INACTIVE:
        return Decision(Action.ACTIVATE, "it is inactive (unused for a while)")
    if current.state in IN_PROGRESS_STATES:
        return Decision(Action.WAIT, f"it is {current.state} (being made)")
    # Like the SDK: an unknown state is one we do not know to be final, so wait (with deadline).
    return Decision(Action.WAIT, f"it is in state {current.state!r}, which is new to us")


def one_line(text: str | None) -> str:
    return " ".join((text or "").split())
