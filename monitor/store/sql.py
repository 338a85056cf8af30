"""What the SQL backends share: the statements of `sql_seconds`, `sql_incidents` and
`sql_outbox` are written once, in the SQL both SQLite and PostgreSQL speak (``?``
placeholders, ``ON CONFLICT``, ``RETURNING``), and run on whatever connection the engine
(`monitor/store/sqlite.py`, `monitor/store/postgres.py`) hands them.

An engine provides `_tx()` (one write transaction, yielding a `Db`), `_query()` (a read),
`_lock` (held around writes and the mixins' caches) and `_integrity_errors` (its driver's
constraint-violation exceptions). Rows are read by index or by column name.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Db(Protocol):
    """A connection inside a transaction: sqlite3's own, or the PostgreSQL adapter."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> Any: ...


class SqlEngine:
    """The hooks the mixins use, and the key/value table every backend has."""

    if TYPE_CHECKING:
        path: str
        _lock: threading.RLock
        _integrity_errors: tuple[type[BaseException], ...]

        def _tx(self) -> AbstractContextManager[Db]: ...

        def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def _bump_ids(self, db: Db, table: str) -> None:
        """After rows inserted with ids of their own, the ids the table picks go on after
        them (SQLite's AUTOINCREMENT does so by itself)."""

    # --- key/value state (policy windows, watermarks, the report ledger)
    def get_state(self, key: str) -> Any | None:
        rows = self._query("SELECT value FROM kv WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else None

    def set_state(self, key: str, value: Any) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO kv(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )
