"""Benchmark: CPU per attempt, launch jitter and memory of the probes, beside blackbox_exporter.

Drives the API (HTTP) and SMTP probes at a fixed rate against the simulator (`availmon
simulate`, in its own process so that its CPU is not counted as ours) and, in the same
run, prometheus-blackbox-exporter against the same target at the same rate, then prints a
table (``--json``: one JSON object). Windows, in this order:

1. ``default``   — the default config (2 attempts/s per channel): CPU % of one core, RSS;
   first, so that RSS is that of a fresh daemon.
2. cost windows  — one channel at a time at ``--rate``: API with a fresh connection per
   attempt, API reusing connections, a full SMTP injection (EHLO, MAIL, RCPT, DATA, QUIT);
   each followed by blackbox_exporter doing the same (HTTP: the ``http`` prober, which opens
   a fresh connection per probe; SMTP: a ``tcp`` module whose query_response runs the same
   dialog and message). CPU is ours from ``getrusage(RUSAGE_SELF)``, blackbox's from
   ``/proc/PID/stat`` (utime + stime); the process that drives blackbox's ``/probe`` is a
   separate one and not counted.
3. ``sustained`` — both channels at ``--rate`` for ``--duration`` s, the target hanging
   (every request and every SMTP message left unanswered) for the middle third: attempts,
   skipped launches, launch jitter p50/p99 (ms after the scheduled instant), outcomes.

The attempts run through the daemon's own `monitor.launcher.Launcher` and
`monitor.detector.Detector` in this process when they are importable, otherwise through a
fixed-rate `loop.call_at` schedule of the same shape (the table says which).

    python bench/attempt_cost.py                    # ~3 minutes: 200/s, 60 s sustained
    python bench/attempt_cost.py --quick            # ~40 s smoke run
    python bench/attempt_cost.py --rate 100 --duration 30 --json
    python bench/attempt_cost.py --gc-tuned         # the collector paced as `availmon run` paces it
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from monitor.clock import SystemClock
from monitor.config import Settings
from probes.base import PROBES, Attempt, ProbeContext
from probes.compat_asyncio import backport_transport_cycle_fix
from probes.http import HttpProbeConfig
from probes.smtp import SmtpProbe, SmtpProbeConfig

BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
INSTALL_HINT = "install it with: apt-get install prometheus-blackbox-exporter"
API_KEY = "bench-api-key"
SINK = "probe@bench.sink.sparkpostmail.com"
MAIL_FROM = "availmon@bench.test"
EHLO = "availmon.bench"
TICKS = os.sysconf("SC_CLK_TCK")

log = logging.getLogger("attempt_cost")


#: the driver of the window running now, whose attempts in flight the GC pacer asks for
_current: list[Any] = []


def in_flight() -> int:
    return int(_current[-1].in_flight()) if _current else 0


class BenchError(Exception):
    """A precondition of the benchmark is not met; `str()` is the one line to print."""


# ----------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, seconds, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def runq_wait() -> float:
    """Seconds this process has spent runnable but waiting for a CPU (/proc schedstat).

    Launch jitter on a shared machine is mostly this: other processes holding the cores.
    """
    try:
        with open("/proc/self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def rss_mb() -> float:
    """Resident set size of this process now, MB (VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_port(port: int, proc: subprocess.Popen[Any], what: str, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode} at start")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise BenchError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


@contextlib.contextmanager
def running(cmd: list[str], port: int, what: str) -> Iterator[subprocess.Popen[Any]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc, what)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class Target:
    host: str
    http_port: int
    smtp_port: int
    pid: int

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.http_port}/api/v1/account"


# ----------------------------------------------------------------------------- configs


def api_config(rate: int, *, reuse: bool, target: Target, phase: float = 0.0) -> HttpProbeConfig:
    return HttpProbeConfig(
        name="api-reused" if reuse else "api",
        url=target.api_url,
        headers={"Authorization": API_KEY},  # type: ignore[dict-item]
        attempts_per_second=rate,
        reuse_connections=reuse,
        phase_offset=phase,
    )


def smtp_config(rate: int, *, target: Target, phase: float = 0.0) -> SmtpProbeConfig:
    return SmtpProbeConfig(
        name="smtp",
        host=target.host,
        port=target.smtp_port,
        tls="none",
        ehlo_name=EHLO,
        mail_from=MAIL_FROM,
        rcpt_to=SINK,
        attempts_per_second=rate,
        phase_offset=phase,
    )


