"""Reloading the config (monitor/reload.py): the measurement hand-over between two launchers
in real loop time with fake probes, and the whole daemon against the simulator (an open
Critical Issue carried over, services added, changed and removed, an invalid config refused,
SIGHUP and POST /-/reload)."""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.clock import SystemClock
from monitor.config import Settings, load, parse
from monitor.daemon import Daemon
from monitor.demo import simulated_config
from monitor.detector import Detector
from monitor.launcher import Launcher
from monitor.reload import Handover, compare, restart_needed
from monitor.simulator import Simulator
from monitor.verdicts import SERVICE_CHANNEL, SecondVerdict, Verdict
from probes.base import Attempt, Outcome
from tests.loopback import until
from tests.monitor.test_launcher import FakeProbe

# ------------------------------------------------------------------ the hand-over


def _cfg(services: dict[str, list[str]]) -> Settings:
    return parse(
        {
            "monitor": {"vantage": "t"},
            "services": [
                {
                    "name": name,
                    "probes": [
                        {
                            "type": "http",
                            "name": p,
                            "url": "http://127.0.0.1:9/",
                            "timeout_seconds": 3,
                        }
                        for p in probes
                    ],
                }
                for name, probes in services.items()
            ],
        }
    )


class Emitted:
    """Each service's seconds in the order the sink saw them."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[int]] = defaultdict(list)
        self.verdicts: dict[tuple[str, int], Verdict] = {}

    def sink(self, second: int, verdicts: list[SecondVerdict], _ev: list[Attempt]) -> None:
        for v in verdicts:
            if v.channel == SERVICE_CHANNEL:
                self.seconds[v.service].append(second)
                self.verdicts[(v.service, second)] = v.verdict


async def test_handover_emits_every_second_once_in_order_by_the_config_that_scheduled_it() -> None:
    old = _cfg({"keep": ["a"], "gone": ["g"], "slow": ["s"]})
    new = _cfg({"keep": ["a"], "slow": ["s"], "added": ["n"]})
    out = Emitted()
    state: dict[str, Any] = {"handover": None, "generation": 0, "held": 0}

    def route(generation: int, second: int, verdicts: list[SecondVerdict], ev: Any) -> None:
        h: Handover | None = state["handover"]
        if h is None:
            out.sink(second, verdicts, ev)
        elif generation == state["generation"]:
            if verdicts[0].service in h.waiting:
                state["held"] += 1
            h.from_new(second, verdicts, ev)
        else:
            h.from_old(second, verdicts, ev)

    old_probes = {
        ("keep", "a"): FakeProbe("a"),
        ("gone", "g"): FakeProbe("g"),
        # the old config's slow target answers after 1.6 s: its seconds before the
        # hand-over are still in flight when the new, fast probe's seconds are decided
        ("slow", "s"): FakeProbe("s", delay=1.6),
    }
    new_probes = {
        ("keep", "a"): FakeProbe("a", outcome=Outcome.SERVER_ERROR),
        ("slow", "s"): FakeProbe("s", delay=0.01),
        ("added", "n"): FakeProbe("n"),
    }
    first = int(time.time()) + 1
    det0 = Detector(old.services, "t", functools.partial(route, 0), start_second=first)
    clock = SystemClock()
    l0 = Launcher(old, clock, det0, probes=old_probes)
    await l0.start()
    await asyncio.sleep(2.2)
    boundary = l0.retire()
    assert boundary > time.time(), "the hand-over second is still ahead"
    state["handover"] = Handover(
        boundary, out.sink, {s.name for s in old.services if det0.next_for(s.name) < boundary}
    )
    state["generation"] = 1
    det1 = Detector(new.services, "t", functools.partial(route, 1), start_second=boundary)
    l1 = Launcher(new, clock, det1, probes=new_probes)
    await l1.start()
    await asyncio.wait_for(l0.wait_retired(), timeout=10)
    assert state["handover"].done
    state["handover"] = None
    await l0.stop()
    await asyncio.sleep(max(0.0, boundary + 2.5 - time.time()))
    await l1.stop()

    assert state["held"] > 0, "the new detector's seconds had to wait for the old ones"
    for service, seconds in out.seconds.items():
        assert seconds == list(range(seconds[0], seconds[-1] + 1)), service
    assert out.seconds["gone"][-1] == boundary - 1
    assert out.seconds["added"][0] == boundary
    assert out.seconds["slow"][0] == first and out.seconds["slow"][-1] >= boundary + 1
    for second in out.seconds["keep"]:
        want = Verdict.AVAILABLE if second < boundary else Verdict.UNAVAILABLE
        assert out.verdicts[("keep", second)] is want, second
    # probes are closed by the launcher that used them; the carried-over keys are new objects
    assert all(p.closed for p in old_probes.values())
    assert all(p.closed for p in new_probes.values())
    assert all(ctx.second < boundary for p in old_probes.values() for ctx, _ in p.launches)
    assert all(ctx.second >= boundary for p in new_probes.values() for ctx, _ in p.launches)


def test_restart_fields_and_changes_are_named() -> None:
    old = _cfg({"a": ["p"], "b": ["q"]})
    new = parse(
        {
            "monitor": {"vantage": "u", "listen": "127.0.0.1:9999"},
            "services": [
                {"name": "a", "probes": [{"type": "http", "name": "p", "url": "http://x/"}]},
                {"name": "c", "probes": [{"type": "http", "name": "q", "url": "http://x/"}]},
            ],
        }
    )
    needed = restart_needed(old, new)
    assert any(x.startswith("monitor.listen changed from '127.0.0.1:9310'") for x in needed)
    assert any(x.startswith("monitor.vantage changed") for x in needed)
    changes = compare(old, new)
    assert (changes.added, changes.removed, changes.changed) == (("c",), ("b",), ("a",))
    assert "services added: c" in changes.summary()
    assert restart_needed(old, old) == [] and compare(old, old).summary().startswith("no change")
    pg = old.model_copy(
        update={"store": old.store.model_copy(update={"url": "postgresql://u:pw@h/db"})}
    )
    line = "; ".join(restart_needed(old, pg))
    assert "store.url changed" in line and "pw" not in line


# ------------------------------------------------------------------ the whole daemon


@pytest.fixture
async def sim() -> Any:
    s = Simulator(tls=True, api_key="k", smtp_password="k")
    await s.start()
    yield s
    await s.stop()


def _service_block(text: str, name: str) -> str:
    """The simulated service's [[services]] block of `text`, renamed."""
    start = text.index("[[services]]")
    block = text[start:]
    end = block.find("\n[[notifiers]]")
    block = block if end < 0 else block[:end]
    return "\n" + block.replace('name = "simulated"', f'name = "{name}"', 1) + "\n"


