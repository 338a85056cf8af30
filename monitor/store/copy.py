"""Copy a whole history from one SQL store to another (`availmon migrate --from --to`):
SQLite to PostgreSQL when a single monitor becomes several vantage points.

Every table of the history is copied row for row, ids included — verdict runs, attempt
sources, minute counts, evidence, maintenance windows, incidents and their timelines, the
outbox (with each row's delivery state), the key/value state (the report ledger) — in
batches ordered by each table's key, then the target's id sequences are moved past the
copied ids and every table's row count is compared. Leases and the recent-verdict buffer
are not history and are left behind. The target must be empty (freshly migrated): a
copy never merges into a live store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from monitor.store.base import StoreError
from monitor.store.sql import SqlEngine

#: table → (its columns, its key columns), in an order that keeps foreign keys whole
TABLES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("kv", ("key", "value"), ("key",)),
    (
        "runs",
        ("id", "service", "channel", "vantage", "verdict", "reason", "first_second", "last_second"),
        ("id",),
    ),
    ("attempt_sources", ("id", "service", "channel", "probe", "vantage"), ("id",)),
    ("minute_counts", ("source", "minute", "outcome", "count"), ("source", "minute", "outcome")),
    (
        "evidence",
        ("source", "second", "slot", "outcome", "latency_us", "started_us", "attempt_id", "detail"),
        ("source", "second", "slot"),
    ),
    (
        "maintenance",
        ("id", "service", "start_second", "end_second", "reason", "source"),
        ("id",),
    ),
    (
        "incidents",
        (
            "id",
            "service",
            "severity",
            "state",
            "kind",
            "dedup_key",
            "opened_at",
            "first_unavailable",
            "last_unavailable",
            "unavailable_seconds",
            "acknowledged_at",
            "acknowledged_by",
            "recovered_at",
            "resolved_at",
            "resolved_by",
            "ack_due_at",
            "ack_breached_at",
            "next_update_at",
            "response_due_at",
            "summary",
            "data",
        ),
        ("id",),
    ),
    ("incident_events", ("id", "incident_id", "at", "kind", "data"), ("id",)),
    (
        "outbox",
        (
            "id",
            "incident_id",
            "notifier",
            "event",
            "seq",
            "payload",
            "created_at",
            "next_attempt_at",
            "tries",
            "state",
            "last_error",
            "sent_at",
        ),
        ("id",),
    ),
    (
        "blocklist_spells",
        ("id", "service", "target", "zone", "started_at", "ended_at", "codes", "txt"),
        ("id",),
    ),
)
#: tables whose ids the store picks (their sequences go past the copied ids)
IDENTITY = (
    "runs",
    "attempt_sources",
    "maintenance",
    "incidents",
    "incident_events",
    "outbox",
    "blocklist_spells",
)
BATCH = 5000


def _count(store: SqlEngine, table: str) -> int:
    return int(store._query(f"SELECT COUNT(*) FROM {table}")[0][0])


def copy_history(
    source: SqlEngine,
    target: SqlEngine,
    *,
    batch: int = BATCH,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Copy every history table from `source` to the empty `target`; return the rows per
    table, verified equal on both sides (`StoreError` if not, or if `target` has rows)."""
    busy = [t for t, _, _ in TABLES if _count(target, t)]
    if busy:
        raise StoreError(
            f"the target store is not empty ({', '.join(busy)} hold rows): copy into a new one"
        )
    copied: dict[str, int] = {}
    for table, columns, key in TABLES:
        cols = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        order = ", ".join(key)
        after: tuple[Any, ...] | None = None
        n = 0
        while True:
            where, params = "", []
            if after is not None:
                where = f" WHERE ({order}) > ({', '.join('?' for _ in key)})"
                params = list(after)
            rows = source._query(
                f"SELECT {cols} FROM {table}{where} ORDER BY {order} LIMIT ?", (*params, batch)
            )
            if not rows:
                break
            values = [tuple(r) for r in rows]
            with target._tx() as db:
                db.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", values)
            n += len(values)
            last = values[-1]
            after = tuple(last[columns.index(k)] for k in key)
            if progress is not None:
                progress(table, n)
        copied[table] = n
    with target._tx() as db:
        for table in IDENTITY:
            target._bump_ids(db, table)
    for table, _, _ in TABLES:
        there = _count(target, table)
        if there != copied[table]:
            raise StoreError(f"{table}: {copied[table]} rows copied but {there} in the target")
        here = _count(source, table)
        if here != there:
            raise StoreError(f"{table}: {here} rows in the source but {there} in the target")
    return copied
