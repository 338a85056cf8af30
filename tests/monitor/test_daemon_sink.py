"""The daemon's per-second sink and month gauges, without running probes (fake clock)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from alerting.model import IncidentState, OutboxState, Severity
from monitor.clock import FakeClock
from monitor.config import parse
from monitor.daemon import Daemon
from monitor.store import open_store
from monitor.store.base import Incident, MinuteCount, OutboxItem
from monitor.verdicts import SecondVerdict, Verdict

NOV = 1_793_491_200  # 2026-11-01T00:00:00Z


def _daemon(tmp_path: Path, clock: FakeClock) -> Daemon:
    settings = parse(
        {
            "monitor": {"vantage": "v"},
            "store": {"url": f"sqlite:///{tmp_path}/a.db"},
            "services": [
                {
                    "name": "svc",
                    "probes": [{"type": "http", "name": "api", "url": "http://127.0.0.1:9/"}],
                }
            ],
        }
    )
    return Daemon(settings, clock=clock, store=open_store(settings.store.url))


def _second(t: int, verdict: Verdict) -> list[SecondVerdict]:
    return [
        SecondVerdict("svc", "api", t, verdict, "v"),
        SecondVerdict("svc", "service", t, verdict, "v"),
    ]


def test_maintenance_seconds_are_excluded_but_keep_their_verdict(tmp_path: Path) -> None:
    clock = FakeClock(NOV + 100)
    d = _daemon(tmp_path, clock)
    assert d.store is not None
    d.store.add_maintenance("svc", NOV + 10, NOV + 12, "planned")
    d._set_maintenance(d.store.list_maintenance())
    for t in range(NOV + 8, NOV + 14):
        d._on_second(t, _second(t, Verdict.UNAVAILABLE), [])
    d._flush()
    get = d.metrics.registry.get_sample_value
    labels = {"service": "svc", "channel": "service", "vantage": "v"}
    assert get("availmon_seconds_total", {**labels, "verdict": "excluded"}) == 2
    assert get("availmon_seconds_total", {**labels, "verdict": "unavailable"}) == 4
    # the store keeps the verdict of the excluded seconds
    runs = d.store.runs("svc", "service", NOV + 8, NOV + 14, "v")
    assert [(r.verdict, r.seconds) for r in runs] == [(Verdict.UNAVAILABLE, 6)]
    # the month counts only the non-excluded unavailable seconds
    d._refresh_month()
    assert d.month["svc"][0] == 4
    d.store.close()


def test_month_gauges_count_the_calendar_month_and_unflushed_seconds(tmp_path: Path) -> None:
    clock = FakeClock(NOV + 1000)
    d = _daemon(tmp_path, clock)
    assert d.store is not None
    # the last 3 seconds of October do not count in November
    for t in range(NOV - 3, NOV + 5):
        d._on_second(t, _second(t, Verdict.UNAVAILABLE), [])
    d._flush()
    d._on_second(NOV + 5, _second(NOV + 5, Verdict.UNAVAILABLE), [])  # not yet flushed
    d._refresh_month()
    # 30 days at 99.99 %: 259.2 s of budget
    assert d.month["svc"] == (6, 259.2)
    d.store.close()


async def test_retention_job_prunes_old_evidence_and_old_notifications(tmp_path: Path) -> None:
    clock = FakeClock(NOV + 500 * 86400)
    d = _daemon(tmp_path, clock)
    store = d.store
    assert store is not None
    inc = store.create_incident(
        Incident(0, "svc", Severity.CRITICAL, IncidentState.OPEN, "unavailable", "", NOV)
    )
    store.update_incident(
        dataclasses.replace(inc, state=IncidentState.RESOLVED, resolved_at=NOV + 60)
    )
    (sent,) = store.enqueue(
        [OutboxItem(0, inc.id, "pd", "trigger", {"seq": 1}, float(NOV), float(NOV))]
    )
    store.update_outbox(
        dataclasses.replace(sent, state=OutboxState.SENT, tries=1, sent_at=NOV + 1.0)
    )
    store.write_minute_counts([MinuteCount("svc", "api", "api", NOV, "ok", 120)])
    await d._prune()  # 400 days kept by default: all of this is older
    assert store.outbox() == []
    assert store.minute_counts("svc", NOV, NOV + 60) == []
    store.close()


async def test_incident_counters_start_from_the_store(tmp_path: Path) -> None:
    """After a restart availmon_incidents_total counts the incidents opened before it too,
    and goes on counting those the policy opens."""
    import asyncio

    from alerting.effects import CreateIncident
    from monitor.writer import EffectsJob

    clock = FakeClock(NOV + 100)
    d = _daemon(tmp_path, clock)
    assert d.store is not None
    for severity in (Severity.CRITICAL, Severity.CRITICAL, Severity.NON_CRITICAL):
        await asyncio.to_thread(
            d.store.create_incident,
            Incident(0, "svc", severity, IncidentState.RESOLVED, "unavailable", "", NOV + 1.0),
        )
    d.settings = parse({**d.settings.model_dump(mode="json"), "monitor": {"vantage": "v",
                        "listen": "127.0.0.1:0"}})  # fmt: skip
    await d.start()
    try:
        get = d.metrics.registry.get_sample_value
        labels = {"service": "svc", "severity": "critical", "vantage": "combined"}
        assert get("availmon_incidents_total", labels) == 2
        assert get("availmon_incidents_total", {**labels, "severity": "non_critical"}) == 1
        opened = Incident(9, "svc", Severity.CRITICAL, IncidentState.OPEN, "unavailable", "",
                          NOV + 50.0)  # fmt: skip
        d._on_applied(EffectsJob([CreateIncident(opened)], 0.0))
        assert get("availmon_incidents_total", labels) == 3
    finally:
        await d.stop()
        await asyncio.to_thread(d.store.close)


async def test_the_leader_exports_the_combined_series_and_drops_them_when_it_steps_down(
    tmp_path: Path,
) -> None:
    """A lone instance leads: its own verdicts count under its vantage and again under
    "combined", the month and incident gauges are its; once it no longer leads, only its
    own vantage's series remain (the new leader's combined ones are the ones to read)."""
    import asyncio

    clock = FakeClock(NOV + 1000)
    d = _daemon(tmp_path, clock)
    assert d.store is not None
    d.settings = parse({**d.settings.model_dump(mode="json"), "monitor": {"vantage": "v",
                        "listen": "127.0.0.1:0"}})  # fmt: skip
    await d.start()
    get = d.metrics.registry.get_sample_value
    try:
        for t in range(NOV + 10, NOV + 13):
            d._on_second(t, _second(t, Verdict.UNAVAILABLE), [])
        assert d._flush()
        await asyncio.to_thread(d._refresh_month)
        mine = {"service": "svc", "channel": "service", "verdict": "unavailable"}
        assert get("availmon_seconds_total", {**mine, "vantage": "v"}) == 3
        assert get("availmon_seconds_total", {**mine, "vantage": "combined"}) == 3
        month = {"service": "svc", "vantage": "combined"}
        assert get("availmon_month_unavailable_seconds", month) == 3
        assert get("availmon_month_error_budget_seconds", month) == 259.2
        open_ = {"service": "svc", "severity": "critical", "vantage": "combined"}
        assert get("availmon_incidents_open", open_) == 0
        assert get("availmon_last_final_second_timestamp_seconds", month) == NOV + 12

        await d._leadership(None)  # it lost the lease
        d._on_second(NOV + 13, _second(NOV + 13, Verdict.UNAVAILABLE), [])
        assert get("availmon_seconds_total", {**mine, "vantage": "v"}) == 4
        for name, labels in (
            ("availmon_seconds_total", {**mine, "vantage": "combined"}),
            ("availmon_month_unavailable_seconds", month),
            ("availmon_incidents_open", open_),
            ("availmon_last_final_second_timestamp_seconds", month),
        ):
            assert get(name, labels) is None, name
        assert get("availmon_last_final_second_timestamp_seconds", {**month, "vantage": "v"}) == (
            NOV + 13
        )
        assert d.month["svc"][1] == 259.2  # the API still has the month
    finally:
        await d.stop()
        await asyncio.to_thread(d.store.close)
