"""Pure rules for Daytona snapshots: names, stage prefixes, what to do with what exists under a
name, and what `--from` promotes (pinned by tables in tests/unit/test_daytona_naming.py)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from pipeline.errors import ConfigError
from pipeline.rules.auth_words import says_auth_refused
from pipeline.rules.build_plan import sha_tag
from pipeline.rules.daytona_models import (
    ACTIVE,
    IN_PROGRESS_STATES,
    INACTIVE,
    REMOVING,
    CreateSnapshot,
    Sandbox,
    Snapshot,
    resources_words,
)
from pipeline.rules.release import COMMIT

# `ref` of a snapshot whose image Daytona inspected: the digest's hex, then `:daytona`.
_PULLED_REF = re.compile(r"/daytona-(?P<hex>[0-9a-f]{64}):daytona$")

# The hosted API is stricter than the last public server source (it reportedly rejects `/` and
# `:`), so we stay inside what every version accepts.
MAX_NAME_LENGTH = 63
SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
SHA_NAME_PREFIX = "iterate-sandbox-"
STAGE_SEPARATOR = "--"
TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
MAX_STAGE_LENGTH = MAX_NAME_LENGTH - len(STAGE_SEPARATOR) - len("20260101-000000")
DEV_PREFIXES = ("dev-", "local-")
_HEX = re.compile(r"^[0-9a-f]{7,39}$")
_SEPARATORS = "-._"
# A run of odd characters and dashes becomes one '-': "--" separates stage from timestamp.
_DASH_RUN = re.compile(r"[^a-z0-9._]+")


def snapshot_name_problem(name: str) -> str | None:
    """Why Daytona (any version) could refuse `name`, or None when it is safe."""
    if not name:
        return "a non-empty snapshot name"
    if len(name) > MAX_NAME_LENGTH:
        return f"at most {MAX_NAME_LENGTH} characters (got {len(name)})"
    if not SAFE_NAME.fullmatch(name):
        return "lower-case letters, digits, '.', '_' and '-', starting with a letter or digit"
    return None


def sha_snapshot_name(sha: str, dirty: bool) -> str:
    return f"{SHA_NAME_PREFIX}{sha}{'-dirty' if dirty else ''}"


def sha_image(repository: str, sha: str, dirty: bool) -> str:
    """The tag snapshot_push / snapshot_local give the image of a commit."""
    return f"{repository}:{sha_tag(sha, dirty)}"


def sanitize_stage(raw: str) -> str:
    stage = _DASH_RUN.sub("-", raw.strip().lower())
    return stage.strip(_SEPARATORS)[:MAX_STAGE_LENGTH].rstrip(_SEPARATORS)


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


def utc_stamp(now: datetime) -> str:
    """`YYYYMMDD-HHMMSS` in UTC: snapshot and sandbox names sort like their creation times."""
    if now.tzinfo is None:
        raise ValueError("a snapshot or sandbox name needs an aware datetime")
    return now.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def stage_snapshot_name(stage: str, now: datetime) -> str:
    return f"{stage}{STAGE_SEPARATOR}{utc_stamp(now)}"


def match_prefix(prefix: str) -> str:
    """The exact leading text a name must have to belong to `prefix`. A bare stage (`prd`) means its
    stage snapshots (`prd--…`), so that `prd` does not also take `prd-eu--…`; a prefix that already
    ends in a separator (`iterate-sandbox-`) is used as is."""
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
    """The newest active snapshot whose name really starts with `matched_prefix`. The server's
    `name` filter is a case-insensitive substring match, so its answer is only a superset of what
    belongs to the prefix."""
    candidates = [
        s
        for s in items
        if s.name.startswith(matched_prefix) and s.state == ACTIVE and not s.general
    ]
    return max(candidates, key=lambda s: (s.created_at, s.name), default=None)


def pulled_digest(snapshot: Snapshot) -> str | None:
    """The digest Daytona resolved the snapshot's image to, read from its `ref`; None when
    `ref` is not set yet or not in the form Daytona v0.190 gives it."""
    found = _PULLED_REF.search(snapshot.ref or "")
    return f"sha256:{found['hex']}" if found else None


def pulled_problem(snapshot: Snapshot, digest: str | None) -> str | None:
    """Why an active snapshot is not known to hold the image of `digest`, or None. A snapshot
    whose `ref` says nothing counts as not known: what ships must be shown to be what was
    tested."""
    if digest is None or (pulled := pulled_digest(snapshot)) == digest:
        return None
    if pulled is None:
        return f"Daytona does not say which digest it pulled (ref {snapshot.ref!r})"
    return f"Daytona pulled {pulled}, not the expected {digest}"


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


def decide(
    current: Snapshot | None,
    *,
    image: str,
    force: bool,
    resources: tuple[int, int, int] | None = None,
    digest: str | None = None,
) -> Decision:
    """What to do about the snapshot that has the name we want (None when there is none).
    `resources` (vCPU, GB memory, GB disk) is what was asked for: a snapshot of that name with other
    resources is refused like one with another image (snapshots are immutable), since a run that
    passes without the resources it was configured with hides a configuration error. `digest` is the
    image the tag must hold: an active snapshot counts as done only when Daytona says (`ref`) it
    pulled that digest."""
    if current is None:
        return Decision(Action.CREATE, "no snapshot has this name yet")
    if current.state == REMOVING:
        return Decision(Action.WAIT_GONE, "it is being deleted; the name frees up when it is gone")
    immutable = " (snapshots are immutable; --force deletes and re-creates it)"
    if current.image_name and current.image_name != image:
        why = f"it exists with image {current.image_name}, not {image}"
        return _replace_or_fail(why, force, immutable)
    if current.failed:
        return _replace_or_fail(f"it is in state {current.state}: {reason(current)}", force)
    if resources is not None and _other_resources(current, resources):
        why = f"it exists with {current.resources()}, not the requested "
        return _replace_or_fail(why + resources_words(*resources), force, immutable)
    if current.state == ACTIVE:
        if problem := pulled_problem(current, digest):
            why = f"it is active, but {problem}"
            return _replace_or_fail(why, force, " (--force deletes and re-creates it)")
        return Decision(Action.DONE, "it is already active" + (f", of {digest}" if digest else ""))
    if current.state == INACTIVE:
        return Decision(Action.ACTIVATE, "it is inactive (unused for a while)")
    if current.state in IN_PROGRESS_STATES:
        return Decision(Action.WAIT, f"it is {current.state} (being made)")
    # Like the SDK: an unknown state is one we do not know to be final, so wait (with deadline).
    return Decision(Action.WAIT, f"it is in state {current.state!r}, which is new to us")


def _replace_or_fail(why: str, force: bool, hint: str = "") -> Decision:
    if force:
        return Decision(Action.REPLACE, f"{why}; --force replaces it")
    return Decision(Action.FAIL, why + hint)


def _other_resources(snapshot: Snapshot, resources: tuple[int, int, int]) -> bool:
    """A server that reports no resources (all 0) is not contradicted."""
    have = (snapshot.cpu, snapshot.mem, snapshot.disk)
    return any(have) and have != resources


class SnapshotSpec(CreateSnapshot):
    # What `image` (a tag) was verified to resolve to: held against Daytona's `ref`, never sent.
    digest: str | None = Field(None, exclude=True)

    @property
    def resources(self) -> tuple[int, int, int]:
        return (self.cpu, self.memory, self.disk)

    def describe(self) -> list[str]:
        return [
            f"name:       {self.name}",
            f"image:      {self.image}" + (f" (= {self.digest})" if self.digest else ""),
            f"resources:  {resources_words(*self.resources)}",
            f"entrypoint: {' '.join(self.entrypoint) if self.entrypoint else '(the image’s)'}",
        ]


class ImageCheck(StrEnum):
    """What is checked in the image's registry before Daytona hears of the image, and so what
    Daytona's `ref` is held to once the snapshot is active."""

    DIGEST = "the tag resolves to the expected digest (registry v2 API), and Daytona pulled it"
    TAG = "the tag's digest now (registry v2 API), and Daytona pulled it"
    NONE = "skipped (--skip-image-check): Daytona's pull is not checked either"