def _contiguous(d: Daemon, service: str, first: int, last: int) -> list[Any]:
    assert d.store is not None
    runs = d.store.runs(service, SERVICE_CHANNEL, first, last + 1, "demo")
    for a, b in itertools.pairwise(runs):
        assert a.last + 1 == b.first, f"{service}: seconds {a.last + 1}..{b.first - 1} missing"
    return runs


@pytest.mark.slow
async def test_reload_keeps_an_open_critical_issue_and_every_decided_second(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setenv("AVAILMON_T", "tok")
    pages: list[tuple[str, str]] = []

    async def receive(request: web.Request) -> web.Response:
        pages.append((request.path, (await request.json()).get("event", "")))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/{pager}", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    path = simulated_config(
        sim,
        tmp_path,
        monitor_lines='api_token = "env:AVAILMON_T"\n',
        page_url=f"http://127.0.0.1:{port}/old",
        api_key="k",
    )
    base_text = path.read_text()
    d = Daemon(load(path), config_path=path)
    await d.start()
    try:
        assert d.store is not None and d.policy is not None
        t0 = int(time.time()) + 1
        await until("a first second", lambda: d.last_final.get("simulated", 0) >= t0)
        sim.set_fault("api", "5xx", status=503)
        await until("the Critical Issue", lambda: d.policy.active())
        incident = d.policy.active()[0]

        await until("the page", lambda: pages)
        # 1. add a service, change the rule of the one with the open incident, move the pager
        text = base_text.replace("recover_after_seconds = 5", "recover_after_seconds = 3")
        text = text.replace(f"{port}/old", f"{port}/new")
        path.write_text(text + _service_block(text, "second"))
        result = await d.reload("test")
        assert result.applied, result.message
        assert result.changes is not None
        assert result.changes.added == ("second",) and result.changes.changed == ("simulated",)
        boundary = result.boundary
        assert boundary is not None
        await until(
            "seconds after the hand-over",
            lambda: (
                min(d.last_final.get("simulated", 0), d.last_final.get("second", 0)) >= boundary + 2
            ),
        )
        assert d.policy.active()[0].id == incident.id  # the same incident carries on
        sim.set_fault("api", "ok")
        await until(
            "the recovery under the new rule",
            lambda: d.policy.active()[0].state.value == "recovered",
        )
        assert d._flush()
        last = d.last_final["simulated"]
        runs = _contiguous(d, "simulated", t0, last)
        # the outage ran across the hand-over without a gap in its seconds
        assert any(r.verdict is Verdict.UNAVAILABLE and r.first < boundary <= r.last for r in runs)
        second_runs = _contiguous(d, "second", 0, d.last_final["second"])
        assert second_runs[0].first == boundary
        events = [e.kind for e in d.store.events(incident.id)]
        assert events.count("opened") == 1 and "recovered" in events
        # one page for the outage, sent before the reload; the recovery to the new pager
        await until("the recovery page", lambda: len(pages) >= 2)
        assert [p for p, _ in pages] == ["/old", "/new"], pages
        assert result.changes.notifiers
        assert [i.id for i in d.store.list_incidents("simulated", severity="critical")] == [
            incident.id
        ]

        # 2. an invalid config is refused with one line; the config in force is kept
        in_force = d.settings
        path.write_text(text + "\n[[services\n")
        caplog.clear()
        refused = await d.reload("test")
        assert not refused.applied and "not valid TOML" in refused.message
        assert d.settings is in_force
        assert d.metrics.value("availmon_config_last_reload_successful") == 0
        errors = [r for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1 and errors[0].exc_info is None
        assert "the config in force is kept" in errors[0].getMessage()
        before = d.last_final["second"]
        await until("still measuring", lambda: d.last_final["second"] >= before + 2)
        # a field only a restart changes: refused, named
        path.write_text(text.replace('listen = "127.0.0.1:0"', 'listen = "127.0.0.1:1"'))
        refused = await d.reload("test")
        assert not refused.applied and "monitor.listen changed" in refused.message

        # 3. over HTTP, with the token: remove the added service again
        path.write_text(text)
        url = f"http://127.0.0.1:{d.http_port}/-/reload"
        async with aiohttp.ClientSession() as http:
            async with http.post(url) as r:
                assert r.status == 401
            async with http.post(url, headers={"Authorization": "Bearer tok"}) as r:
                assert r.status == 200, await r.text()
                body = await r.json()
        assert body["status"] == "applied" and body["changes"]["removed"] == ["second"]
        assert d.metrics.value("availmon_config_last_reload_successful") == 1
        removed_at = body["measured_from"]
        assert d._handover_task is not None
        await asyncio.wait_for(asyncio.shield(d._handover_task), timeout=15)
        assert d._flush()
        assert d.store.last_second("second", SERVICE_CHANNEL, "demo") == removed_at - 1
        gauge = {"service": "second", "channel": "service", "verdict": "available"}
        for vantage in ("demo", "combined"):
            assert d.metrics.value("availmon_verdict", **gauge, vantage=vantage) is None
        kept = {"service": "simulated", "channel": "service", "verdict": "available"}
        assert d.metrics.value("availmon_verdict", **kept, vantage="combined") is not None
        assert [s.name for s in d.settings.services] == ["simulated"]
    finally:
        await d.stop()
        await runner.cleanup()


def _spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "-c", str(config)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )


@pytest.mark.slow
async def test_sighup_reloads_a_running_availmon(sim: Simulator, tmp_path: Path) -> None:
    path = simulated_config(sim, tmp_path, listen="127.0.0.1:0", api_key="k")
    text = path.read_text()
    log = tmp_path / "daemon.log"
    proc = _spawn(path, log)
    try:
        await until("the start", lambda: "availmon started" in log.read_text(), polls=200)
        path.write_text(text + _service_block(text, "second"))
        os.kill(proc.pid, signal.SIGHUP)
        await until("the reload", lambda: "config reloaded (SIGHUP)" in log.read_text())
        assert "services added: second" in log.read_text()
        path.write_text("[monitor\n")
        os.kill(proc.pid, signal.SIGHUP)
        await until("the refusal", lambda: "refused" in log.read_text())
        assert proc.poll() is None, "SIGHUP must not end the daemon"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 20) == 0
        out = log.read_text()
        assert "Traceback" not in out
        assert len(re.findall(r"ERROR .*refused", out)) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
