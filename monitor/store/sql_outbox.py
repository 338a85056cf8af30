"""The table of the notification outbox: one row per (event, notifier) to deliver (the SQL
both backends speak, monitor/store/sql.py).

An item is written here before any attempt to send it, so a daemon killed between the
write and the send delivers it after restart. Delivery is at-least-once: a kill after the
send but before `update_outbox` resends it, which the vendors' dedup keys absorb.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from alerting.model import OutboxState
from monitor.store.base import NotFound, OutboxItem, StoreError
from monitor.store.sql import SqlEngine

_COLUMNS = (
    "id, incident_id, notifier, event, payload, created_at, next_attempt_at, tries, state, "
    "last_error, sent_at"
)


def _item(row: Any) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        incident_id=row["incident_id"],
        notifier=row["notifier"],
        event=row["event"],
        payload=json.loads(row["payload"]),
        created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"],
        tries=row["tries"],
        state=row["state"],
        last_error=row["last_error"],
        sent_at=row["sent_at"],
    )


def _seq(item: OutboxItem) -> int:
    seq = item.payload.get("seq")
    # bool is an int in Python, and True would silently collide with seq 1
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise StoreError(
            f"outbox item for incident {item.incident_id} ({item.notifier}, {item.event}) "
            f"needs an integer payload['seq'], got {seq!r}"
        )
    return seq


class OutboxMixin(SqlEngine):
    def enqueue(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        """Insert new items (ids, tries and state ignored) in one transaction.

        Idempotent per (incident_id, notifier, event, payload['seq']): an item already
        queued is skipped. Returns only the items inserted now, with their ids."""
        seqs = [_seq(item) for item in items]  # fail before writing anything
        added: list[OutboxItem] = []
        with self._tx() as db:
            for item, seq in zip(items, seqs, strict=True):
                cur = db.execute(
                    "INSERT INTO outbox (incident_id, notifier, event, seq, payload, "
                    "created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING RETURNING id",
                    (
                        item.incident_id,
                        item.notifier,
                        item.event,
                        seq,
                        json.dumps(item.payload, separators=(",", ":")),
                        item.created_at,
                        item.next_attempt_at,
                    ),
                )
                row = cur.fetchone()  # None: already queued
                if row is not None:
                    added.append(
                        replace(
                            item,
                            id=int(row[0]),
                            tries=0,
                            state=OutboxState.PENDING,
                            last_error=None,
                            sent_at=None,
                        )
                    )
        return added

    def due(self, now: float, limit: int = 100) -> list[OutboxItem]:
        """Pending items ready at `now`, in id order: for each (incident, notifier) pair only
        its earliest pending item, so a later event never overtakes one waiting to retry."""
        # "+o.id": without it SQLite walks the whole table in id order to skip a sort, which
        # grows with every sent row; with it, it reads the few pending rows off outbox_due
        rows = self._query(
            f"SELECT {_COLUMNS} FROM outbox AS o "
            "WHERE o.state = 'pending' AND o.next_attempt_at <= ? AND NOT EXISTS ("
            "  SELECT 1 FROM outbox AS p WHERE p.state = 'pending' "
            "  AND p.incident_id = o.incident_id AND p.notifier = o.notifier AND p.id < o.id"
            ") ORDER BY +o.id LIMIT ?",
            (now, limit),
        )
        return [_item(r) for r in rows]

    #: `claim_due`'s row lock (PostgreSQL: skip rows another transaction is claiming)
    _claim_lock = ""

    def claim_due(
        self, now: float, holder: str, claim_seconds: float, limit: int = 100
    ) -> list[OutboxItem]:
        """`due`, claimed: items no other holder has claimed (or whose claim ran out) are
        claimed for `holder` until ``now + claim_seconds`` and returned. Its own claims it
        gets again (the caller knows what it is sending)."""
        with self._tx() as db:
            rows = db.execute(
                f"UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id IN ("
                "  SELECT o.id FROM outbox AS o"
                "  WHERE o.state = 'pending' AND o.next_attempt_at <= ?"
                "  AND (o.claimed_until IS NULL OR o.claimed_until <= ? OR o.claimed_by = ?)"
                "  AND NOT EXISTS ("
                "    SELECT 1 FROM outbox AS p WHERE p.state = 'pending'"
                "    AND p.incident_id = o.incident_id AND p.notifier = o.notifier"
                "    AND p.id < o.id"
                f"  ) ORDER BY o.id LIMIT ?{self._claim_lock}"
                f") RETURNING {_COLUMNS}",
                (holder, now + claim_seconds, now, now, holder, limit),
            ).fetchall()
        return sorted((_item(r) for r in rows), key=lambda i: i.id)

    def update_outbox(self, item: OutboxItem) -> None:
        """Record a delivery attempt: tries, state, last_error, sent_at, next_attempt_at;
        the item's claim ends."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE outbox SET tries = ?, state = ?, last_error = ?, sent_at = ?, "
                "next_attempt_at = ?, claimed_by = NULL, claimed_until = NULL WHERE id = ?",
                (
                    item.tries,
                    item.state,
                    item.last_error,
                    item.sent_at,
                    item.next_attempt_at,
                    item.id,
                ),
            )
            if cur.rowcount != 1:
                raise NotFound(f"no outbox item {item.id}")

    def prune_outbox(self, before: float) -> int:
        """Delete the delivered or given-up items of incidents resolved before `before`;
        return how many. Pending items, and every item of an incident not resolved then,
        are kept: a replayed event must still find its row (the idempotence key)."""
        with self._tx() as db:
            return db.execute(
                "DELETE FROM outbox WHERE state != 'pending' AND incident_id IN ("
                "  SELECT id FROM incidents WHERE state = 'resolved' AND resolved_at < ?)",
                (before,),
            ).rowcount

    def outbox(self, incident_id: int | None = None) -> list[OutboxItem]:
        """Every item (of one incident, or all), in id order."""
        if incident_id is None:
            rows = self._query(f"SELECT {_COLUMNS} FROM outbox ORDER BY id")
        else:
            rows = self._query(
                f"SELECT {_COLUMNS} FROM outbox WHERE incident_id = ? ORDER BY id",
                (incident_id,),
            )
        return [_item(r) for r in rows]
