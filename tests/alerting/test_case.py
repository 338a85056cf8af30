"""The Sev-1 case sheet (alerting/case.py) from a real store's evidence, and the vendor's
callback against its promise (alerting/incidents.py `Incidents.callback`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from alerting.case import CALLBACK_EVENT, NotCritical, case_view, read_evidence, render_text
from alerting.case import compose as compose_rows
from alerting.incidents import Incidents, IncidentStateError
from alerting.model import IncidentState, Severity
from monitor.clock import FakeClock
from monitor.config import Settings, parse
from monitor.store.base import Incident
from monitor.store.sqlite import SQLiteStore
from probes.base import Attempt, Outcome

OPENED = 1_795_446_030.0  # 2026-11-23T15:00:30Z
FIRST = int(OPENED) - 30
SEV1 = {
    "company": "Acme Mail Ltd",
    "contact_name": "Dana Oncall",
    "contact_phone": "+44 20 7946 0000",
    "contact_email": "oncall@acme.example",
    "account_id": "sub-4242",
    "vendor_phone": "+1 800 555 0199",
    "vendor_email": "sev1@vendor.example",
}


def _settings(sev1: dict[str, Any] | None = None) -> Settings:
    url = "http://127.0.0.1:9/hook"
    return parse(
        {
            "monitor": {"vantage": "east"},
            "services": [
                {
                    "name": "sp",
                    "description": "the transactional platform",
                    "probes": [{"type": "http", "name": "acct", "url": url}],
                }
            ],
            "notifiers": [{"type": "webhook", "name": "pager", "url": url}],
            "sev1": SEV1 if sev1 is None else sev1,
        }
    )


def _attempt(
    channel: str, second: int, slot: int, outcome: Outcome, vantage: str, **detail: Any
) -> Attempt:
    probe = "acct" if channel == "api" else "inject"
    return Attempt(
        f"{probe}:{second}:{slot}", "sp", channel, probe, second, slot, outcome, 0.5,
        second + slot / 2, dict(detail), vantage,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = SQLiteStore(str(tmp_path / "s.db"))
    s.migrate()
    attempts = []
    for t in range(FIRST, FIRST + 30):
        attempts.append(_attempt("api", t, 0, Outcome.SERVER_ERROR, "east", status=503))
        attempts.append(
            _attempt(
                "api", t, 1, Outcome.TIMEOUT, "west", error="TimeoutError",
                message="no complete response by the deadline",
            )
        )  # fmt: skip
        attempts.append(
            _attempt("smtp", t, 0, Outcome.SERVER_ERROR, "east", stage="rcpt", code=421,
                     enhanced="4.3.2")
        )  # fmt: skip
        attempts.append(_attempt("smtp", t, 1, Outcome.OK, "east", stage="data", code=250))
    s.write_evidence(attempts)
    yield s
    s.close()


def _critical(store: SQLiteStore, severity: Severity = Severity.CRITICAL) -> Incident:
    return store.create_incident(
        Incident(
            0, "sp", severity, IncidentState.OPEN, "unavailable", "availmon/sp/1", OPENED,
            first_unavailable=FIRST, last_unavailable=FIRST + 29, unavailable_seconds=30,
            data={"channels": ["api", "smtp"]},
        )
    )  # fmt: skip


def compose(settings: Settings, store: SQLiteStore, inc: Incident, now: float) -> dict[str, Any]:
    return compose_rows(settings, inc, read_evidence(store, inc), now)


def test_the_sheet_says_what_failed_since_when_and_from_where(store: SQLiteStore) -> None:
    inc = _critical(store)
    case = compose(_settings(), store, inc, OPENED + 1)
    assert case["callback_due_at"] == OPENED + 15 * 60
    assert case["failures"]["api"] == [
        {"what": "HTTP 503", "attempts": 30},
        {"what": "timeout (no complete response by the deadline)", "attempts": 30},
    ]
    assert case["failures"]["smtp"] == [{"what": "SMTP 421 4.3.2 at rcpt", "attempts": 30}]
    assert case["vantages"] == ["east", "west"]
    assert len(case["sample_attempt_ids"]) == 4
    assert all(re.fullmatch(r"(acct|inject):\d+:[01]", i) for i in case["sample_attempt_ids"])
    d = case["description"]
    assert d.startswith("Since 2026-11-23T15:00:00Z, every API call and every SMTP injection")
    assert "the transactional platform" in d and "#1" in d and "30 unavailable seconds" in d
    assert "HTTP 503 (30 attempts)" in d and "SMTP 421 4.3.2 at rcpt (30 attempts)" in d
    assert "Seen from: east, west." in d
    text = render_text(case)
    for value in SEV1.values():
        assert value in text
    assert "Callback due:  2026-11-23T15:15:30Z (15 min after" in text
    assert text.splitlines()[0] == ("SEV-1 CASE: call +1 800 555 0199 and report a Critical Issue")


def test_an_unconfigured_field_says_so_and_a_non_critical_issue_has_no_case(
    store: SQLiteStore,
) -> None:
    case = compose(_settings({}), store, _critical(store), OPENED)
    text = render_text(case)
    assert "Company:       (not configured: [sev1] company)" in text
    assert text.startswith("SEV-1 CASE: call the vendor's Sev-1 line")
    with pytest.raises(NotCritical, match="Non-Critical"):
        compose(_settings(), store, _critical(store, Severity.NON_CRITICAL), OPENED)


def test_no_evidence_is_said_plainly(tmp_path: Path) -> None:
    s = SQLiteStore(str(tmp_path / "e.db"))
    s.migrate()
    case = compose(_settings(), s, _critical(s), OPENED)
    assert "No stored evidence of the failed attempts was found." in case["description"]
    assert case["sample_attempt_ids"] == [] and case["vantages"] == []
    s.close()


def test_the_vendor_callback_is_recorded_once_against_the_promise(store: SQLiteStore) -> None:
    settings = _settings()
    clock = FakeClock(OPENED + 20 * 60)
    desk = Incidents(settings, store, clock)
    inc = _critical(store)
    with pytest.raises(ValueError, match="not between"):
        desk.callback(inc.id, "Sam at Vendor", at=OPENED - 5)
    event = desk.callback(inc.id, "Sam at Vendor", at=OPENED + 9 * 60, note="case 77")
    assert event.kind == CALLBACK_EVENT and event.data["within"] is True
    with pytest.raises(IncidentStateError, match="already recorded"):
        desk.callback(inc.id, "Sam again")
    view = case_view(settings, store, inc.id, clock.wall())
    assert view["stored"] is False  # opened before any sheet was stored: composed now
    assert view["callback"] == {
        "at": OPENED + 9 * 60, "by": "Sam at Vendor", "minutes": 9.0, "within": True,
        "note": "case 77",
    }  # fmt: skip
    assert "Called back:   2026-11-23T15:09:30Z by Sam at Vendor, 9.0 min" in render_text(view)
    # late: 20 minutes, past the 15-minute promise
    late = _critical(store)
    assert desk.callback(late.id, "Sam at Vendor").data["within"] is False
    assert "LATER than the promise" in render_text(case_view(settings, store, late.id, OPENED))
    nc = _critical(store, Severity.NON_CRITICAL)
    with pytest.raises(IncidentStateError, match="Non-Critical"):
        desk.callback(nc.id, "Sam")


def test_the_cli_prints_the_case_and_records_the_callback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.cli import main

    db = tmp_path / "cli.db"
    s = SQLiteStore(str(db))
    s.migrate()
    s.write_evidence([_attempt("api", FIRST, 0, Outcome.SERVER_ERROR, "east", status=500)])
    inc = _critical(s)
    nc = _critical(s, Severity.NON_CRITICAL)
    s.close()
    cfg = tmp_path / "c.toml"
    fields = "".join(f'{k} = "{v}"\n' for k, v in SEV1.items())
    cfg.write_text(
        f'[store]\nurl = "sqlite:///{db}"\n[sev1]\n{fields}'
        '[[services]]\nname = "sp"\n[[services.probes]]\ntype = "http"\nname = "acct"\n'
        'url = "http://127.0.0.1:9/"\n'
    )
    assert main(["incidents", "case", str(inc.id), "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("SEV-1 CASE: call +1 800 555 0199") and "HTTP 500 (1 attempts)" in out
    assert main(["incidents", "-c", str(cfg), "case", str(inc.id), "--json"]) == 0
    assert '"callback_due_at"' in capsys.readouterr().out
    at = "2026-11-23T15:05:30+00:00"  # 5 minutes after the opening
    args = ["incidents", "callback", str(inc.id), "--by", "Sam", "--at", at, "-c", str(cfg)]
    assert main(args) == 0
    assert "recorded, within the 15-minute promise" in capsys.readouterr().out
    # bad input: one line, exit 2
    for bad, expected in (
        (args, "already recorded"),
        (["incidents", "callback", str(nc.id), "--by", "Sam", "-c", str(cfg)], "Non-Critical"),
        (["incidents", "case", str(nc.id), "-c", str(cfg)], "Non-Critical"),
        (["incidents", "case", "99", "-c", str(cfg)], "no incident 99"),
        ([*args[:5], "--at", "2026-11-23T15:05:30", "-c", str(cfg)], "UTC offset"),
    ):
        assert main(bad) == 2, bad
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1, captured
        assert expected in captured.err, captured.err


def test_the_report_sets_the_vendor_callback_against_its_promise(store: SQLiteStore) -> None:
    from monitor.reports import build_report
    from monitor.verdicts import SecondVerdict, Verdict

    settings = _settings()
    store.write_verdicts(
        [SecondVerdict("sp", ch, FIRST, Verdict.UNAVAILABLE, "east") for ch in ("api", "service")]
    )
    called, missed = _critical(store), _critical(store)
    Incidents(settings, store, FakeClock(OPENED + 3600)).callback(
        called.id, "Sam at Vendor", at=OPENED + 12 * 60
    )
    report = build_report(store, settings, "sp", "2026-11", now=OPENED + 3600)
    rows = {i["id"]: i for i in report["incidents"]}
    assert rows[called.id]["vendor_callback_met"] is True
    assert rows[called.id]["vendor_callback_minutes"] == 12.0
    assert rows[called.id]["vendor_callback_by"] == "Sam at Vendor"
    # none recorded an hour after the opening: the promise was not kept
    assert rows[missed.id]["vendor_callback_met"] is False
    assert rows[missed.id]["vendor_callback_at"] is None
