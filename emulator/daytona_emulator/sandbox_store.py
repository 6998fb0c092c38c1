"""The sandbox table: rows in a dict, one re-entrant lock, Daytona's lookup and list semantics.

Like the snapshot store, it is touched from the server's event loop, from container work in
worker threads and from tests' own threads (reset), hence the lock; no `await` happens under it.
Destroyed sandboxes are dropped from the table: Daytona keeps them for a day but answers 404 for
them everywhere, which is all a client can see.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from daytona_emulator.errors import ApiError, not_found
from daytona_emulator.sandbox_models import SandboxRow


def not_found_message(id_or_name: str) -> str:
    return f"Sandbox with ID or name {id_or_name} not found"


class SandboxStore:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._rows: dict[str, SandboxRow] = {}

    def clear(self) -> list[SandboxRow]:
        """Forget every row; returns them so their containers can be cleaned up."""
        with self.lock:
            rows = list(self._rows.values())
            self._rows.clear()
            return rows

    def rows(self) -> list[SandboxRow]:
        with self.lock:
            return list(self._rows.values())

    def get(self, sandbox_id: str) -> SandboxRow | None:
        with self.lock:
            return self._rows.get(sandbox_id)

    def is_current(self, row: SandboxRow, generation: int) -> bool:
        """The row is still stored and unchanged since `generation` (no reset, no transition)."""
        with self.lock:
            return self._rows.get(row.id) is row and row.generation == generation

    def remove(self, sandbox_id: str) -> None:
        with self.lock:
            self._rows.pop(sandbox_id, None)

    def insert(self, row: SandboxRow) -> None:
        """Unique (organizationId, name), as Postgres enforces it (Nest turns 23505 into 409)."""
        with self.lock:
            for other in self._rows.values():
                if other.organization_id == row.organization_id and other.name == row.name:
                    raise ApiError(409, f"Sandbox with name {row.name} already exists")
            self._rows[row.id] = row

    def resolve(self, organization_id: str, id_or_name: str) -> SandboxRow:
        """`findOneByIdOrName`: the caller's sandbox by id, else by name; 404 otherwise."""
        with self.lock:
            row = self._rows.get(id_or_name)
            if row is None or row.organization_id != organization_id:
                row = next(
                    (
                        r
                        for r in self._rows.values()
                        if r.organization_id == organization_id and r.name == id_or_name
                    ),
                    None,
                )
            if row is None:
                raise not_found(not_found_message(id_or_name))
            return row

    def matching(
        self, organization_id: str, predicate: Callable[[SandboxRow], bool]
    ) -> list[SandboxRow]:
        """The organization's rows that pass `predicate`, newest first (Daytona's default sort)."""
        with self.lock:
            rows = [
                row
                for row in self._rows.values()
                if row.organization_id == organization_id and predicate(row)
            ]
        rows.sort(key=lambda row: row.created_at, reverse=True)
        return rows
