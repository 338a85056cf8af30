"""`daily_history` (monitor/reports/compute.py), the numbers of the pages' 90-day bars: for
a store seeded the way the daemon fills it (an outage, a launch gap, the monitor down, a
blind spell, a maintenance window, across a day boundary and a DST change) it agrees day
by day with the monthly report's ``daily`` rows, and per channel with the report's
per-channel totals; days not begun are left out."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from monitor.config import Settings
from monitor.reports.compute import build_report, daily_history
from monitor.store.base import Store
from monitor.verdicts import CHANNELS, SERVICE_CHANNEL
from probes.base import Outcome
from tests.monitor.reports.conftest import Feeder, Pattern, T, settings_for
from tests.monitor.reports.conftest import store as store  # the fixture

#: summer time in March (Berlin, New York), at local midnight in April (Santiago), and
#: an offset of a half hour (Kolkata)
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "America/Santiago", "Asia/Kolkata")


def _seed(store: Store, settings: Settings) -> None:
    """Short runs in March and April 2026 (the monitor down in between: unknown), each
    across a UTC or a local midnight; Europe/Berlin goes to summer time on 29 March, New
    York on 8 March."""
    feeder = Feeder(settings, store)
    p = Pattern
    feeder.run(
        T("2026-03-07T23:50:00Z"),
        T("2026-03-08T00:10:00Z"),
        p().add("api", T("2026-03-07T23:59:00Z"), T("2026-03-08T00:01:00Z"), Outcome.SERVER_ERROR),
    )
    feeder.run(  # New York's midnight
        T("2026-03-08T04:55:00Z"),
        T("2026-03-08T05:05:00Z"),
        p().add("smtp", T("2026-03-08T04:59:50Z"), T("2026-03-08T05:00:30Z"), Outcome.TIMEOUT),
    )
    store.add_maintenance("*", T("2026-03-28T22:50:00Z"), T("2026-03-28T23:10:00Z"), "db")
    store.add_maintenance("other", T("2026-03-29T00:40:00Z"), T("2026-03-29T01:00:00Z"), "x")
    feeder.run(  # Berlin's midnight, in a maintenance window
        T("2026-03-28T22:40:00Z"),
        T("2026-03-28T23:30:00Z"),
        p()
        .add("api", T("2026-03-28T22:45:00Z"), T("2026-03-28T22:55:00Z"), Outcome.SERVER_ERROR)
        .add("smtp", T("2026-03-28T23:05:00Z"), T("2026-03-28T23:20:00Z"), Outcome.TIMEOUT),
    )
    feeder.run(
        T("2026-03-29T00:25:00Z"),
        T("2026-03-29T01:45:00Z"),
        p()
        .add("api", T("2026-03-29T00:30:00Z"), T("2026-03-29T00:30:40Z"), None)  # not launched
        .add("smtp", T("2026-03-29T00:30:00Z"), T("2026-03-29T00:30:40Z"), None)
        .add("api", T("2026-03-29T00:59:30Z"), T("2026-03-29T01:00:30Z"), Outcome.TIMEOUT)
        # blind: only client errors on smtp for longer than blind_after_seconds
        .add("smtp", T("2026-03-29T01:30:00Z"), T("2026-03-29T01:40:00Z"), Outcome.CLIENT_ERROR),
    )
    feeder.run(  # Berlin's midnight in summer time, UTC's month end
        T("2026-03-31T21:50:00Z"),
        T("2026-03-31T22:10:00Z"),
        p().add("api", T("2026-03-31T21:59:55Z"), T("2026-03-31T22:00:15Z"), Outcome.SERVER_ERROR),
    )
    feeder.run(
        T("2026-04-01T03:55:00Z"),
        T("2026-04-01T04:05:00Z"),
        p().add("smtp", T("2026-04-01T03:59:00Z"), T("2026-04-01T04:00:10Z"), Outcome.SERVER_ERROR),
    )
    feeder.run(
        T("2026-04-01T23:55:00Z"),
        T("2026-04-02T00:05:00Z"),
        p().add("api", T("2026-04-01T23:59:58Z"), T("2026-04-02T00:00:03Z"), Outcome.TIMEOUT),
    )


def _report_days(
    store: Store, settings: Settings, months: list[str], now: float
) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    days: list[dict[str, Any]] = []
    unavailable: dict[str, dict[str, int]] = {}
    for month in months:
        report = build_report(store, settings, "mail", month, now=now)
        days.extend(report["daily"])
        unavailable[month] = report["unavailable_seconds"]
    return days, unavailable


def _service_rows(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "date": r["date"],
            "seconds": r["seconds"],
            "unavailable_seconds": r["channels"][SERVICE_CHANNEL]["unavailable_seconds"],
            "unknown_seconds": r["channels"][SERVICE_CHANNEL]["unknown_seconds"],
            "excluded_seconds": r["excluded_seconds"],
        }
        for r in history
    ]


@pytest.mark.parametrize("zone", ZONES)
def test_daily_history_agrees_with_the_reports_daily_rows(store: Store, zone: str) -> None:
    settings = settings_for(
        timezone=zone, services=[{"name": "mail", "non_critical": {"blind_after_seconds": 60},
                                  "probes": _probes()}],
    )  # fmt: skip
    _seed(store, settings)
    now = T("2026-05-10T00:00:00Z")
    history = daily_history(store, settings, "mail", date(2026, 3, 1), date(2026, 4, 30), now)
    days, unavailable = _report_days(store, settings, ["2026-03", "2026-04"], now)
    assert _service_rows(history) == days
    assert len(history) == 61
    # the DST day is 23 hours long in the zones that change in March
    lengths = {r["date"]: r["seconds"] for r in history}
    short = {"Europe/Berlin": "2026-03-29", "America/New_York": "2026-03-08"}.get(zone)
    if zone == "America/Santiago":  # back to winter time at midnight, 5 April
        assert lengths["2026-04-04"] == 90000
    else:
        assert sorted(set(lengths.values())) == ([82800, 86400] if short else [86400])
    if short:
        assert lengths[short] == 82800
    # something happened: the comparison is not of zeros
    assert sum(d["unavailable_seconds"] for d in days) > 0
    assert sum(d["unknown_seconds"] for d in days) > 0
    assert sum(d["excluded_seconds"] for d in days) == 20 * 60  # "other"'s window is not ours
    # per channel: a month's days add up to the report's per-channel totals
    for month in ("2026-03", "2026-04"):
        rows = [r for r in history if r["date"].startswith(month)]
        for ch in (SERVICE_CHANNEL, *CHANNELS):
            got = sum(r["channels"][ch]["unavailable_seconds"] for r in rows)
            assert got == unavailable[month][ch], (month, ch)
    assert any(r["channels"]["smtp"]["unavailable_seconds"] for r in history)
    assert any(r["channels"]["smtp"]["unknown_seconds"] != r["channels"]["api"]["unknown_seconds"]
               for r in history)  # fmt: skip


def _probes() -> list[dict[str, Any]]:
    return [
        {"name": "api-1", "type": "http", "url": "http://127.0.0.1:1/", "attempts_per_second": 1},
        {"name": "smtp-1", "type": "smtp", "host": "127.0.0.1", "attempts_per_second": 1},
    ]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_days_not_begun_are_left_out_and_today_runs_to_now(store: Store, zone: str) -> None:
    settings = settings_for(timezone=zone)
    _seed(store, settings)
    tz = ZoneInfo(zone)
    # now: 10:00:05 local on 2 April, hours after the last stored second
    now = int(datetime(2026, 4, 2, 10, 0, 5, tzinfo=tz).timestamp())
    history = daily_history(store, settings, "mail", date(2026, 3, 25), date(2026, 4, 20), now)
    assert [r["date"] for r in history][-1] == "2026-04-02"
    assert history[0]["date"] == "2026-03-25" and len(history) == 9
    assert history[-1]["seconds"] == 10 * 3600 + 5
    # the month running: the report (partial, up to now) has the same two days of April
    days, _ = _report_days(store, settings, ["2026-04"], now)
    assert _service_rows(history)[-2:] == days
    # a range wholly in the future, or one that starts after now: nothing
    later = date(2026, 4, 3)
    assert daily_history(store, settings, "mail", later, later + timedelta(days=5), now) == []
