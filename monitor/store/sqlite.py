"""The embedded SQLite backend: one file, WAL, schema versioned by numbered migrations.

The class is assembled from one mixin per concern (`sql_seconds`, `sql_incidents`,
`sql_outbox`: the SQL shared with PostgreSQL, monitor/store/sql.py), all sharing one
connection guarded by one lock.
Migrations are the files `migrations/NNNN_*.sql`, applied in order;
`PRAGMA user_version` records the last one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from monitor.store.base import StoreError
from monitor.store.sql_blocklist import BlocklistMixin
from monitor.store.sql_incidents import IncidentsMixin
from monitor.store.sql_outbox import OutboxMixin
from monitor.store.sql_seconds import SecondsMixin


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("monitor.store").joinpath("migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text()))
    return sorted(found)


class SQLiteStore(SecondsMixin, IncidentsMixin, OutboxMixin, BlocklistMixin):
    #: one daemon per file (the CLI may share it, never a second daemon)
    shared = False

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a crash may lose the last transactions, never corrupt it
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
        except (sqlite3.Error, OSError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise StoreError(f"store: cannot open SQLite store {path}: {why}") from None
        self._lock = threading.RLock()
        self._integrity_errors = (sqlite3.IntegrityError,)
        super().__init__()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back whole on error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._check_fence(self._db)
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def migrate(self) -> None:
        with self._lock:
            try:
                current = self._db.execute("PRAGMA user_version").fetchone()[0]
            except sqlite3.Error as exc:
                raise StoreError(f"store: cannot read SQLite store {self.path}: {exc}") from None
            known = _migrations()
            latest = known[-1][0] if known else 0
            if current > latest:
                raise StoreError(
                    f"store: {self.path} has schema version {current}, newer than this "
                    f"availmon knows ({latest}); upgrade availmon"
                )
            # A migration that rebuilds a table (SQLite cannot drop a constraint) must run
            # with foreign keys off, which only takes effect outside a transaction; each
            # one checks them itself before it commits.
            self._db.execute("PRAGMA foreign_keys=OFF")
            try:
                for number, name, sql in known:
                    if number <= current:
                        continue
                    try:
                        self._db.executescript(f"BEGIN IMMEDIATE;\n{sql}")
                        broken = self._db.execute("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise sqlite3.IntegrityError(f"foreign keys broken: {broken[:3]}")
                        # (not executescript: it would COMMIT first, by itself)
                        self._db.execute(f"PRAGMA user_version={number}")
                        self._db.execute("COMMIT")
                    except sqlite3.Error as exc:
                        if self._db.in_transaction:
                            self._db.execute("ROLLBACK")
                        why = f"store: {self.path}: migration {name} failed: {exc}"
                        raise StoreError(why) from None
            finally:
                self._db.execute("PRAGMA foreign_keys=ON")

    def schema_version(self) -> int:
        return int(self._query("PRAGMA user_version")[0][0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_url(url: str, password: str | None = None) -> SQLiteStore:
    """``sqlite:///relative/path``, ``sqlite:////absolute/path`` or ``sqlite:///:memory:``."""
    store = SQLiteStore(url.removeprefix("sqlite://").removeprefix("/") or ":memory:")
    store.migrate()
    return store
