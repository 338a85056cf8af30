"""The incident policy driven by synthetic verdict streams on a real SQLite store.

Codes of a second (one `api` channel verdict plus the `service` verdict):
``U`` unavailable (2 timeouts), ``A`` available (2 ok), ``D`` degraded (1 ok, 1 timeout),
``C`` client errors only (available, but the monitor sees nothing), ``?`` unknown.
Lower-case ``u``/``a`` are the same inside a maintenance window (excluded).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alerting.incidents import Incidents
from alerting.policy import Policy
from monitor.clock import FakeClock
from monitor.config import Settings, parse
from monitor.store.base import Incident, OutboxItem
from monitor.store.sqlite import SQLiteStore
from monitor.verdicts import SecondVerdict, UnknownReason, Verdict

# Monday 2026-11-23 10:00 EST: inside Business Hours (ET)
MONDAY = int(datetime(2026, 11, 23, 15, 0, tzinfo=UTC).timestamp())
# Saturday 2026-11-21 10:00 EST: outside; the next opening is Monday 09:00 EST
SATURDAY = int(datetime(2026, 11, 21, 15, 0, tzinfo=UTC).timestamp())
MONDAY_OPEN = datetime(2026, 11, 23, 14, 0, tzinfo=UTC).timestamp()
LAG = 6  # a second is final a timeout after it ends

_CODES: dict[str, tuple[Verdict, dict[str, int]]] = {
    "U": (Verdict.UNAVAILABLE, {"timeout": 2}),
    "A": (Verdict.AVAILABLE, {"ok": 2}),
    "D": (Verdict.AVAILABLE, {"ok": 1, "timeout": 1}),
    "C": (Verdict.AVAILABLE, {"client_error": 2}),
    "?": (Verdict.UNKNOWN, {}),
}


def make_settings(
    critical: dict[str, Any] | None = None,
    non_critical: dict[str, Any] | None = None,
    zone: str = "ET",
) -> Settings:
    url = "http://127.0.0.1:9/hook"
    return parse(
        {
            "monitor": {"vantage": "test"},
            "services": [
                {
                    "name": "sp",
                    "service_time_zone": zone,
                    "critical": critical or {},
                    "non_critical": non_critical or {},
                    "probes": [{"type": "http", "name": "api", "url": url}],
                }
            ],
            "notifiers": [
                {"type": "webhook", "name": "pager", "url": url, "tiers": ["critical"]},
                {"type": "webhook", "name": "boss", "url": url, "tiers": ["escalation"]},
                {"type": "webhook", "name": "tickets", "url": url, "tiers": ["ticket"]},
            ],
        }
    )


def verdicts(second: int, code: str) -> list[SecondVerdict]:
    verdict, counts = _CODES[code.upper()]
    excluded = code.islower()
    return [
        SecondVerdict("sp", "api", second, verdict, "test", excluded=excluded, counts=counts),
        SecondVerdict("sp", "service", second, verdict, "test", excluded=excluded),
    ]


class Rig:
    """A policy, its store and clock, and a cursor over the verdict stream."""

    def __init__(self, tmp_path: Path, settings: Settings, start: int = MONDAY) -> None:
        self.settings = settings
        self.store = SQLiteStore(str(tmp_path / "availmon.db"))
        self.store.migrate()
        self.clock = FakeClock(start + LAG)
        self.wakes = 0
        self.policy = self.new_policy()
        self.next = start

    def new_policy(self) -> Policy:
        def wake() -> None:
            self.wakes += 1

        return Policy(self.settings, self.store, self.clock, on_outbox=wake)

    def feed(self, codes: str, on_each: Callable[[int], None] | None = None) -> int:
        """Feed one second per code; returns the last second fed."""
        for code in codes:
            s = self.next
            self.next += 1
            self.clock.set_wall(max(s + LAG, self.clock.wall()))
            vs = verdicts(s, code)
            self.store.write_verdicts(vs)
            self.policy.on_second(s, vs)
            if on_each is not None:
                on_each(s)
        return self.next - 1

    def incidents(self, severity: str | None = None) -> list[Incident]:
        return sorted(self.store.list_incidents(severity=severity), key=lambda i: i.id)

    def items(self, notifier: str | None = None, event: str | None = None) -> list[OutboxItem]:
        return [
            o
            for o in self.store.outbox()
            if (notifier is None or o.notifier == notifier) and (event is None or o.event == event)
        ]

    def kinds(self, incident_id: int) -> list[str]:
        return [e.kind for e in self.store.events(incident_id)]


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path, make_settings())


# ---------------------------------------------------------------------------- Critical Issue


def test_critical_opens_at_exactly_the_min_unavailable_second(rig: Rig) -> None:
    rig.feed("A" * 10 + "U" * 29)
    assert rig.incidents() == []
    last = rig.feed("U")
    [inc] = rig.incidents()
    assert (inc.severity, inc.state, inc.kind) == ("critical", "open", "unavailable")
    assert inc.first_unavailable == MONDAY + 10
    assert inc.last_unavailable == last
    assert inc.unavailable_seconds == 30
    assert inc.dedup_key == f"availmon/sp/{inc.id}"
    assert inc.ack_due_at == pytest.approx(inc.opened_at + 15 * 60)
    assert inc.summary.startswith("CRITICAL: sp unavailable (api) — 30 s unavailable since ")
    [item] = rig.items()
    assert (item.notifier, item.event, item.incident_id) == ("pager", "trigger", inc.id)
    assert item.next_attempt_at == item.created_at == inc.opened_at
    p = item.payload
    assert set(p) == {"seq", "event", "tier", "incident", "summary", "text", "at", "vantage"}
    assert (p["seq"], p["event"], p["tier"], p["vantage"]) == (1, "trigger", "critical", "test")
    assert set(p["incident"]) == {
        "id", "service", "severity", "state", "kind", "dedup_key", "opened_at",
        "acknowledged_at", "acknowledged_by", "recovered_at", "resolved_at", "resolved_by",
        "first_unavailable", "last_unavailable", "unavailable_seconds", "ack_due_at",
        "ack_breached_at", "response_due_at", "summary",
    }  # fmt: skip
    assert p["incident"]["dedup_key"] == inc.dedup_key
    assert len(p["summary"]) <= 200 and "\n" not in p["summary"]
    assert "Unavailable seconds so far: 30" in p["text"]
    assert rig.kinds(inc.id) == ["opened"]
    assert rig.wakes == 1
    # more unavailability adds to the same incident, without another page; the running
    # count reaches the store every FLUSH_EVERY seconds and when the run ends
    rig.feed("U" * 9)
    assert rig.store.get_incident(inc.id).unavailable_seconds == 30
    rig.feed("U")
    assert rig.store.get_incident(inc.id).unavailable_seconds == 40
    rig.feed("U" * 5)
    assert rig.policy.active()[0].unavailable_seconds == 45
    rig.feed("A")
    assert rig.store.get_incident(inc.id).unavailable_seconds == 45
    assert len(rig.items()) == 1


FLAPPING = [
    # (pattern, index of the second that opens the incident, or None)
    ("UA" * 30, 58),
    ("UAA" * 40, None),
    ("U" * 29 + "A" * 30 + "U", 59),  # the first U is still in the 60 s window
    ("U" * 29 + "A" * 31 + "U" + "A" * 5 + "U", None),  # it has just left it
    ("AU" * 15 + "?U" * 15, 59),  # unknown seconds are not unavailable, nor do they reset
    ("U??" * 40, None),
]


@pytest.mark.parametrize(
    ("pattern", "opens_at"),
    FLAPPING,
    ids=[
        "alternate-30-of-60",
        "one-in-three",
        "edge-in",
        "edge-out",
        "with-unknown",
        "one-in-three-unknown",
    ],
)
def test_flapping(rig: Rig, pattern: str, opens_at: int | None) -> None:
    opened: list[int] = []

    def watch(s: int) -> None:
        if not opened and rig.store.list_incidents(severity="critical"):
            opened.append(s - MONDAY)

    rig.feed(pattern, watch)
    assert (opened[0] if opened else None) == opens_at


def test_recovery_then_relapse_within_reopen_window_continues(rig: Rig) -> None:
    rig.feed("U" * 30)
    [inc] = rig.incidents()
    rig.feed("A" * 119)
    assert rig.store.get_incident(inc.id).state == "open"
    recovered_at = rig.feed("A")
    inc = rig.store.get_incident(inc.id)
    assert inc.state == "recovered" and inc.recovered_at == recovered_at + LAG
    assert [o.event for o in rig.items("pager")] == ["trigger", "recover"]
    rig.feed("A" * 600 + "U" * 3 + "A")
    inc = rig.store.get_incident(inc.id)
    assert (inc.state, inc.recovered_at, inc.unavailable_seconds) == ("open", None, 33)
    assert len(rig.incidents()) == 1
    assert [o.event for o in rig.items("pager")] == ["trigger", "recover"]  # no second page
    assert rig.kinds(inc.id) == ["opened", "recovered", "unavailable_again"]
    rig.feed("A" * 119)
    assert rig.store.get_incident(inc.id).state == "recovered"
    assert [o.event for o in rig.items("pager")] == ["trigger", "recover", "recover"]


def test_relapse_after_reopen_window_opens_a_new_incident(tmp_path: Path) -> None:
    rig = Rig(tmp_path, make_settings(critical={"reopen_within_seconds": 100}))
    rig.feed("U" * 30 + "A" * 120)
    [first] = rig.incidents()
    rig.feed("A" * 100 + "U" * 5)  # later than reopen_within, short of the rule: nothing
    assert rig.store.get_incident(first.id).state == "recovered"
    assert len(rig.incidents(severity="critical")) == 1
    rig.feed("A" * 200 + "U" * 30)
    old, new = rig.incidents(severity="critical")
    assert old.id == first.id and old.state == "recovered"
    assert new.state == "open" and new.unavailable_seconds == 30
    assert new.dedup_key != old.dedup_key
    triggers = rig.items("pager", "trigger")
    assert [o.incident_id for o in triggers] == [old.id, new.id]


def test_unknown_second_breaks_the_recovery_streak(rig: Rig) -> None:
    rig.feed("U" * 30 + "A" * 119 + "?" + "A" * 119)
    [inc] = rig.incidents()
    assert inc.state == "open"
    rig.feed("A")
    assert rig.store.get_incident(inc.id).state == "recovered"


# ---------------------------------------------------------------------------- maintenance


def test_maintenance_seconds_never_open_an_incident(rig: Rig) -> None:
    rig.feed("u" * 200 + "A" * 1000)
    assert rig.incidents() == []
    assert rig.items() == []


def test_maintenance_seconds_neither_extend_nor_break_recovery(rig: Rig) -> None:
    rig.feed("U" * 30 + "A" * 60 + "a" * 100 + "u" * 10 + "A" * 59)
    [inc] = rig.incidents()
    assert inc.state == "open"
    assert inc.unavailable_seconds == 30  # excluded unavailable seconds are not counted
    rig.feed("A")
    assert rig.store.get_incident(inc.id).state == "recovered"


def test_excluded_seconds_do_not_fill_the_critical_window(rig: Rig) -> None:
    rig.feed("U" * 20 + "u" * 20 + "U" * 9)
    assert rig.incidents(severity="critical") == []
    rig.feed("U")
    [inc] = rig.incidents(severity="critical")
    assert inc.unavailable_seconds == 30


# ---------------------------------------------------------------------------- time duties


def test_ack_late_escalates_and_records_the_breach(rig: Rig) -> None:
    rig.feed("U" * 30)
    [inc] = rig.incidents()
    assert inc.ack_due_at is not None
    rig.policy.tick(inc.ack_due_at - 1)
    assert rig.items("boss") == []
    due = inc.ack_due_at
    rig.policy.tick(due)
    inc = rig.store.get_incident(inc.id)
    assert inc.ack_breached_at == due
    assert rig.kinds(inc.id)[-2:] == ["ack_breached", "escalated"]
    [esc] = rig.items("boss")
    assert (esc.event, esc.payload["tier"]) == ("trigger", "escalation")
    assert esc.payload["summary"].startswith("ESCALATED")
    assert esc.payload["incident"]["ack_breached_at"] == due
    rig.policy.tick(due + 60)
    assert len(rig.items("boss")) == 1  # escalated once
    assert [o.event for o in rig.items("pager")] == ["trigger"]
    # the late ack and the resolve reach both tiers
    Incidents(rig.settings, rig.store, rig.clock).ack(inc.id, "alice")
    Incidents(rig.settings, rig.store, rig.clock).resolve(inc.id, "alice", "fixed upstream")
    assert [o.event for o in rig.items("boss")] == ["trigger", "acknowledge", "resolve"]
    assert [o.event for o in rig.items("pager")] == ["trigger", "acknowledge", "resolve"]


def test_ack_in_time_does_not_escalate(rig: Rig) -> None:
    rig.feed("U" * 33)
    [inc] = rig.incidents()
    rig.clock.advance(60)
    # a separate Incidents object (the API's) acks mid-outage; the policy re-reads the
    # incident and keeps its own running count
    Incidents(rig.settings, rig.store, rig.clock).ack(inc.id, "alice")
    rig.feed("U" * 2 + "A")
    assert rig.store.get_incident(inc.id).unavailable_seconds == 35
    assert inc.ack_due_at is not None
    rig.policy.tick(inc.ack_due_at + 3600)
    inc = rig.store.get_incident(inc.id)
    assert inc.ack_breached_at is None
    assert inc.state == "acknowledged"  # the policy did not overwrite the person's ack
    assert rig.items("boss") == []
    assert "ack_breached" not in rig.kinds(inc.id)


def test_recovered_before_the_deadline_does_not_escalate(rig: Rig) -> None:
    rig.feed("U" * 30 + "A" * 120)
    [inc] = rig.incidents()
    assert inc.ack_due_at is not None
    rig.policy.tick(inc.ack_due_at + 1)
    assert rig.items("boss") == []


def test_periodic_updates_until_resolved(rig: Rig) -> None:
    rig.feed("U" * 40)
    [inc] = rig.incidents()
    opened = inc.opened_at
    rig.policy.tick(opened + 30 * 60 - 1)
    assert rig.items(event="update") == []
    rig.policy.tick(opened + 30 * 60)
    [upd] = rig.items(event="update")
    assert upd.notifier == "pager" and upd.payload["tier"] == "critical"
    assert upd.payload["incident"]["state"] == "open"
    assert upd.payload["incident"]["unavailable_seconds"] == 40
    assert "40 s unavailable" in upd.payload["summary"]
    rig.policy.tick(opened + 60 * 60)
    assert len(rig.items(event="update")) == 2
    # after a long stop: one update now, not a burst of the missed ones
    rig.policy.tick(opened + 300 * 60)
    assert len(rig.items(event="update")) == 3
    seqs = [o.payload["seq"] for o in rig.items("pager")]
    assert seqs == sorted(set(seqs))
    Incidents(rig.settings, rig.store, rig.clock).resolve(inc.id, "bob")
    rig.policy.tick(opened + 400 * 60)
    assert len(rig.items(event="update")) == 3
    assert rig.kinds(inc.id).count("update_sent") == 3


def test_auto_resolve_after_quiet_time(tmp_path: Path) -> None:
    rig = Rig(tmp_path, make_settings(critical={"auto_resolve_after_minutes": 10}))
    rig.feed("U" * 30 + "A" * 120)
    [inc] = rig.incidents()
    assert inc.state == "recovered" and inc.recovered_at is not None
    rig.policy.tick(inc.recovered_at + 599)
    assert rig.store.get_incident(inc.id).state == "recovered"
    rig.policy.tick(inc.recovered_at + 600)
    inc = rig.store.get_incident(inc.id)
    assert (inc.state, inc.resolved_by) == ("resolved", "availmon")
    assert [o.event for o in rig.items("pager")] == ["trigger", "recover", "resolve"]
    assert rig.policy.active() == []


def test_no_auto_resolve_by_default(rig: Rig) -> None:
    rig.feed("U" * 30 + "A" * 120)
    [inc] = rig.incidents()
    rig.policy.tick(rig.clock.wall() + 30 * 86400)
    assert rig.store.get_incident(inc.id).state == "recovered"


def test_person_resolving_during_an_outage_needs_fresh_evidence(rig: Rig) -> None:
    rig.feed("U" * 30)
    [inc] = rig.incidents()
    Incidents(rig.settings, rig.store, rig.clock).resolve(inc.id, "carol", "known, tracked")
    rig.feed("U" * 29)
    assert len(rig.incidents()) == 1
    rig.feed("U")
    assert len(rig.incidents()) == 2


# ---------------------------------------------------------------------------- restart


def test_restart_mid_incident_continues_without_a_second_page(rig: Rig) -> None:
    rig.feed("A" * 5 + "U" * 40)
    [inc] = rig.incidents()
    rig.policy = rig.new_policy()
    rig.policy.restore()
    assert [i.id for i in rig.policy.active()] == [inc.id]
    rig.feed("U" * 10)
    assert len(rig.incidents()) == 1
    assert rig.store.get_incident(inc.id).unavailable_seconds == 50
    assert len(rig.items("pager", "trigger")) == 1
    rig.feed("A" * 100)
    # restart while recovering: the streak is rebuilt from the stored runs
    rig.policy = rig.new_policy()
    rig.policy.restore()
    rig.feed("A" * 19)
    assert rig.store.get_incident(inc.id).state == "open"
    rig.feed("A")
    assert rig.store.get_incident(inc.id).state == "recovered"
    assert [o.event for o in rig.items("pager")] == ["trigger", "recover"]


def test_restart_before_opening_keeps_the_window(rig: Rig) -> None:
    rig.feed("U" * 20)
    rig.policy = rig.new_policy()
    rig.policy.restore()
    rig.feed("U" * 9)
    assert rig.incidents() == []
    rig.feed("U")
    [inc] = rig.incidents()
    assert inc.unavailable_seconds == 30 and inc.first_unavailable == MONDAY


def test_restart_ignores_seconds_already_judged(rig: Rig) -> None:
    rig.feed("U" * 30)
    rig.policy = rig.new_policy()
    rig.policy.restore()
    # the detector re-emitting the last stored second must not count it twice
    s = rig.next - 1
    rig.policy.on_second(s, verdicts(s, "U"))
    [inc] = rig.incidents()
    assert inc.unavailable_seconds == 30


# ---------------------------------------------------------------------------- Non-Critical


def test_non_critical_by_failure_ratio_opens_once_a_window_is_watched(rig: Rig) -> None:
    # every 10th second has 1 timeout of 2 attempts: 90 of 1800 = 5 % over 900 s
    pattern = ("D" + "A" * 9) * 90
    rig.feed(pattern[:899])
    assert rig.incidents() == []
    rig.feed(pattern[899])
    [inc] = rig.incidents()
    assert (inc.severity, inc.kind, inc.state) == ("non_critical", "failure_ratio", "open")
    assert "5.0% of 1800 conclusive attempts" in inc.summary
    [item] = rig.items()
    assert (item.notifier, item.event, item.payload["tier"]) == ("tickets", "trigger", "ticket")
    assert item.next_attempt_at == item.created_at  # inside Business Hours: at once
    # 8 business hours from Monday ~10:15 EST: Tuesday at the same time
    assert inc.response_due_at == pytest.approx(inc.opened_at + 24 * 3600)


def test_failure_ratio_below_threshold_opens_nothing(rig: Rig) -> None:
    rig.feed(("D" + "A" * 10) * 120)  # 1 of 22 attempts: 4.5 %
    assert rig.incidents() == []


def test_non_critical_by_short_unavailability(rig: Rig) -> None:
    rig.feed("U" * 3 + "A" * 57)
    assert rig.incidents() == []  # still inside the Critical window: could become Critical
    rig.feed("A")
    [inc] = rig.incidents()
    assert (inc.severity, inc.kind) == ("non_critical", "unavailable")
    assert inc.first_unavailable == MONDAY
    assert "short of a Critical Issue" in inc.summary


def test_non_critical_outside_business_hours_is_queued_to_the_next_opening(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, make_settings(), start=SATURDAY)
    rig.feed("U" * 2 + "A" * 60)
    [inc] = rig.incidents()
    [item] = rig.items("tickets")
    assert item.next_attempt_at == MONDAY_OPEN
    assert rig.store.due(rig.clock.wall()) == []
    # 8 business hours from Monday 09:00 EST: Monday 17:00 EST
    assert inc.response_due_at == MONDAY_OPEN + 8 * 3600
    wakes = rig.wakes
    rig.policy.tick(MONDAY_OPEN - 1)
    assert rig.wakes == wakes
    rig.policy.tick(MONDAY_OPEN)
    assert rig.wakes == wakes + 1  # the dispatcher is woken when the queue opens
    assert [o.id for o in rig.store.due(MONDAY_OPEN)] == [item.id]


def test_at_most_one_non_critical_per_service(rig: Rig) -> None:
    rig.feed("U" + "A" * 60)
    [inc] = rig.incidents()
    rig.feed("U" + "A" * 60 + "U" * 2 + "A" * 100)
    assert len(rig.incidents()) == 1
    # a new kind of trouble is added to it, and the ticket hears an update
    rig.feed("C" * 300)
    [same] = rig.incidents()
    assert same.id == inc.id
    assert same.data["kinds"] == ["unavailable", "blind"]
    assert [o.event for o in rig.items("tickets")] == ["trigger", "update"]


def test_critical_supersedes_an_open_non_critical(rig: Rig) -> None:
    rig.feed("U" + "A" * 60)
    [nc] = rig.incidents()
    rig.feed("U" * 30)
    nc = rig.store.get_incident(nc.id)
    [crit] = rig.incidents(severity="critical")
    assert (nc.state, nc.resolved_by, nc.data["superseded_by"]) == (
        "resolved",
        "availmon",
        crit.id,
    )
    assert rig.kinds(nc.id) == ["opened", "superseded", "resolved"]
    assert [o.event for o in rig.items("tickets")] == ["trigger", "resolve"]
    assert "Superseded by Critical Issue" in rig.items("tickets")[-1].payload["text"]
    assert rig.store.events(crit.id)[0].data["supersedes"] == nc.id
    # while the Critical Issue is open, no Non-Critical one opens
    rig.feed("U" * 100)
    assert len(rig.incidents(severity="non_critical")) == 1


def test_blind_monitor_opens_and_auto_resolves(tmp_path: Path) -> None:
    rig = Rig(tmp_path, make_settings(non_critical={"auto_resolve_after_minutes": 5}))
    rig.feed("C" * 200 + "?" * 99)
    assert rig.incidents() == []
    rig.feed("C")
    [inc] = rig.incidents()
    assert (inc.severity, inc.kind) == ("non_critical", "blind")
    assert "monitor blind on api: no ok or qualifying attempt for 300 s" in inc.summary
    assert "(client_error 402, unknown 99)" in inc.summary
    rig.feed("A" * 300)
    assert rig.store.get_incident(inc.id).state == "open"
    rig.feed("A")
    inc = rig.store.get_incident(inc.id)
    assert (inc.state, inc.resolved_by) == ("resolved", "availmon")
    assert [o.event for o in rig.items("tickets")] == ["trigger", "resolve"]


def test_non_critical_stays_closed_after_a_person_resolves_it(rig: Rig) -> None:
    rig.feed("C" * 300)
    [inc] = rig.incidents()
    Incidents(rig.settings, rig.store, rig.clock).resolve(inc.id, "dave", "key rotated")
    rig.feed("C" * 100)
    assert len(rig.incidents()) == 1  # still blind, but a person closed it: no churn
    rig.feed("A" + "C" * 300)
    assert len(rig.incidents()) == 2  # cleared once, then blind again: a new one


def test_disabled_non_critical_opens_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path, make_settings(non_critical={"enabled": False}))
    rig.feed("C" * 400 + "U" + "A" * 100)
    assert rig.incidents() == []


def test_unknown_services_and_other_streams_are_ignored(rig: Rig) -> None:
    s = rig.next
    rig.policy.on_second(
        s, [SecondVerdict("other", "service", s, Verdict.UNAVAILABLE, "test")] * 40
    )
    assert rig.incidents() == []


def test_a_gap_in_the_stream_breaks_the_recovery_streak(rig: Rig) -> None:
    rig.feed("U" * 30 + "A" * 100)
    rig.next += 600  # the monitor was down for ten minutes
    rig.feed("A" * 119)
    [inc] = rig.incidents()
    assert inc.state == "open"
    rig.feed("A")
    assert rig.store.get_incident(inc.id).state == "recovered"


def test_a_person_resolving_an_older_incident_is_seen(tmp_path: Path) -> None:
    rig = Rig(tmp_path, make_settings(critical={"reopen_within_seconds": 10}))
    rig.feed("U" * 30 + "A" * 140 + "U" * 30)
    old, new = rig.incidents(severity="critical")
    assert old.state == "recovered" and new.state == "open"
    Incidents(rig.settings, rig.store, rig.clock).resolve(old.id, "erin")
    rig.feed("U")
    assert [i.id for i in rig.policy.active()] == [new.id]
    rig.policy.tick(old.opened_at + 3 * 3600)
    old = rig.store.get_incident(old.id)
    assert old.state == "resolved"  # not rewritten by the policy's stale copy
    assert [o.event for o in rig.store.outbox(old.id)] == ["trigger", "recover", "resolve"]


@pytest.mark.parametrize("restart", [False, True], ids=["live", "after-restart"])
def test_seconds_of_a_critical_outage_never_file_a_non_critical(
    tmp_path: Path, restart: bool
) -> None:
    # recovery (30 s) shorter than the Critical window (60 s): at recovery the outage's
    # seconds are still in the window, and must not move on into the Non-Critical one
    rig = Rig(tmp_path, make_settings(critical={"recover_after_seconds": 30}))
    rig.feed("A" * 5 + "U" * 30 + "A" * 30)
    [crit] = rig.incidents()
    assert rig.store.get_incident(crit.id).state == "recovered"
    if restart:
        rig.policy = rig.new_policy()
        rig.policy.restore()
    rig.feed("A" * 200)
    assert rig.incidents(severity="non_critical") == []


def test_restart_rebuild_skips_maintenance_seconds(rig: Rig) -> None:
    # the daemon marks seconds in a stored maintenance window as excluded; the stored runs
    # keep their verdict, so the rebuild must consult the windows itself
    rig.store.add_maintenance("sp", MONDAY, MONDAY + 20, "planned")
    rig.feed("u" * 20 + "U" * 20)
    rig.policy = rig.new_policy()
    rig.policy.restore()
    rig.feed("U" * 9)
    assert rig.incidents() == []
    rig.feed("U")
    [inc] = rig.incidents()
    assert inc.first_unavailable == MONDAY + 20


def test_unknown_seconds_with_failed_attempts_count_for_blindness_not_failures(
    rig: Rig,
) -> None:
    # control_failed: the monitor's own network was down, the attempts timed out, the
    # second is unknown: no evidence against the platform, and the monitor is blind
    for _ in range(950):  # past the 900 s failure-ratio window too
        s = rig.next
        rig.next += 1
        rig.clock.set_wall(s + LAG)
        vs = [
            SecondVerdict(
                "sp",
                "api",
                s,
                Verdict.UNKNOWN,
                "test",
                reason=UnknownReason.CONTROL_FAILED,
                counts={"timeout": 2},
            ),
            SecondVerdict("sp", "service", s, Verdict.UNKNOWN, "test"),
        ]
        rig.policy.on_second(s, vs)
    [inc] = rig.incidents()
    assert inc.kind == "blind" and inc.data["kinds"] == ["blind"]


def test_seconds_a_critical_issue_counted_never_open_a_non_critical_one(rig: Rig) -> None:
    """Resolved by a person before it recovered: the seconds it counted (which have left
    the Critical window meanwhile) are not "short of a Critical Issue"; nor after a
    restart, when the resolved incident is no longer tracked."""
    rig.feed("A" * 5 + "U" * 120)
    [crit] = rig.incidents()
    Incidents(rig.settings, rig.store, rig.clock).resolve(crit.id, "alice", "known")
    rig.policy.absorb({crit.id: rig.store.get_incident(crit.id)})
    rig.feed("A" * 3)
    assert [i.severity for i in rig.incidents()] == ["critical"]
    # a restart rebuilds the windows from the stored seconds
    rig.policy = rig.new_policy()
    rig.policy.restore()
    rig.feed("A" * 3)
    assert [i.severity for i in rig.incidents()] == ["critical"]
    # a short outage afterwards is still a Non-Critical Issue
    rig.feed("U" * 20 + "A" * 70)
    assert [i.severity for i in rig.incidents()] == ["critical", "non_critical"]


# ---------------------------------------------------------------------------- reload


def _without_sp(settings: Settings) -> Settings:
    other = settings.services[0].model_copy(update={"name": "other"})
    return settings.model_copy(update={"services": [other]})


def test_reload_keeps_a_changed_service_incident_and_rules_take_effect(rig: Rig) -> None:
    rig.feed("A" * 5 + "U" * 40)
    [inc] = rig.incidents()
    stricter = make_settings(critical={"recover_after_seconds": 5})
    rig.policy.reconfigure(stricter, rig.policy.prepare(stricter))
    rig.feed("A" * 4)
    assert rig.store.get_incident(inc.id).state == "open"
    rig.feed("A")  # the new rule: 5 available seconds recover it (the default took 20)
    assert rig.store.get_incident(inc.id).state == "recovered"
    assert len(rig.incidents()) == 1 and len(rig.items("pager", "trigger")) == 1


def test_reload_removing_and_re_adding_a_service_continues_its_incident(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.feed("A" * 5 + "U" * 40)
    [inc] = rig.incidents()
    gone = _without_sp(rig.settings)
    rig.policy.reconfigure(gone, rig.policy.prepare(gone))
    assert rig.policy.active() == []
    assert f"incident {inc.id} (critical) of service 'sp' stays unresolved" in caplog.text
    rig.feed("U" * 5)  # seconds of a service no longer configured are not judged
    assert rig.store.get_incident(inc.id).unavailable_seconds == 40
    back = rig.settings
    rig.policy.reconfigure(back, rig.policy.prepare(back))
    assert [i.id for i in rig.policy.active()] == [inc.id]
    rig.feed("U" * 10)
    assert len(rig.incidents()) == 1 and len(rig.items("pager", "trigger")) == 1
    assert rig.store.get_incident(inc.id).unavailable_seconds == 50


@pytest.mark.parametrize(("quorum", "opens"), [("all", False), (1, True)])
def test_a_combined_policy_rebuilds_its_window_from_every_vantage(
    tmp_path: Path, quorum: Any, opens: bool
) -> None:
    """A leader taking over on a shared store: east saw 40 s unavailable, west saw them
    available. Rebuilt by quorum "all" the window is empty (one more unavailable second
    opens nothing); by quorum 1 it holds 40 seconds, and the next one opens."""
    settings = make_settings().model_copy()
    svc = settings.services[0].model_copy(update={"quorum": quorum})
    settings = settings.model_copy(update={"services": [svc]})
    rig = Rig(tmp_path, settings)
    for i in range(40):
        s = MONDAY + i
        rig.store.write_verdicts(
            [
                SecondVerdict("sp", "service", s, Verdict.UNAVAILABLE, "east"),
                SecondVerdict("sp", "service", s, Verdict.AVAILABLE, "west"),
            ]
        )
    policy = Policy(rig.settings, rig.store, rig.clock, combined=True)
    policy.restore()
    assert policy.last_second("sp") == MONDAY + 39
    rig.clock.set_wall(MONDAY + 40 + LAG)
    policy.on_second(
        MONDAY + 40,
        [
            SecondVerdict("sp", "api", MONDAY + 40, Verdict.UNAVAILABLE, "combined"),
            SecondVerdict("sp", "service", MONDAY + 40, Verdict.UNAVAILABLE, "combined"),
        ],
    )
    assert bool(rig.incidents("critical")) is opens
