"""The PostgreSQL backend: several vantage points (and the CLI) share one database.

The same statements as SQLite (`sql_seconds`, `sql_incidents`, `sql_outbox`, written in
the SQL both speak, monitor/store/sql.py) run on psycopg 3 connections from a
`psycopg_pool.ConnectionPool`. Like every store call, they run in worker threads (the
daemon's writer, `asyncio.to_thread`): the store contract is synchronous, so the pool is
psycopg's threaded one, and the event loop never waits on the database either way.

``store.url`` is a libpq URL (``postgresql://user@host:5432/db?sslmode=verify-full&…``:
every libpq option, TLS ones included, passes through); the password comes from
``store.password`` (``env:``/``file:``), the URL, or libpq's own ``PGPASSWORD`` or
passfile. Migrations are the files ``migrations_postgresql/NNNN_*.sql``, numbered as
SQLite's; table ``availmon_schema`` records the last one applied, and a database whose
schema is newer than this availmon knows is refused. Concurrent starts migrate one at a
time (a transaction-scoped advisory lock).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any

import psycopg
import psycopg_pool

from monitor.store.base import StoreError
from monitor.store.sql import Cursor
from monitor.store.sql_blocklist import BlocklistMixin
from monitor.store.sql_incidents import IncidentsMixin
from monitor.store.sql_outbox import OutboxMixin
from monitor.store.sql_seconds import SecondsMixin

#: the advisory lock key that serialises migrations (any constant; "availmon" in ASCII)
MIGRATION_LOCK = 0x617661696C6D6F6E
#: how long opening waits for a first connection
CONNECT_TIMEOUT = 10.0


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    folder = resources.files("monitor.store").joinpath("migrations_postgresql")
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text()))
    return sorted(found)


@functools.lru_cache(maxsize=512)
def _pg(sql: str) -> str:
    """The shared statements' ``?`` placeholders as psycopg's ``%s`` (none of them holds
    a literal ``?`` or ``%``)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Row:
    """A row readable by index, by column name, and as a tuple (as sqlite3.Row is)."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _row_factory(cursor: Any) -> Any:
    index = {c.name: i for i, c in enumerate(cursor.description or ())}
    return lambda values: _Row(values, index)


class _Db:
    """A pooled connection inside a transaction, speaking the shared statements."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor:
        return self._conn.execute(_pg(sql), params)

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(_pg(sql), list(params))


def _why(exc: BaseException) -> str:
    """One line, no password: libpq's messages name the host and user, never the secret."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def redact(url: str) -> str:
    """`url` with a password in it blanked (for messages)."""
    return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", url)


class PostgresStore(SecondsMixin, IncidentsMixin, OutboxMixin, BlocklistMixin):
    #: several vantage points share one database and elect a leader
    shared = True

    def __init__(self, url: str, password: str | None = None, max_size: int = 4) -> None:
        self.path = redact(url)
        kwargs: dict[str, Any] = {"row_factory": _row_factory, "autocommit": True}
        if password:
            kwargs["password"] = password
        try:
            # one connection first: a refused or rejected one is said at once, in one line
            # (the pool would retry it quietly until its timeout)
            psycopg.connect(url, connect_timeout=int(CONNECT_TIMEOUT), **kwargs).close()
            self._pool = psycopg_pool.ConnectionPool(
                url, min_size=1, max_size=max_size, kwargs=kwargs, open=False, name="availmon"
            )
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            self._close_quietly()
            why = _why(exc) if isinstance(exc, psycopg.Error) else "the pool did not fill"
            raise StoreError(f"store: cannot connect to {self.path}: {why}") from None
        self._lock = threading.RLock()
        self._integrity_errors = (psycopg.errors.IntegrityError,)
        super().__init__()

    def _close_quietly(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            try:
                pool.close(timeout=1)
            except Exception:
                pass

    @contextmanager
    def _tx(self) -> Iterator[_Db]:
        """One write transaction on a pooled connection; rolled back whole on error."""
        with self._lock, self._pool.connection() as conn, conn.transaction():
            db = _Db(conn)
            self._check_fence(db)
            yield db

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._pool.connection() as conn:
            return conn.execute(_pg(sql), params).fetchall()

    _claim_lock = " FOR UPDATE SKIP LOCKED"
    #: a fenced write holds the lease row against a takeover until it commits
    _fence_lock = " FOR SHARE"

    def _now(self, db: Any) -> float:
        row = db.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())").fetchone()
        return float(row[0])

    def _bump_ids(self, db: Any, table: str) -> None:
        db.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
            f" GREATEST((SELECT MAX(id) FROM {table}), 1))"
        )

    def migrate(self) -> None:
        known = _migrations()
        latest = known[-1][0] if known else 0
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS availmon_schema (version INTEGER NOT NULL)"
                )
                row = conn.execute("SELECT MAX(version) FROM availmon_schema").fetchone()
                current = int(row[0]) if row is not None and row[0] is not None else 0
                if current > latest:
                    raise StoreError(
                        f"store: {self.path} has schema version {current}, newer than this "
                        f"availmon knows ({latest}); upgrade availmon"
                    )
                for number, name, sql in known:
                    if number <= current:
                        continue
                    try:
                        with conn.transaction():
                            conn.execute(sql)
                            conn.execute(
                                "INSERT INTO availmon_schema (version) VALUES (%s)", (number,)
                            )
                    except psycopg.Error as exc:
                        raise StoreError(
                            f"store: {self.path}: migration {name} failed: {_why(exc)}"
                        ) from None
        except psycopg.Error as exc:
            raise StoreError(f"store: cannot read {self.path}: {_why(exc)}") from None

    def schema_version(self) -> int:
        row = self._query("SELECT MAX(version) FROM availmon_schema")[0]
        return int(row[0] or 0)

    def close(self) -> None:
        self._pool.close()


def open_url(url: str, password: str | None = None) -> PostgresStore:
    """``postgresql://[user[:password]@]host[:port]/database[?libpq options]``, migrated."""
    store = PostgresStore(url, password)
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store
