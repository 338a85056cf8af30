"""The report's numbers, from seconds made by the real detector and store, checked exactly."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from alerting.model import IncidentState, Severity
from monitor.config import Settings
from monitor.reports.compute import (
    REPORT_KEYS,
    AttemptTotals,
    BlindMinutes,
    NoData,
    _blind_minutes,
    build_report,
)
from monitor.reports.render import render
from monitor.store.base import Incident, IncidentEvent, Store
from monitor.store.sqlite import SQLiteStore
from monitor.verdicts import SecondVerdict, Verdict
from probes.base import Outcome
from tests.monitor.reports.conftest import Feeder, Pattern, T, service, settings_for

DAY = 86400
AFTER = T("2026-06-15T00:00:00Z")  # "now" for months that are over


def _april(store: Store, merge_gap: int = 0) -> dict:
    """April 2026, UTC: three stretches measured (the monitor was down in between)."""
    settings = settings_for(merge_gap=merge_gap)
    feeder = Feeder(settings, store)
    # across the month start: 10 s in March, 20 s in April
    feeder.run(
        T("2026-03-31T22:00:00Z"),
        T("2026-04-01T02:00:00Z"),
        Pattern().add(
            "api", T("2026-03-31T23:59:50Z"), T("2026-04-01T00:00:20Z"), Outcome.SERVER_ERROR
        ),
    )
    # across a day boundary, both channels, a launch gap and a maintenance window
    store.add_maintenance("*", T("2026-04-16T00:30:00Z"), T("2026-04-16T00:40:00Z"), "db upgrade")
    feeder.run(
        T("2026-04-15T23:00:00Z"),
        T("2026-04-16T01:00:00Z"),
        Pattern()
        .add("smtp", T("2026-04-15T23:59:30Z"), T("2026-04-16T00:00:45Z"), Outcome.TIMEOUT)
        .add("api", T("2026-04-16T00:00:40Z"), T("2026-04-16T00:00:50Z"), Outcome.SERVER_ERROR)
        .add("api", T("2026-04-16T00:10:00Z"), T("2026-04-16T00:10:10Z"), None)
        .add("smtp", T("2026-04-16T00:10:00Z"), T("2026-04-16T00:10:10Z"), None)
        .add("api", T("2026-04-16T00:29:50Z"), T("2026-04-16T00:30:20Z"), Outcome.SERVER_ERROR),
    )
    # a one-second outage, and one across the month end
    feeder.run(
        T("2026-04-30T23:00:00Z"),
        T("2026-05-01T00:30:00Z"),
        Pattern()
        .add("api", T("2026-04-30T23:00:01Z"), T("2026-04-30T23:00:02Z"), Outcome.TIMEOUT)
        .add("api", T("2026-04-30T23:59:55Z"), T("2026-05-01T00:00:10Z"), Outcome.SERVER_ERROR)
        .add("smtp", T("2026-04-30T23:59:55Z"), T("2026-05-01T00:00:10Z"), Outcome.SERVER_ERROR),
    )
    return build_report(store, settings, "mail", "2026-04", now=AFTER)


def test_april_numbers_are_exact(store: Store) -> None:
    r = _april(store)
    total = 30 * DAY
    assert r["total_seconds"] == total
    assert r["excluded_seconds"] == 600
    measured_by_detector = 3 * 2 * 3600 - 3600  # 2 h + 2 h + 1 h of April
    assert r["unknown_seconds"] == total - measured_by_detector + 10  # + the 10 s launch gap
    assert r["unavailable_seconds"] == {"service": 116, "api": 46, "smtp": 80}
    counted = total - 600
    measured = counted - r["unknown_seconds"]
    assert measured == 17390
    assert r["availability_percent"] == round(100 - 100 * 116 / counted, 6)
    assert r["availability_measured_percent"] == round(100 - 100 * 116 / measured, 6)
    assert r["coverage_percent"] == round(100 * measured / counted, 6)
    assert r["slo_target_percent"] == 99.99
    assert r["met"] is True
    assert r["error_budget_seconds"] == round(0.0001 * counted, 3) == 259.14
    assert r["budget_used_percent"] == round(100 * 116 / (0.0001 * counted), 3)
    assert r["credit_percent"] is None
    assert r["partial"] is False
    assert r["vantage"] == "v1"
    assert [(o["start"], o["end"], o["seconds"], o["channels"]) for o in r["outages"]] == [
        ("2026-04-01T00:00:00+00:00", "2026-04-01T00:00:20+00:00", 20, ["api"]),
        ("2026-04-15T23:59:30+00:00", "2026-04-16T00:00:50+00:00", 80, ["api", "smtp"]),
        ("2026-04-16T00:29:50+00:00", "2026-04-16T00:30:00+00:00", 10, ["api"]),
        ("2026-04-30T23:00:01+00:00", "2026-04-30T23:00:02+00:00", 1, ["api"]),
        ("2026-04-30T23:59:55+00:00", "2026-05-01T00:00:00+00:00", 5, ["api", "smtp"]),
    ]
    assert r["outages"][0]["start_epoch"] == T("2026-04-01T00:00:00Z")
    assert r["longest_outage"]["seconds"] == 80
    assert r["longest_outage"]["start"] == "2026-04-15T23:59:30+00:00"


def test_april_daily_and_warnings(store: Store) -> None:
    r = _april(store)
    daily = {d["date"]: d for d in r["daily"]}
    assert len(daily) == 30
    assert sum(d["seconds"] for d in r["daily"]) == r["total_seconds"]
    assert sum(d["unavailable_seconds"] for d in r["daily"]) == 116
    assert sum(d["unknown_seconds"] for d in r["daily"]) == r["unknown_seconds"]
    assert (daily["2026-04-01"]["unavailable_seconds"], daily["2026-04-01"]["unknown_seconds"]) == (
        20,
        DAY - 7200,
    )
    assert (daily["2026-04-15"]["unavailable_seconds"], daily["2026-04-15"]["unknown_seconds"]) == (
        30,
        DAY - 3600,
    )
    assert daily["2026-04-16"] == {
        "date": "2026-04-16",
        "seconds": DAY,
        "unavailable_seconds": 60,
        "unknown_seconds": DAY - 3600 + 10,
        "excluded_seconds": 600,
    }
    assert daily["2026-04-30"]["unavailable_seconds"] == 6
    assert daily["2026-04-02"]["unknown_seconds"] == DAY
    assert any("coverage" in w and "below 99.9" in w for w in r["warnings"])
    assert r["maintenance"] == [
        {
            "start": "2026-04-16T00:30:00+00:00",
            "end": "2026-04-16T00:40:00+00:00",
            "start_epoch": T("2026-04-16T00:30:00Z"),
            "end_epoch": T("2026-04-16T00:40:00Z"),
            "service": "*",
            "reason": "db upgrade",
        }
    ]


def test_evidence_quotes_failed_attempts_of_each_outage(store: Store) -> None:
    r = _april(store)
    first = r["outages"][0]["evidence"]
    assert first and first[0]["second"] == T("2026-04-01T00:00:00Z")
    assert {(e["probe"], e["outcome"], e.get("status")) for e in first} == {
        ("api-1", "server_error", 503)
    }
    smtp = [e for e in r["outages"][1]["evidence"] if e["channel"] == "smtp"]
    second = T("2026-04-15T23:59:30Z")
    assert smtp and smtp[0] == {
        "t": "2026-04-15T23:59:30+00:00",
        "second": second,
        "channel": "smtp",
        "probe": "smtp-1",
        "outcome": "timeout",
        "latency": 0.05,
        "attempt_id": f"smtp-1:{second}:0@v1",  # what the probe sent in X-Availmon-Attempt
        "vantage": "v1",
        "slot": 0,
        "part": "first",
        "error": "SMTPTimeoutError",
        "stage": "banner",
    }
    # the smtp outage ran to 00:00:45, into the maintenance window's... no: its last
    # unavailable second is 00:00:44, quoted as "last"
    assert smtp[-1]["second"] == T("2026-04-16T00:00:44Z") and smtp[-1]["part"] == "last"
    for o in r["outages"]:
        assert all(o["start_epoch"] <= e["second"] < o["end_epoch"] for e in o["evidence"])


def test_evidence_is_the_first_and_last_seconds_whole_and_a_sample_across(store: Store) -> None:
    """With two attempts a second: both of the first and of the last second, one of each of
    8 seconds spread evenly between them, every one with its attempt id."""
    settings = settings_for(services=[service("mail", smtp=False, k=None)])
    start = T("2026-05-10T00:00:00Z")
    Feeder(settings, store).run(
        start,
        start + 1300,
        Pattern()
        .add("api", start + 60, start + 70, Outcome.SERVER_ERROR)
        .add("api", start + 100, start + 1101, Outcome.TIMEOUT),
    )
    r = build_report(store, settings, "mail", "2026-05", now=AFTER)
    short, long = (o["evidence"] for o in r["outages"])
    assert [(e["second"] - start, e["slot"], e["part"]) for e in short] == [
        (60, 0, "first"),
        (60, 1, "first"),
        *((s, 0, "sample") for s in range(61, 69)),
        (69, 0, "last"),
        (69, 1, "last"),
    ]
    assert [e["attempt_id"] for e in short[:2]] == [
        f"api-1:{start + 60}:0@v1",
        f"api-1:{start + 60}:1@v1",
    ]
    # 1001 s: the sample is spread over the whole outage, not its first minute
    assert [e["second"] - start for e in long if e["part"] == "sample"] == [
        100 + round(i * 1000 / 9) for i in range(1, 9)
    ]
    assert [e["second"] - start for e in long if e["part"] != "sample"] == [100, 100, 1100, 1100]
    assert all(e["outcome"] == "timeout" for e in long)
    # over the seconds measured (a few minutes of the month), not over the whole month
    assert r["attempts_per_second"]["api"]["observed"] == 2.0


def test_merge_gap_joins_close_outages(store: Store) -> None:
    r = _april(store, merge_gap=1800)
    assert [(o["start"], o["end"], o["seconds"], o["channels"]) for o in r["outages"]][1] == (
        "2026-04-15T23:59:30+00:00",
        "2026-04-16T00:30:00+00:00",
        90,
        ["api", "smtp"],
    )
    assert len(r["outages"]) == 4
    assert r["unavailable_seconds"]["service"] == 116  # merging never changes the count


def test_report_has_exactly_the_documented_keys(store: Store) -> None:
    r = _april(store)
    assert tuple(r) == REPORT_KEYS
    assert set(r["attempts_per_second"]) == {"api", "smtp"}
    assert r["attempts_per_second"]["api"]["configured"] == 1.0
    # 18000 April seconds measured, one attempt each, minus the 10 s launch gap
    assert r["attempts_per_second"]["api"]["observed"] == 1.0  # over the measured seconds


def test_dst_month_in_new_york(store: Store) -> None:
    """March 2026 in America/New_York has 31 days less one hour; local midnights move."""
    settings = settings_for(timezone="America/New_York")
    feeder = Feeder(settings, store)
    both = ("api", "smtp")
    p1 = Pattern()
    for ch in both:  # 5 s in February (local), 5 s in March
        p1.add(ch, T("2026-03-01T04:59:55Z"), T("2026-03-01T05:00:05Z"), Outcome.SERVER_ERROR)
    feeder.run(T("2026-03-01T04:00:00Z"), T("2026-03-01T06:00:00Z"), p1)
    # 01:59:50 EST to 03:00:10 EDT: 20 real seconds across the spring-forward gap
    feeder.run(
        T("2026-03-08T06:00:00Z"),
        T("2026-03-08T08:00:00Z"),
        Pattern().add("api", T("2026-03-08T06:59:50Z"), T("2026-03-08T07:00:10Z"), Outcome.TIMEOUT),
    )
    # across local midnight 03-19/03-20 (04:00Z in EDT): 3 s + 4 s
    feeder.run(
        T("2026-03-20T03:30:00Z"),
        T("2026-03-20T04:30:00Z"),
        Pattern().add(
            "api", T("2026-03-20T03:59:57Z"), T("2026-03-20T04:00:04Z"), Outcome.SERVER_ERROR
        ),
    )
    # across the local month end (2026-04-01T00:00-04:00): 2 s in March
    feeder.run(
        T("2026-04-01T03:00:00Z"),
        T("2026-04-01T05:00:00Z"),
        Pattern().add(
            "smtp", T("2026-04-01T03:59:58Z"), T("2026-04-01T04:00:03Z"), Outcome.SERVER_ERROR
        ),
    )
    r = build_report(store, settings, "mail", "2026-03", now=AFTER)
    assert r["timezone"] == "America/New_York"
    assert r["total_seconds"] == 31 * DAY - 3600
    assert r["period"]["start"] == "2026-03-01T00:00:00-05:00"
    assert r["period"]["end"] == "2026-04-01T00:00:00-04:00"
    assert r["unavailable_seconds"] == {"service": 34, "api": 32, "smtp": 7}
    assert r["unknown_seconds"] == r["total_seconds"] - 4 * 3600 - 3600
    assert [(o["start"], o["end"], o["seconds"]) for o in r["outages"]] == [
        ("2026-03-01T00:00:00-05:00", "2026-03-01T00:00:05-05:00", 5),
        ("2026-03-08T01:59:50-05:00", "2026-03-08T03:00:10-04:00", 20),
        ("2026-03-19T23:59:57-04:00", "2026-03-20T00:00:04-04:00", 7),
        ("2026-03-31T23:59:58-04:00", "2026-04-01T00:00:00-04:00", 2),
    ]
    daily = {d["date"]: d for d in r["daily"]}
    assert len(daily) == 31
    assert daily["2026-03-08"]["seconds"] == DAY - 3600
    assert sum(d["seconds"] for d in r["daily"]) == r["total_seconds"]
    assert {k: d["unavailable_seconds"] for k, d in daily.items() if d["unavailable_seconds"]} == {
        "2026-03-01": 5,
        "2026-03-08": 20,
        "2026-03-19": 3,
        "2026-03-20": 4,
        "2026-03-31": 2,
    }
    assert r["error_budget_seconds"] == round(0.0001 * (31 * DAY - 3600), 3)


def test_current_month_is_partial_and_fully_covered(store: Store) -> None:
    settings = settings_for(credits=[{"below_percent": 99.99, "credit_percent": 10}])
    Feeder(settings, store).run(
        T("2026-06-01T00:00:00Z"),
        T("2026-06-01T12:00:00Z"),
        Pattern().add(
            "smtp", T("2026-06-01T06:00:00Z"), T("2026-06-01T06:00:05Z"), Outcome.SERVER_ERROR
        ),
    )
    # 30 s after the last final second: the report stops at it, not at "now"
    r = build_report(store, settings, "mail", "2026-06", now=T("2026-06-01T12:00:30Z"))
    assert r["partial"] is True
    assert r["total_seconds"] == 12 * 3600
    assert r["period"]["month_seconds"] == 30 * DAY
    assert r["unknown_seconds"] == 0
    assert r["coverage_percent"] == 100.0
    assert r["unavailable_seconds"]["service"] == 5
    assert (
        r["availability_measured_percent"]
        == r["availability_percent"]
        == round(100 - 100 * 5 / 43200, 6)
    )
    # the budget is the whole month's: what is left of it is what matters mid-month
    assert r["error_budget_seconds"] == 259.2
    assert r["credit_percent"] is None
    assert [w for w in r["warnings"] if "coverage" in w] == []
    assert any(w.startswith("partial month") for w in r["warnings"])
    assert [d["date"] for d in r["daily"]] == ["2026-06-01"]
    # later, with the monitor silent since: the silence is unknown, not skipped
    r = build_report(store, settings, "mail", "2026-06", now=T("2026-06-02T00:00:00Z"))
    assert r["total_seconds"] == DAY
    assert r["unknown_seconds"] == 12 * 3600
    assert any("coverage" in w for w in r["warnings"])


def test_a_month_with_no_stored_second_is_refused(store: Store) -> None:
    settings = settings_for()
    # a future month, and a month before the monitor existed: nothing is stored
    with pytest.raises(NoData, match="no second of mail is stored for 2026-07"):
        build_report(store, settings, "mail", "2026-07", now=T("2026-06-01T12:00:00Z"))
    Feeder(settings, store).run(T("2026-05-10T00:00:00Z"), T("2026-05-10T00:01:00Z"), Pattern())
    with pytest.raises(NoData, match="2026-04"):
        build_report(store, settings, "mail", "2026-04", now=AFTER)
    assert build_report(store, settings, "mail", "2026-05", now=AFTER)["total_seconds"] > 0


def test_credit_tier_and_missed_target(store: Store) -> None:
    settings = settings_for(
        credits=[
            {"below_percent": 99.99, "credit_percent": 10},
            {"below_percent": 99.0, "credit_percent": 25},
        ]
    )
    Feeder(settings, store).run(
        T("2026-05-31T23:00:00Z"),
        T("2026-06-01T01:00:00Z"),
        Pattern().add(
            "api", T("2026-06-01T00:00:00Z"), T("2026-06-01T00:05:00Z"), Outcome.SERVER_ERROR
        ),
    )
    r = build_report(store, settings, "mail", "2026-06", now=AFTER + 30 * DAY)
    assert r["unavailable_seconds"]["service"] == 300
    assert r["availability_percent"] == round(100 - 100 * 300 / (30 * DAY), 6)
    assert r["met"] is False
    assert r["budget_used_percent"] == round(100 * 300 / 259.2, 3)
    assert r["credit_percent"] == 10


def test_two_vantages_combine_by_quorum(store: Store) -> None:
    settings = settings_for()
    start, end = T("2026-05-10T00:00:00Z"), T("2026-05-10T01:00:00Z")
    Feeder(settings, store, "v1").run(
        start, end, Pattern().add("api", start + 600, start + 610, Outcome.SERVER_ERROR)
    )
    Feeder(settings, store, "v2").run(
        start, end, Pattern().add("api", start + 605, start + 615, Outcome.SERVER_ERROR)
    )
    both = build_report(store, settings, "mail", "2026-05", now=AFTER)
    assert both["unavailable_seconds"]["service"] == 5  # default quorum: every vantage agrees
    assert both["vantage"] is None
    assert any("2 vantage points" in w for w in both["warnings"])
    one = build_report(store, settings, "mail", "2026-05", now=AFTER, vantage="v2")
    assert one["unavailable_seconds"]["service"] == 10
    assert one["vantage"] == "v2"


def test_incidents_with_callback_and_updates(store: Store) -> None:
    settings = settings_for()
    opened = float(T("2026-04-16T00:00:10Z"))
    inc = store.create_incident(
        Incident(
            0,
            "mail",
            Severity.CRITICAL,
            IncidentState.RESOLVED,
            "unavailable",
            "",
            opened,
            acknowledged_at=opened + 600,
            resolved_at=opened + 7200,
            unavailable_seconds=80,
        )
    )
    store.add_event(IncidentEvent(inc.id, opened + 1800, "update"))
    store.add_event(IncidentEvent(inc.id, opened + 3600, "update_sent"))
    store.add_event(IncidentEvent(inc.id, opened + 3601, "notified", {"event": "update"}))
    late = store.create_incident(
        Incident(
            0,
            "mail",
            Severity.CRITICAL,
            IncidentState.RECOVERED,
            "unavailable",
            "",
            float(T("2026-03-31T23:50:00Z")),
            ack_breached_at=float(T("2026-04-01T00:05:00Z")),
        )
    )
    store.create_incident(
        Incident(
            0,
            "mail",
            Severity.CRITICAL,
            IncidentState.RESOLVED,
            "unavailable",
            "",
            float(T("2026-03-01T00:00:00Z")),
            resolved_at=float(T("2026-03-02T00:00:00Z")),
        )
    )
    Feeder(settings, store).run(T("2026-04-16T00:00:00Z"), T("2026-04-16T00:01:00Z"), Pattern())
    r = build_report(store, settings, "mail", "2026-04", now=AFTER)
    assert [i["id"] for i in r["incidents"]] == [late.id, inc.id]  # March's resolved one is out
    first, second = r["incidents"]
    assert first["ack_met"] is False and first["time_to_ack_seconds"] is None
    assert second["time_to_ack_seconds"] == 600.0
    assert second["ack_due_seconds"] == 900.0
    assert second["ack_met"] is True
    assert second["updates_sent"] == 2
    assert second["updates_delivered"] == 1
    assert second["updates_due"] == 4  # every 30 min over 2 h
    assert second["opened_at"] == "2026-04-16T00:00:10+00:00"
    assert second["dedup_key"] == f"availmon/mail/{inc.id}"


@pytest.mark.parametrize(
    ("service", "month", "message"),
    [
        ("mail", "2026-13", "month must be YYYY-MM, got '2026-13'"),
        ("mail", "2026-3", "month must be YYYY-MM, got '2026-3'"),
        ("mail", "March", "month must be YYYY-MM, got 'March'"),
        ("nope", "2026-03", "unknown service 'nope' (configured: mail)"),
    ],
    ids=["month-13", "one-digit-month", "name", "unknown-service"],
)
def test_bad_input_is_a_one_line_value_error(
    store: Store, service: str, month: str, message: str
) -> None:
    with pytest.raises(ValueError) as err:
        build_report(store, settings_for(), service, month, now=AFTER)
    assert str(err.value) == message


def test_explicit_quorum_of_three_vantages(store: Store) -> None:
    data = settings_for().model_dump(mode="json")
    data["services"][0]["quorum"] = 2
    for n in data["notifiers"]:
        n.pop("password", None)
    settings = Settings(**data)
    start = T("2026-05-10T00:00:00Z")
    for vantage, a in (("v1", 600), ("v2", 605), ("v3", None)):
        pattern = Pattern()
        if a is not None:
            pattern.add("smtp", start + a, start + a + 10, Outcome.TIMEOUT)
        Feeder(settings, store, vantage).run(start, start + 1200, pattern)
    r = build_report(store, settings, "mail", "2026-05", now=AFTER)
    # two of three say unavailable only in [605, 610)
    assert r["unavailable_seconds"] == {"service": 5, "api": 0, "smtp": 5}
    assert [(o["start_epoch"] - start, o["seconds"]) for o in r["outages"]] == [(605, 5)]
    assert any("3 vantage points with quorum 2" in w for w in r["warnings"])


class SummingStore(SQLiteStore):
    """A backend offering the aggregate `attempt_totals` (see compute.AttemptTotals)."""

    calls = 0

    def attempt_totals(
        self, service: str, start: int, end: int, vantage: str | None = None
    ) -> dict[str, int]:
        self.calls += 1
        totals: Counter[str] = Counter()
        for mc in self.minute_counts(service, start, end, vantage):
            totals[mc.channel] += mc.count
        return dict(totals)


def test_aggregate_attempt_totals_give_the_same_rates(tmp_path: Path) -> None:
    settings = settings_for()
    summing = SummingStore(str(tmp_path / "s.db"))
    summing.migrate()
    start = T("2026-05-10T00:00:00Z")
    Feeder(settings, summing).run(
        start, start + 600, Pattern().add("api", start + 60, start + 70, None)
    )
    assert isinstance(summing, AttemptTotals)
    fast = build_report(summing, settings, "mail", "2026-05", now=AFTER)
    assert summing.calls == 2  # the rates, and the one vantage's own figures
    plain = SQLiteStore(str(tmp_path / "s.db"))  # the same file, without the aggregate
    slow = build_report(plain, settings, "mail", "2026-05", now=AFTER)
    assert fast["attempts_per_second"] == slow["attempts_per_second"]
    assert slow["attempts_per_second"]["api"]["observed"] == 1.0
    summing.close()
    plain.close()


def test_service_without_smtp_probe(store: Store) -> None:
    settings = settings_for(services=[service("api-only", smtp=False, k=None)])
    start = T("2026-05-10T00:00:00Z")
    Feeder(settings, store).run(
        start, start + 600, Pattern().add("api", start + 60, start + 62, Outcome.SERVER_ERROR)
    )
    r = build_report(store, settings, "api-only", "2026-05", now=AFTER)
    assert r["unavailable_seconds"] == {"service": 2, "api": 2, "smtp": 0}
    assert r["attempts_per_second"]["smtp"] == {"configured": 0.0, "observed": None}
    assert r["attempts_per_second"]["api"]["configured"] == 2.0
    assert set(r["timeline"]) == {"service", "api"}  # no strip for a channel never probed


@pytest.mark.parametrize(
    ("seconds", "met"),
    [(259, True), (260, False)],
    ids=["259s-of-a-30-day-month-meets", "260s-misses"],
)
def test_met_is_decided_on_seconds_at_the_boundary(store: Store, seconds: int, met: bool) -> None:
    settings = settings_for()
    start = T("2026-06-10T00:00:00Z")
    Feeder(settings, store).run(
        start, start + 600, Pattern().add("smtp", start + 10, start + 10 + seconds, Outcome.TIMEOUT)
    )
    r = build_report(store, settings, "mail", "2026-06", now=AFTER + 30 * DAY)
    assert r["error_budget_seconds"] == 259.2
    assert r["met"] is met


def _blind_july(store: Store, combine: str = "any") -> dict:
    """July 2026: two hours measured; the API key revoked for 10 min 30 s (only 401s), a
    4-minute 429 spell (too short to be blind), and an SMTP outage inside the blind spell."""
    settings = settings_for()
    service = settings.services[0].model_copy(update={"combine": combine})
    settings = settings.model_copy(update={"services": [service]})
    start = T("2026-07-10T10:00:00Z")
    Feeder(settings, store).run(
        start,
        start + 7200,
        Pattern()
        .add("api", T("2026-07-10T10:00:30Z"), T("2026-07-10T10:11:00Z"), Outcome.CLIENT_ERROR)
        .add("smtp", T("2026-07-10T10:05:00Z"), T("2026-07-10T10:05:20Z"), Outcome.TIMEOUT)
        .add("api", T("2026-07-10T11:00:00Z"), T("2026-07-10T11:04:00Z"), Outcome.CLIENT_ERROR),
    )
    return build_report(store, settings, "mail", "2026-07", now=AFTER + 60 * DAY)


def test_blind_spell_counts_as_not_measured(store: Store) -> None:
    r = _blind_july(store)
    # whole minutes of only client errors, at least blind_after_seconds (300) in a row: the
    # 10:00 minute had 30 s of ok, the 11:00-11:04 spell is 240 s
    blind = (T("2026-07-10T10:01:00Z"), T("2026-07-10T10:11:00Z"))
    assert [(b["channel"], b["start_epoch"], b["end_epoch"], b["seconds"]) for b in r["blind"]] == [
        ("api", *blind, 600)
    ]
    total = 31 * DAY
    # combine = any: the SMTP outage inside the spell is still a known unavailable second
    assert r["unavailable_seconds"] == {"service": 20, "api": 0, "smtp": 20}
    assert r["unknown_seconds"] == total - 7200 + 600 - 20
    measured = total - r["unknown_seconds"]
    assert r["availability_percent"] == round(100 - 100 * 20 / total, 6)  # contract: unchanged
    assert r["availability_measured_percent"] == round(100 - 100 * 20 / measured, 6)
    assert r["coverage_percent"] == round(100 * measured / total, 6)
    assert any(w.startswith("monitor blind on api for 600 s") for w in r["warnings"])
    assert [list(blind)] == [
        iv for iv in r["timeline"]["api"]["unknown"] if iv[0] >= T("2026-07-10T10:00:00Z")
    ][:1]
    daily = {d["date"]: d for d in r["daily"]}
    assert daily["2026-07-10"]["unknown_seconds"] == DAY - 7200 + 600 - 20


def test_blind_channel_beside_a_seeing_one_under_combine_all(store: Store) -> None:
    # combine = all: the service is down only when every channel is; SMTP worked (apart
    # from its 20 s outage) during the blind spell, so the service was seen available
    r = _blind_july(store, combine="all")
    assert r["unavailable_seconds"]["service"] == 0
    assert r["unknown_seconds"] == 31 * DAY - 7200 + 20  # only the SMTP outage's 20 s
    assert r["blind"][0]["seconds"] == 600


def test_blind_minutes_without_the_aggregate_query(store: Store) -> None:
    _blind_july(store)

    class Plain:  # a backend with only the Store protocol's minute_counts
        minute_counts = store.minute_counts

    assert not isinstance(Plain(), BlindMinutes)
    month = (T("2026-07-01T00:00:00Z"), T("2026-08-01T00:00:00Z"))
    expected = store.blind_minutes("mail", *month)  # type: ignore[attr-defined]
    assert _blind_minutes(Plain(), "mail", *month) == expected  # type: ignore[arg-type]
    assert len(expected["api"]) == 10 + 4 and "smtp" not in expected


def test_the_report_says_what_each_vantage_measured(store: Store) -> None:
    """Two vantages, one of which saw five unavailable seconds the other did not: the
    combined figures follow the quorum, and `vantages` shows each one's own."""
    settings = settings_for()
    start = T("2026-05-10T00:00:00Z")
    for vantage, bad in (("east", True), ("west", False)):
        store.write_verdicts(
            [
                SecondVerdict(
                    "mail",
                    "service",
                    start + i,
                    Verdict.UNAVAILABLE if bad and 100 <= i < 105 else Verdict.AVAILABLE,
                    vantage,
                )
                for i in range(600)
            ]
        )
    r = build_report(store, settings, "mail", "2026-05", now=AFTER)
    assert r["unavailable_seconds"]["service"] == 0  # quorum all: west saw them available
    by = {v["vantage"]: v for v in r["vantages"]}
    assert (by["east"]["unavailable_seconds"], by["west"]["unavailable_seconds"]) == (5, 0)
    assert by["east"]["measured_seconds"] == by["west"]["measured_seconds"] == 600
    text = render([r], "md")
    assert "Vantage points" in text and "east" in text


