"""Pure rules for Daytona sandboxes: waits, names, labels, cleanup, and fixes for refusals.

Every sandbox the pipeline makes carries `created-by: sandbox-pipeline`, so a cleanup finds the
leftovers of crashed runs and never touches anyone else's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from pipeline.rules.auth_words import says_auth_refused
from pipeline.rules.daytona_models import (
    SANDBOX_ARCHIVED,
    SANDBOX_DESTROYED,
    SANDBOX_ERROR,
    SANDBOX_GONE_STATES,
    SANDBOX_STARTED,
    SANDBOX_STOPPED,
    Sandbox,
)
from pipeline.rules.snapshot_names import Action, Decision, reason, utc_stamp

CREATED_BY_LABEL: Final = "created-by"
CREATED_BY: Final = "sandbox-pipeline"
GIT_SHA_LABEL: Final = "git-sha"
PIPELINE_LABELS: Final = {CREATED_BY_LABEL: CREATED_BY}
PREVIEW_TOKEN_HEADER: Final = "X-Daytona-Preview-Token"  # noqa: S105 - a header name
DEFAULT_PORT: Final = 3000  # the sandbox daemon's HTTP port
DEFAULT_AUTO_STOP: Final = 60  # minutes idle before Daytona stops it
DEFAULT_AUTO_DELETE: Final = 0  # minutes after a stop before Daytona deletes it: at once
DEFAULT_LOG_LINES: Final = 50


def start_verdict(sandbox: Sandbox | None) -> Decision:
    if sandbox is None:
        return Decision(Action.FAIL, "it disappeared (deleted by someone else?)")
    if sandbox.state == SANDBOX_STARTED:
        return Decision(Action.DONE, "it is started")
    if sandbox.failed:
        return Decision(Action.FAIL, f"it is in state {sandbox.state}: {reason(sandbox)}")
    if sandbox.state in SANDBOX_GONE_STATES:
        return Decision(Action.FAIL, f"it is {sandbox.state} (being deleted)")
    if sandbox.state in (SANDBOX_STOPPED, SANDBOX_ARCHIVED):
        return Decision(Action.FAIL, f"it is {sandbox.state}, not starting")
    # creating, starting, pulling_snapshot, restoring, or a state newer than this code.
    return Decision(Action.WAIT, f"it is {sandbox.state}")


def stopped_verdict(sandbox: Sandbox | None) -> Decision:
    """Waiting after a stop: any settled state will do, since a delete follows."""
    if sandbox is None or sandbox.state in SANDBOX_GONE_STATES:
        return Decision(Action.DONE, "it is gone or being deleted")
    if sandbox.state in (SANDBOX_STOPPED, SANDBOX_ARCHIVED) or sandbox.failed:
        return Decision(Action.DONE, f"it is {sandbox.state}")
    return Decision(Action.WAIT, f"it is {sandbox.state}")


def gone_verdict(sandbox: Sandbox | None) -> Decision:
    """Waiting after a delete: Daytona answers 404 (or shows `destroyed`) once it is gone."""
    if sandbox is None or sandbox.state == SANDBOX_DESTROYED:
        return Decision(Action.DONE, "it is gone")
    if sandbox.state == SANDBOX_ERROR and sandbox.desired_state == SANDBOX_DESTROYED:
        return Decision(Action.FAIL, f"deleting it failed: {reason(sandbox)}")
    return Decision(Action.WAIT, f"it is {sandbox.state}")


def settling(sandbox: Sandbox) -> bool:
    """A state change is under way: Daytona refuses another one until it ends."""
    return sandbox.desired_state is not None and sandbox.state != sandbox.desired_state


def pipeline_labels(
    extra: Mapping[str, str] | None = None, *, git_sha: str | None = None
) -> dict[str, str]:
    """The labels of a sandbox the pipeline makes; `created-by` always wins, so a cleanup can
    rely on it."""
    return {**({GIT_SHA_LABEL: git_sha} if git_sha else {}), **(extra or {}), **PIPELINE_LABELS}


def is_ours(found: Sandbox, labels: Mapping[str, str]) -> bool:
    """The sandbox carries every label we asked for: our own earlier create made it."""
    return all(found.labels.get(k) == v for k, v in labels.items())


def new_sandbox_name(now: datetime, suffix: str) -> str:
    """`sbx-<YYYYMMDD-HHMMSS>-<suffix>`: unique per run."""
    return f"sbx-{utc_stamp(now)}-{suffix}"


def create_failure_fix(message: str) -> str:
    text = message.lower()
    if "failed to start" in text:
        return start_failure_fix(message)
    if "snapshot" in text and "not found" in text:
        return (
            "check --snapshot / DAYTONA_SNAPSHOT_NAME (`nox -s snapshot_latest` prints the newest "
            "active snapshot of a stage)"
        )
    if "snapshot" in text and ("inactive" in text or " is " in text):
        return (
            "use an active snapshot: re-run `nox -s snapshot_daytona` for it (that reactivates "
            "an inactive one) or pick a newer one"
        )
    if "quota" in text or "exceeds maximum" in text or "limit" in text:
        return (
            "stop or delete sandboxes (`nox -s sandbox_daytona -- --cleanup --yes` removes the "
            "pipeline's), or raise the organization's limits"
        )
    return "correct the request and re-run"


def start_failure_fix(reason: str | None) -> str:
    text = (reason or "").lower()
    if says_auth_refused(text):
        return (
            "let Daytona pull the snapshot's image: run `nox -s daytona_registry` to give it a "
            "registry entry with a token that can read the image"
        )
    if "manifest unknown" in text or "no such image" in text:
        return "the snapshot's image is gone from its registry: push it again or use a newer one"
    return (
        "the snapshot's image must start and keep running (its entrypoint must not exit); "
        "try it locally with `nox -s sandbox_up`"
    )


@dataclass(frozen=True)
class CleanupPlan:
    to_delete: tuple[Sandbox, ...]
    kept: tuple[Sandbox, ...]  # younger than the cut-off, or of unknown age
    older_than: timedelta

    def describe(self) -> list[str]:
        lines = [f"   delete {_label(s)}" for s in self.to_delete]
        young = f"younger than {self.older_than.total_seconds() / 60:g} min"
        lines += [f"   keep   {_label(s)} ({young})" for s in self.kept]
        lines.append(f"   {len(self.to_delete)} to delete, {len(self.kept)} kept")
        return lines


def plan_cleanup(
    sandboxes: Iterable[Sandbox], *, now: datetime, older_than: timedelta
) -> CleanupPlan:
    """Which of the pipeline's sandboxes to delete: those at least `older_than` old. The server's
    label filter is checked again (never delete what lacks our label), and sandboxes already on
    their way out are left alone."""
    ours = [
        s
        for s in sandboxes
        if s.labels.get(CREATED_BY_LABEL) == CREATED_BY and s.state not in SANDBOX_GONE_STATES
    ]
    ours.sort(key=lambda s: (s.created_at or now, s.name))
    cut = now - older_than
    # Unknown age (taken as now) is kept: a running test's sandbox must not vanish under it.
    old = tuple(s for s in ours if older_than <= timedelta(0) or (s.created_at or now) <= cut)
    kept = tuple(s for s in ours if s not in old)
    return CleanupPlan(to_delete=old, kept=kept, older_than=older_than)


def interval_words(minutes: int | None, off: str, zero: str | None = None) -> str:
    """How the plan shows auto-stop/auto-delete minutes: `off` for never, `zero` for 0."""
    if minutes is None:
        return "Daytona's default"
    if minutes > 0:
        return f"{minutes} min"
    return zero if minutes == 0 and zero is not None else off


def _label(sandbox: Sandbox) -> str:
    created = sandbox.created_at.strftime("%Y-%m-%d %H:%M") if sandbox.created_at else "?"
    sha = sandbox.labels.get(GIT_SHA_LABEL)
    return (
        f"{sandbox.name} ({sandbox.state}, created {created}, snapshot {sandbox.snapshot or '?'}"
        + (f", git {sha[:12]}" if sha else "")
        + ")"
    )
