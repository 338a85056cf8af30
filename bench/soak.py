"""Soak: a real `availmon run` through a repeating cycle of faults, for as long as you like.

The daemon runs as its own process (`python -m monitor run`) against the built-in
simulated platform (`monitor.simulator.Simulator`, in this process) with the webhook
notifier paging a local receiver (`monitor.demo.PageReceiver`). Every 60 s cycle plays:

    +0   healthy                  +26  SMTP hangs for 7 s (Critical)
    +10  API 503 for 8 s          +33  healthy
         (a Critical Issue)       +40  API TCP resets for 3 s (too short for an incident)
    +18  healthy                  +46  API: every other call 500 for 4 s (never counts)
                                  +50  another process holds SQLite's write lock for 9 s

Every 2 s it samples the daemon: resident memory (VmRSS), open files, threads,
`/readyz`, skipped launches and the store writer's queue (`/metrics`). At the end it
stops the daemon (SIGTERM) and compares, second by second, what the store holds with the
simulator's own ground truth (per channel: api, smtp, service), counts the seconds stored
twice or missing, the Critical Issues against the outages that meet the rule, and the
pages against the Critical Issues (one each). Nothing is asserted; it prints a table
(``--json``: one JSON object). tests/monitor/test_soak.py runs one cycle of it.

    python bench/soak.py                 # 30 min (30 cycles)
    python bench/soak.py --minutes 240   # a long one; memory slope per hour in the table
    python bench/soak.py --cycles 1 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.demo import DEMO_API_KEY, PageReceiver, simulated_config  # noqa: E402
from monitor.simulator import Simulator  # noqa: E402
from monitor.store import open_store  # noqa: E402

SERVICE = "simulated"
CHANNELS = ("api", "smtp", "service")
CYCLE = 60
#: (offset in the cycle, channel, fault, params); "store" is the lock holder
PLAN: list[tuple[int, str, str, dict[str, Any]]] = [
    (10, "api", "5xx", {"status": 503}),
    (18, "api", "ok", {}),
    (26, "smtp", "hang", {}),
    (33, "smtp", "ok", {}),
    (40, "api", "reset", {}),
    (43, "api", "ok", {}),
    (46, "api", "fraction", {"fraction": 0.5, "fault": "5xx"}),
    (50, "api", "ok", {}),
    (50, "store", "lock", {"seconds": 9}),
]
#: outages per cycle that meet the rule (5 unavailable of 10 s): the 503s and the hang
CRITICAL_PER_CYCLE = 2
#: the Critical rule of the soak: the demo's, with a recovery that does not reopen, so
#: that each outage is its own incident
RULES = (
    "window_seconds = 10\nmin_unavailable_seconds = 5\nrecover_after_seconds = 5\n"
    "reopen_within_seconds = 2\n"
)
SAMPLE_EVERY = 2.0
LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN IMMEDIATE")
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_figures(pid: int) -> dict[str, float]:
    """VmRSS (MB), open files and threads of process `pid` (Linux /proc)."""
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_mb"] = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                out["threads"] = int(line.split()[1])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return out


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` (with these labels) in a Prometheus exposition."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric = head.split("{", 1)[0]
        if metric != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


@dataclass
class Soak:
    args: argparse.Namespace
    workdir: Path
    sim: Simulator
    receiver: PageReceiver
    base: str
    proc: subprocess.Popen[bytes] | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)
    not_ready: dict[str, int] = field(default_factory=dict)
    lockers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    steps: int = 0

    @property
    def db(self) -> Path:
        return self.workdir / "availmon.db"

    def start_daemon(self) -> None:
        log = (self.workdir / "daemon.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(self.workdir / "availmon.toml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def apply(self, channel: str, fault: str, params: dict[str, Any]) -> None:
        self.steps += 1
        if channel == "store":
            self.lockers.append(
                subprocess.Popen(
                    [sys.executable, "-c", LOCKER, str(self.db), str(params["seconds"])]
                )
            )
            return
        self.sim.set_fault(channel, fault, **params)

    async def play(self, t0: float, cycles: int) -> None:
        for c in range(cycles):
            for offset, channel, fault, params in PLAN:
                at = t0 + c * CYCLE + offset
                await asyncio.sleep(max(0.0, at - time.time()))
                self.apply(channel, fault, params)

    async def sample(self, http: aiohttp.ClientSession, t0: float) -> None:
        assert self.proc is not None
        row: dict[str, Any] = {"t": round(time.time() - t0, 1), **proc_figures(self.proc.pid)}
        try:
            async with http.get(f"{self.base}/readyz") as r:
                ready = await r.json()
            if not ready.get("ready"):
                reason = str(ready.get("reason", "?")).split(" for ")[0]
                self.not_ready[reason] = self.not_ready.get(reason, 0) + 1
            async with http.get(f"{self.base}/metrics") as r:
                text = await r.text()
            row["skipped"] = metric_sum(text, "availmon_launches_skipped_total")
            row["pending"] = metric_sum(text, "availmon_store_pending")
            row["store_errors"] = metric_sum(text, "availmon_store_errors_total")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            row["error"] = type(exc).__name__
        self.samples.append(row)


def compare(db: Path, sim: Simulator, start: int, end: int) -> dict[str, Any]:
    """The store against the simulator's ground truth over [start, end)."""
    truth = sim.ground_truth(start, end)
    store = open_store(f"sqlite:///{db.resolve()}")
    try:
        out: dict[str, Any] = {}
        for channel in CHANNELS:
            runs = store.runs(SERVICE, channel, start, end, "demo")
            stored: dict[int, str] = {}
            twice = 0
            for r in runs:
                for t in range(max(r.first, start), min(r.last + 1, end)):
                    twice += t in stored
                    stored[t] = r.verdict.value
            measured = {t for t, v in stored.items() if v == "unavailable"}
            injected = truth.get(channel, set())
            out[channel] = {
                "injected": len(injected),
                "measured": len(measured),
                "missed": len(injected - measured),
                "extra": len(measured - injected),
                "missing_seconds": (end - start) - len(stored),
                "stored_twice": twice,
                "unknown": sum(1 for v in stored.values() if v == "unknown"),
            }
        critical = store.list_incidents(service=SERVICE, severity="critical", limit=10**6)
        out["critical"] = [(i.id, i.first_unavailable) for i in critical]
        return out
    finally:
        store.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="availmon-soak-"))
    receiver = PageReceiver()
    await receiver.start()
    sim = Simulator(tls=True, api_key=DEMO_API_KEY, smtp_password=DEMO_API_KEY)
    await sim.start()
    port = free_port()
    lenient = (
        # a shared CI host: a launch 0.25 s late or a 1 s stall is the host's, not a fault
        "max_launch_lag_ms = 250\nstall_threshold_ms = 1000\n" if args.shared_host else ""
    )
    config = simulated_config(
        sim,
        workdir,
        listen=f"127.0.0.1:{port}",
        page_url=receiver.url,
        critical_rules=RULES,
        monitor_lines=lenient,
    )
    config.rename(workdir / "availmon.toml")
    soak = Soak(args, workdir, sim, receiver, f"http://127.0.0.1:{port}")
    soak.start_daemon()
    assert soak.proc is not None
    timeout = aiohttp.ClientTimeout(total=5)
    cycles = args.cycles
    started = time.time()
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for _ in range(100):  # the daemon takes a second or two to listen
            try:
                async with http.get(f"{soak.base}/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        t0 = float(int(time.time()) + 2)
        player = asyncio.create_task(soak.play(t0, cycles))
        end = t0 + cycles * CYCLE
        while time.time() < end + 8:  # the tail: hung attempts time out, pages go out
            await soak.sample(http, t0)
            await asyncio.sleep(SAMPLE_EVERY)
        await player
    soak.proc.send_signal(signal.SIGTERM)
    exit_code = await asyncio.to_thread(soak.proc.wait, 60)
    for locker in soak.lockers:
        await asyncio.to_thread(locker.wait, 30)
    result = await asyncio.to_thread(compare, soak.db, sim, int(t0), int(end))
    await sim.stop()
    await receiver.stop()
    log = (workdir / "daemon.log").read_text(errors="replace").splitlines()
    triggers = [p["body"] for p in receiver.pages if p["body"].get("event") == "trigger"]
    keys = [p["incident"]["dedup_key"] for p in triggers]
    figures = [s for s in soak.samples if "rss_mb" in s]
    half = figures[len(figures) // 2 :]
    slope = None
    if len(half) >= 2 and half[-1]["t"] > half[0]["t"]:
        slope = (half[-1]["rss_mb"] - half[0]["rss_mb"]) / (half[-1]["t"] - half[0]["t"]) * 3600

    def fig(key: str, which: int) -> float | None:
        return figures[which].get(key) if figures else None

    # what the daemon holds once it is warm, just before the first fault: connections,
    # the notifier's session and the executor's threads exist by then
    warm = [s for s in figures if s["t"] <= PLAN[0][0] - 1]
    baseline = warm[-1] if warm else (figures[0] if figures else {})

    return {
        "cycles": cycles,
        "seconds": int(end - t0),
        "wall_s": round(time.time() - started, 1),
        "exit_code": exit_code,
        "channels": {ch: result[ch] for ch in CHANNELS},
        "critical_expected": CRITICAL_PER_CYCLE * cycles,
        "critical_opened": len(result["critical"]),
        "pages": len(triggers),
        "pages_duplicated": len(keys) - len(set(keys)),
        "rss_mb": {
            "first": fig("rss_mb", 0),
            "max": max((s["rss_mb"] for s in figures), default=None),
            "last": fig("rss_mb", -1),
            "slope_mb_per_h_second_half": None if slope is None else round(slope, 2),
        },
        # the daemon's RSS at the end of each cycle: a leak climbs, a warm-up flattens
        "rss_mb_by_cycle": [
            round(s["rss_mb"], 1)
            for c in range(1, cycles + 1)
            for s in [min(figures, key=lambda x: abs(x["t"] - c * CYCLE))]
        ]
        if figures
        else [],
        "fds": {
            "baseline": baseline.get("fds"),
            "max": max((s.get("fds", 0) for s in figures), default=None),
            "last": fig("fds", -1),
        },
        "threads": {"baseline": baseline.get("threads"), "last": fig("threads", -1)},
        "skipped_launches": max((s.get("skipped", 0) for s in soak.samples), default=0),
        "store_errors": max((s.get("store_errors", 0) for s in soak.samples), default=0),
        "store_pending_max": max((s.get("pending", 0) for s in soak.samples), default=0),
        "not_ready_samples": soak.not_ready,
        "log_tracebacks": sum(1 for line in log if line.startswith("Traceback")),
        "log_warnings": sum(1 for line in log if " WARNING " in line),
        "log_errors": sum(1 for line in log if " ERROR " in line),
        "samples": len(soak.samples),
        "load_average": os.getloadavg(),
        "workdir": str(workdir),
    }


def table(r: dict[str, Any]) -> str:
    lines = [
        f"soak: {r['cycles']} cycles of {CYCLE} s ({r['seconds']} s measured, {r['wall_s']} s"
        f" wall), daemon exit {r['exit_code']}, load average {r['load_average'][0]:.2f}",
        "channel  injected  measured  missed  extra  missing  twice  unknown",
    ]
    for ch, c in r["channels"].items():
        lines.append(
            f"{ch:<7}  {c['injected']:>8}  {c['measured']:>8}  {c['missed']:>6}  {c['extra']:>5}"
            f"  {c['missing_seconds']:>7}  {c['stored_twice']:>5}  {c['unknown']:>7}"
        )
    rss, fds, th = r["rss_mb"], r["fds"], r["threads"]
    lines += [
        f"Critical Issues: {r['critical_opened']} opened, {r['critical_expected']} expected;"
        f" pages {r['pages']} ({r['pages_duplicated']} duplicated)",
        f"daemon RSS MB: first {rss['first']:.1f}, max {rss['max']:.1f}, last {rss['last']:.1f},"
        f" slope over the second half {rss['slope_mb_per_h_second_half']} MB/h",
        "daemon RSS MB at the end of each cycle: "
        + " ".join(f"{x:g}" for x in r["rss_mb_by_cycle"]),
        f"open files: before the first fault {fds['baseline']}, max {fds['max']},"
        f" last {fds['last']}; threads: before the first fault {th['baseline']},"
        f" last {th['last']}",
        f"skipped launches {r['skipped_launches']:.0f}; store errors {r['store_errors']:.0f};"
        f" store queue max {r['store_pending_max']:.0f}; not ready (samples by reason)"
        f" {r['not_ready_samples'] or 'none'}",
        f"daemon log: {r['log_warnings']} WARNING, {r['log_errors']} ERROR lines,"
        f" {r['log_tracebacks']} tracebacks",
        f"workdir {r['workdir']}",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=30.0, help="how long (30)")
    p.add_argument("--cycles", type=int, default=None, help="cycles of 60 s (overrides --minutes)")
    p.add_argument("--workdir", default=None, help="keep the config, store and log here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--shared-host",
        action="store_true",
        help="lenient launch-lag and stall thresholds (a loaded CI machine)",
    )
    args = p.parse_args()
    if args.cycles is None:
        args.cycles = max(1, round(args.minutes * 60 / CYCLE))
    if args.cycles < 1:
        p.error("--cycles: at least 1")
    result = asyncio.run(run(args))
    print(json.dumps(result) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
