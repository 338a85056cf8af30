"""The SQLite outbox: idempotent enqueue, per-pair ordering in `due`, updates, durability."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from alerting.model import IncidentState, OutboxState, Severity
from monitor.store.base import Incident, NotFound, OutboxItem, StoreError
from monitor.store.sqlite import SQLiteStore
from tests.monitor.store.backends import SQL_BACKENDS

T0 = 1_700_000_000.0


def item(
    incident_id: int = 1, notifier: str = "pd", event: str = "trigger", seq: Any = 1, at: float = T0
) -> OutboxItem:
    return OutboxItem(
        id=0,
        incident_id=incident_id,
        notifier=notifier,
        event=event,
        payload={"seq": seq, "event": event, "summary": f"{event} {seq}"},
        created_at=at,
        next_attempt_at=at,
    )


@pytest.fixture(params=sorted(SQL_BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteStore]:
    """Each SQL backend in turn: the statements are shared (monitor/store/sql.py)."""
    s = SQL_BACKENDS[request.param](tmp_path)
    yield s  # type: ignore[misc]
    s.close()


def test_enqueue_assigns_ids_and_round_trips_payload(store: SQLiteStore) -> None:
    added = store.enqueue([item(seq=1), item(notifier="slack", seq=1)])
    assert [a.id for a in added] == [1, 2]
    got = store.outbox()
    assert [(g.notifier, g.state, g.tries) for g in got] == [
        ("pd", "pending", 0),
        ("slack", "pending", 0),
    ]
    assert got[0].payload == {"seq": 1, "event": "trigger", "summary": "trigger 1"}
    assert got[0].created_at == T0


def test_enqueue_is_idempotent_per_incident_notifier_event_seq(store: SQLiteStore) -> None:
    store.enqueue([item(seq=1)])
    # a restart replays the same event: nothing new
    assert store.enqueue([item(seq=1)]) == []
    # a different seq, event, notifier or incident is a different item
    again = store.enqueue(
        [item(seq=2), item(event="update", seq=1), item(notifier="og"), item(incident_id=2)]
    )
    assert len(again) == 4
    assert len(store.outbox()) == 5


@pytest.mark.parametrize("seq", [None, "1", True, 1.5], ids=["missing", "string", "bool", "float"])
def test_enqueue_rejects_payload_without_integer_seq(store: SQLiteStore, seq: Any) -> None:
    with pytest.raises(StoreError, match="seq"):
        store.enqueue([item(seq=2), item(seq=seq)])
    assert store.outbox() == []  # nothing half-written


def test_due_returns_only_ready_items(store: SQLiteStore) -> None:
    store.enqueue([item(seq=1, at=T0), item(incident_id=2, seq=1, at=T0 + 10)])
    assert [i.incident_id for i in store.due(T0)] == [1]
    assert [i.incident_id for i in store.due(T0 + 10)] == [1, 2]


def test_due_holds_later_item_behind_earlier_pending_one_of_same_pair(store: SQLiteStore) -> None:
    first, second, other = store.enqueue(
        [item(seq=1), item(event="update", seq=2), item(notifier="slack", seq=1)]
    )
    # the first item failed and waits to retry: the update must not overtake it
    store.update_outbox(replace(first, tries=1, next_attempt_at=T0 + 60, last_error="HTTP 500"))
    assert [i.id for i in store.due(T0 + 1)] == [other.id]
    # once it is sent, the next item of the pair is due
    store.update_outbox(replace(first, tries=2, state=OutboxState.SENT, sent_at=T0 + 60))
    assert [i.id for i in store.due(T0 + 61)] == [second.id, other.id]


def test_failed_item_releases_the_pair(store: SQLiteStore) -> None:
    first, second = store.enqueue([item(seq=1), item(event="update", seq=2)])
    store.update_outbox(replace(first, tries=12, state=OutboxState.FAILED, last_error="HTTP 400"))
    assert [i.id for i in store.due(T0)] == [second.id]


def test_due_respects_limit(store: SQLiteStore) -> None:
    store.enqueue([item(incident_id=n) for n in range(1, 11)])
    assert [i.incident_id for i in store.due(T0, limit=3)] == [1, 2, 3]


def test_update_outbox_persists_fields(store: SQLiteStore) -> None:
    (it,) = store.enqueue([item()])
    store.update_outbox(
        replace(
            it,
            tries=3,
            state=OutboxState.FAILED,
            last_error="HTTP 400: bad",
            next_attempt_at=T0 + 5,
        )
    )
    (got,) = store.outbox(incident_id=1)
    assert (got.tries, got.state, got.last_error, got.next_attempt_at) == (
        3,
        "failed",
        "HTTP 400: bad",
        T0 + 5,
    )
    assert store.due(T0 + 100) == []


def test_update_of_unknown_item_is_not_found(store: SQLiteStore) -> None:
    with pytest.raises(NotFound):
        store.update_outbox(replace(item(), id=99))


def test_outbox_filters_by_incident(store: SQLiteStore) -> None:
    store.enqueue([item(incident_id=1), item(incident_id=2), item(incident_id=1, seq=2)])
    assert [(i.incident_id, i.payload["seq"]) for i in store.outbox(1)] == [(1, 1), (1, 2)]
    assert store.outbox(3) == []


def test_items_survive_reopening_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "a.db")
    s = SQLiteStore(path)
    s.migrate()
    s.enqueue([item()])
    s.close()
    s2 = SQLiteStore(path)
    s2.migrate()
    assert [i.event for i in s2.due(T0)] == ["trigger"]
    assert s2.enqueue([item()]) == []  # the replay after restart is still a no-op


def test_prune_outbox_keeps_pending_items_and_unresolved_incidents(store: SQLiteStore) -> None:
    def incident(state: str, resolved_at: float | None) -> int:
        inc = store.create_incident(
            Incident(0, "svc", Severity.CRITICAL, IncidentState.OPEN, "unavailable", "", T0 - 10)
        )
        store.update_incident(replace(inc, state=IncidentState(state), resolved_at=resolved_at))
        return inc.id

    old = incident("resolved", T0 - 5)
    recent = incident("resolved", T0 + 100)
    open_ = incident("acknowledged", None)
    for inc in (old, recent, open_):
        sent, _pending = store.enqueue([item(inc, seq=1), item(inc, seq=2)])
        store.update_outbox(replace(sent, state=OutboxState.SENT, tries=1, sent_at=T0 - 5))
    failed = store.enqueue([item(old, notifier="og")])[0]
    store.update_outbox(replace(failed, state=OutboxState.FAILED, tries=1, last_error="400"))

    assert store.prune_outbox(T0) == 2  # the old incident's sent and failed items
    left = [(i.incident_id, i.notifier, i.state) for i in store.outbox()]
    assert (old, "pd", "pending") in left  # never drop what is still to send
    assert [i for i in left if i[0] == old] == [(old, "pd", "pending")]
    assert len([i for i in left if i[0] in (recent, open_)]) == 4
    # the key still makes a replayed event a no-op for everything kept
    assert store.enqueue([item(recent, seq=1)]) == []