def blackbox_config(target: Target) -> dict[str, Any]:
    """An http module like the API probe and a tcp module running the SMTP probe's dialog."""
    probe = SmtpProbe(smtp_config(1, target=target), SystemClock())
    message = probe.message("bb-probe").decode("ascii")
    # blackbox sends each line followed by "\n": end them with "\r" to make CRLF
    dialog: list[dict[str, str]] = [
        {"expect": "^220 "},
        {"send": f"EHLO {EHLO}\r"},
        {"expect": "^250 "},
        {"send": f"MAIL FROM:<{MAIL_FROM}>\r"},
        {"expect": "^250"},
        {"send": f"RCPT TO:<{SINK}>\r"},
        {"expect": "^250"},
        {"send": "DATA\r"},
        {"expect": "^354"},
        {"send": message + ".\r"},
        {"expect": "^250"},
        {"send": "QUIT\r"},
        {"expect": "^221"},
    ]
    return {
        "modules": {
            "http_api": {
                "prober": "http",
                "timeout": "5s",
                "http": {
                    "method": "GET",
                    "headers": {"Authorization": API_KEY},
                    "valid_status_codes": [200],
                    "preferred_ip_protocol": "ip4",
                },
            },
            "smtp_dialog": {
                "prober": "tcp",
                "timeout": "10s",
                "tcp": {"preferred_ip_protocol": "ip4", "query_response": dialog},
            },
        }
    }


# ----------------------------------------------------------------------------- drivers


@dataclass
class ChannelStats:
    attempts: int = 0
    launched: int = 0
    skipped: int = 0
    lags: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)


