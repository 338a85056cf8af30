"""LiveSeconds (monitor/web/live.py): the ring of recent stored seconds per service and the
subscribers that get new rows, fed from another thread as the store writer feeds it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from monitor.store.base import Store
from monitor.verdicts import SERVICE_CHANNEL, SecondVerdict, Verdict
from monitor.web import _backfill
from monitor.web.live import QUEUE_LIMIT, LiveSeconds
from probes.base import Outcome
from tests.monitor.reports.conftest import Feeder, Pattern, T, settings_for
from tests.monitor.reports.conftest import store as store  # the fixture


def v(
    second: int,
    channel: str = SERVICE_CHANNEL,
    verdict: Verdict = Verdict.AVAILABLE,
    *,
    service: str = "mail",
    excluded: bool = False,
) -> SecondVerdict:
    return SecondVerdict(service, channel, second, verdict, "v1", excluded=excluded)


def _t(row: dict[str, Any] | None) -> int:
    assert row is not None
    t: int = row["t"]
    return t


class LoopDouble:
    """Counts what would be scheduled on the event loop."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def call_soon_threadsafe(self, *args: Any) -> None:
        self.calls.append(args)


def test_the_ring_keeps_at_most_keep_seconds_per_service() -> None:
    live = LiveSeconds(keep=5)
    live.stored(v(t) for t in range(100, 112))
    live.stored(v(t, service="other") for t in range(200, 203))
    assert [r["t"] for r in live.recent("mail")] == [107, 108, 109, 110, 111]
    assert [r["t"] for r in live.recent("other")] == [200, 201, 202]
    assert live.recent("unknown-service") == []
    # a copy: changing what recent() gave changes nothing in the ring
    live.recent("mail")[0]["verdict"] = "changed"
    assert live.recent("mail")[0]["verdict"] == "available"


def test_a_seconds_channel_and_service_verdicts_merge_into_one_row() -> None:
    live = LiveSeconds()
    live.stored([v(10, "api", Verdict.UNAVAILABLE), v(10, "smtp")])
    live.stored([v(10, SERVICE_CHANNEL, Verdict.UNAVAILABLE), v(11, "api", Verdict.UNKNOWN)])
    assert live.recent("mail") == [
        {"service": "mail", "t": 10, "api": "unavailable", "smtp": "available",
         "verdict": "unavailable"},
        {"service": "mail", "t": 11, "api": "unknown"},
    ]  # fmt: skip


def test_excluded_verdicts_read_excluded() -> None:
    live = LiveSeconds()
    live.stored(
        [
            v(5, "api", Verdict.UNAVAILABLE, excluded=True),
            v(5, SERVICE_CHANNEL, Verdict.UNAVAILABLE, excluded=True),
            v(6, "api", Verdict.UNAVAILABLE),
        ]
    )
    [five, six] = live.recent("mail")
    assert five["api"] == five["verdict"] == "excluded"
    assert six["api"] == "unavailable"


def test_with_no_subscriber_nothing_is_scheduled_on_a_loop() -> None:
    live = LiveSeconds()
    loop = LoopDouble()
    live._loop = loop  # type: ignore[assignment]  # a loop a former subscriber left behind
    live.stored(v(t) for t in range(10))
    assert loop.calls == [] and live.watching == 0
    assert len(live.recent("mail")) == 10  # the ring is fed all the same


async def test_a_subscriber_gets_new_rows_from_another_thread_and_can_unsubscribe() -> None:
    live = LiveSeconds()
    live.stored([v(1)])  # before the subscription: in the ring, not in the queue
    queue = live.subscribe()
    assert live.watching == 1

    def writer() -> None:
        live.stored([v(2, "api", Verdict.UNAVAILABLE), v(2, SERVICE_CHANNEL, Verdict.UNAVAILABLE)])
        live.stored([v(3)])

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join()
    first = await asyncio.wait_for(queue.get(), 10)
    second = await asyncio.wait_for(queue.get(), 10)
    assert first == {"service": "mail", "t": 2, "api": "unavailable", "verdict": "unavailable"}
    assert second == {"service": "mail", "t": 3, "verdict": "available"}
    assert queue.empty()

    live.unsubscribe(queue)
    assert live.watching == 0
    live.stored([v(4)])
    await asyncio.sleep(0)  # anything scheduled would have run by now
    await asyncio.sleep(0)
    assert queue.empty()
    live.unsubscribe(queue)  # twice: no error


