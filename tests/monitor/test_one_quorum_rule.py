"""One quorum rule: the HTTP API, the monthly report and `availmon_seconds_total` agree.

Three vantages write disagreeing verdicts (runs of available, unavailable and unknown of
random lengths, each vantage its own) into one store. The same seconds, combined second
by second with `monitor.quorum.combine_second`, feed the metrics; `/api/v1/seconds` and
`build_report` read the store. All three must say the same of every second, for the
default quorum ("all"), "majority" and a number.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from monitor.api import make_app
from monitor.clock import FakeClock
from monitor.config import Settings, parse
from monitor.daemon import Daemon
from monitor.metrics import Metrics
from monitor.quorum import Quorum, combine_second
from monitor.reports.compute import build_report
from monitor.store import open_store
from monitor.verdicts import (
    CHANNELS,
    COMBINED,
    SERVICE_CHANNEL,
    SecondVerdict,
    UnknownReason,
    Verdict,
)

MONTH = "2026-02"
START = 1_770_681_600  # 2026-02-10T00:00:00Z
SPAN = 6 * 3600
VANTAGES = ("v1", "v2", "v3")
A, U, K = Verdict.AVAILABLE, Verdict.UNAVAILABLE, Verdict.UNKNOWN


def _settings(tmp_path: Path, quorum: Quorum) -> Settings:
    service: dict[str, Any] = {
        "name": "svc",
        "probes": [
            {"type": "http", "name": "api", "url": "http://127.0.0.1:9/"},
            {"type": "smtp", "name": "smtp", "host": "127.0.0.1"},
        ],
    }
    if quorum is not None:
        service["quorum"] = quorum
    return parse(
        {
            "monitor": {"vantage": "v1", "listen": "127.0.0.1:0"},
            "store": {"url": f"sqlite:///{tmp_path}/a.db"},
            "services": [service],
        }
    )


def _channel_runs(rng: random.Random) -> list[Verdict]:
    """One channel of one vantage: runs of 1-900 s, mostly available."""
    out: list[Verdict] = []
    while len(out) < SPAN:
        verdict = rng.choices((A, U, K), weights=(6, 3, 1))[0]
        out += [verdict] * rng.randint(1, 900)
    return out[:SPAN]


def _vantage_seconds(rng: random.Random, vantage: str) -> list[list[SecondVerdict]]:
    api, smtp = _channel_runs(rng), _channel_runs(rng)
    seconds = []
    for i in range(SPAN):
        t = START + i
        chans = {"api": api[i], "smtp": smtp[i]}
        if U in chans.values():  # combine = "any", as the detector does per vantage
            service = U
        elif A in chans.values():
            service = A
        else:
            service = K
        row = [
            SecondVerdict(
                "svc",
                ch,
                t,
                v,
                vantage,
                reason=UnknownReason.PROBE_ERROR if v is K else None,
            )
            for ch, v in (*chans.items(), (SERVICE_CHANNEL, service))
        ]
        seconds.append(row)
    return seconds


@pytest.mark.parametrize("quorum", [None, "majority", 2], ids=["all", "majority", "two"])
async def test_api_report_and_metrics_agree_second_by_second(
    tmp_path: Path, quorum: Quorum
) -> None:
    settings = _settings(tmp_path, quorum)
    store = open_store(settings.store.url)
    rng = random.Random(20260210)
    per_vantage = {v: _vantage_seconds(rng, v) for v in VANTAGES}
    for rows in per_vantage.values():
        store.write_verdicts([v for row in rows for v in row])

    metrics = Metrics(vantage="here")
    metrics.lead([("svc", list(CHANNELS))])
    combined: dict[str, list[str]] = {ch: [] for ch in (SERVICE_CHANNEL, *CHANNELS)}
    for i in range(SPAN):
        by_channel: dict[str, list[SecondVerdict]] = {}
        for vantage in VANTAGES:
            for v in per_vantage[vantage][i]:
                by_channel.setdefault(v.channel, []).append(v)
        second = [combine_second(vs, quorum) for vs in by_channel.values()]
        metrics.observe_verdicts(second, COMBINED)
        for v in second:
            combined[v.channel].append(str(v.verdict))

    d = Daemon(settings, clock=FakeClock(START + SPAN + 60), store=store, metrics=metrics)
    async with TestClient(TestServer(make_app(d))) as client:
        r = await client.get(
            "/api/v1/seconds",
            params={"service": "svc", "from": str(START), "to": str(START + SPAN)},
        )
        assert r.status == 200
        rows = (await r.json())["seconds"]
    assert [row["t"] for row in rows] == list(range(START, START + SPAN))
    # the API and the combined stream, second by second
    assert [row["verdict"] for row in rows] == combined[SERVICE_CHANNEL]
    for ch in CHANNELS:
        assert [row[ch] for row in rows] == combined[ch]

    # the metric counts what the API shows
    get = metrics.registry.get_sample_value
    for column, ch in (("verdict", SERVICE_CHANNEL), ("api", "api"), ("smtp", "smtp")):
        counted = Counter(row[column] for row in rows)
        for verdict in ("available", "unavailable", "unknown"):
            labels = {"service": "svc", "channel": ch, "verdict": verdict, "vantage": COMBINED}
            assert get("availmon_seconds_total", labels) == counted[verdict], (ch, verdict)

    # the report counts and places the same unavailable seconds
    report = await asyncio.to_thread(
        build_report, store, settings, "svc", MONTH, now=START + 40 * 86400
    )
    for column, ch in (("verdict", SERVICE_CHANNEL), ("api", "api"), ("smtp", "smtp")):
        unavailable = sum(1 for row in rows if row[column] == "unavailable")
        assert report["unavailable_seconds"][ch] == unavailable, ch
    from_outages = {
        t
        for o in report["outages"]
        for t in range(o["start_epoch"], o["start_epoch"] + o["seconds"])
    }
    assert from_outages == {row["t"] for row in rows if row["verdict"] == "unavailable"}
    # and the vantages really disagreed: the rule decided something
    lone = sum(
        1 for i in range(SPAN) if sum(per_vantage[v][i][2].verdict is U for v in VANTAGES) == 1
    )
    assert lone > 1000
    store.close()
