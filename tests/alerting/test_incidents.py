"""Human actions on incidents (ack, resolve, note, show, list) and bad state transitions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alerting.incidents import Incidents, IncidentStateError
from alerting.model import IncidentState, Severity
from monitor.clock import FakeClock
from monitor.config import Settings, parse
from monitor.store.base import Incident, NotFound
from monitor.store.sqlite import SQLiteStore

START = 1_795_446_000.0  # Monday 2026-11-23 10:00 EST


def _settings() -> Settings:
    url = "http://127.0.0.1:9/hook"
    return parse(
        {
            "monitor": {"vantage": "test"},
            "services": [{"name": "sp", "probes": [{"type": "http", "name": "a", "url": url}]}],
            "notifiers": [
                {"type": "webhook", "name": "pager", "url": url, "tiers": ["critical"]},
                {"type": "webhook", "name": "tickets", "url": url, "tiers": ["ticket"]},
            ],
        }
    )


class Desk:
    def __init__(self, tmp_path: Path) -> None:
        self.settings = _settings()
        self.store = SQLiteStore(str(tmp_path / "s.db"))
        self.store.migrate()
        self.clock = FakeClock(START)
        self.wakes = 0
        self.incidents = Incidents(self.settings, self.store, self.clock, on_outbox=self._wake)

    def _wake(self) -> None:
        self.wakes += 1

    def open(self, severity: str = "critical") -> Incident:
        template = Incident(
            id=0,
            service="sp",
            severity=Severity(severity),
            state=IncidentState.OPEN,
            kind="unavailable",
            dedup_key="",
            opened_at=self.clock.wall(),
            first_unavailable=int(START) - 40,
            last_unavailable=int(START) - 1,
            unavailable_seconds=40,
            summary=f"{severity.upper()}: sp unavailable",
        )
        return self.incidents.open(template, {"second": int(START) - 1}, at=self.clock.wall())

    def events(self, incident_id: int) -> list[str]:
        return [e.kind for e in self.store.events(incident_id)]

    def outbox(self, incident_id: int) -> list[tuple[str, str]]:
        return [(o.notifier, o.event) for o in self.store.outbox(incident_id)]


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    return Desk(tmp_path)


def test_ack_then_resolve(desk: Desk) -> None:
    inc = desk.open()
    desk.clock.advance(120)
    acked = desk.incidents.ack(inc.id, "alice")
    assert (acked.state, acked.acknowledged_by) == ("acknowledged", "alice")
    assert acked.acknowledged_at == START + 120
    desk.clock.advance(600)
    done = desk.incidents.resolve(inc.id, "alice", "  fixed by rollback ")
    assert (done.state, done.resolved_by, done.resolved_at) == ("resolved", "alice", START + 720)
    assert done.next_update_at is None
    assert desk.events(inc.id) == ["opened", "acknowledged", "resolved"]
    assert desk.store.events(inc.id)[-1].data["note"] == "fixed by rollback"
    assert desk.outbox(inc.id) == [
        ("pager", "trigger"),
        ("pager", "acknowledge"),
        ("pager", "resolve"),
    ]
    assert desk.wakes == 3
    stored = desk.store.get_incident(inc.id)
    assert stored.state == "resolved" and stored.acknowledged_by == "alice"


def test_every_notification_has_its_timeline_event(desk: Desk) -> None:
    inc = desk.open()
    desk.incidents.ack(inc.id, "alice")
    desk.incidents.resolve(inc.id, "bob")
    events = {e.data["seq"]: e.kind for e in desk.store.events(inc.id) if "seq" in e.data}
    items = desk.store.outbox(inc.id)
    assert {o.payload["seq"] for o in items} == set(events)
    assert [events[o.payload["seq"]] for o in items] == ["opened", "acknowledged", "resolved"]
    # the payload carries the incident as it stood after the action
    assert items[1].payload["incident"]["acknowledged_by"] == "alice"
    assert items[2].payload["summary"].startswith("RESOLVED by bob: ")


def test_ack_while_recovered_keeps_recovered(desk: Desk) -> None:
    inc = desk.open()
    inc = desk.incidents.recover(inc, int(START) + 200, int(START) + 81, at=START + 206)
    acked = desk.incidents.ack(inc.id, "alice")
    assert (acked.state, acked.acknowledged_by) == ("recovered", "alice")
    again = desk.incidents.relapse(acked, int(START) + 300, at=START + 306)
    assert again.state == "acknowledged"  # back to where the person left it


def test_note_on_any_state_without_notifying(desk: Desk) -> None:
    inc = desk.open()
    desk.incidents.resolve(inc.id, "bob")
    event = desk.incidents.note(inc.id, "carol", "postmortem: PM-42")
    assert (event.kind, event.data) == ("note", {"by": "carol", "text": "postmortem: PM-42"})
    assert event.id is not None
    assert desk.events(inc.id)[-1] == "note"
    assert desk.outbox(inc.id) == [("pager", "trigger"), ("pager", "resolve")]


def test_non_critical_ack_is_not_sent_to_tickets(desk: Desk) -> None:
    inc = desk.open("non_critical")
    desk.incidents.ack(inc.id, "alice")
    desk.incidents.resolve(inc.id, "alice")
    assert desk.outbox(inc.id) == [("tickets", "trigger"), ("tickets", "resolve")]


BAD: list[tuple[str, Callable[[Desk, int], Any], type[Exception], str]] = [
    (
        "ack-resolved",
        lambda d, i: (d.incidents.resolve(i, "bob"), d.incidents.ack(i, "alice")),
        IncidentStateError,
        r"^incident \d+ is resolved; there is nothing to acknowledge$",
    ),
    (
        "ack-twice",
        lambda d, i: (d.incidents.ack(i, "bob"), d.incidents.ack(i, "alice")),
        IncidentStateError,
        r"already acknowledged by bob at 2026-11-23T15:00:00Z",
    ),
    (
        "resolve-twice",
        lambda d, i: (d.incidents.resolve(i, "bob"), d.incidents.resolve(i, "alice")),
        IncidentStateError,
        r"already resolved by bob",
    ),
    ("ack-unknown", lambda d, i: d.incidents.ack(i + 100, "bob"), NotFound, r"no incident"),
    ("resolve-unknown", lambda d, i: d.incidents.resolve(999, "bob"), NotFound, r"no incident"),
    ("note-unknown", lambda d, i: d.incidents.note(999, "bob", "x"), NotFound, r"no incident"),
    ("ack-nobody", lambda d, i: d.incidents.ack(i, "  "), ValueError, r"'by' must name"),
    ("note-empty", lambda d, i: d.incidents.note(i, "bob", " \n"), ValueError, r"needs text"),
    (
        "recover-resolved",
        lambda d, i: d.incidents.recover(d.incidents.resolve(i, "bob"), 1, 1, at=START),
        IncidentStateError,
        r"cannot recover",
    ),
    (
        "relapse-open",
        lambda d, i: d.incidents.relapse(d.store.get_incident(i), 1, at=START),
        IncidentStateError,
        r"not recovered",
    ),
    ("list-bad-state", lambda d, i: d.incidents.list(state="closed"), ValueError, r"state must"),
    (
        "list-bad-severity",
        lambda d, i: d.incidents.list(severity="sev1"),
        ValueError,
        r"severity must",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_transitions_and_input(
    desk: Desk, call: Callable[[Desk, int], Any], error: type[Exception], message: str
) -> None:
    inc = desk.open()
    with pytest.raises(error, match=message) as info:
        call(desk, inc.id)
    assert "\n" not in str(info.value)


def test_failed_action_changes_nothing(desk: Desk) -> None:
    inc = desk.open()
    desk.incidents.resolve(inc.id, "bob")
    before = (desk.events(inc.id), desk.outbox(inc.id), desk.store.get_incident(inc.id))
    with pytest.raises(IncidentStateError):
        desk.incidents.ack(inc.id, "alice")
    assert (desk.events(inc.id), desk.outbox(inc.id), desk.store.get_incident(inc.id)) == before


def test_show_is_json_ready(desk: Desk) -> None:
    inc = desk.open()
    desk.incidents.ack(inc.id, "alice")
    desk.incidents.note(inc.id, "alice", "looking")
    shown = desk.incidents.show(inc.id)
    assert json.loads(json.dumps(shown)) == shown
    assert shown["incident"]["id"] == inc.id
    assert shown["incident"]["state"] == "acknowledged"
    assert shown["incident"]["dedup_key"] == f"availmon/sp/{inc.id}"
    assert [e["kind"] for e in shown["timeline"]] == ["opened", "acknowledged", "note"]
    assert [(n["notifier"], n["event"], n["tier"], n["state"]) for n in shown["notifications"]] == [
        ("pager", "trigger", "critical", "pending"),
        ("pager", "acknowledge", "critical", "pending"),
    ]


def test_list_filters(desk: Desk) -> None:
    a = desk.open()
    b = desk.open("non_critical")
    desk.incidents.resolve(a.id, "bob")
    assert [r["id"] for r in desk.incidents.list()] == [b.id, a.id]
    assert [r["id"] for r in desk.incidents.list(state="resolved")] == [a.id]
    assert [r["id"] for r in desk.incidents.list(severity="non_critical")] == [b.id]
    assert [r["id"] for r in desk.incidents.list(service="other")] == []
    assert len(desk.incidents.list(limit=1)) == 1
    assert json.loads(json.dumps(desk.incidents.list())) == desk.incidents.list()


def test_critical_opening_sets_deadlines_and_non_critical_a_response_due(desk: Desk) -> None:
    crit = desk.open()
    assert crit.ack_due_at == START + 15 * 60
    assert crit.next_update_at == START + 30 * 60
    assert crit.response_due_at is None
    nc = desk.open("non_critical")
    assert nc.ack_due_at is None and nc.next_update_at is None
    assert nc.response_due_at == START + 24 * 3600  # 8 business hours = one business day
