"""The store writer (monitor/writer.py) on a real SQLite store that can be told to refuse.

Driven on the caller's thread (`drain`) or its own (`start`), with an injected monotonic
clock for the "stuck" threshold; nothing here is timed.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.effects import CreateIncident, Enqueue
from alerting.model import Incident, IncidentState, OutboxItem, Severity
from monitor.store import open_store
from monitor.store.base import MinuteCount, Store
from monitor.verdicts import SecondVerdict, Verdict
from monitor.writer import EffectsJob, Job, StoreWriter
from probes.base import Attempt, Outcome

T0 = 1_767_225_600


class Refusing:
    """A store that raises "database is locked" on writes while `refuse` is set."""

    WRITES = ("write_verdicts", "write_evidence", "write_minute_counts", "create_incident",
              "update_incident", "add_event", "enqueue")  # fmt: skip

    def __init__(self, store: Store) -> None:
        self._store = store
        self.refuse = False
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._store, name)
        if name not in self.WRITES:
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.refuse:
                raise sqlite3.OperationalError("database is locked")
            self.calls.append(name)
            return target(*args, **kwargs)

        return call


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Refusing]:
    s = open_store(f"sqlite:///{tmp_path}/w.db")
    yield Refusing(s)
    s.close()


def _second(t: int) -> list[SecondVerdict]:
    return [SecondVerdict("sp", ch, t, Verdict.UNAVAILABLE, "v1") for ch in ("api", "service")]


def _critical(incident_id: int) -> list[Any]:
    inc = Incident(incident_id, "sp", Severity.CRITICAL, IncidentState.OPEN, "unavailable",
                   f"availmon/sp/{incident_id}", float(T0))  # fmt: skip
    item = OutboxItem(0, incident_id, "pager", "trigger", {"seq": 1, "tier": "critical"},
                      float(T0), float(T0))  # fmt: skip
    return [CreateIncident(inc), Enqueue((item,))]


def test_writes_in_order_and_keeps_what_the_store_refuses(store: Refusing) -> None:
    applied: list[Job] = []
    errors: list[str] = []
    w = StoreWriter(
        store,
        on_applied=applied.append,
        on_error=lambda op, exc: errors.append(op),
        retry_min=0.0,
    )
    store.refuse = True
    w.submit_seconds(_second(T0), [], [])
    w.submit_effects(_critical(7))
    w.submit_seconds(_second(T0 + 1), [], [MinuteCount("sp", "api", "p", T0, "timeout", 2)])
    assert not w.drain(0.05)  # refused: nothing written, nothing dropped
    assert errors and set(errors) == {"seconds"}  # the head job only: order holds
    assert w.pending() == {"verdicts": 4, "evidence": 0, "counts": 1, "effects": 2}
    assert w.trouble() is not None and w.trouble()[0] == "database is locked"  # type: ignore[index]
    store.refuse = False
    assert w.drain(5.0)
    assert store.calls == ["write_verdicts", "create_incident", "enqueue", "write_verdicts",
                           "write_minute_counts"]  # fmt: skip
    assert w.pending() == {"verdicts": 0, "evidence": 0, "counts": 0, "effects": 0}
    assert w.durable_through == T0 + 1 and w.refusing is None
    assert w.durable == {"sp": T0 + 1}
    stored = next(j for j in applied if isinstance(j, EffectsJob)).stored
    assert [(i.notifier, i.event) for i in stored] == [("pager", "trigger")] and stored[0].id > 0
    assert store.get_incident(7).dedup_key == "availmon/sp/7"


def test_waiting_seconds_are_written_together(store: Refusing) -> None:
    w = StoreWriter(store, retry_min=0.0)
    for i in range(50):
        w.submit_seconds(_second(T0 + i), [], [])
    assert w.drain(5.0)
    assert store.calls == ["write_verdicts"]  # fifty seconds, one write
    runs = store.runs("sp", "api", T0, T0 + 100, "v1")
    assert [(r.first, r.last) for r in runs] == [(T0, T0 + 49)]


def test_evidence_past_the_bound_is_dropped_and_counted(store: Refusing) -> None:
    dropped: list[tuple[str, int]] = []
    w = StoreWriter(store, max_evidence=3, on_drop=lambda k, n: dropped.append((k, n)))
    attempts = [Attempt(f"a{i}", "sp", "api", "p", T0, i, Outcome.TIMEOUT, 5.0, float(T0))
                for i in range(5)]  # fmt: skip
    store.refuse = True
    w.submit_seconds(_second(T0), attempts, [])
    assert dropped == [("evidence", 2)]
    assert w.pending()["evidence"] == 3 and w.pending()["verdicts"] == 2  # verdicts kept
    store.refuse = False
    assert w.drain(5.0)
    assert len(store.evidence("sp", T0, T0 + 1)) == 3


def test_pages_held_back_are_handed_over_once(store: Refusing) -> None:
    now = [0.0]
    stuck: list[list[OutboxItem]] = []
    w = StoreWriter(store, on_stuck=stuck.append, stuck_after=5.0,
                    monotonic=lambda: now[0], retry_min=0.0)  # fmt: skip
    store.refuse = True
    w.submit_seconds(_second(T0), [], [])
    w.submit_effects(_critical(3))
    w.report_stuck()
    assert stuck == []  # not yet waited long enough
    now[0] = 5.0
    w.report_stuck()
    w.report_stuck()
    assert [[(i.incident_id, i.event) for i in items] for items in stuck] == [[(3, "trigger")]]


def test_the_thread_writes_and_close_drains(store: Refusing) -> None:
    done = threading.Event()
    w = StoreWriter(store, on_applied=lambda job: done.set())
    w.start()
    w.submit_seconds(_second(T0), [], [])
    assert done.wait(10)
    w.submit_effects(_critical(1))
    assert w.close(10)
    assert store.get_incident(1).state == IncidentState.OPEN
    assert not w.running


def test_on_effects_completes_a_job_before_its_first_write_until_it_can(
    store: Refusing,
) -> None:
    """The hook (the daemon's Sev-1 case sheet) runs on the writer's thread before the
    job's first write; while it raises (the store refuses its read) the job waits like a
    refused write and the hook runs again; what it adds is written in its place and
    counted, and the job's items seen before it (as `report_stuck` reads them from another
    thread) are not changed."""
    from alerting.effects import AddEvent
    from alerting.model import IncidentEvent

    calls: list[int] = []

    def complete(job: EffectsJob) -> None:
        calls.append(len(job.effects))
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        effects = list(job.effects)
        effects.insert(1, AddEvent(IncidentEvent(7, float(T0), "case_sheet", {"n": 1})))
        effects[-1] = Enqueue(
            tuple(
                dataclasses.replace(i, payload={**i.payload, "case": "SEV-1 CASE"})
                for i in job.effects[-1].items  # type: ignore[union-attr]
            )
        )
        job.effects = effects

    w = StoreWriter(store, on_effects=complete, retry_min=0.0)
    w.submit_effects(_critical(7))
    before = w._queue[0].outbox  # type: ignore[union-attr]
    assert w.drain(5.0)
    assert calls == [2, 2]  # raised once (retried like a refused write), then completed
    assert store.calls == ["create_incident", "add_event", "enqueue"]
    assert [e.kind for e in store.events(7)] == ["case_sheet"]
    assert store.outbox(7)[0].payload["case"] == "SEV-1 CASE"
    assert "case" not in before[0].payload  # replaced, not changed in place
    assert w.pending()["effects"] == 0
