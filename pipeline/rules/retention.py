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
    # One snapshot per id: paging while others create snapshots can show one twice.
    ours: dict[str, Snapshot] = {}
    for snapshot in snapshots:
        if snapshot.name.startswith(matched_prefix):
            ours.setdefault(snapshot.id, snapshot)
    unique = sorted(ours.values(), key=lambda s: (s.created_at, s.name), reverse=True)
    newest_active = next((s for s in unique if s.state == ACTIVE and not s.general), None)
    cutoff = now - timedelta(days=days)
    decisions: list[Decision] = []
    rank = 0
    for snapshot in unique:
        if snapshot.general:
            decisions.append(Decision(snapshot, Verdict.SKIP, "a Daytona general snapshot"))
            continue
        if snapshot.state == REMOVING:
            decisions.append(Decision(snapshot, Verdict.SKIP, "already being deleted"))
            continue
        rank += 1
        if snapshot is newest_active:
            decisions.append(Decision(snapshot, Verdict.KEEP, "newest active"))
        elif rank <= keep:
            decisions.append(Decision(snapshot, Verdict.KEEP, f"among the newest {keep}"))
        elif snapshot.created_at > cutoff:
            decisions.append(Decision(snapshot, Verdict.KEEP, f"newer than {days:g} days"))
        else:
            decisions.append(
                Decision(snapshot, Verdict.DELETE, f"older than {days:g} days, not newest {keep}")
            )
    return RetentionPlan(matched_prefix, keep, days, tuple(decisions))
