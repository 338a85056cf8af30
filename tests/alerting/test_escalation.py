"""Routing by tier and service, payload shape, the ack deadline, and crash repair."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from alerting.escalation import Escalation, Herald, Notice, recipients, summary_line
from alerting.incidents import Incidents
from alerting.model import IncidentState, Severity
from alerting.policy import Policy
from monitor.clock import FakeClock
from monitor.config import Settings, parse
from monitor.store.base import Incident, OutboxItem
from monitor.store.sqlite import SQLiteStore

START = 1_795_446_000.0  # Monday 2026-11-23 10:00 EST
SATURDAY = 1_795_273_200.0  # Saturday 2026-11-21 10:00 EST
MONDAY_OPEN = 1_795_442_400.0  # Monday 2026-11-23 09:00 EST
URL = "http://127.0.0.1:9/hook"


def _settings(notifiers: list[dict[str, Any]], name: str = "sp") -> Settings:
    probe = [{"type": "http", "name": "a", "url": URL}]
    return parse(
        {
            "monitor": {"vantage": "vp1"},
            "services": [
                {"name": name, "probes": probe},
                {"name": "eu", "service_time_zone": "UK", "probes": probe},
            ],
            "notifiers": [{"type": "webhook", "url": URL, **n} for n in notifiers],
        }
    )


NOTIFIERS = [
    {"name": "pd", "tiers": ["critical", "escalation"]},
    {"name": "slack-us", "tiers": ["critical"], "services": ["sp"]},
    {"name": "boss", "tiers": ["escalation"]},
    {"name": "jira", "tiers": ["ticket"]},
    {"name": "jira-eu", "tiers": ["ticket"], "services": ["eu"]},
]

ROUTES = [
    ("sp", "critical", ["pd", "slack-us"]),
    ("eu", "critical", ["pd"]),
    ("sp", "escalation", ["pd", "boss"]),
    ("sp", "ticket", ["jira"]),
    ("eu", "ticket", ["jira", "jira-eu"]),
]


@pytest.mark.parametrize(
    ("service", "tier", "names"), ROUTES, ids=[f"{s}-{t}" for s, t, _ in ROUTES]
)
def test_recipients_by_tier_and_service(service: str, tier: str, names: list[str]) -> None:
    assert recipients(_settings(NOTIFIERS), service, tier) == names


class Bench:
    def __init__(self, tmp_path: Path, notifiers: list[dict[str, Any]], start: float = START):
        self.settings = _settings(notifiers)
        self.store = SQLiteStore(str(tmp_path / "s.db"))
        self.store.migrate()
        self.clock = FakeClock(start)
        self.incidents = Incidents(self.settings, self.store, self.clock)

    def open(self, severity: str = "critical", service: str = "sp") -> Incident:
        template = Incident(
            id=0,
            service=service,
            severity=Severity(severity),
            state=IncidentState.OPEN,
            kind="unavailable",
            dedup_key="",
            opened_at=self.clock.wall(),
            first_unavailable=int(self.clock.wall()) - 30,
            last_unavailable=int(self.clock.wall()) - 1,
            unavailable_seconds=30,
            summary=f"{severity.upper()}: {service} unavailable",
        )
        return self.incidents.open(template, at=self.clock.wall())

    def items(self, incident_id: int) -> list[tuple[str, str, str]]:
        return [(o.notifier, o.event, o.payload["tier"]) for o in self.store.outbox(incident_id)]


def test_escalation_routes_to_the_escalation_tier_once_per_notifier(tmp_path: Path) -> None:
    bench = Bench(tmp_path, NOTIFIERS)
    inc = bench.open()
    assert bench.items(inc.id) == [
        ("pd", "trigger", "critical"),
        ("slack-us", "trigger", "critical"),
    ]
    esc = Escalation(bench.settings, bench.incidents.herald)
    assert inc.ack_due_at is not None
    inc = esc.run(inc, inc.ack_due_at)
    assert inc.ack_breached_at == inc.ack_due_at and inc.data["escalated"] is True
    assert bench.items(inc.id)[2:] == [
        ("pd", "trigger", "escalation"),
        ("boss", "trigger", "escalation"),
    ]
    escalated = bench.store.events(inc.id)[-1]
    assert (escalated.kind, escalated.data["notifiers"]) == ("escalated", ["pd", "boss"])
    bench.incidents.resolve(inc.id, "alice")
    # pd is in both tiers: it hears "resolve" once (as critical), boss as escalation
    assert bench.items(inc.id)[4:] == [
        ("pd", "resolve", "critical"),
        ("slack-us", "resolve", "critical"),
        ("boss", "resolve", "escalation"),
    ]


def test_escalation_without_escalation_notifiers_still_records_the_breach(tmp_path: Path) -> None:
    bench = Bench(tmp_path, [{"name": "pd", "tiers": ["critical"]}])
    inc = bench.open()
    due = inc.ack_due_at
    assert due is not None
    inc = Escalation(bench.settings, bench.incidents.herald).run(inc, due + 5)
    assert inc.ack_breached_at == due + 5
    kinds = [e.kind for e in bench.store.events(inc.id)]
    assert kinds == ["opened", "ack_breached", "escalated"]
    assert bench.items(inc.id) == [("pd", "trigger", "critical")]


def test_ticket_items_wait_for_business_hours_of_the_service_zone(tmp_path: Path) -> None:
    bench = Bench(tmp_path, NOTIFIERS, start=SATURDAY)
    us = bench.open("non_critical")
    eu = bench.open("non_critical", service="eu")
    [jira_us] = bench.store.outbox(us.id)
    assert jira_us.next_attempt_at == MONDAY_OPEN
    # England opens Monday 08:30 GMT, earlier than New York
    assert {o.next_attempt_at for o in bench.store.outbox(eu.id)} == {1_795_422_600.0}
    assert {o.notifier for o in bench.store.outbox(eu.id)} == {"jira", "jira-eu"}


def test_payload_summary_is_one_short_line() -> None:
    inc = Incident(
        id=7,
        service="s" * 150,
        severity=Severity.CRITICAL,
        state=IncidentState.OPEN,
        kind="unavailable",
        dedup_key="availmon/x/7",
        opened_at=START,
        first_unavailable=int(START),
        unavailable_seconds=999,
        summary="CRITICAL: " + "s" * 150 + " unavailable (api) — 999 s unavailable since 15:00:00Z",
        acknowledged_by="alice",
    )
    for event in ("trigger", "update", "acknowledge", "recover", "resolve"):
        for tier in ("critical", "escalation"):
            line = summary_line(inc, event, tier)
            assert len(line) <= 200 and "\n" not in line, (event, tier)
    assert summary_line(inc, "update", "critical").endswith("999 s unavailable since 15:00:00Z")


def test_bad_notice_is_rejected() -> None:
    with pytest.raises(ValueError, match="bad notice"):
        Notice("page", "critical")


class _CrashingStore(SQLiteStore):
    """Dies (once) between the timeline write and the outbox write."""

    crash = False

    def enqueue(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        if self.crash:
            self.crash = False
            raise RuntimeError("killed")
        return super().enqueue(items)


def test_restore_finishes_an_event_interrupted_between_timeline_and_outbox(
    tmp_path: Path,
) -> None:
    settings = _settings(NOTIFIERS)
    store = _CrashingStore(str(tmp_path / "s.db"))
    store.migrate()
    clock = FakeClock(START)
    herald = Herald(settings, store, clock)
    inc = Incidents(settings, store, clock, herald=herald).open(
        Incident(
            id=0,
            service="sp",
            severity=Severity.CRITICAL,
            state=IncidentState.OPEN,
            kind="unavailable",
            dedup_key="",
            opened_at=START,
        ),
        at=START,
    )
    store.crash = True
    with pytest.raises(RuntimeError):
        herald.record(inc, "update_sent", {}, [Notice("update", "critical")], at=START + 60)
    assert [o.event for o in store.outbox(inc.id)] == ["trigger", "trigger"]
    assert [e.kind for e in store.events(inc.id)] == ["opened", "update_sent"]
    policy = Policy(settings, store, clock)
    policy.restore()
    assert [o.event for o in store.outbox(inc.id)] == ["trigger"] * 2 + ["update"] * 2
    assert [o.payload["seq"] for o in store.outbox(inc.id)] == [1, 1, 2, 2]
    # a second restore finds nothing left to do: no duplicate event, no duplicate items
    Policy(settings, store, clock).restore()
    assert len(store.outbox(inc.id)) == 4
    assert [e.kind for e in store.events(inc.id)] == ["opened", "update_sent"]


def test_release_wakes_the_dispatcher_when_held_items_fall_due(tmp_path: Path) -> None:
    bench = Bench(tmp_path, NOTIFIERS, start=SATURDAY)
    wakes: list[float] = []
    herald = Herald(bench.settings, bench.store, bench.clock, on_outbox=lambda: wakes.append(1))
    herald.record(bench.open("non_critical"), "note", {}, [Notice("update", "ticket")])
    assert len(wakes) == 1  # woken at enqueue (the dispatcher learns the due time)
    herald.release(MONDAY_OPEN - 0.5)
    assert len(wakes) == 1
    herald.release(MONDAY_OPEN)
    herald.release(MONDAY_OPEN + 1)
    assert len(wakes) == 2
