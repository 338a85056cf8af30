"""Benchmark: what a config reload costs the measurement.

The whole daemon (`monitor.daemon.Daemon`, SQLite in a temporary folder) probes the
simulator (its own process) with services × 2 HTTP probes × 2 attempts/s. After a
steady spell it reloads a config that changes every service's probes (a timeout) and adds
one service, as `POST /-/reload` would, and prints, per size:

* how long `reload()` took (the file read, every probe and notifier built in worker
  threads, the policy's store reads for the added service, the hand-over set up);
* how long the hand-over took (from the reload's answer until the old launcher's last
  second was final);
* launches skipped and the launch lag (p99, max) over the reload's 10 seconds;
* whether every service's stored seconds run without a gap or a repeat across the
  hand-over second (they must).

    python bench/reload.py                        # 10, 100 and 250 services
    python bench/reload.py --services 50 --json
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simproc import simulator  # noqa: E402  (bench/, beside this script)

from monitor.config import load  # noqa: E402
from monitor.daemon import Daemon  # noqa: E402
from monitor.gcpacer import start_pacer  # noqa: E402
from monitor.verdicts import SERVICE_CHANNEL  # noqa: E402
from probes.compat_asyncio import backport_transport_cycle_fix  # noqa: E402


def config_text(n: int, url: str, db: Path, timeout: float) -> str:
    lines = [
        '[monitor]\nvantage = "bench"\nlisten = "127.0.0.1:0"\n',
        f'[store]\nurl = "sqlite:///{db}"\n',
    ]
    for i in range(n):
        lines.append(f'[[services]]\nname = "svc-{i:03d}"\n')
        for name, channel in (("a", "api"), ("b", "smtp")):
            lines.append(
                f'[[services.probes]]\ntype = "http"\nname = "{name}"\nchannel = "{channel}"\n'
                f'url = "{url}"\ntimeout_seconds = {timeout}\n'
            )
    return "\n".join(lines)


async def one(n: int, url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text(config_text(n, url, Path(tmp) / "bench.db", 2))
        daemon = Daemon(load(path), serve_http=False, config_path=path)
        await daemon.start()
        pacer = start_pacer(daemon.clock, daemon.in_flight)
        try:
            await asyncio.sleep(4)  # steady
            first = int(time.time())
            old = daemon.launcher
            assert old is not None
            before = {k: dict(v) for k, v in old.stats.items()}
            lags_before = {k: list(v["lags"]) for k, v in old.stats.items()}
            path.write_text(config_text(n + 1, url, Path(tmp) / "bench.db", 2.5))
            t0 = time.monotonic()
            result = await daemon.reload("bench")
            t1 = time.monotonic()
            assert result.applied, result.message
            assert daemon._handover_task is not None
            await asyncio.wait_for(asyncio.shield(daemon._handover_task), 30)
            t2 = time.monotonic()
            new = daemon.launcher
            assert new is not None
            await asyncio.sleep(max(0.0, first + 10 - time.time()))
            skipped = sum(old.stats[k]["skipped"] - before[k]["skipped"] for k in before)
            skipped += sum(v["skipped"] for v in new.stats.values())
            launched = sum(old.stats[k]["launched"] - before[k]["launched"] for k in before)
            launched += sum(v["launched"] for v in new.stats.values())
            lags = [
                lag for k, v in old.stats.items() for lag in list(v["lags"])[len(lags_before[k]) :]
            ]
            lags += [lag for v in new.stats.values() for lag in v["lags"]]
            lags.sort()
            last = min(daemon.last_final.values())
        finally:
            if pacer is not None:
                pacer.stop()
            await daemon.stop()
        assert daemon.store is not None and result.boundary is not None
        whole = True
        for svc in daemon.settings.services[:n]:
            runs = daemon.store.runs(svc.name, SERVICE_CHANNEL, first, last + 1, "bench")
            covered = sum(r.seconds for r in runs)
            ordered = all(a.last + 1 == b.first for a, b in itertools.pairwise(runs))
            whole = whole and ordered and covered == last + 1 - first
        daemon.store.close()
    return {
        "services": n,
        "reload_seconds": round(t1 - t0, 3),
        "handover_seconds": round(t2 - t1, 3),
        "launched": launched,
        "skipped": skipped,
        "lag_p99_ms": round(lags[int(0.99 * (len(lags) - 1))] * 1000, 2) if lags else None,
        "lag_max_ms": round(lags[-1] * 1000, 2) if lags else None,
        "seconds_whole": whole,
    }


async def bench(sizes: list[int], url: str) -> list[dict[str, Any]]:
    return [await one(n, url) for n in sizes]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--services", default="10,100,250", help="comma-separated sizes")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        sizes = [int(x) for x in args.services.split(",")]
    except ValueError:
        p.error("--services: comma-separated whole numbers")
    if not sizes or not all(1 <= n <= 500 for n in sizes):
        p.error("--services: each 1 to 500")
    logging.basicConfig(level=logging.ERROR)
    backport_transport_cycle_fix()  # as `availmon run` does at start
    with simulator() as url:
        if url is None:
            print("reload: the simulator did not start", file=sys.stderr)
            return 2
        rows = asyncio.run(bench(sizes, url))
    if args.json:
        print(json.dumps(rows))
        return 0
    print("reload: the whole daemon, services x 2 HTTP probes x 2/s; every probe changed + 1 added")
    print(
        "services  reload s  hand-over s  launched  skipped  lag p99 ms  lag max ms  seconds whole"
    )
    for r in rows:
        print(
            f"{r['services']:>8}  {r['reload_seconds']:>8}  {r['handover_seconds']:>11}  "
            f"{r['launched']:>8}  {r['skipped']:>7}  {r['lag_p99_ms']!s:>10}  "
            f"{r['lag_max_ms']!s:>10}  {'yes' if r['seconds_whole'] else 'NO':>13}"
        )
    return 0 if all(r["seconds_whole"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
