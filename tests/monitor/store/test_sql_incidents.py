"""SQLite incidents and timelines: ids and dedup keys, whole-row updates, filters, events."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerting.model import IncidentState, Severity
from monitor.store.base import Incident, IncidentEvent, NotFound
from monitor.store.sqlite import SQLiteStore
from tests.monitor.store.backends import SQL_BACKENDS


@pytest.fixture(params=sorted(SQL_BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteStore]:
    """Each SQL backend in turn: the statements are shared (monitor/store/sql.py)."""
    s = SQL_BACKENDS[request.param](tmp_path)
    yield s  # type: ignore[misc]
    s.close()


def _incident(service: str = "sp-us", **kw: object) -> Incident:
    base = Incident(
        id=0,
        service=service,
        severity=Severity.CRITICAL,
        state=IncidentState.OPEN,
        kind="unavailable",
        dedup_key="",
        opened_at=1_700_000_000.5,
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def test_create_assigns_id_and_dedup_key(store: SQLiteStore) -> None:
    a = store.create_incident(_incident())
    b = store.create_incident(_incident("sp-eu"))
    assert a.id != b.id
    assert a.dedup_key == f"availmon/sp-us/{a.id}"
    assert b.dedup_key == f"availmon/sp-eu/{b.id}"
    assert store.get_incident(a.id) == a


def test_update_round_trips_every_field(store: SQLiteStore) -> None:
    inc = store.create_incident(_incident(first_unavailable=100, unavailable_seconds=30))
    changed = dataclasses.replace(
        inc,
        state=IncidentState.ACKNOWLEDGED,
        acknowledged_at=1_700_000_100.25,
        acknowledged_by="alice",
        ack_due_at=1_700_000_900.0,
        ack_breached_at=1_700_000_901.0,
        next_update_at=1_700_001_800.0,
        response_due_at=1_700_100_000.0,
        last_unavailable=160,
        unavailable_seconds=61,
        summary="CRITICAL: sp-us unavailable",
        data={"seq": 3, "channels": ["api"]},
    )
    store.update_incident(changed)
    assert store.get_incident(inc.id) == changed


def test_missing_incident_is_not_found(store: SQLiteStore) -> None:
    with pytest.raises(NotFound):
        store.get_incident(42)
    with pytest.raises(NotFound):
        store.update_incident(_incident(id=42))
    with pytest.raises(NotFound):
        store.add_event(IncidentEvent(incident_id=42, at=1.0, kind="note"))


def test_list_filters_and_orders_newest_first(store: SQLiteStore) -> None:
    a = store.create_incident(_incident(opened_at=100.0))
    b = store.create_incident(_incident("sp-eu", opened_at=200.0, severity="non_critical"))
    c = store.create_incident(_incident(opened_at=300.0, state="resolved", resolved_at=400.0))
    assert [i.id for i in store.list_incidents()] == [c.id, b.id, a.id]
    assert [i.id for i in store.list_incidents(service="sp-us")] == [c.id, a.id]
    assert [i.id for i in store.list_incidents(state="resolved")] == [c.id]
    assert [i.id for i in store.list_incidents(severity="non_critical")] == [b.id]
    assert [i.id for i in store.list_incidents(limit=1)] == [c.id]
    # overlap: c lived [300, 400], a and b are unresolved and overlap everything later
    assert [i.id for i in store.list_incidents(since=450.0)] == [b.id, a.id]
    assert [i.id for i in store.list_incidents(until=150.0)] == [a.id]
    assert [i.id for i in store.list_incidents(since=350.0, until=360.0)] == [c.id, b.id, a.id]


def test_events_are_appended_in_order(store: SQLiteStore) -> None:
    inc = store.create_incident(_incident())
    other = store.create_incident(_incident())
    e1 = store.add_event(IncidentEvent(inc.id, 10.0, "opened", {"seq": 1}))
    store.add_event(IncidentEvent(other.id, 11.0, "opened"))
    e2 = store.add_event(IncidentEvent(inc.id, 12.0, "note", {"by": "bob", "text": "hi"}))
    assert e1.id is not None and e2.id is not None and e1.id < e2.id
    got = store.events(inc.id)
    assert [(e.kind, e.data) for e in got] == [
        ("opened", {"seq": 1}),
        ("note", {"by": "bob", "text": "hi"}),
    ]
    assert got[0] == e1


def test_incidents_survive_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    s = SQLiteStore(path)
    s.migrate()
    inc = s.create_incident(_incident())
    s.add_event(IncidentEvent(inc.id, 1.0, "opened"))
    s.close()
    s2 = SQLiteStore(path)
    s2.migrate()
    assert s2.get_incident(inc.id) == inc
    assert [e.kind for e in s2.events(inc.id)] == ["opened"]


STALE = [
    # (what a person stored, the stale copy's state, the state that must remain)
    (
        {"state": "acknowledged", "acknowledged_at": 5.0, "acknowledged_by": "al"},
        "open",
        "acknowledged",
    ),
    (
        {"state": "acknowledged", "acknowledged_at": 5.0, "acknowledged_by": "al"},
        "recovered",
        "recovered",
    ),
    ({"state": "resolved", "resolved_at": 9.0, "resolved_by": "bo"}, "open", "resolved"),
    ({"state": "resolved", "resolved_at": 9.0, "resolved_by": "bo"}, "recovered", "resolved"),
]


@pytest.mark.parametrize(
    ("person", "stale_state", "expected"),
    STALE,
    ids=["ack-vs-open", "ack-vs-recovered", "resolve-vs-open", "resolve-vs-recovered"],
)
def test_a_stale_whole_row_write_never_undoes_ack_or_resolve(
    store: SQLiteStore, person: dict[str, object], stale_state: str, expected: str
) -> None:
    inc = store.create_incident(_incident())
    stale = dataclasses.replace(inc, state=IncidentState(stale_state), unavailable_seconds=77)
    store.update_incident(dataclasses.replace(inc, **person))  # type: ignore[arg-type]
    store.update_incident(stale)  # a writer that read the row before the person acted
    got = store.get_incident(inc.id)
    assert got.state == expected
    assert got.unavailable_seconds == 77  # the rest of the stale write lands
    for field, value in person.items():
        if field != "state":
            assert getattr(got, field) == value
