"""The whole daemon against the built-in simulator on loopback, in real time.

Short timeouts keep each test to seconds; nothing here asserts elapsed time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.config import load
from monitor.daemon import Daemon
from monitor.demo import simulated_config
from monitor.simulator import Simulator
from monitor.verdicts import Verdict

pytestmark = pytest.mark.slow


@pytest.fixture
async def sim() -> Any:
    s = Simulator(tls=True, api_key="k", smtp_password="k")
    await s.start()
    yield s
    await s.stop()


def _config(sim: Simulator, tmp_path: Path, token: bool = True) -> Path:
    path = simulated_config(sim, tmp_path)
    text = path.read_text().replace("demo-api-key-0123456789abcdef", "k")
    if token:
        text = text.replace('vantage = "demo"', 'vantage = "demo"\napi_token = "env:AVAILMON_T"')
    path.write_text(text)
    (tmp_path / "api-key").write_text("k\n")
    return path


async def _wait_final(d: Daemon, second: int, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while d.last_final.get("simulated", 0) < second and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert d.last_final.get("simulated", 0) >= second, "daemon stopped deciding seconds"


async def test_daemon_measures_outage_serves_api_and_metrics(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVAILMON_T", "tok")
    settings = load(_config(sim, tmp_path))
    d = Daemon(settings)
    await d.start()
    try:
        t0 = int(time.time()) + 1
        await _wait_final(d, t0 + 1)
        sim.set_fault("api", "5xx", status=503)
        bad_from = int(time.time()) + 1
        await asyncio.sleep(max(0, bad_from + 3 - time.time()))
        sim.set_fault("api", "ok")
        bad_to = int(time.time()) - 1  # last second fully inside the fault
        await _wait_final(d, bad_to + 2)
        base = f"http://127.0.0.1:{d.http_port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
            async with http.get(f"{base}/readyz") as r:
                assert r.status == 200, await r.text()
            async with http.get(
                f"{base}/api/v1/seconds",
                params={"service": "simulated", "from": str(bad_from), "to": str(bad_to + 1)},
            ) as r:
                assert r.status == 200
                rows = (await r.json())["seconds"]
            assert [row["api"] for row in rows] == ["unavailable"] * (bad_to + 1 - bad_from)
            assert all(row["verdict"] == "unavailable" for row in rows)
            assert all(row["smtp"] == "available" for row in rows)
            async with http.get(f"{base}/metrics") as r:
                text = await r.text()
            for vantage in (d.vantage, "combined"):  # its own, and as the lone leader
                assert (
                    'availmon_seconds_total{channel="api",service="simulated",'
                    f'vantage="{vantage}",verdict="unavailable"}}' in text
                )
            async with http.get(f"{base}/api/v1/status") as r:
                status = await r.json()
            assert status["services"][0]["name"] == "simulated"
            # bad input: one-line JSON errors, the daemon keeps running
            async with http.get(f"{base}/api/v1/seconds", params={"from": "yesterday"}) as r:
                assert r.status == 400
                assert "from" in (await r.json())["error"]
            async with http.post(f"{base}/api/v1/incidents/1/ack") as r:
                assert r.status == 401
            async with http.post(
                f"{base}/api/v1/incidents/999/ack",
                headers={"Authorization": "Bearer tok"},
                json={"by": "me"},
            ) as r:
                assert r.status == 404
            async with http.get(f"{base}/api/v1/reports/2026-13") as r:
                assert r.status == 400
        unavailable = d.metrics.registry.get_sample_value(
            "availmon_seconds_total",
            {
                "service": "simulated",
                "channel": "api",
                "verdict": "unavailable",
                "vantage": d.vantage,
            },
        )
        assert unavailable is not None and unavailable >= bad_to + 1 - bad_from
        assert "k\n" not in json.dumps(status)
    finally:
        await d.stop()


async def test_restart_leaves_unknown_gap_and_keeps_earlier_data(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVAILMON_T", "tok")
    settings = load(_config(sim, tmp_path))
    first = Daemon(settings)
    await first.start()
    t0 = int(time.time()) + 1
    await _wait_final(first, t0 + 2)
    await first.stop()
    assert first.store is not None
    last_before = first.store.last_second("simulated", "service", "demo")
    assert last_before is not None
    first.store.close()
    await asyncio.sleep(2.5)

    second = Daemon(settings)
    await second.start()
    try:
        await _wait_final(second, int(time.time()) + 1)
    finally:
        await second.stop()
    store = second.store
    assert store is not None
    # through the last final second (a second may be final before it ends)
    runs = store.runs("simulated", "service", t0, second.last_final["simulated"] + 1, "demo")
    # earlier data kept: the seconds measured before the restart are still available
    assert runs[0].verdict is Verdict.AVAILABLE and runs[0].first == t0
    gap = [
        r
        for r in runs
        if r.verdict is Verdict.UNKNOWN
        and r.reason is not None
        and r.reason.value == "monitor_down"
    ]
    assert len(gap) == 1 and gap[0].first == last_before + 1
    # after the gap, measuring resumes
    assert any(r.verdict is Verdict.AVAILABLE and r.first > gap[0].last for r in runs)
    # never labelled twice: runs do not overlap
    for a, b in itertools.pairwise(runs):
        assert a.last < b.first
