"""Pure retention planning: which snapshots of a prefix to keep and which to delete."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pipeline.rules.daytona_models import ACTIVE, REMOVING, Snapshot


class Verdict(StrEnum):
    KEEP = "keep"
    DELETE = "delete"
    SKIP = "skip"  # already being deleted, or not ours to delete


@dataclass(frozen=True)
class Decision:
    snapshot: Snapshot
    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class RetentionPlan:
    prefix: str
    keep: int
    days: float
    decisions: tuple[Decision, ...]  # newest first

    @property
    def to_delete(self) -> tuple[Snapshot, ...]:
        return tuple(d.snapshot for d in self.decisions if d.verdict is Verdict.DELETE)

    def describe(self) -> list[str]:
        head = (
            f"prefix {self.prefix}: {len(self.decisions)} snapshots, "
            f"{len(self.to_delete)} to delete (keep newest {self.keep}, "
            f"anything newer than {self.days:g} days, and the newest active one)"
        )
        rows = [
            f"  {d.verdict.value:<6} {d.snapshot.name:<63} {d.snapshot.state:<12} "
            f"{d.snapshot.created_at:%Y-%m-%d %H:%M}  {d.reason}"
            for d in self.decisions
        ]
        return [head, *rows]


def plan_retention(
    snapshots: Iterable[Snapshot],
    matched_prefix: str,
    *,
    keep: int,
    days: float,
    now: datetime,
) -> RetentionPlan:
    """Keep the newest `keep`, anything younger than `days`, and always the newest active one (what
    `latest_snapshot` hands out, even when it is old); delete the rest. Only names that really start
    with `matched_prefix` are considered: the server's name filter is a substring match and would
    also return other stages' snapshots."""
    if keep < 0 or days < 0:
        raise ValueError("keep and days must not be negative")
    # One per id (the first seen): paging while others create snapshots can show one twice.
    ours = {s.id: s for s in reversed(list(snapshots)) if s.name.startswith(matched_prefix)}
    unique = sorted(ours.values(), key=lambda s: (s.created_at, s.name), reverse=True)
    newest_active = next((s for s in unique if s.state == ACTIVE and not s.general), None)
    ranked = [s.id for s in unique if not s.general and s.state != REMOVING]  # the others: skipped
    decisions: list[Decision] = []
    for snapshot in unique:
        if snapshot.general:
            verdict, reason = Verdict.SKIP, "a Daytona general snapshot"
        elif snapshot.state == REMOVING:
            verdict, reason = Verdict.SKIP, "already being deleted"
        elif snapshot is newest_active:
            verdict, reason = Verdict.KEEP, "newest active"
        elif ranked.index(snapshot.id) < keep:
            verdict, reason = Verdict.KEEP, f"among the newest {keep}"
        elif snapshot.created_at > now - timedelta(days=days):
            verdict, reason = Verdict.KEEP, f"newer than {days:g} days"
        else:
            verdict, reason = Verdict.DELETE, f"older than {days:g} days, not newest {keep}"
        decisions.append(Decision(snapshot, verdict, reason))
    return RetentionPlan(matched_prefix, keep, days, tuple(decisions))
