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
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol, cast

from monitor.store.base import Lease, StaleEpoch, Store

#: the writes a fenced view checks (every write of the contract but the seconds')
FENCED_WRITES = frozenset(
    {
        "create_incident",
        "update_incident",
        "add_event",
        "enqueue",
        "claim_due",
        "update_outbox",
        "prune_outbox",
        "set_state",
        "add_maintenance",
        "remove_maintenance",
        "open_spell",
        "close_spell",
    }
)


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Db(Protocol):
    """A connection inside a transaction: sqlite3's own, or the PostgreSQL adapter."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> Any: ...


def _lease(row: Any) -> Lease:
    return Lease(row[0], row[1], int(row[2]), float(row[3]))


class SqlEngine:
    """The hooks the mixins use, and the key/value table every backend has."""

    if TYPE_CHECKING:
        path: str
        _lock: threading.RLock
        _integrity_errors: tuple[type[BaseException], ...]

        def _tx(self) -> AbstractContextManager[Db]: ...

        def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    #: the lease row's lock in a fenced transaction (PostgreSQL: FOR SHARE; SQLite's
    #: write transactions are serial already)
    _fence_lock = ""

    def __init__(self) -> None:
        #: per thread: (lease name, epoch) of the fenced call running in it, if any
        self._fence_local = threading.local()
        super().__init__()

    def _now(self, db: Db) -> float:
        """The store's clock (PostgreSQL's is shared by every host)."""
        return time.time()

    def _check_fence(self, db: Db) -> None:
        """Inside a write transaction: a fenced write of a replaced leader fails."""
        fence: tuple[str, int] | None = getattr(self._fence_local, "value", None)
        if fence is None:
            return
        name, epoch = fence
        row = db.execute(
            "SELECT epoch FROM leases WHERE name = ?" + self._fence_lock, (name,)
        ).fetchone()
        if row is None or int(row[0]) != epoch:
            now = None if row is None else int(row[0])
            raise StaleEpoch(f"lease {name!r} is at epoch {now}, not {epoch}: another leads")

    @contextmanager
    def _fenced(self, name: str, epoch: int) -> Iterator[None]:
        previous = getattr(self._fence_local, "value", None)
        self._fence_local.value = (name, epoch)
        try:
            yield
        finally:
            self._fence_local.value = previous

    def fenced(self, name: str, epoch: int) -> Store:
        return cast(Store, _FencedView(self, name, epoch))

    # --- leadership
    def acquire_lease(
        self, name: str, holder: str, ttl: float, now: float | None = None
    ) -> Lease | None:
        with self._tx() as db:
            at = self._now(db) if now is None else now
            row = db.execute(
                "INSERT INTO leases (name, holder, epoch, expires_at) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (name) DO UPDATE SET"
                " epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch"
                " ELSE leases.epoch + 1 END,"
                " holder = excluded.holder, expires_at = excluded.expires_at"
                " WHERE leases.holder = excluded.holder OR leases.expires_at <= ?"
                " RETURNING name, holder, epoch, expires_at",
                (name, holder, at + ttl, at),
            ).fetchone()
        return None if row is None else _lease(row)

    def release_lease(self, name: str, holder: str) -> None:
        with self._tx() as db:
            at = self._now(db)
            db.execute(
                "UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ?",
                (at, name, holder),
            )

    def current_lease(self, name: str) -> Lease | None:
        rows = self._query(
            "SELECT name, holder, epoch, expires_at FROM leases WHERE name = ?", (name,)
        )
        return (
            None if not rows else Lease(rows[0][0], rows[0][1], int(rows[0][2]), float(rows[0][3]))
        )

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


class _FencedView:
    """A store whose writes check the lease's epoch (`SqlEngine.fenced`); reads pass."""

    def __init__(self, store: SqlEngine, name: str, epoch: int) -> None:
        self._store = store
        self._name = name
        self._epoch = epoch

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._store, attr)
        if attr not in FENCED_WRITES:
            return value

        def fenced(*args: Any, **kwargs: Any) -> Any:
            with self._store._fenced(self._name, self._epoch):
                return value(*args, **kwargs)

        return fenced