class OwnDriver:
    """A fixed-rate `loop.call_at` schedule of the launcher's shape (used without it)."""

    name = "own call_at schedule"

    def __init__(self, configs: list[Any], on_attempt: Callable[[Attempt], None]) -> None:
        self._configs = configs
        self._on_attempt = on_attempt
        self._clock = SystemClock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._handles: list[asyncio.TimerHandle] = []
        self._running = False
        self.stats: dict[str, dict[str, int]] = {}
        self._probes: dict[str, Any] = {}

    def launched(self, name: str) -> int:
        return self.stats[name]["launched"]

    def in_flight(self) -> int:
        return len(self._tasks)

    def skipped(self, name: str) -> int:
        return self.stats[name]["skipped"]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._running = True
        for cfg in self._configs:
            self._probes[cfg.name] = PROBES[cfg.type](cfg, self._clock)
            self.stats[cfg.name] = {"launched": 0, "skipped": 0}
        first = math.floor(self._clock.wall()) + 1
        self._anchor = self._clock.wall() - loop.time()
        self._schedule(loop, first)

    def _schedule(self, loop: asyncio.AbstractEventLoop, second: int) -> None:
        if not self._running:
            return
        for cfg in self._configs:
            k = cfg.attempts_per_second
            for j in range(k):
                at = second + (cfg.phase_offset + j / k) % 1.0
                h = loop.call_at(at - self._anchor, self._fire, loop, cfg, second, j, at)
                self._handles.append(h)
        self._handles = [h for h in self._handles if not h.cancelled()][-4000:]
        loop.call_at(second - self._anchor, self._schedule, loop, second + 1)

    def _fire(
        self, loop: asyncio.AbstractEventLoop, cfg: Any, second: int, slot: int, at: float
    ) -> None:
        if not self._running:
            return
        lag = loop.time() + self._anchor - at
        stats = self.stats[cfg.name]
        if lag > 0.050:
            stats["skipped"] += 1
            return
        stats["launched"] += 1
        ctx = ProbeContext(f"{cfg.name}:{second}:{slot}", second, slot, 0.0, cfg.timeout_seconds)
        task = loop.create_task(self._attempt(cfg, ctx, self._clock.wall()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attempt(self, cfg: Any, ctx: ProbeContext, wall: float) -> None:
        start = self._clock.monotonic()
        result = await self._probes[cfg.name].run(ctx)
        self._on_attempt(
            Attempt(
                attempt_id=ctx.attempt_id,
                service="bench",
                channel=cfg.channel,
                probe=cfg.name,
                second=ctx.second,
                slot=ctx.slot,
                outcome=result.outcome,
                latency=self._clock.monotonic() - start,
                started=wall,
                detail=result.detail,
            )
        )

    async def stop(self) -> None:
        self._running = False
        for h in self._handles:
            h.cancel()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        for p in self._probes.values():
            await p.close()


class LauncherDriver:
    """The daemon's Launcher and Detector, in this process."""

    name = "monitor.launcher.Launcher + Detector"

    def __init__(self, configs: list[Any], on_attempt: Callable[[Attempt], None]) -> None:
        from monitor.detector import Detector
        from monitor.launcher import Launcher

        clock = SystemClock()
        self.settings = Settings(services=[{"name": "bench", "probes": configs}])  # type: ignore[list-item]
        self.verdicts = 0

        def sink(second: int, verdicts: list[Any], evidence: list[Attempt]) -> None:
            self.verdicts += len(verdicts)

        self.detector = Detector(
            self.settings.services,
            "bench",
            sink,
            start_second=math.floor(clock.wall()) + 1,
        )
        self.launcher = Launcher(self.settings, clock, self.detector, on_attempt=on_attempt)

    def launched(self, name: str) -> int:
        return int(self.launcher.stats[("bench", name)]["launched"])

    def in_flight(self) -> int:
        return self.launcher.in_flight

    def skipped(self, name: str) -> int:
        return int(self.launcher.stats[("bench", name)]["skipped"])

    async def start(self) -> None:
        await self.launcher.start()

    async def stop(self) -> None:
        await self.launcher.stop()


def make_driver(configs: list[Any], on_attempt: Callable[[Attempt], None]) -> Any:
    try:
        import monitor.launcher  # noqa: F401
    except ImportError:
        return OwnDriver(configs, on_attempt)
    return LauncherDriver(configs, on_attempt)


# ----------------------------------------------------------------------------- windows


async def watchdog_cost(seconds: float) -> float | None:
    """CPU % of one core of the daemon's loop watchdog alone (its share of an idle daemon)."""
    try:
        from monitor.watchdog import LoopWatchdog
    except ImportError:
        return None
    dog = LoopWatchdog(SystemClock(), threshold=0.05)
    await dog.start()
    try:
        await asyncio.sleep(0.2)
        cpu0, t0 = self_cpu(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, t1 = self_cpu(), time.monotonic()
    finally:
        await dog.stop()
    return 100 * (cpu1 - cpu0) / (t1 - t0)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    i = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[i]


async def set_fault(target: Target, fault: str) -> None:
    url = f"http://{target.host}:{target.http_port}/_sim/fault"
    async with aiohttp.ClientSession() as s:
        for channel in ("api", "smtp"):
            async with s.post(url, json={"channel": channel, "fault": fault}) as r:
                if r.status != 200:
                    raise BenchError(f"simulator refused fault {fault!r}: {r.status}")


async def run_ours(
    configs: list[Any],
    seconds: float,
    *,
    warmup: float = 1.0,
    target: Target | None = None,
    hang: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Run `configs` for `seconds` (after `warmup`); per-probe stats and this process's CPU."""
    offsets = {
        c.name: [
            (c.phase_offset + j / c.attempts_per_second) % 1.0 for j in range(c.attempts_per_second)
        ]
        for c in configs
    }
    per = {c.name: ChannelStats() for c in configs}
    measuring = False
    launches: list[tuple[float, float]] = []  # (launch wall time, lag) of every attempt

    def on_attempt(a: Attempt) -> None:
        if not measuring:
            return
        s = per[a.probe]
        s.attempts += 1
        s.outcomes[str(a.outcome)] += 1
        lag = a.started - (a.second + offsets[a.probe][a.slot])
        s.lags.append(lag)
        launches.append((a.started, lag))

    # the window in phases: (name, seconds, fault put in force at its start)
    if hang is not None and target is not None:
        plan = [
            ("before", hang[0], None),
            ("hanging", hang[1] - hang[0], "hang"),
            ("after", seconds - hang[1], "ok"),
        ]
    else:
        plan = [("all", seconds, None)]
    marks: list[tuple[float, float, float, float, int]] = []  # wall, mono, cpu, runq, skipped

    def mark() -> None:
        skipped = sum(driver.skipped(c.name) for c in configs)
        marks.append((time.time(), time.monotonic(), self_cpu(), runq_wait(), skipped))

    driver = make_driver(configs, on_attempt)
    _current.append(driver)
    await driver.start()
    try:
        await asyncio.sleep(warmup)
        measuring = True
        launched0 = {c.name: driver.launched(c.name) for c in configs}
        skipped0 = {c.name: driver.skipped(c.name) for c in configs}
        cpu0, t0, rq0 = self_cpu(), time.monotonic(), runq_wait()
        target_cpu0 = proc_cpu(target.pid) if target is not None else 0.0
        mark()
        for _name, length, fault in plan:
            if fault is not None and target is not None:
                await set_fault(target, fault)
            await asyncio.sleep(length)
            mark()
        cpu1, t1, rq1 = self_cpu(), time.monotonic(), runq_wait()
        target_cpu1 = proc_cpu(target.pid) if target is not None else 0.0
        for c in configs:
            per[c.name].launched = driver.launched(c.name) - launched0[c.name]
            per[c.name].skipped = driver.skipped(c.name) - skipped0[c.name]
        measuring = False
        rss = rss_mb()
    finally:
        await driver.stop()
        _current.remove(driver)
    launched = sum(s.launched for s in per.values())
    phases = []
    for (name, _length, _fault), a, b in zip(plan, marks, marks[1:], strict=False):
        wall = b[1] - a[1]
        lags_ms = [lag * 1000 for t, lag in launches if a[0] <= t < b[0]]
        phases.append(
            {
                "phase": name,
                "seconds": wall,
                "cpu_percent_of_core": 100 * (b[2] - a[2]) / wall,
                "runq_wait_ms_per_s": 1000 * (b[3] - a[3]) / wall,
                "skipped": b[4] - a[4],
                "jitter_p99_ms": percentile(lags_ms, 0.99),
            }
        )
    return {
        "phases": phases,
        "driver": driver.name,
        "wall": t1 - t0,
        "cpu": cpu1 - cpu0,
        "cpu_ms_per_attempt": 1000 * (cpu1 - cpu0) / launched if launched else None,
        "cpu_percent_of_core": 100 * (cpu1 - cpu0) / (t1 - t0),
        "runq_wait_ms_per_s": 1000 * (rq1 - rq0) / (t1 - t0),
        "target_cpu_percent": 100 * (target_cpu1 - target_cpu0) / (t1 - t0),
        "rss_mb": rss,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "probes": per,
    }


def run_blackbox(
    bb: subprocess.Popen[Any], bb_port: int, module: str, target: str, rate: int, seconds: float
) -> dict[str, Any]:
    """Drive blackbox's /probe at `rate` from a separate process; blackbox's CPU per probe."""
    url = f"http://127.0.0.1:{bb_port}/probe?module={module}&target={target}"

    def drive(duration: float) -> dict[str, int]:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--blackbox-driver",
                url,
                "--rate",
                str(rate),
                "--duration",
                str(duration),
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
        )
        if out.returncode != 0:
            raise BenchError(f"blackbox driver failed: {out.stderr.strip()[-300:]}")
        return dict(json.loads(out.stdout))

    drive(1.0)  # warm up
    c0 = proc_cpu(bb.pid)
    counts = drive(seconds)
    c1 = proc_cpu(bb.pid)
    probes = counts["ok"] + counts["failed"]
    return {
        "probes": probes,
        "failed": counts["failed"],
        "cpu": c1 - c0,
        "cpu_ms_per_probe": 1000 * (c1 - c0) / probes if probes else None,
    }


async def blackbox_driver(url: str, rate: float, duration: float) -> dict[str, int]:
    """The separate process that asks blackbox for probes at a fixed rate."""
    loop = asyncio.get_running_loop()
    counts = {"ok": 0, "failed": 0}
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> None:
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as r:
                    body = await r.text()
                counts["ok" if "\nprobe_success 1" in body else "failed"] += 1
            except (aiohttp.ClientError, TimeoutError):
                counts["failed"] += 1

        def fire() -> None:
            t = loop.create_task(one())
            tasks.add(t)
            t.add_done_callback(tasks.discard)

        t0 = loop.time() + 0.02
        for i in range(int(rate * duration)):
            loop.call_at(t0 + i / rate, fire)
        await asyncio.sleep(duration + 0.05)
        for _ in range(600):
            if not tasks:
                break
            await asyncio.sleep(0.05)
    return counts


# ----------------------------------------------------------------------------- report


def channel_row(
    name: str, rate: int, run: dict[str, Any], probe: str, bb: dict[str, Any] | None
) -> dict[str, Any]:
    s: ChannelStats = run["probes"][probe]
    lags_ms = [x * 1000 for x in s.lags]
    cpu = 1000 * run["cpu"] / s.launched if s.launched else None
    row: dict[str, Any] = {
        "mode": name,
        "rate": rate,
        "attempts": s.launched,
        "skipped": s.skipped,
        "cpu_ms_per_attempt": cpu,
        "jitter_p50_ms": percentile(lags_ms, 0.50),
        "jitter_p99_ms": percentile(lags_ms, 0.99),
        "rss_mb": run["rss_mb"],
        "outcomes": dict(s.outcomes),
        "runq_wait_ms_per_s": run["runq_wait_ms_per_s"],
        "target_cpu_percent": run["target_cpu_percent"],
    }
    if bb is not None:
        row["blackbox_cpu_ms_per_probe"] = bb["cpu_ms_per_probe"]
        row["blackbox_probes"] = bb["probes"]
        row["blackbox_failed"] = bb["failed"]
        if cpu is not None and bb["cpu_ms_per_probe"]:
            row["ratio"] = cpu / bb["cpu_ms_per_probe"]
    return row


def fmt(v: Any, spec: str = ".2f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def print_table(result: dict[str, Any]) -> None:
    print(
        f"availmon attempt cost — {result['driver']}; target: simulator (own process); "
        f"{os.cpu_count()} cores; rate {result['rate']}/s; gc {result['gc']}"
    )
    head = (
        "mode",
        "rate",
        "attempts",
        "skipped",
        "cpu ms/att",
        "blackbox ms",
        "ratio",
        "jitter p50",
        "jitter p99",
        "RSS MB",
        "runq wait ms/s",
        "target CPU %",
        "outcomes",
    )
    rows = [head]
    for r in result["rows"]:
        outcomes = " ".join(f"{k}={v}" for k, v in sorted(r["outcomes"].items()))
        rows.append(
            (
                r["mode"],
                str(r["rate"]),
                str(r["attempts"]),
                str(r["skipped"]),
                fmt(r["cpu_ms_per_attempt"], ".3f"),
                fmt(r.get("blackbox_cpu_ms_per_probe"), ".3f"),
                fmt(r.get("ratio")),
                fmt(r["jitter_p50_ms"], ".3f"),
                fmt(r["jitter_p99_ms"], ".3f"),
                fmt(r["rss_mb"], ".0f"),
                fmt(r["runq_wait_ms_per_s"], ".0f"),
                fmt(r["target_cpu_percent"], ".0f"),
                outcomes,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for row in rows:
        print(
            "  ".join(
                c.ljust(w) if i in (0, len(head) - 1) else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for r in result["rows"]:
        if r.get("blackbox_failed"):
            print(
                f"note: blackbox failed {r['blackbox_failed']} of {r['blackbox_probes']} probes "
                f"beside {r['mode']}: its CPU per probe is not like for like"
            )
    d = result["default"]
    print(
        f"default config (2 attempts/s per channel, {d['seconds']:.0f} s): "
        f"{d['cpu_percent_of_core']:.2f} % of one core, RSS {d['rss_mb']:.0f} MB; the "
        f"launcher's loop watchdog alone: {fmt(d.get('watchdog_percent_of_core'))} %"
    )
    s = result["sustained"]
    print(
        f"sustained: {s['seconds']:.0f} s at {result['rate']}/s per channel, target hanging "
        f"{s['hang'][0]:.0f}-{s['hang'][1]:.0f} s; {s['cpu_ms_per_attempt']:.3f} CPU ms/attempt "
        f"overall, {s['cpu_percent_of_core']:.0f} % of one core, peak RSS {s['max_rss_mb']:.0f} MB"
    )
    for ph in s["phases"]:
        print(
            f"  {ph['phase']:8s} {ph['seconds']:5.1f} s: {ph['cpu_percent_of_core']:4.0f} % of "
            f"one core, run-queue wait {ph['runq_wait_ms_per_s']:4.0f} ms/s, skipped "
            f"{ph['skipped']}, jitter p99 {fmt(ph['jitter_p99_ms'], '.1f')} ms"
        )
    print(
        f"load average (1 min) at start {result['loadavg_start']:.2f}, at end "
        f"{result['loadavg_end']:.2f}: other processes share these cores"
    )
    print("targets:")
    for t in result["targets"]:
        print(f"  [{'PASS' if t['met'] else 'FAIL'}] {t['target']}: {t['measured']}")


def _versus(row: dict[str, Any]) -> str:
    ours, theirs = row["cpu_ms_per_attempt"], row["blackbox_cpu_ms_per_probe"]
    return f"{ours:.3f} vs {theirs:.3f} ms = {row['ratio']:.2f}×"


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = {r["mode"]: r for r in result["rows"]}
    out = []

    def add(name: str, met: bool, measured: str) -> None:
        out.append({"target": name, "met": bool(met), "measured": measured})

    api, smtp = rows["api fresh"], rows["smtp"]
    if api.get("ratio") is not None:
        add(
            "API attempt (fresh) ≤ 0.5 × blackbox CPU per HTTP probe",
            api["ratio"] <= 0.5,
            _versus(api),
        )
    if smtp.get("ratio") is not None:
        add(
            "SMTP injection ≤ blackbox running the same dialog",
            smtp["ratio"] <= 1.0,
            _versus(smtp),
        )
    for ch in ("sustained api", "sustained smtp"):
        r = rows[ch]
        add(
            f"{ch}: zero skipped launches",
            r["skipped"] == 0,
            f"{r['skipped']} skipped of {r['attempts'] + r['skipped']}",
        )
        p99 = r["jitter_p99_ms"]
        add(
            f"{ch}: launch jitter p99 ≤ 5 ms",
            p99 is not None and p99 <= 5.0,
            f"p99 {fmt(p99, '.3f')} ms",
        )
    d = result["default"]
    add(
        "default config < 2 % of one core",
        d["cpu_percent_of_core"] < 2.0,
        f"{d['cpu_percent_of_core']:.2f} %",
    )
    add("default config RSS < 80 MB", d["rss_mb"] < 80.0, f"{d['rss_mb']:.0f} MB")
    return out


# ----------------------------------------------------------------------------- main


async def bench(
    args: argparse.Namespace, target: Target, bb: subprocess.Popen[Any], bb_port: int
) -> dict[str, Any]:
    rate = args.rate
    # other processes on the machine compete for its cores: say how busy it was
    load0 = os.getloadavg()[0]
    cost_seconds = 3.0 if args.quick else 10.0
    default_seconds = 10.0 if args.quick else 30.0
    smtp_target = f"{target.host}:{target.smtp_port}"

    # 1. the default config, first: RSS of a fresh daemon
    default = await run_ours(
        [api_config(2, reuse=False, target=target), smtp_config(2, target=target, phase=0.25)],
        default_seconds,
        target=target,
    )
    result: dict[str, Any] = {
        "gc": "paced as by `availmon run` (monitor/gcpacer.py)" if args.gc_tuned else "default",
        "driver": default["driver"],
        "rate": rate,
        "rows": [],
        "loadavg_start": load0,
    }
    result["default"] = {
        "seconds": default["wall"],
        "cpu_percent_of_core": default["cpu_percent_of_core"],
        "rss_mb": default["rss_mb"],
        "runq_wait_ms_per_s": default["runq_wait_ms_per_s"],
        "watchdog_percent_of_core": await watchdog_cost(default_seconds / 3),
        "attempts": sum(s.launched for s in default["probes"].values()),
    }

    # 2. cost windows, one channel at a time, each beside blackbox doing the same
    bb_http = run_blackbox(bb, bb_port, "http_api", target.api_url, rate, cost_seconds)
    fresh, reused = (
        api_config(rate, reuse=False, target=target),
        api_config(rate, reuse=True, target=target),
    )
    run = await run_ours([fresh], cost_seconds, target=target)
    result["rows"].append(channel_row("api fresh", rate, run, "api", bb_http))
    run = await run_ours([reused], cost_seconds, target=target)
    result["rows"].append(channel_row("api reused", rate, run, "api-reused", bb_http))
    bb_smtp = run_blackbox(bb, bb_port, "smtp_dialog", smtp_target, rate, cost_seconds)
    run = await run_ours([smtp_config(rate, target=target)], cost_seconds, target=target)
    result["rows"].append(channel_row("smtp", rate, run, "smtp", bb_smtp))

    # 3. sustained, both channels, the target hanging for the middle third
    seconds = float(args.duration)
    hang = (seconds / 3, 2 * seconds / 3)
    run = await run_ours(
        [
            api_config(rate, reuse=False, target=target),
            smtp_config(rate, target=target, phase=0.5 / rate),
        ],
        seconds,
        target=target,
        hang=hang,
    )
    result["rows"].append(channel_row("sustained api", rate, run, "api", None))
    result["rows"].append(channel_row("sustained smtp", rate, run, "smtp", None))
    # both channels share the process: per-attempt CPU is over all their attempts
    total = sum(s.launched for s in run["probes"].values())
    for r in result["rows"][-2:]:
        r["cpu_ms_per_attempt"] = 1000 * run["cpu"] / total if total else None
    result["sustained"] = {
        "phases": run["phases"],
        "seconds": run["wall"],
        "hang": hang,
        "cpu_ms_per_attempt": 1000 * run["cpu"] / total if total else float("nan"),
        "cpu_percent_of_core": run["cpu_percent_of_core"],
        "max_rss_mb": run["max_rss_mb"],
    }
    result["loadavg_end"] = os.getloadavg()[0]
    result["targets"] = targets(result)
    return result


async def paced(
    args: argparse.Namespace, target: Target, bb: subprocess.Popen[Any], bb_port: int
) -> dict[str, Any]:
    """`bench`, under the daemon's garbage-collection pacer when --gc-tuned."""
    if not args.gc_tuned:
        return await bench(args, target, bb, bb_port)
    from monitor.gcpacer import start_pacer

    pacer = start_pacer(SystemClock(), in_flight)
    try:
        return await bench(args, target, bb, bb_port)
    finally:
        if pacer is not None:
            pacer.stop()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=60.0, help="sustained window, seconds (60)")
    p.add_argument("--rate", type=int, default=200, help="attempts per second per channel (200)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--quick", action="store_true", help="short windows: a smoke run (~40 s)")
    p.add_argument(
        "--gc-tuned",
        action="store_true",
        help="pace the garbage collector as `availmon run` does (monitor/gcpacer.py)",
    )
    p.add_argument("--blackbox-driver", metavar="URL", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick and "--duration" not in (argv if argv is not None else sys.argv):
        args.duration = 12.0
    if not 1 <= args.rate <= 1000:
        p.error("--rate: between 1 and 1000")
    if args.duration < 3 and not args.blackbox_driver:
        p.error("--duration: at least 3 seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backport_transport_cycle_fix()  # as `availmon run` does at start (monitor/daemon.py)
    if args.blackbox_driver:
        print(
            json.dumps(asyncio.run(blackbox_driver(args.blackbox_driver, args.rate, args.duration)))
        )
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if not (os.path.exists(BLACKBOX) or shutil.which("prometheus-blackbox-exporter")):
            raise BenchError(f"{BLACKBOX} not found: {INSTALL_HINT}")
        http_port, smtp_port, bb_port = free_port(), free_port(), free_port()
        sim_cmd = [
            sys.executable,
            "-m",
            "monitor",
            "simulate",
            "--host",
            "127.0.0.1",
            "--http-port",
            str(http_port),
            "--smtp-port",
            str(smtp_port),
            "--no-tls",
        ]
        with (
            running(sim_cmd, http_port, "availmon simulate") as sim,
            tempfile.TemporaryDirectory() as tmp,
        ):
            wait_port(smtp_port, sim, "availmon simulate (smtp)")
            target = Target("127.0.0.1", http_port, smtp_port, sim.pid)
            bb_file = Path(tmp) / "blackbox.yml"
            bb_file.write_text(json.dumps(blackbox_config(target), indent=1))  # JSON is YAML
            bb_cmd = [
                BLACKBOX,
                f"--config.file={bb_file}",
                f"--web.listen-address=127.0.0.1:{bb_port}",
            ]
            with running(bb_cmd, bb_port, "prometheus-blackbox-exporter") as bb:
                result = asyncio.run(paced(args, target, bb, bb_port))
    except BenchError as exc:
        print(f"attempt_cost: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
