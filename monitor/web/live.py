"""The live strip's feed: each service's last ten minutes of stored seconds, pushed to the
browsers that watch (Server-Sent Events, monitor/web/__init__.py).

`LiveSeconds.stored` is called by the store writer's thread with the verdicts it has
just written (the same seconds `/api/v1/status` shows, so nothing a page showed can be
taken back by a crash). It keeps a ring of the last `KEEP_SECONDS` per service, and only
when a browser is subscribed does it hand the new seconds to the event loop: while
nobody watches, the cost is a dict update per service-second.

A subscriber is a bounded queue; one that falls `QUEUE_LIMIT` events behind (a stalled
browser) is dropped, and its EventSource reconnects and starts again from the ring.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Iterable
from typing import Any

from monitor.verdicts import SERVICE_CHANNEL, SecondVerdict

#: the seconds of the live strip
KEEP_SECONDS = 600
#: events a subscriber may fall behind before it is dropped
QUEUE_LIMIT = 2000

Row = dict[str, Any]


class LiveSeconds:
    """The ring of recent stored seconds and the browsers subscribed to new ones."""

    def __init__(self, keep: int = KEEP_SECONDS) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        #: service → second → {"t", "verdict", channel: verdict, ...}, seconds in order
        self._rings: dict[str, collections.OrderedDict[int, Row]] = {}
        self._subscribers: set[asyncio.Queue[Row | None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def watching(self) -> int:
        return len(self._subscribers)

    def stored(self, verdicts: Iterable[SecondVerdict]) -> None:
        """Any thread: these verdicts are in the store now."""
        fresh: dict[tuple[str, int], Row] = {}
        with self._lock:
            for v in verdicts:
                ring = self._rings.setdefault(v.service, collections.OrderedDict())
                row = ring.get(v.second)
                if row is None:
                    row = ring[v.second] = {"service": v.service, "t": v.second}
                    while len(ring) > self.keep:
                        ring.popitem(last=False)
                key = "verdict" if v.channel == SERVICE_CHANNEL else v.channel
                row[key] = "excluded" if v.excluded else v.verdict.value
                if self._subscribers:
                    fresh[(v.service, v.second)] = row
            loop = self._loop
            if not fresh or loop is None:
                return
            rows = [dict(r) for r in fresh.values()]
        try:
            loop.call_soon_threadsafe(self._fan_out, rows)
        except RuntimeError:  # the loop is closed: the daemon is stopping
            pass

    def recent(self, service: str) -> list[Row]:
        with self._lock:
            return [dict(r) for r in self._rings.get(service, {}).values()]

    def subscribe(self) -> asyncio.Queue[Row | None]:
        """On the loop: a queue of new rows (None: dropped, reconnect)."""
        self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Row | None] = asyncio.Queue(QUEUE_LIMIT + 1)
        with self._lock:
            self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Row | None]) -> None:
        with self._lock:
            self._subscribers.discard(queue)

    def _fan_out(self, rows: list[Row]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for queue in subscribers:
            if queue.qsize() + len(rows) > QUEUE_LIMIT:
                self.unsubscribe(queue)
                queue.put_nowait(None)
                continue
            for row in rows:
                queue.put_nowait(row)
