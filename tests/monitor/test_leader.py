"""Two vantage points on one PostgreSQL database (a real server, tests/pgserver.py) probing
the same simulator: exactly one leads; when it dies without a word, the other takes over
within the lease's ttl + renew, continues the open Critical Issue from the store, and pages
nothing twice."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.config import load
from monitor.daemon import Daemon
from monitor.demo import simulated_config
from monitor.simulator import Simulator
from tests import pgserver
from tests.loopback import until

pytestmark = [pytest.mark.external, pytest.mark.slow]


@pytest.fixture
async def sim() -> Any:
    s = Simulator(tls=False, api_key="k", smtp_password="k")
    await s.start()
    yield s
    await s.stop()


def _daemon(sim: Simulator, tmp_path: Path, vantage: str, url: str, quorum: Any = None) -> Daemon:
    path = simulated_config(
        sim,
        tmp_path / vantage,
        vantage=vantage,
        monitor_lines="lease_ttl_seconds = 2\nlease_renew_seconds = 0.5\n",
        store_url=url,
        api_key="k",
    )
    if quorum is not None:
        text = path.read_text()
        path.write_text(
            text.replace(
                'name = "simulated"\n', f'name = "simulated"\nquorum = {json.dumps(quorum)}\n', 1
            )
        )
    return Daemon(load(path), serve_http=False, config_path=path)


async def test_one_leader_and_a_takeover_that_continues_the_incident(
    sim: Simulator, tmp_path: Path
) -> None:
    url = pgserver.fresh_url()
    a = _daemon(sim, tmp_path, "east", url)
    b = _daemon(sim, tmp_path, "west", url)
    await a.start()
    await b.start()
    stopped: list[Daemon] = []
    try:
        assert a.elector is not None and b.elector is not None
        assert a.elector.leading and not b.elector.leading  # the first to ask
        assert b.policy is None and b.dispatcher is None
        assert a.metrics.value("availmon_leader", vantage="east") == 1
        assert b.metrics.value("availmon_leader", vantage="west") == 0
        sim.set_fault("api", "5xx", status=503)
        await until("the Critical Issue", lambda: a.policy is not None and a.policy.active())
        assert a.policy is not None
        incident = a.policy.active()[0]
        assert a._flush()
        # each exports its own vantage's verdicts; the leader alone the combined ones and
        # the incident gauges
        unavailable = {"service": "simulated", "channel": "service", "verdict": "unavailable"}
        critical = {"service": "simulated", "severity": "critical", "vantage": "combined"}
        for d in (a, b):
            assert (d.metrics.value("availmon_seconds_total", **unavailable, vantage=d.vantage)
                    or 0) >= 5  # fmt: skip
        await until(
            "the open incident in the leader's gauge",
            lambda: a.metrics.value("availmon_incidents_open", **critical) == 1,
        )
        assert (a.metrics.value("availmon_seconds_total", **unavailable, vantage="combined")
                or 0) >= 5  # fmt: skip
        assert b.metrics.value("availmon_seconds_total", **unavailable, vantage="combined") is None
        assert b.metrics.value("availmon_incidents_open", **critical) is None
        # the month by the quorum, from the shared store: the leader exports it, the
        # follower's API shows it too
        for d in (a, b):
            await asyncio.to_thread(d._refresh_month)
            assert d.month["simulated"][0] >= 5
        month = {"service": "simulated", "vantage": "combined"}
        assert (a.metrics.value("availmon_month_unavailable_seconds", **month) or 0) >= 5
        assert b.metrics.value("availmon_month_unavailable_seconds", **month) is None
        # the leader dies without a word: nothing is released, its lease runs out
        a.elector.release = _nothing  # type: ignore[method-assign]
        await a.stop()
        stopped.append(a)
        # leading, and its policy restored from the store (in a worker thread)
        await until(
            "the takeover",
            lambda: b.elector is not None and b.elector.leading and b.policy is not None,
        )
        assert b.policy is not None and [i.id for i in b.policy.active()] == [incident.id]
        assert b.elector.epoch == (a.elector.lease.epoch if a.elector.lease else 1) + 1
        assert b.metrics.value("availmon_leader_changes_total") == 1
        # the new leader exports the combined series and counts the incident it took over
        assert b.metrics.value("availmon_incidents_open", **critical) == 1
        assert b.metrics.value("availmon_incidents_total", **critical) == 1
        await until(
            "combined seconds from the new leader",
            lambda: b.metrics.value(
                "availmon_seconds_total", **{**unavailable, "verdict": "available"},
                vantage="combined",
            ) is not None,
        )  # fmt: skip
        sim.set_fault("api", "ok")
        await until(
            "the recovery under the new leader",
            lambda: (
                b.policy is not None
                and b.policy.active()
                and b.policy.active()[0].state.value == "recovered"
            ),
        )
        assert b._flush()
        assert b.store is not None
        events = [e.kind for e in b.store.events(incident.id)]
        assert events.count("opened") == 1 and "recovered" in events
        assert len(b.store.list_incidents(severity="critical")) == 1
    finally:
        for d in (a, b):
            if d not in stopped:
                await d.stop()


async def _nothing() -> None:
    return None


@pytest.mark.parametrize(("quorum", "opens"), [("all", False), (1, True)])
async def test_the_leader_judges_every_vantage_by_the_quorum(
    tmp_path: Path, quorum: Any, opens: bool
) -> None:
    """East's target fails, west's does not (a regional problem): with quorum "all" no
    Critical Issue opens, although east alone saw every second unavailable; with quorum 1
    east's view is enough."""
    url = pgserver.fresh_url()
    sims = [Simulator(tls=False, api_key="k", smtp_password="k") for _ in range(2)]
    for s in sims:
        await s.start()
    daemons = [
        _daemon(sim, tmp_path, vantage, url, quorum=quorum)
        for sim, vantage in zip(sims, ("east", "west"), strict=True)
    ]
    for d in daemons:
        await d.start()
    east, west = daemons
    try:
        leader = next(d for d in daemons if d.elector is not None and d.elector.leading)
        sims[0].set_fault("api", "5xx", status=503)
        bad_from = int(time.time()) + 1
        # the demo's rule: 5 unavailable seconds of 10 open a Critical Issue
        await until(
            "east's unavailable seconds",
            lambda: east.last_final.get("simulated", 0) >= bad_from + 8,
        )
        await until(
            "the leader has combined them",
            lambda: (
                leader.policy is not None
                and (leader.policy.last_second("simulated") or 0) >= bad_from + 7
            ),
        )
        assert leader.policy is not None
        assert bool(leader.policy.active()) is opens
        assert east._flush() and west._flush()
        assert east.store is not None
        east_runs = east.store.runs("simulated", "service", bad_from, bad_from + 7, "east")
        assert {r.verdict.value for r in east_runs} == {"unavailable"}
    finally:
        for d in daemons:
            await d.stop()
        for s in sims:
            await s.stop()
