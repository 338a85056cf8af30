"""Two real `availmon run` processes on one PostgreSQL (tests/pgserver.py) probing one
simulator, each paging a webhook receiver in the test. Through two outages the leader is
killed with SIGKILL ten times at different moments (healthy, before the Critical Issue,
right after it opened, mid-outage, recovering, after the recovery) and started again.
Afterwards: one incident per outage, one trigger per incident (the receiver deduplicates
on the notification id, as the webhook's contract says to, and counts distinct
triggers), the timeline whole, and each takeover logged with both epochs."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from monitor.demo import simulated_config
from monitor.simulator import Simulator
from tests import pgserver
from tests.loopback import DaemonProcesses, JsonReceiver, free_port, until, until_value

pytestmark = [pytest.mark.external, pytest.mark.slow, pytest.mark.faults]

VANTAGES = ("east", "west")


class Rig(DaemonProcesses):
    def __init__(self, sim: Simulator, tmp: Path, url: str, hook: str) -> None:
        self.tmp = tmp
        self.ports = {v: free_port() for v in VANTAGES}
        self.configs: dict[str, Path] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.kills: list[tuple[str, str]] = []
        for v in VANTAGES:
            path = simulated_config(
                sim,
                tmp / v,
                vantage=v,
                listen=f"127.0.0.1:{self.ports[v]}",
                page_url=hook,
                monitor_lines="lease_ttl_seconds = 2\nlease_renew_seconds = 0.5\n",
                # the demo's rule, and an outage 5 s after a recovery is a new incident
                critical_rules="window_seconds = 10\nmin_unavailable_seconds = 5\n"
                "recover_after_seconds = 5\nreopen_within_seconds = 5\n",
                store_url=url,
                api_key="k",
            )
            self.configs[v] = path

    async def kill_leader(self, http: aiohttp.ClientSession, moment: str) -> None:
        v = await until_value("a leader", lambda: self.leader(http))
        proc = self.procs[v]
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 20)
        self.kills.append((v, moment))
        self.start(v)


async def test_ten_leader_kills_through_two_outages_page_each_incident_once(
    tmp_path: Path,
) -> None:
    pager = JsonReceiver()
    hook_url = await pager.start()
    received = pager.received
    sim = Simulator(tls=False, api_key="k", smtp_password="k")
    await sim.start()
    rig = Rig(sim, tmp_path, pgserver.fresh_url(), hook_url)

    def distinct(event: str) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {}
        for p in received:
            if p["event"] == event:
                out.setdefault(p["incident"]["dedup_key"], set()).add(p["id"])
        return out

    def more_than(event: str, n: int) -> Callable[[], bool]:
        return lambda: len(distinct(event)) > n

    try:
        for v in VANTAGES:
            rig.start(v)
        async with aiohttp.ClientSession() as http:
            await until_value("a leader", lambda: rig.leader(http))
            for outage in range(2):
                await rig.kill_leader(http, f"healthy ({outage})")
                sim.set_fault("api", "5xx", status=503)
                await asyncio.sleep(1.5)
                await rig.kill_leader(http, f"before the incident ({outage})")
                await until("the trigger", more_than("trigger", outage), polls=600)
                await rig.kill_leader(http, f"right after it opened ({outage})")
                await asyncio.sleep(2)
                if outage == 0:
                    await rig.kill_leader(http, "mid-outage")
                sim.set_fault("api", "ok")
                await asyncio.sleep(1.5)
                await rig.kill_leader(http, f"recovering ({outage})")
                await until("the recovery", more_than("recover", outage), polls=600)
                if outage == 1:
                    await rig.kill_leader(http, "after the recovery")
                await asyncio.sleep(8)  # past reopen_within_seconds: the next is a new one
        assert len(rig.kills) >= 10, rig.kills
        triggers = distinct("trigger")
        assert len(triggers) == 2, triggers  # one incident per outage
        assert all(len(ids) == 1 for ids in triggers.values()), triggers  # one page each
        assert all(len(ids) == 1 for ids in distinct("recover").values())
    finally:
        rig.stop()
        await sim.stop()
        await pager.stop()
    logs = "".join(rig.log(v) for v in VANTAGES)
    assert "Traceback" not in logs
    takeovers = re.findall(r"leading \(vantage \w+, epoch (\d+), after epoch (\d+)\)", logs)
    assert len(takeovers) >= len(rig.kills), takeovers
    assert all(int(new) == int(old) + 1 for new, old in takeovers)
    incidents = [p["incident"] for p in received if p["event"] == "trigger"]
    assert len({i["id"] for i in incidents}) == 2
