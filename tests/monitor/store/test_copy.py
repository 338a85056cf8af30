"""`availmon migrate`: a SQLite history copied whole into a new PostgreSQL store (a real
server, tests/pgserver.py), read back through the store contract, counts verified; the
copy goes on as a live store; a store with rows is never merged into."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from alerting.model import Incident, IncidentEvent, IncidentState, OutboxItem, OutboxState, Severity
from monitor.cli import main
from monitor.store import open_store
from monitor.store.base import MinuteCount
from monitor.verdicts import SecondVerdict, UnknownReason, Verdict
from probes.base import Attempt, Outcome
from tests import pgserver

pytestmark = pytest.mark.external

T0 = 1_767_225_600


def _history(url: str) -> None:
    s = open_store(url)
    try:
        for i in range(130):
            verdict = Verdict.UNAVAILABLE if 40 <= i < 50 else Verdict.AVAILABLE
            s.write_verdicts([SecondVerdict("sp", "service", T0 + i, verdict, "east")])
        s.fill_unknown("sp", "service", "east", T0 + 130, T0 + 140, UnknownReason.MONITOR_DOWN)
        s.write_minute_counts([MinuteCount("sp", "api", "p", T0, "ok", 119, "east")])
        s.write_evidence(
            [
                Attempt(
                    f"x{i}",
                    "sp",
                    "api",
                    "p",
                    T0 + 40 + i,
                    0,
                    Outcome.TIMEOUT,
                    5.0,
                    T0 + 40 + i + 0.1,
                    {"error": "ReadTimeout"},
                    "east",
                )
                for i in range(10)
            ]
        )
        s.add_maintenance("*", T0 + 200, T0 + 300, "upgrade", "config")
        inc = s.create_incident(
            Incident(0, "sp", Severity.CRITICAL, IncidentState.OPEN, "unavailable", "", T0 + 45)
        )
        s.add_event(IncidentEvent(inc.id, T0 + 45, "opened", {"seq": 1}))
        [item] = s.enqueue(
            [OutboxItem(0, inc.id, "pager", "trigger", {"seq": 1}, T0 + 45.0, T0 + 45.0)]
        )
        s.update_outbox(
            dataclasses.replace(item, state=OutboxState.SENT, tries=1, sent_at=T0 + 46.0)
        )
        s.set_state("report-ledger", {"2026-01": ["sp"]})
    finally:
        s.close()


def test_a_sqlite_history_is_copied_whole_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"sqlite:///{tmp_path}/old.db"
    _history(source)
    target = pgserver.fresh_url()
    assert main(["migrate", "--from", source, "--to", target]) == 0
    out = capsys.readouterr().out
    assert "copied and verified" in out and "evidence" in out
    old, new = open_store(source), open_store(target)
    try:
        assert new.runs("sp", "service", T0, T0 + 200) == old.runs("sp", "service", T0, T0 + 200)
        assert new.evidence("sp", T0, T0 + 200) == old.evidence("sp", T0, T0 + 200)
        assert new.minute_counts("sp", T0, T0 + 60) == old.minute_counts("sp", T0, T0 + 60)
        assert new.list_maintenance() == old.list_maintenance()
        assert new.list_incidents() == old.list_incidents()
        [inc] = new.list_incidents()
        assert [e.kind for e in new.events(inc.id)] == ["opened"]
        assert [(o.state, o.tries, o.sent_at) for o in new.outbox()] == [
            (OutboxState.SENT, 1, T0 + 46.0)
        ]
        assert new.get_state("report-ledger") == {"2026-01": ["sp"]}
        # the copy is a live store: new rows get ids after the copied ones
        later = new.create_incident(
            Incident(0, "sp", Severity.CRITICAL, IncidentState.OPEN, "unavailable", "", T0 + 500)
        )
        assert later.id > inc.id
        new.write_verdicts([SecondVerdict("sp", "service", T0 + 141, Verdict.AVAILABLE, "east")])
        assert new.last_second("sp", "service", "east") == T0 + 141
    finally:
        old.close()
        new.close()
    # never merged into a store with rows
    assert main(["migrate", "--from", source, "--to", target]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("availmon: error: the target store is not empty") and "\n" not in err.strip()
    )
