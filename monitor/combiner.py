"""The leader's combined verdict stream: one verdict per (service, channel, second) out of
every vantage's, by the service's quorum (monitor/quorum.py, the one rule), for the
incident policy when several vantage points share a store.

Every vantage keeps its last minutes of verdicts in full in the store (`write_recent`,
written by its store writer on a shared store). `Combiner.step` — in a worker thread, once
a second or so — reads what came in since the last second it combined and returns the
seconds that are ready, in order, each service on its own:

* a second is ready as soon as every *live* vantage (one that kept a second of the service
  in the last `LIVE_SECONDS`) has kept it;
* at the latest `bound` = the service's longest timeout + `LAG_SLACK` seconds after its
  end, it is combined from the vantages that have kept it; the others are **late** for
  it (returned with it, and counted by the daemon);
* a vantage that stopped cleanly said so (`stopped_key`, written by its daemon's `stop`
  after its last verdicts): it is not waited for past what it kept, until it keeps a
  newer second (it started again).

A vantage that was down, blind or stalled that second votes unknown and does not count
(`quorum.combine`); a second no vantage kept is not combined (a gap, as when the monitor
was down).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from monitor.clock import Clock
from monitor.config import Settings
from monitor.quorum import combine_second
from monitor.store.base import Store
from monitor.verdicts import COMBINED, SERVICE_CHANNEL, SecondVerdict

#: a vantage that kept no second of a service for this long is not waited for
LIVE_SECONDS = 60
#: how long past a second's hard deadline the leader waits for a late vantage
LAG_SLACK = 3.0


def stopped_key(vantage: str) -> str:
    """The store state key under which a vantage that stopped cleanly leaves the time it
    stopped at (epoch seconds): everything it kept is before it."""
    return f"vantage-stopped/{vantage}"


@dataclass(frozen=True)
class CombinedSecond:
    second: int
    #: the service's channels, then its "service" verdict (the detector's order)
    verdicts: list[SecondVerdict]
    #: live vantages that had not kept the second when it was combined
    late: tuple[str, ...] = ()


class Combiner:
    def __init__(self, settings: Settings, store: Store, clock: Clock, start: Mapping[str, int]):
        """`start`: per service, the first second to combine (the policy has seen those
        before it)."""
        self.settings = settings
        self.store = store
        self.clock = clock
        self._next = dict(start)

    def next_second(self, service: str) -> int | None:
        return self._next.get(service)

    def step(self) -> list[tuple[str, CombinedSecond]]:
        """Worker thread: every ready second of every service, in order per service."""
        now = self.clock.wall()
        out: list[tuple[str, CombinedSecond]] = []
        stops: dict[str, float | None] = {}  # read once a step, for the vantages seen
        for svc in self.settings.services:
            nxt = self._next.get(svc.name)
            if nxt is None:
                nxt = self._next[svc.name] = math.floor(now) - 1
            progress = self.store.recent_progress(svc.name, int(now) - LIVE_SECONDS)
            if not progress:
                continue
            for vantage in progress:
                if vantage not in stops:
                    stops[vantage] = self.store.get_state(stopped_key(vantage))
            gone = {v for v, kept in progress.items() if (stops[v] or -1) > kept}
            waited = [kept for v, kept in progress.items() if v not in gone]
            newest = max(progress.values())
            forced = math.floor(now - 1 - (svc.max_timeout + LAG_SLACK))
            last = max(min(waited) if waited else newest, min(forced, newest))
            if last < nxt:
                continue
            by_second: dict[int, dict[str, list[SecondVerdict]]] = {}
            for v in self.store.recent(svc.name, nxt, last):
                by_second.setdefault(v.second, {}).setdefault(v.channel, []).append(v)
            for second in range(nxt, last + 1):
                channels = by_second.get(second)
                if not channels:
                    continue  # no vantage kept it
                verdicts = [
                    combine_second(channels[ch], svc.quorum, COMBINED)
                    for ch in svc.channels
                    if ch in channels
                ]
                if SERVICE_CHANNEL in channels:
                    verdicts.append(combine_second(channels[SERVICE_CHANNEL], svc.quorum, COMBINED))
                late = tuple(
                    sorted(v for v, kept in progress.items() if kept < second and v not in gone)
                )
                out.append((svc.name, CombinedSecond(second, verdicts, late)))
            self._next[svc.name] = last + 1
        return out