async def test_a_subscriber_that_falls_behind_is_dropped_and_gets_none() -> None:
    live = LiveSeconds(keep=QUEUE_LIMIT + 10)
    slow = live.subscribe()
    fast = live.subscribe()
    live.stored(v(t) for t in range(QUEUE_LIMIT - 1))
    await asyncio.sleep(0)
    assert slow.qsize() == fast.qsize() == QUEUE_LIMIT - 1
    while not fast.empty():  # fast reads; slow does not
        fast.get_nowait()
    live.stored([v(QUEUE_LIMIT), v(QUEUE_LIMIT + 1)])  # slow would hold QUEUE_LIMIT + 1
    await asyncio.sleep(0)
    assert live.watching == 1
    rows = [slow.get_nowait() for _ in range(slow.qsize())]
    assert rows[-1] is None and len(rows) == QUEUE_LIMIT
    assert [_t(fast.get_nowait()) for _ in range(2)] == [QUEUE_LIMIT, QUEUE_LIMIT + 1]
    live.stored([v(QUEUE_LIMIT + 2)])
    await asyncio.sleep(0)
    assert slow.empty()  # no longer subscribed
    assert _t(fast.get_nowait()) == QUEUE_LIMIT + 2


class _View:
    """What `_backfill` reads of the daemon."""

    def __init__(self, store: Store, now: float) -> None:
        self.settings = settings_for()
        self.store = store
        self.vantage = "v1"
        self.clock = self
        self._now = now

    def wall(self) -> float:
        return self._now


def test_the_backfill_is_the_stored_seconds_before_the_ring_ten_minutes_in_all(
    store: Store,
) -> None:
    t0 = T("2026-04-01T00:00:00Z")
    view = _View(store, t0 + 1200.5)
    Feeder(view.settings, store).run(t0, t0 + 1200, Pattern())
    live = LiveSeconds()
    live.stored(
        v(t, ch, service="mail") for t in range(t0 + 1190, t0 + 1200) for ch in ("api", "smtp")
    )
    [rows] = _backfill(view, live).values()  # type: ignore[arg-type]
    assert [r["t"] for r in rows] == list(range(t0 + 600, t0 + 1200))
    assert all(r["verdict"] == "available" for r in rows[:-10])  # from the store
    assert rows[-10:] == live.recent("mail")  # the ring's, as they are
    # an empty ring: the last ten minutes of the store, up to now
    [rows] = _backfill(view, LiveSeconds()).values()  # type: ignore[arg-type]
    assert [r["t"] for r in rows] == list(range(t0 + 601, t0 + 1200))
    # nothing stored for a while: nothing to show
    view._now = t0 + 5000
    assert _backfill(view, LiveSeconds()) == {"mail": []}  # type: ignore[arg-type]


def test_the_backfill_shows_maintenance_seconds_as_the_ring_does(store: Store) -> None:
    """The stored verdicts keep their own label; the strip shows a second a maintenance
    window excludes as excluded, from the store as from the ring (after a restart too)."""
    t0 = T("2026-04-01T00:00:00Z")
    view = _View(store, t0 + 600.5)
    Feeder(view.settings, store).run(
        t0, t0 + 600, Pattern().add("api", t0 + 100, t0 + 200, Outcome.SERVER_ERROR)
    )
    store.add_maintenance("*", t0 + 150, t0 + 250, "upgrade", "test")
    [rows] = _backfill(view, LiveSeconds()).values()  # type: ignore[arg-type]
    by_t = {r["t"]: r for r in rows}
    assert by_t[t0 + 120]["verdict"] == "unavailable"  # before the window
    assert by_t[t0 + 150] == {"t": t0 + 150, "verdict": "excluded", "api": "excluded",
                              "smtp": "excluded"}  # fmt: skip
    assert by_t[t0 + 249]["verdict"] == "excluded"
    assert by_t[t0 + 250]["verdict"] == "available"  # the window is half-open
