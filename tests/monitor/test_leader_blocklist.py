"""Blocklist checks with two vantage points on one PostgreSQL (tests/pgserver.py): only
the leader asks the lists; a new leader takes the open listing over from the store (no
second spell, no second incident) and resolves it when the zone delists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.config import load
from monitor.daemon import Daemon
from monitor.demo import DEMO_SENDING_IP, simulated_config
from monitor.simulator import Simulator
from tests import pgserver
from tests.loopback import until

pytestmark = [pytest.mark.external, pytest.mark.slow]

ZEN = "zen.spamhaus.org"


@pytest.fixture
async def sim() -> Any:
    s = Simulator(tls=False, api_key="k", smtp_password="k")
    await s.start()
    yield s
    await s.stop()


def _daemon(sim: Simulator, tmp_path: Path, vantage: str, url: str) -> Daemon:
    path = simulated_config(
        sim,
        tmp_path / vantage,
        vantage=vantage,
        monitor_lines="lease_ttl_seconds = 2\nlease_renew_seconds = 0.5\n",
        store_url=url,
        api_key="k",
        dnsbl_interval=1,
    )
    return Daemon(load(path), serve_http=False, config_path=path)


def _jobs(d: Daemon) -> list[str]:
    assert d.scheduler is not None
    return sorted(j.id for j in d.scheduler.get_jobs() if j.id.startswith("blocklist/"))


async def test_only_the_leader_checks_and_a_successor_keeps_the_listing(
    sim: Simulator, tmp_path: Path
) -> None:
    url = pgserver.fresh_url()
    a = _daemon(sim, tmp_path, "east", url)
    b = _daemon(sim, tmp_path, "west", url)
    await a.start()
    await b.start()
    stopped: list[Daemon] = []
    listed = {"service": "simulated", "target": DEMO_SENDING_IP, "zone": ZEN}
    try:
        assert a.elector is not None and a.elector.leading
        assert _jobs(a) == ["blocklist/simulated/blocklists"] and _jobs(b) == []
        assert b.blocklists is None
        sim.dnsbl.list(DEMO_SENDING_IP, ZEN, ["127.0.0.2"], "listed")
        assert a.store is not None
        store = a.store
        await until(
            "the listing's issue",
            lambda: any(i.kind == "blocklisted" for i in store.list_incidents()),
        )
        assert a.metrics.value("availmon_blocklist_listed", **listed, vantage="combined") == 1
        assert b.metrics.value("availmon_blocklist_listed", **listed, vantage="combined") is None
        # the leader dies without a word: the other takes over, from the store
        assert a.elector is not None
        a.elector.release = _nothing  # type: ignore[method-assign]
        await a.stop()
        stopped.append(a)
        await until("the takeover", lambda: b.blocklists is not None and _jobs(b) != [])
        checks = {"service": "simulated", "zone": ZEN, "result": "listed", "vantage": "combined"}
        await until(
            "the new leader's check",
            lambda: (b.metrics.value("availmon_blocklist_checks_total", **checks) or 0) >= 1,
        )
        assert b.store is not None
        assert len(b.store.spells("simulated")) == 1
        assert [i.kind for i in b.store.list_incidents()] == ["blocklisted"]
        sim.dnsbl.delist(DEMO_SENDING_IP, ZEN)
        await until(
            "the resolve under the new leader",
            lambda: b.store is not None and b.store.list_incidents()[0].state == "resolved",
        )
        [spell] = b.store.spells("simulated")
        assert spell.ended_at is not None
        assert len(b.store.list_incidents()) == 1
    finally:
        for d in (a, b):
            if d not in stopped:
                await d.stop()


async def _nothing() -> None:
    return None
