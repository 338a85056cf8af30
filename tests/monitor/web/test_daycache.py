"""The daily bars' cache (monitor/web DayCache): what it returns is what
`daily_history` computes from scratch, on the first call, on the next ones (settled days
from the cache, today computed again), after the day changes, and after a maintenance
window is added to a settled day."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from monitor.reports.compute import daily_history
from monitor.store.base import Store
from monitor.web import DAYS, DayCache
from probes.base import Outcome
from tests.monitor.reports.conftest import Feeder, Pattern, T, settings_for, store

_ = store  # the fixture

TZ = "Europe/Paris"


def _fresh(store: Store, settings: Any, now: float) -> list[dict[str, Any]]:
    tz = ZoneInfo(TZ)
    today = datetime.fromtimestamp(now, tz).date()
    return daily_history(store, settings, "mail", today - timedelta(days=DAYS - 1), today, now)


def test_the_cache_returns_what_a_fresh_computation_does(store: Store) -> None:
    settings = settings_for(timezone=TZ)
    start = T("2026-10-24T22:00:00Z")  # the day before the DST change in Paris
    pattern = (
        Pattern()
        .add("api", T("2026-10-25T08:00:00Z"), T("2026-10-25T08:05:00Z"), Outcome.SERVER_ERROR)
        .add("smtp", T("2026-10-26T07:00:00Z"), T("2026-10-26T07:01:00Z"), Outcome.TIMEOUT)
        .add("api", T("2026-10-26T08:00:00Z"), T("2026-10-26T08:30:00Z"), None)
    )
    feeder = Feeder(settings, store)
    end = T("2026-10-26T10:00:00Z")
    feeder.run(start, end, pattern)
    cache = DayCache()
    tz = ZoneInfo(TZ)
    now = float(end)
    first = cache.history(store, settings, "mail", now, tz)
    assert first == _fresh(store, settings, now)
    assert len(first) == DAYS and first[-1]["date"] == "2026-10-26"
    assert first[0]["channels"]["service"]["unknown_seconds"] == 86400  # before the monitor
    oct25 = next(r for r in first if r["date"] == "2026-10-25")
    assert oct25["seconds"] == 25 * 3600  # the long day of the DST change
    assert oct25["channels"]["api"]["unavailable_seconds"] == 300
    assert oct25["channels"]["service"]["unavailable_seconds"] == 300
    # the settled days come from the cache now; today is computed again, with more seconds
    feeder.run(end, end + 600, Pattern())
    again = cache.history(store, settings, "mail", now + 600, tz)
    assert again == _fresh(store, settings, now + 600)
    assert again[-1]["seconds"] == first[-1]["seconds"] + 600
    # a maintenance window over a settled day: that day is computed again
    store.add_maintenance("mail", T("2026-10-25T07:00:00Z"), T("2026-10-25T09:00:00Z"), "", "t")
    after = cache.history(store, settings, "mail", now + 600, tz)
    assert after == _fresh(store, settings, now + 600)
    oct25 = next(r for r in after if r["date"] == "2026-10-25")
    assert oct25["excluded_seconds"] == 7200
    assert oct25["channels"]["api"]["unavailable_seconds"] == 0  # the outage is in it
    # the next day: yesterday settles, the window of 90 days moves on
    later = now + 86400
    assert cache.history(store, settings, "mail", later, tz) == _fresh(store, settings, later)
