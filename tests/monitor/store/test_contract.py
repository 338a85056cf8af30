"""The `Store` contract (monitor/store/base.py), run unchanged against every backend of
tests/monitor/store/backends.py: only the protocol's calls, no SQL, no backend internals.
Backend-specific behaviour (SQLite's migrations, its file, its locks) is tested beside
the backend (test_sqlite_*.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerting.model import IncidentState, OutboxState, Severity
from monitor.store.base import (
    BlocklistSpell,
    Incident,
    IncidentEvent,
    MinuteCount,
    NotFound,
    OutboxItem,
    StaleEpoch,
    Store,
    excluded_spans,
)
from monitor.verdicts import SecondVerdict, UnknownReason, Verdict
from probes.base import Attempt, Outcome
from tests.monitor.store.backends import BACKENDS

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
A, U, K = Verdict.AVAILABLE, Verdict.UNAVAILABLE, Verdict.UNKNOWN


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = BACKENDS[request.param](tmp_path)
    yield s
    s.close()


def _v(t: int, verdict: Verdict, channel: str = "api", vantage: str = "v1") -> SecondVerdict:
    reason = UnknownReason.PROBE_ERROR if verdict is K else None
    return SecondVerdict("sp", channel, t, verdict, vantage, reason)


def _spans(store: Store, channel: str = "api", vantage: str | None = "v1") -> list[tuple]:
    return [
        (r.vantage, str(r.verdict), r.first - T0, r.last - T0)
        for r in store.runs("sp", channel, T0 - 100, T0 + 10_000, vantage)
    ]


def _incident(**kw: object) -> Incident:
    base: dict[str, object] = {
        "id": 0,
        "service": "sp",
        "severity": Severity.CRITICAL,
        "state": IncidentState.OPEN,
        "kind": "unavailable",
        "dedup_key": "",
        "opened_at": float(T0),
    }
    base.update(kw)
    return Incident(**base)  # type: ignore[arg-type]


def _item(incident_id: int, notifier: str = "pager", event: str = "trigger", seq: int = 1,
          due: float = T0) -> OutboxItem:  # fmt: skip
    return OutboxItem(0, incident_id, notifier, event, {"seq": seq}, float(T0), due)


# ----------------------------------------------------------------------------- seconds


def test_verdicts_are_stored_as_runs_and_never_labelled_twice(store: Store) -> None:
    store.write_verdicts([_v(T0 + i, U if 3 <= i < 6 else A) for i in range(10)])
    assert _spans(store) == [("v1", "available", 0, 2), ("v1", "unavailable", 3, 5),
                             ("v1", "available", 6, 9)]  # fmt: skip
    # a second at or before the last stored one is ignored, whatever it says
    store.write_verdicts([_v(T0 + 4, A), _v(T0 + 9, U), _v(T0 + 10, A)])
    assert _spans(store)[-1] == ("v1", "available", 6, 10)
    assert store.last_second("sp", "api", "v1") == T0 + 10
    assert store.last_second("sp", "api") == T0 + 10
    assert store.last_second("sp", "smtp") is None


def test_runs_are_clipped_to_the_range_and_kept_per_vantage(store: Store) -> None:
    store.write_verdicts([_v(T0 + i, A) for i in range(10)])
    store.write_verdicts([_v(T0 + i, U, vantage="v2") for i in range(5, 15)])
    runs = store.runs("sp", "api", T0 + 2, T0 + 8)
    assert [(r.vantage, r.first - T0, r.last - T0) for r in runs] == [("v1", 2, 7), ("v2", 5, 7)]
    assert [(r.vantage, r.verdict) for r in store.runs("sp", "api", T0, T0 + 20, "v2")] == [
        ("v2", U)
    ]
    assert store.runs("sp", "api", T0 + 5, T0 + 5) == []
    assert store.bounds("sp") == (T0, T0 + 14)
    assert store.bounds("sp", "v1") == (T0, T0 + 9)
    assert store.bounds("nope") is None
    assert sorted(store.streams()) == [("sp", "api", "v1"), ("sp", "api", "v2")]


def test_fill_unknown_is_clipped_after_the_last_stored_second(store: Store) -> None:
    store.write_verdicts([_v(T0 + i, A) for i in range(5)])
    store.fill_unknown("sp", "api", "v1", T0 + 2, T0 + 9, UnknownReason.MONITOR_DOWN)
    runs = store.runs("sp", "api", T0, T0 + 20, "v1")
    assert [(str(r.verdict), r.first - T0, r.last - T0) for r in runs] == [
        ("available", 0, 4),
        ("unknown", 5, 9),
    ]
    assert runs[-1].reason is UnknownReason.MONITOR_DOWN


def test_minute_counts_add_up(store: Store) -> None:
    m = T0 - T0 % 60
    store.write_minute_counts([MinuteCount("sp", "api", "p", m, "ok", 3)])
    store.write_minute_counts(
        [MinuteCount("sp", "api", "p", m, "ok", 2), MinuteCount("sp", "smtp", "q", m, "timeout", 1)]
    )
    got = {(c.channel, c.outcome): c.count for c in store.minute_counts("sp", m, m + 60)}
    assert got == {("api", "ok"): 5, ("smtp", "timeout"): 1}
    assert store.attempt_totals("sp", m, m + 60) == {"api": 5, "smtp": 1}
    assert store.minute_counts("sp", m + 60, m + 120) == []


def _attempt(second: int, slot: int = 0, vantage: str = "") -> Attempt:
    return Attempt(f"a{second}.{slot}", "sp", "api", "p", second, slot, Outcome.SERVER_ERROR,
                   0.123456, second + 0.01, {"status": 503}, vantage)  # fmt: skip


def test_several_vantages_keep_their_own_counts_and_evidence(store: Store) -> None:
    m = T0 - T0 % 60
    store.write_minute_counts(
        [
            MinuteCount("sp", "api", "p", m, "ok", 3, "eu"),
            MinuteCount("sp", "api", "p", m, "ok", 2, "us"),
        ]
    )
    # the same probe's same slot, measured from two places: two attempts, both kept
    store.write_evidence([_attempt(T0, 0, "eu"), _attempt(T0, 0, "us")])
    assert store.attempt_totals("sp", m, m + 60) == {"api": 5}
    assert store.attempt_totals("sp", m, m + 60, vantage="eu") == {"api": 3}
    assert [(c.vantage, c.count) for c in store.minute_counts("sp", m, m + 60)] == [
        ("eu", 3),
        ("us", 2),
    ]
    assert [c.count for c in store.minute_counts("sp", m, m + 60, vantage="us")] == [2]
    rows = store.evidence("sp", T0, T0 + 1)
    assert [(r["vantage"], r["slot"]) for r in rows] == [("eu", 0), ("us", 0)]
    assert [r["vantage"] for r in store.evidence("sp", T0, T0 + 1, vantage="us")] == ["us"]


def test_evidence_is_kept_once_per_attempt_and_pruned(store: Store) -> None:
    store.write_evidence([_attempt(T0), _attempt(T0, 1), _attempt(T0 + 100)])
    store.write_evidence([_attempt(T0)])  # the same attempt again: kept once
    rows = store.evidence("sp", T0, T0 + 200)
    assert [(r["second"], r["slot"]) for r in rows] == [(T0, 0), (T0, 1), (T0 + 100, 0)]
    assert rows[0]["outcome"] == "server_error" and rows[0]["detail"] == {"status": 503}
    assert len(store.evidence("sp", T0, T0 + 200, limit=1)) == 1
    m = T0 - T0 % 60
    store.write_minute_counts([MinuteCount("sp", "api", "p", m, "ok", 1)])
    assert store.prune(T0 + 50) >= 3  # two evidence rows and the minute
    assert [r["second"] for r in store.evidence("sp", T0, T0 + 200)] == [T0 + 100]
    assert store.minute_counts("sp", m, m + 60) == []


# ----------------------------------------------------------------------------- maintenance


def test_maintenance_windows(store: Store) -> None:
    a = store.add_maintenance("sp", T0, T0 + 60, "patch")
    b = store.add_maintenance("*", T0 + 30, T0 + 90, source="config")
    store.add_maintenance("other", T0, T0 + 600)
    assert {w.id for w in store.list_maintenance("sp")} == {a.id, b.id}
    assert [w.reason for w in store.list_maintenance("sp", T0 + 70, T0 + 80)] == [""]
    assert excluded_spans(store.list_maintenance(), "sp") == [(T0, T0 + 90)]
    store.remove_maintenance(a.id)
    assert [w.id for w in store.list_maintenance("sp")] == [b.id]
    with pytest.raises(NotFound):
        store.remove_maintenance(a.id)


# ----------------------------------------------------------------------------- incidents


def test_incident_ids_and_dedup_keys(store: Store) -> None:
    assert store.max_incident_id() == 0
    first = store.create_incident(_incident())
    assert first.id > 0 and first.dedup_key == f"availmon/sp/{first.id}"
    # an id chosen by the caller (the policy's EffectLog), written twice: one incident
    chosen = store.create_incident(_incident(id=first.id + 5))
    again = store.create_incident(_incident(id=first.id + 5, summary="retry"))
    assert chosen.dedup_key == again.dedup_key == f"availmon/sp/{first.id + 5}"
    assert store.get_incident(first.id + 5).summary == ""
    assert store.max_incident_id() == first.id + 5
    with pytest.raises(NotFound):
        store.get_incident(first.id + 1)


def test_a_persons_ack_and_resolve_stick(store: Store) -> None:
    inc = store.create_incident(_incident())
    acked = dataclasses.replace(
        inc, state=IncidentState.ACKNOWLEDGED, acknowledged_at=T0 + 5.0, acknowledged_by="ann"
    )
    store.update_incident(acked)
    # the policy writes a copy read before the ack: the ack is kept
    store.update_incident(dataclasses.replace(inc, unavailable_seconds=40))
    got = store.get_incident(inc.id)
    assert (got.state, got.acknowledged_by, got.unavailable_seconds) == (
        IncidentState.ACKNOWLEDGED, "ann", 40,
    )  # fmt: skip
    store.update_incident(
        dataclasses.replace(
            got, state=IncidentState.RESOLVED, resolved_at=T0 + 9.0, resolved_by="ann"
        )
    )
    store.update_incident(dataclasses.replace(got, state=IncidentState.RECOVERED))
    assert store.get_incident(inc.id).state == IncidentState.RESOLVED
    with pytest.raises(NotFound):
        store.update_incident(dataclasses.replace(inc, id=inc.id + 100))


def test_incident_lists_and_timelines(store: Store) -> None:
    a = store.create_incident(_incident(opened_at=T0 + 1.0))
    b = store.create_incident(
        _incident(severity=Severity.NON_CRITICAL, kind="blind", opened_at=T0 + 2.0)
    )
    store.create_incident(_incident(service="other", opened_at=T0 + 3.0))
    assert [i.id for i in store.list_incidents(service="sp")] == [b.id, a.id]  # newest first
    assert [i.id for i in store.list_incidents(severity="critical", service="sp")] == [a.id]
    assert [i.id for i in store.list_incidents(state="open", limit=1)] != []
    assert store.list_incidents(until=T0 + 1.5, service="sp")[0].id == a.id
    store.add_event(IncidentEvent(a.id, T0 + 1.0, "opened", {"second": 5}))
    store.add_event(IncidentEvent(a.id, T0 + 2.0, "note", {"text": "looking"}))
    assert [(e.kind, e.data) for e in store.events(a.id)] == [
        ("opened", {"second": 5}),
        ("note", {"text": "looking"}),
    ]
    with pytest.raises(NotFound):
        store.add_event(IncidentEvent(a.id + 1000, T0, "note"))


# ----------------------------------------------------------------------------- outbox


def test_outbox_is_idempotent_and_ordered_per_pair(store: Store) -> None:
    inc = store.create_incident(_incident())
    added = store.enqueue([_item(inc.id), _item(inc.id, event="update", seq=2),
                           _item(inc.id, notifier="slack")])  # fmt: skip
    assert len(added) == 3 and all(i.id > 0 for i in added)
    assert store.enqueue([_item(inc.id)]) == []  # the same (incident, notifier, event, seq)
    due = store.due(T0 + 1)
    # one item per (incident, notifier): the update waits behind the trigger
    assert sorted((i.notifier, i.event) for i in due) == [
        ("pager", "trigger"),
        ("slack", "trigger"),
    ]
    trigger = next(i for i in due if i.notifier == "pager")
    store.update_outbox(
        dataclasses.replace(trigger, tries=1, state=OutboxState.SENT, sent_at=T0 + 1.0)
    )
    assert ("pager", "update") in {(i.notifier, i.event) for i in store.due(T0 + 1)}
    assert store.due(T0 - 10) == []  # not yet due
    states = {(o.notifier, o.event): (o.state, o.tries) for o in store.outbox(inc.id)}
    assert states[("pager", "trigger")] == (OutboxState.SENT, 1)
    with pytest.raises(NotFound):
        store.update_outbox(dataclasses.replace(trigger, id=trigger.id + 1000))


def test_prune_outbox_keeps_what_replays_need(store: Store) -> None:
    done = store.create_incident(_incident())
    live = store.create_incident(_incident())
    items = store.enqueue([_item(done.id), _item(done.id, event="resolve", seq=2), _item(live.id)])
    for item in items[:1] + items[2:]:
        store.update_outbox(dataclasses.replace(item, state=OutboxState.SENT, sent_at=T0 + 1.0))
    store.update_incident(
        dataclasses.replace(
            done, state=IncidentState.RESOLVED, resolved_at=T0 + 10.0, resolved_by="ann"
        )
    )
    assert store.prune_outbox(T0 + 5) == 0  # resolved after the cut-off
    assert store.prune_outbox(T0 + 20) == 1  # the sent trigger of the resolved incident
    left = {(o.incident_id, o.event, o.state) for o in store.outbox()}
    assert left == {
        (done.id, "resolve", OutboxState.PENDING),
        (live.id, "trigger", OutboxState.SENT),
    }


def test_state_values_round_trip(store: Store) -> None:
    assert store.get_state("nothing") is None
    store.set_state("k", {"a": [1, 2]})
    store.set_state("k", {"a": [3]})
    assert store.get_state("k") == {"a": [3]}


# ---------------------------------------------------------------- leadership


def test_a_lease_has_one_holder_and_its_epoch_grows_with_each_new_one(store: Store) -> None:
    a = store.acquire_lease("leader", "a", 10, now=T0)
    assert a is not None and (a.holder, a.epoch, a.expires_at) == ("a", 1, T0 + 10)
    assert store.acquire_lease("leader", "b", 10, now=T0 + 1) is None  # a's lease runs
    renewed = store.acquire_lease("leader", "a", 10, now=T0 + 5)
    assert renewed is not None and (renewed.epoch, renewed.expires_at) == (1, T0 + 15)
    b = store.acquire_lease("leader", "b", 10, now=T0 + 15)  # a's ran out
    assert b is not None and (b.holder, b.epoch) == ("b", 2)
    assert store.acquire_lease("leader", "a", 10, now=T0 + 16) is None
    current = store.current_lease("leader")
    assert current is not None and current.holder == "b"
    store.release_lease("leader", "a")  # not a's: nothing happens
    assert store.acquire_lease("leader", "a", 10, now=T0 + 17) is None
    store.release_lease("leader", "b")  # a clean stop: the successor need not wait
    again = store.acquire_lease("leader", "a", 10)
    assert again is not None and (again.holder, again.epoch) == ("a", 3)
    assert store.current_lease("nobody") is None


def test_a_replaced_leader_cannot_write_through_its_fence(store: Store) -> None:
    a = store.acquire_lease("leader", "a", 10, now=T0)
    assert a is not None
    as_a = store.fenced("leader", a.epoch)
    first = as_a.create_incident(_incident())
    as_a.enqueue([_item(first.id)])
    b = store.acquire_lease("leader", "b", 10, now=T0 + 11)
    assert b is not None
    with pytest.raises(StaleEpoch):
        as_a.create_incident(_incident())
    with pytest.raises(StaleEpoch):
        as_a.enqueue([_item(first.id, seq=2)])
    with pytest.raises(StaleEpoch):
        as_a.set_state("ledger", {"written": True})
    # nothing of the refused writes is stored; reads through the fence still work
    assert [i.id for i in as_a.list_incidents()] == [first.id]
    assert [o.payload["seq"] for o in store.outbox()] == [1]
    assert store.get_state("ledger") is None
    # verdicts are no leader's: the unfenced store takes them from anyone
    store.write_verdicts([_v(T0, A)])
    as_b = store.fenced("leader", b.epoch)
    second = as_b.create_incident(_incident())
    assert second.id > first.id


def test_outbox_claims_are_disjoint_and_end_with_the_outcome(store: Store) -> None:
    inc = store.create_incident(_incident())
    other = store.create_incident(_incident())
    store.enqueue([_item(inc.id), _item(other.id), _item(inc.id, notifier="slack")])
    now = float(T0 + 10)
    mine = store.claim_due(now, "a", 30)
    assert len(mine) == 3
    assert store.claim_due(now + 1, "b", 30) == []  # a holds them
    assert [i.id for i in store.claim_due(now + 2, "a", 30)] == [i.id for i in mine]
    sent = dataclasses.replace(mine[0], state=OutboxState.SENT, tries=1, sent_at=now + 3)
    store.update_outbox(sent)
    retry = dataclasses.replace(mine[1], tries=1, next_attempt_at=now + 5)
    store.update_outbox(retry)  # its claim ends with the outcome: b may take the retry
    assert [i.id for i in store.claim_due(now + 6, "b", 30)] == [mine[1].id]
    # a's last claim runs out: b takes it over
    assert [i.id for i in store.claim_due(now + 2 + 31, "b", 30)] == [mine[1].id, mine[2].id]


def test_recent_verdicts_are_kept_in_full_per_vantage_and_pruned(store: Store) -> None:
    def v(t: int, vantage: str, verdict: Verdict, **kw: object) -> SecondVerdict:
        return SecondVerdict("sp", "api", t, verdict, vantage, **kw)  # type: ignore[arg-type]

    store.write_recent(
        [
            v(T0, "east", A, degraded=True, counts={"ok": 1, "timeout": 1}),
            v(T0, "west", U, counts={"timeout": 2}),
            v(T0 + 1, "east", K, reason=UnknownReason.CONTROL_FAILED),
        ]
    )
    store.write_recent([v(T0, "east", U)])  # already kept: left alone
    got = store.recent("sp", T0, T0 + 1)
    assert [(r.second, r.vantage, r.verdict) for r in got] == [
        (T0, "east", A),
        (T0, "west", U),
        (T0 + 1, "east", K),
    ]
    assert got[0].degraded and got[0].counts == {"ok": 1, "timeout": 1}
    assert got[2].reason is UnknownReason.CONTROL_FAILED
    assert store.recent_progress("sp", T0 - 1) == {"east": T0 + 1, "west": T0}
    assert store.recent_progress("sp", T0) == {"east": T0 + 1}
    assert store.prune_recent(T0 + 1) == 2
    assert [r.second for r in store.recent("sp", T0, T0 + 1)] == [T0 + 1]


def test_blocklist_spells_open_once_close_and_overlap_a_range(store: Store) -> None:
    spell = BlocklistSpell("s", "192.0.2.10", "zen.spamhaus.org", T0, None, ("127.0.0.2",), "why")
    store.open_spell(spell)
    store.open_spell(spell)  # a retried write
    store.open_spell(dataclasses.replace(spell, started_at=T0 + 300))  # still open: kept
    store.open_spell(BlocklistSpell("s", "example.com", "dbl.spamhaus.org", T0 + 60))
    store.open_spell(BlocklistSpell("other", "192.0.2.10", "zen.spamhaus.org", T0 + 60))
    [open_one] = store.spells("s", open_only=True)[:1]
    assert (open_one.target, open_one.started_at, open_one.codes, open_one.txt) == (
        "192.0.2.10",
        T0,
        ("127.0.0.2",),
        "why",
    )
    store.close_spell("s", "192.0.2.10", "zen.spamhaus.org", T0 + 600)
    store.close_spell("s", "192.0.2.10", "zen.spamhaus.org", T0 + 900)  # none open: nothing
    store.open_spell(dataclasses.replace(spell, started_at=T0 + 1200, codes=(), txt=None))
    got = [(x.target, x.started_at, x.ended_at) for x in store.spells("s")]
    assert got == [
        ("192.0.2.10", T0, T0 + 600),
        ("example.com", T0 + 60, None),
        ("192.0.2.10", T0 + 1200, None),
    ]
    # a range: spells that overlap it, the open ones up to now
    assert [x.started_at for x in store.spells("s", T0 + 700, T0 + 1000)] == [T0 + 60]
    assert [x.started_at for x in store.spells("s", T0 + 100, T0 + 300)] == [T0, T0 + 60]
    assert [x.service for x in store.spells(open_only=True)] == ["s", "other", "s"]
    assert store.spells("s", open_only=True)[1].codes == ()


def test_blocklist_spells_are_a_fenced_write(store: Store) -> None:
    a = store.acquire_lease("leader", "a", 10, now=T0)
    assert a is not None
    as_a = store.fenced("leader", a.epoch)
    as_a.open_spell(BlocklistSpell("s", "192.0.2.10", "zen.spamhaus.org", T0))
    assert store.acquire_lease("leader", "b", 10, now=T0 + 11) is not None
    with pytest.raises(StaleEpoch):
        as_a.close_spell("s", "192.0.2.10", "zen.spamhaus.org", T0 + 5)
    assert [x.ended_at for x in store.spells()] == [None]
