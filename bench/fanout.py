"""Benchmark: many services on one daemon — do their launches keep their instants?

`--services` services (default 250), each with two HTTP probes at 2 attempts/s, run by
the daemon's own launcher and detector (the GC paced as `availmon run` paces it) against
the simulator in its own process, for `--duration` seconds, twice: with every service's
probes at the same instants (what the phases were before they were spread over the
services: a=0.0, b=0.25 for every service) and with the phases `availmon run` now gives
them (monitor/launcher.py `auto_phases`). It prints the launches, the skipped launches
(later than `max_launch_lag`, 50 ms), the launch jitter and the CPU share of each.
Target (issue #10): 0 skipped launches at 250 services × 2 probes × 2/s.

    python bench/fanout.py                      # 250 services, 2 × 30 s
    python bench/fanout.py --services 100 --duration 20 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simproc import simulator  # noqa: E402  (bench/, beside this script)

from monitor.clock import SystemClock  # noqa: E402
from monitor.config import Settings, parse  # noqa: E402
from monitor.detector import Detector  # noqa: E402
from monitor.gcpacer import start_pacer  # noqa: E402
from monitor.launcher import Launcher  # noqa: E402
from probes.compat_asyncio import backport_transport_cycle_fix  # noqa: E402


def settings(n: int, url: str, aligned: bool) -> Settings:
    def probe(name: str, phase: float) -> dict[str, Any]:
        p: dict[str, Any] = {"type": "http", "name": name, "url": url, "timeout_seconds": 2}
        if aligned:
            p["phase_offset"] = phase
        return p

    return parse(
        {
            "monitor": {"vantage": "bench"},
            "services": [
                {"name": f"svc-{i:03d}", "probes": [probe("a", 0.0), probe("b", 0.25)]}
                for i in range(n)
            ],
        }
    )


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def one(n: int, url: str, aligned: bool, duration: float) -> dict[str, Any]:
    cfg = settings(n, url, aligned)
    clock = SystemClock()
    start = int(clock.wall()) + 1
    detector = Detector(cfg.services, "bench", lambda *a: None, start_second=start)
    launcher = Launcher(cfg, clock, detector)
    pacer = start_pacer(clock, lambda: launcher.in_flight)
    await launcher.start()
    c0, t0 = cpu(), time.monotonic()
    await asyncio.sleep(duration)
    c1, t1 = cpu(), time.monotonic()
    await launcher.stop()
    if pacer is not None:
        pacer.stop()
    stats = list(launcher.stats.values())
    lags = sorted(lag for s in stats for lag in s["lags"])
    return {
        "phases": "aligned" if aligned else "spread",
        "services": n,
        "launched": sum(s["launched"] for s in stats),
        "skipped": sum(s["skipped"] for s in stats),
        "jitter_p99_ms": round(lags[int(0.99 * (len(lags) - 1))] * 1000, 2) if lags else None,
        "cpu_percent": round(100 * (c1 - c0) / (t1 - t0), 1),
    }


async def bench(args: argparse.Namespace, url: str) -> list[dict[str, Any]]:
    return [await one(args.services, url, aligned, args.duration) for aligned in (True, False)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", type=int, default=250)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    backport_transport_cycle_fix()  # as `availmon run` does at start
    with simulator() as url:
        if url is None:
            print("fanout: the simulator did not start", file=sys.stderr)
            return 2
        rows = asyncio.run(bench(args, url))
    if args.json:
        print(json.dumps(rows))
        return 0
    per_s = args.services * 2 * 2
    print(f"fanout: {args.services} services x 2 HTTP probes x 2/s = {per_s} attempts/s, "
          f"{args.duration:g} s each; simulator in its own process")  # fmt: skip
    print("phases   launched  skipped  jitter p99 ms  CPU % of a core")
    for r in rows:
        print(f"{r['phases']:<8} {r['launched']:>8} {r['skipped']:>8} {r['jitter_p99_ms']:>14} "
              f"{r['cpu_percent']:>16}")  # fmt: skip
    spread = rows[-1]
    print(f"target 0 skipped with spread phases: {'met' if spread['skipped'] == 0 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