def image_check(*, image_digest: str | None, skip_tag_check: bool) -> ImageCheck:
    """A given digest is always verified (also with --skip-image-check): a tag pushed again
    after the build would otherwise become the release; it also proves the tag exists."""
    if image_digest is not None:
        return ImageCheck.DIGEST
    return ImageCheck.NONE if skip_tag_check else ImageCheck.TAG


def failure_fix(reason: str | None) -> str:
    """What to do about a snapshot that ended in error, judged from Daytona's errorReason."""
    text = (reason or "").lower()
    then = "then re-run with --force to replace the failed snapshot"
    if says_auth_refused(text):
        return (
            "let Daytona pull the image: run `nox -s daytona_registry` (DAYTONA_REGISTRY_USERNAME "
            "and DAYTONA_REGISTRY_PASSWORD: a token that can read it) to give Daytona a registry "
            f"entry for its registry, {then}"
        )
    if "manifest unknown" in text or "not found" in text:
        return f"push the image first (nox -s snapshot_push), {then}"
    if "exceeds maximum" in text or "quota" in text:
        return f"shrink the image or lower SANDBOX_SNAPSHOT_CPU/_MEMORY/_DISK, {then}"
    return f"fix the cause, {then}"


def one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def reason(failed: Snapshot | Sandbox) -> str:
    return one_line(failed.error_reason) or "Daytona gave no reason"


# --- promotion and rollback (`snapshot_stage -- --from`) -----------------------------------------


@dataclass(frozen=True)
class PromoteFrom:
    """What `--from` names: a commit (its pushed `:sha-<sha>` image) or an existing snapshot."""

    kind: Literal["commit", "snapshot"]
    value: str

    def describe(self) -> str:
        return f"{self.kind} {self.value}"


def promote_source(text: str) -> PromoteFrom:
    """`--from`'s value: a full commit sha, else a snapshot name; ConfigError for anything else."""
    cleaned = text.strip()
    if COMMIT.fullmatch(cleaned.lower()):
        return PromoteFrom("commit", cleaned.lower())
    if problem := snapshot_name_problem(cleaned):
        raise ConfigError(
            f"--from {text!r} is neither a 40-character commit sha nor a snapshot name "
            f"(a name needs {problem})",
            "give the commit whose pushed image to promote, or the snapshot to roll back to",
        )
    return PromoteFrom("snapshot", cleaned)


def missing_source_fix(name: str) -> str:
    hint = "; a commit needs its full 40-character sha" if _HEX.fullmatch(name.lower()) else ""
    return (
        "check the name (`nox -s snapshot_latest -- --prefix <stage>` prints a stage's newest)"
        + hint
    )


def resources_note(source: Snapshot, wanted: SnapshotSpec) -> str | None:
    """A line for the plan when the snapshot rolled back to had other resources than the new
    one gets (resources come from the flags and variables, as for any stage snapshot)."""
    if not _other_resources(source, wanted.resources):
        return None
    return (
        f"{source.name} had {source.resources()}; the new snapshot gets "
        f"{resources_words(*wanted.resources)} (pass --cpu/--memory/--disk to match)"
    )
