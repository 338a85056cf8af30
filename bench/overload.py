"""Benchmark: how many attempts per second one core sustains, and what overload looks like.

The whole daemon (`monitor.daemon.Daemon`: launcher, detector, metrics, policy, the store
writer on SQLite in a temporary folder) probes the simulator, which runs in its own
process on the other core. For each offered rate it runs `--duration` seconds with
services × 2 HTTP probes (fresh connection per attempt, timeout 2 s) at k attempts/s and
prints the launches made and skipped, the daemon's CPU share of one core (its own
`getrusage`: the loop and the writer thread), the launch jitter and what `/readyz` says
at the end (`overload: …` once more than 5 % of the launches due in the last 60 s were
skipped). The knee is the highest rate with under 1 % skipped.

    python bench/overload.py                          # 500 … 4,000 attempts/s, 20 s each
    python bench/overload.py --rates 1000,2000 --duration 30 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simproc import simulator  # noqa: E402  (bench/, beside this script)

from monitor.config import Settings, parse  # noqa: E402
from monitor.daemon import Daemon  # noqa: E402
from monitor.gcpacer import start_pacer  # noqa: E402
from probes.compat_asyncio import backport_transport_cycle_fix  # noqa: E402

#: attempts per second of each probe; the number of services makes up the rate
K = 5
SERVICES_MAX = 1000


def settings(rate: int, url: str, db: Path) -> Settings:
    services = max(1, min(SERVICES_MAX, round(rate / (2 * K))))
    probe = {"type": "http", "url": url, "timeout_seconds": 2, "attempts_per_second": K}
    return parse(
        {
            "monitor": {"vantage": "bench", "listen": "127.0.0.1:0"},
            "store": {"url": f"sqlite:///{db}"},
            "services": [
                {
                    "name": f"svc-{i:03d}",
                    "probes": [
                        {**probe, "name": "a", "channel": "api"},
                        {**probe, "name": "b", "channel": "smtp"},
                    ],
                }
                for i in range(services)
            ],
        }
    )


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def one(rate: int, url: str, duration: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = settings(rate, url, Path(tmp) / "bench.db")
        daemon = Daemon(cfg, serve_http=False)
        await daemon.start()
        launcher = daemon.launcher
        assert launcher is not None
        pacer = start_pacer(daemon.clock, lambda: launcher.in_flight)
        try:
            await asyncio.sleep(2)  # past the first, partial second
            before = {k: dict(v) for k, v in launcher.stats.items()}
            c0, t0 = cpu(), time.monotonic()
            await asyncio.sleep(duration)
            c1, t1 = cpu(), time.monotonic()
            after = launcher.stats
            launched = sum(after[k]["launched"] - before[k]["launched"] for k in after)
            skipped = sum(after[k]["skipped"] - before[k]["skipped"] for k in after)
            lags = sorted(lag for s in after.values() for lag in s["lags"])
            ready, reason = daemon.ready()
        finally:
            if pacer is not None:
                pacer.stop()
            await daemon.stop()
    due = launched + skipped
    return {
        "offered_per_s": len(cfg.services) * 2 * K,
        "services": len(cfg.services),
        "launched": launched,
        "skipped": skipped,
        "skipped_percent": round(100 * skipped / due, 2) if due else None,
        "cpu_percent": round(100 * (c1 - c0) / (t1 - t0), 1),
        "jitter_p99_ms": round(lags[int(0.99 * (len(lags) - 1))] * 1000, 2) if lags else None,
        "ready": ready,
        "reason": reason,
    }


async def bench(rates: list[int], url: str, duration: float) -> list[dict[str, Any]]:
    return [await one(rate, url, duration) for rate in rates]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="500,1000,1500,2000,3000,4000", help="attempts/s offered")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per rate (20)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        rates = [int(r) for r in args.rates.split(",")]
    except ValueError:
        p.error("--rates: comma-separated whole numbers")
    if not rates or min(rates) < 2 * K or not 1 <= args.duration <= 600:
        p.error(f"--rates: each at least {2 * K}; --duration: 1 to 600 s")
    logging.basicConfig(level=logging.ERROR)
    backport_transport_cycle_fix()  # as `availmon run` does at start
    with simulator() as url:
        if url is None:
            print("overload: the simulator did not start", file=sys.stderr)
            return 2
        rows = asyncio.run(bench(rates, url, args.duration))
    if args.json:
        print(json.dumps(rows))
        return 0
    print(
        f"overload: the whole daemon, 2 HTTP probes x {K}/s per service, {args.duration:g} s a rate"
    )
    print(
        "offered/s  services  launched  skipped  skipped %  CPU % of a core  jitter p99 ms  readyz"
    )
    for r in rows:
        print(
            f"{r['offered_per_s']:>9}  {r['services']:>8}  {r['launched']:>8}  {r['skipped']:>7}"
            f"  {r['skipped_percent']:>9}  {r['cpu_percent']:>15}  {r['jitter_p99_ms']:>13}"
            f"  {'ok' if r['ready'] else r['reason']}"
        )
    fine = [r for r in rows if r["skipped_percent"] is not None and r["skipped_percent"] < 1]
    if fine:
        knee = max(fine, key=lambda r: r["offered_per_s"])
        print(
            f"sustained: {knee['offered_per_s']} attempts/s with under 1 % skipped, at"
            f" {knee['cpu_percent']} % of one core"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
