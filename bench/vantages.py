"""Benchmark: several vantage points on one PostgreSQL — how late the leader's combined
verdicts are, and how much the vantages write.

A throw-away PostgreSQL cluster (tests/pgserver.py) and the simulator in a child process
(bench/simproc.py); `--vantages` daemons in this process (`monitor.daemon.Daemon`), each
probing `--services` services × 2 HTTP probes (channels api and smtp) at 2 attempts/s,
for `--duration` seconds after a warm-up. It prints:

* the combination lag: from a second's end until the leader combined it (p50, p99, max);
* the verdicts the vantages write per second, and the rows each table gains per hour
  (the history: runs, run-length encoded, barely grow while healthy; minute counts grow a
  row per probe, outcome and minute; the recent-verdict buffer holds an hour and is then
  pruned). What a month takes on disk per vantage is bench/store_write.py's figure, the
  same tables on SQLite.

    python bench/vantages.py                   # 3 vantages x 10 services, 60 s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simproc import simulator  # noqa: E402  (bench/, beside this script)

from monitor.config import Settings, parse  # noqa: E402
from monitor.daemon import Daemon  # noqa: E402
from tests import pgserver  # noqa: E402


def settings(vantage: str, store: str, url: str, services: int) -> Settings:
    probe = {"type": "http", "url": url, "timeout_seconds": 2, "attempts_per_second": 2}
    return parse(
        {
            "monitor": {"vantage": vantage, "listen": "127.0.0.1:0"},
            "store": {"url": store},
            "services": [
                {
                    "name": f"svc-{i:02d}",
                    "probes": [
                        {**probe, "name": "a", "channel": "api"},
                        {**probe, "name": "b", "channel": "smtp"},
                    ],
                }
                for i in range(services)
            ],
        }
    )


HISTORY = ("runs", "minute_counts", "evidence")


def pg_rows(cluster: pgserver.Cluster, schema: str) -> dict[str, int]:
    """Rows of the history tables and of the recent-verdict buffer in `schema`."""
    import psycopg

    with psycopg.connect(cluster.url()) as conn:
        return {
            table: int(conn.execute(f'SELECT COUNT(*) FROM "{schema}"."{table}"').fetchone()[0])  # type: ignore[index]
            for table in (*HISTORY, "recent_verdicts")
        }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


async def run_pg(
    cluster: pgserver.Cluster, url: str, vantages: int, services: int, duration: float
) -> dict[str, Any]:
    store = cluster.fresh_url()
    schema = store.rsplit("%3D", 1)[1]
    daemons = [
        Daemon(settings(f"v{n}", store, url, services), serve_http=False) for n in range(vantages)
    ]
    for d in daemons:
        await d.start()
    try:
        await asyncio.sleep(5)  # past the first seconds and the first combinations
        leader = next(d for d in daemons if d.elector is not None and d.elector.leading)
        leader.combine_lags.clear()
        rows0 = await asyncio.to_thread(pg_rows, cluster, schema)
        await asyncio.sleep(duration)
        rows1 = await asyncio.to_thread(pg_rows, cluster, schema)
        lags = list(leader.combine_lags)
    finally:
        for d in daemons:
            await d.stop()
    streams = vantages * services * 3  # api, smtp and the service verdict
    per_hour = {t: round((rows1[t] - rows0[t]) / duration * 3600) for t in rows1}
    return {
        "backend": "postgresql",
        "vantages": vantages,
        "services": services,
        "combined_seconds": len(lags),
        "combine_lag_p50_s": round(statistics.median(lags), 3) if lags else None,
        "combine_lag_p99_s": round(pct(lags, 0.99), 3) if lags else None,
        "combine_lag_max_s": round(max(lags), 3) if lags else None,
        "verdicts_per_second": streams,
        "rows_per_hour": per_hour,
    }


async def bench(vantages: int, services: int, duration: float, url: str) -> list[dict[str, Any]]:
    cluster = pgserver.Cluster()
    await asyncio.to_thread(cluster.start)
    try:
        return [await run_pg(cluster, url, vantages, services, duration)]
    finally:
        await asyncio.to_thread(cluster.stop)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vantages", type=int, default=3)
    p.add_argument("--services", type=int, default=10)
    p.add_argument("--duration", type=float, default=60.0, help="seconds measured (60)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not (1 <= args.vantages <= 5 and 1 <= args.services <= 100 and 10 <= args.duration <= 3600):
        p.error("--vantages 1-5, --services 1-100, --duration 10-3600")
    logging.basicConfig(level=logging.ERROR)
    with simulator() as url:
        if url is None:
            print("vantages: the simulator did not start", file=sys.stderr)
            return 2
        try:
            rows = asyncio.run(bench(args.vantages, args.services, args.duration, url))
        except FileNotFoundError as exc:
            print(f"vantages: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(rows))
        return 0
    pg = rows[0]
    print(
        f"vantages: {pg['vantages']} vantages x {pg['services']} services x 2 channels at 2/s, "
        f"{args.duration:g} s"
    )
    print(
        f"combination lag (second's end to combined): p50 {pg['combine_lag_p50_s']} s, "
        f"p99 {pg['combine_lag_p99_s']} s, max {pg['combine_lag_max_s']} s "
        f"({pg['combined_seconds']} seconds)"
    )
    print(f"verdicts written: {pg['verdicts_per_second']}/s (every vantage's channels and service)")
    print(
        "rows added per hour (all vantages): "
        + ", ".join(f"{t} {n:,}" for t, n in pg["rows_per_hour"].items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