def test_method_states_the_probes_and_rules_and_never_a_secret(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVAILMON_TEST_KEY", "k3y-in-a-header-0123456789")
    settings = settings_for(
        services=[
            {
                "name": "mail",
                "quorum": "majority",
                "probes": [
                    {
                        "name": "api-1",
                        "type": "http",
                        "url": "https://user:pa55word@api.example:8443/v1/account?key=qu3ry",
                        "headers": {"Authorization": "env:AVAILMON_TEST_KEY"},
                        "classify": {"5xx": "timeout", "503": "client_error"},
                        "expect_status": [200, 201, 202, 204],
                    },
                    {
                        "name": "smtp-1",
                        "type": "smtp",
                        "host": "smtp.example",
                        "port": 2525,
                        "username": "SMTP_Injection",
                        "password": "env:AVAILMON_TEST_KEY",
                        "depth": "rcpt",
                        "timeout_seconds": 7.5,
                        "attempts_per_second": 3,
                    },
                ],
            }
        ]
    )
    start = T("2026-05-10T00:00:00Z")
    Feeder(settings, store).run(start, start + 60, Pattern())
    store.add_maintenance("mail", start + 10, start + 20, "window")
    r = build_report(store, settings, "mail", "2026-05", now=AFTER)
    m = r["method"]
    assert "all of them fail" in m["sla"] and m["qualifying_outcomes"] == [
        "server_error",
        "timeout",
    ]
    assert (m["combine"], m["quorum"], m["vantages"]) == ("any", "majority", ["v1"])
    api, smtp = m["probes"]
    assert api["target"] == "https://api.example:8443/v1/account?…"
    assert (api["method"], api["expect_status"]) == ("GET", "200-202, 204")
    assert api["classify"] == {"503": "client_error", "5xx": "timeout"}
    assert (api["attempts_per_second"], api["timeout_seconds"]) == (2, 5.0)
    assert {k: smtp[k] for k in ("target", "port", "tls", "depth", "timeout_seconds")} == {
        "target": "smtp.example:2525",
        "port": 2525,
        "tls": "starttls",
        "depth": "rcpt",
        "timeout_seconds": 7.5,
    }
    assert smtp["attempts_per_second"] == 3 and smtp["classify"] == {}
    assert m["overrides"] == 2
    assert (m["excluded_seconds"], m["maintenance_windows"]) == (10, 1)
    assert m["classification"][1] == {"observed": "HTTP 5xx", "outcome": "server_error"}
    text = render([r], "json") + render([r], "md") + render([r], "csv") + render([r], "html")
    for secret in ("pa55word", "qu3ry", "k3y-in-a-header", "user:", "SMTP_Injection"):
        assert secret not in text, secret


def test_the_digest_is_the_sha256_of_the_canonical_json(store: Store) -> None:
    import hashlib
    import json

    r = _april(store)
    bare = {k: v for k, v in r.items() if k not in ("digest", "signature")}
    canonical = json.dumps(bare, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert r["digest"]["value"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert r["digest"]["algorithm"] == "sha256" and r["signature"] is None
    # the file as written carries it and gives it back
    again = json.loads(render([r], "json"))
    assert (
        hashlib.sha256(
            json.dumps(
                {k: v for k, v in again.items() if k not in ("digest", "signature")},
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode()
        ).hexdigest()
        == r["digest"]["value"]
    )
    # and every format prints it
    for fmt in ("md", "csv", "html"):
        assert r["digest"]["value"] in render([r], fmt), fmt
