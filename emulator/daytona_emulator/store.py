"""The snapshot table: rows in a dict, one re-entrant lock, Daytona's lookup and list semantics.

Route handlers and the lifecycle task both run on the server's event loop, but tests may poke
the store from their own thread through the server handle, hence the lock. Compound operations
(check then insert) hold `store.lock` around the whole sequence; no `await` happens under it.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from daytona_emulator.errors import ApiError, not_found
from daytona_emulator.models import QUOTA_STATES, STATE_ORDER, Snapshot
from daytona_emulator.validation import ListQuery


def is_uuid(value: str) -> bool:
    """What Nest's ParseUUIDPipe (and Postgres' uuid column) accept: any RFC-4122 version."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36 and str(parsed) == value.lower()


def _like(pattern: str) -> re.Pattern[str]:
    """Postgres `ILIKE '%<pattern>%'`: `%` and `_` in the filter are wildcards, `\\` escapes."""
    parts: list[str] = [".*"]
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            parts.append(re.escape(next(chars, "\\")))
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    parts.append(".*")
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _sort_value(row: Snapshot, field: str) -> Any:
    if field == "name":
        return row.name
    if field == "state":
        return STATE_ORDER[row.state.value]
    if field == "createdAt":
        return row.created_at
    return row.last_used_at


@dataclass(frozen=True)
class Page:
    items: list[Snapshot]
    total: int
    page: int
    total_pages: int


class SnapshotStore:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._rows: dict[str, Snapshot] = {}

    @contextmanager
    def locked(self) -> Iterator[None]:
        with self.lock:
            yield

    def clear(self) -> None:
        with self.lock:
            self._rows.clear()

    def rows(self) -> list[Snapshot]:
        with self.lock:
            return list(self._rows.values())

    def get(self, snapshot_id: str) -> Snapshot | None:
        with self.lock:
            return self._rows.get(snapshot_id)

    def remove(self, snapshot_id: str) -> None:
        with self.lock:
            self._rows.pop(snapshot_id, None)

    def insert(self, row: Snapshot) -> None:
        """Unique (organizationId, name): a `removing` row still holds its name."""
        with self.lock:
            if self.by_name(row.organization_id, row.name) is not None:
                raise ApiError(
                    409, f'Snapshot with name "{row.name}" already exists for this organization'
                )
            self._rows[row.id] = row

    def by_name(self, organization_id: str | None, name: str) -> Snapshot | None:
        with self.lock:
            for row in self._rows.values():
                if row.organization_id == organization_id and row.name == name:
                    return row
            return None

    def _general_by_name(self, name: str) -> Snapshot | None:
        return next((r for r in self._rows.values() if r.general and r.name == name), None)

    def resolve(self, organization_id: str, id_or_name: str) -> Snapshot:
        """`SnapshotAccessGuard`: the caller's snapshot (or a general one) by name, else by id."""
        with self.lock:
            row = self.by_name(organization_id, id_or_name) or self._general_by_name(id_or_name)
            if row is not None:
                return row
            if is_uuid(id_or_name):
                row = self._rows.get(id_or_name.lower())
                if row is not None:
                    if row.organization_id == organization_id or row.general:
                        return row
                    # Another organization's snapshot: the guard hides it behind a 404.
                    raise not_found(f"Snapshot with ID or name {id_or_name} not found")
            raise not_found(f"Snapshot with name {id_or_name} not found")

    def count(self, organization_id: str, predicate: Callable[[Snapshot], bool]) -> int:
        with self.lock:
            return sum(
                1
                for row in self._rows.values()
                if row.organization_id == organization_id and predicate(row)
            )

    def quota_usage(self, organization_id: str) -> int:
        return self.count(organization_id, lambda row: row.state in QUOTA_STATES)

    def list(self, organization_id: str, query: ListQuery) -> Page:
        """`getAllSnapshots`: own + general rows, filtered, sorted and paginated like Daytona."""
        with self.lock:
            rows = [
                row
                for row in self._rows.values()
                if row.organization_id == organization_id or row.general
            ]
        if query.name:
            pattern = _like(query.name)
            rows = [row for row in rows if pattern.fullmatch(row.name)]
        if query.source_sandbox_id is not None:
            rows = [row for row in rows if row.source_sandbox_id == query.source_sandbox_id]
        # Sort passes from the least to the most significant key; Python's sort is stable.
        if query.sort != "createdAt":
            rows.sort(key=lambda row: row.created_at, reverse=True)
        if query.order == "asc":
            rows.sort(key=lambda row: _nulls_last_asc(_sort_value(row, query.sort)))
        else:
            rows.sort(key=lambda row: _nulls_last_desc(_sort_value(row, query.sort)), reverse=True)
        rows.sort(key=lambda row: row.general)
        total = len(rows)
        start = (query.page - 1) * query.limit
        return Page(
            items=rows[start : start + query.limit],
            total=total,
            page=query.page,
            total_pages=-(-total // query.limit),
        )


def _nulls_last_asc(value: Any) -> tuple[bool, Any]:
    return (value is None, value if value is not None else 0)


def _nulls_last_desc(value: Any) -> tuple[bool, Any]:
    # Sorted with reverse=True: present values (True) first, descending; nulls (False) last.
    return (value is not None, value if value is not None else 0)
