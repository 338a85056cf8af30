"""PostgreSQL stopped for 30 s under two vantage points (a cluster of its own,
tests/pgserver.py): both keep measuring, say not ready with the store's reason, and when
it is back write everything they held — every second of each vantage stored once, no
gap — and one of them leads again."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.simulator import Simulator
from tests import pgserver
from tests.loopback import until
from tests.monitor.test_leader import _daemon

pytestmark = [pytest.mark.external, pytest.mark.slow]


@pytest.fixture
def cluster() -> Iterator[pgserver.Cluster]:
    try:
        c = pgserver.Cluster()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    c.start()
    yield c
    c.stop()


@pytest.fixture
async def sim() -> Any:
    s = Simulator(tls=False, api_key="k", smtp_password="k")
    await s.start()
    yield s
    await s.stop()


async def test_a_database_outage_loses_no_second(
    cluster: pgserver.Cluster, sim: Simulator, tmp_path: Path
) -> None:
    url = cluster.fresh_url()
    daemons = [_daemon(sim, tmp_path, v, url) for v in ("east", "west")]
    for d in daemons:
        await d.start()
    try:
        first = int(time.time()) + 1
        await until("stored seconds", lambda: all(d.stored_through("simulated") for d in daemons))
        await asyncio.to_thread(cluster.pause)
        down_at = time.monotonic()
        # both go on measuring, and say why they are not ready
        await until(
            "not ready for the store",
            lambda: all(d.ready()[1].startswith("store: ") for d in daemons),
            polls=200,
        )
        marks = {d.vantage: d.last_final["simulated"] for d in daemons}
        await asyncio.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
        assert all(d.last_final["simulated"] >= marks[d.vantage] + 15 for d in daemons)
        await asyncio.to_thread(cluster.resume)
        last = min(d.last_final["simulated"] for d in daemons)
        await until(
            "everything written",
            lambda: all((d.stored_through("simulated") or 0) >= last for d in daemons),
            polls=600,
        )
        await until(
            "a leader again",
            lambda: sum(1 for d in daemons if d.elector is not None and d.elector.leading) == 1,
            polls=300,
        )
        await until("ready again", lambda: all(d.ready()[0] for d in daemons), polls=300)
        for d in daemons:
            assert d.store is not None
            runs = d.store.runs("simulated", "service", first, last + 1, d.vantage)
            assert runs and runs[0].first == first and runs[-1].last == last
            for a, b in itertools.pairwise(runs):
                assert a.last + 1 == b.first, (d.vantage, a, b)  # no gap, nothing twice
            # measured through the outage: no second was lost to it
            assert {r.verdict.value for r in runs} == {"available"}, runs
    finally:
        for d in daemons:
            await d.stop()
