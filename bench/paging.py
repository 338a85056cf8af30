"""Benchmark: how soon a page goes out once the receiver answers again.

A real outbox `Dispatcher` with a real webhook notifier and a SQLite store delivers one
Critical-tier page to a local receiver that fails for `--fail-seconds` (HTTP 500, or with
`hang` no answer at all) and then accepts. Measured per run: the delay from the receiver
answering again to the page arriving, and the tries it took. Runs go in parallel, each
with its own receiver, store and dispatcher. Target (issue #10): within 15 s.

    python bench/paging.py                       # 5xx and hang, 5 runs each, 30 s failing
    python bench/paging.py --fail-seconds 60 --runs 10 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alerting.model import Incident, IncidentState, OutboxItem, Severity  # noqa: E402
from alerting.notifiers.webhook import WebhookConfig, WebhookNotifier  # noqa: E402
from alerting.outbox import Dispatcher  # noqa: E402
from monitor.clock import SystemClock  # noqa: E402
from monitor.store import open_store  # noqa: E402


class Receiver:
    def __init__(self, mode: str, fail_seconds: float) -> None:
        self.mode = mode
        self.until = time.time() + fail_seconds
        self.tries = 0
        self.delivered_at: float | None = None
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def hook(self, request: web.Request) -> web.Response:
        self.tries += 1
        await request.read()
        if time.time() < self.until:
            if self.mode == "hang":
                await asyncio.sleep(3600)
            return web.Response(status=500, text="down")
        self.delivered_at = time.time()
        return web.Response(status=200, text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.hook)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"


async def one_run(mode: str, fail_seconds: float, tmp: Path, n: int) -> dict[str, Any]:
    receiver = Receiver(mode, fail_seconds)
    await receiver.start()
    store = open_store(f"sqlite:///{tmp}/paging-{mode}-{n}.db")
    clock = SystemClock()
    async with aiohttp.ClientSession() as session:
        config = WebhookConfig(name="pager", url=receiver.url, timeout_seconds=5)
        notifier = WebhookNotifier(config, session, clock)
        dispatcher = Dispatcher(store, {"pager": notifier}, clock)
        now = clock.wall()
        incident = await asyncio.to_thread(
            store.create_incident,
            Incident(0, "svc", Severity.CRITICAL, IncidentState.OPEN, "unavailable", "", now),
        )
        payload = {"seq": 1, "event": "trigger", "tier": "critical", "summary": "bench",
                   "text": "bench", "at": now, "vantage": "bench",
                   "incident": {"id": incident.id, "service": "svc", "severity": "critical",
                                "state": "open", "dedup_key": incident.dedup_key}}  # fmt: skip
        item = OutboxItem(0, incident.id, "pager", "trigger", payload, now, now)
        await asyncio.to_thread(store.enqueue, [item])
        task = asyncio.create_task(dispatcher.run())
        deadline = receiver.until + 120
        while receiver.delivered_at is None and time.time() < deadline:
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await dispatcher.close()
    assert receiver.runner is not None
    await receiver.runner.cleanup()
    store.close()
    delay = None if receiver.delivered_at is None else receiver.delivered_at - receiver.until
    return {"mode": mode, "delay": delay, "tries": receiver.tries}


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"fail_seconds": args.fail_seconds, "runs": args.runs, "modes": {}}
    with tempfile.TemporaryDirectory(prefix="availmon-paging-") as tmp:
        for mode in args.modes:
            runs = await asyncio.gather(
                *(one_run(mode, args.fail_seconds, Path(tmp), n) for n in range(args.runs))
            )
            delays = [r["delay"] for r in runs if r["delay"] is not None]
            out["modes"][mode] = {
                "delivered": len(delays),
                "delay_p50": statistics.median(delays) if delays else None,
                "delay_max": max(delays) if delays else None,
                "tries_max": max(r["tries"] for r in runs),
                "target_met": len(delays) == args.runs and max(delays) <= 15.0,
            }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fail-seconds", type=float, default=30.0)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--modes", nargs="+", default=["5xx", "hang"], choices=["5xx", "hang"])
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the retries' warnings are the point, not news
    result = asyncio.run(bench(args))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"paging: receiver failing {args.fail_seconds:g} s, then accepting; {args.runs} runs")
    print("mode  delivered  delay p50 (s)  delay max (s)  tries max  target ≤ 15 s")
    for mode, r in result["modes"].items():
        p50 = "-" if r["delay_p50"] is None else f"{r['delay_p50']:.2f}"
        mx = "-" if r["delay_max"] is None else f"{r['delay_max']:.2f}"
        met = "yes" if r["target_met"] else "NO"
        print(f"{mode:<5} {r['delivered']:>5}/{args.runs:<4} {p50:>13} {mx:>14} "
              f"{r['tries_max']:>10}  {met}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
