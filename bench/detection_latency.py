"""Benchmark: how soon after an outage starts the Critical Issue opens and the page arrives.

For a 5xx outage and for a hang outage, each run injects the fault into a simulated platform
at a random instant within a second and measures, from the start of the outage's *first
fully unavailable second* F (the first second whose every attempt the simulator faulted,
from its own ground truth), the time to the Critical Issue opening (`Incident.opened_at`)
and to the first page (the ``trigger``) arriving at a local webhook receiver.

The physical limit is the rule itself. With M = ``min_unavailable_seconds`` and k attempts a
second, the M-th unavailable second is F + M − 1; its last attempt starts at
``(M − 1) + (k − 1)/k`` s (the rule's physical limit; the table's *formula* column) — exactly, at
``(M − 1) + max(slot offsets)`` with the probe's phase (`monitor.launcher.slot_offsets` and
`auto_phases`; the *actual* column) — and is classified a round trip later (5xx: that
attempt's measured latency) or a timeout later (hang: ``timeout_seconds``). Target: the
**maximum** over the runs within 0.1 s of the run's own limit.

The real pieces: one `monitor.daemon.Daemon` (default Critical rule: 30 of 60 s; the HTTP
probe, k = 2, timeout 5 s) with one service per *lane*, each lane probing its own
`monitor.simulator.Simulator`; the simulators run in a child process (so their CPU is not
the daemon's) and are driven through their control API (``/_sim/fault``, ``/_sim/truth``);
the webhook notifier pages `monitor.demo.PageReceiver`. Lanes run concurrently (a run takes
more than M seconds); between runs of a lane the fault is lifted, the incident resolved
(``daemon.incidents.resolve``; a resolve clears the policy's window, so the next run needs
fresh evidence) and the service left healthy for a moment. Each case gets a fresh daemon
unless ``--mixed``, which runs both cases in one daemon to show that a hang on one service
does not hold back another's seconds (services are finalised independently). Nothing
is asserted: it prints a table (``--json``: one JSON object), where the time went (the last
needed attempt's end → opening → page), the outage seconds not judged unavailable and why,
and the event-loop stalls and GC pauses seen meanwhile.

    python bench/detection_latency.py                  # 20 + 20 runs at 30 of 60 s, ~4 min
    python bench/detection_latency.py --quick          # 5 + 5 runs at 5 of 10 s, ~70 s
    python bench/detection_latency.py --mixed --runs 10
    python bench/detection_latency.py --cases hang --runs 40 --gc-tuned --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from monitor.config import Settings, parse
from monitor.daemon import Daemon
from monitor.demo import PageReceiver
from monitor.gcpacer import GcPacer, start_pacer
from monitor.launcher import auto_phases, slot_offsets
from monitor.store.base import Incident
from monitor.verdicts import SERVICE_CHANNEL, SecondVerdict
from probes.compat_asyncio import backport_transport_cycle_fix

log = logging.getLogger("detection_latency")

PROBE = "api"
#: this script, run again as the simulators' child process
SCRIPT = str(Path(__file__).resolve())
#: the target: the maximum latency within this many seconds of the run's limit
TARGET_SLACK = 0.1
#: final seconds of verdicts the benchmark keeps per service (longer than any run)
VERDICTS_KEPT = 600
#: the benchmark's own loop-lag probe: its period, and the lag it records as a stall (the
#: daemon's watchdog records from 50 ms; 100 ms in an attempt makes a timeout the monitor's)
STALL_PROBE = 0.01
STALL_KEPT = 0.05
#: garbage collections at least this long are recorded
GC_KEPT = 0.01


@dataclass(frozen=True)
class Case:
    """An outage kind: the simulator fault that makes it and what classifies an attempt."""

    name: str
    fault: str
    params: dict[str, Any]
    #: True: the last needed attempt is classified when its timeout expires; False: when
    #: the server's reply arrives (a round trip)
    by_timeout: bool


CASES: dict[str, Case] = {
    "5xx": Case("5xx", "5xx", {"status": 500}, by_timeout=False),
    "hang": Case("hang", "hang", {}, by_timeout=True),
}


class BenchError(Exception):
    """A precondition of the benchmark is not met; `str()` is the one line to print."""


@dataclass
class RunResult:
    """One run. Times are wall seconds; latencies are seconds after `first_second`."""

    case: str
    lane: int
    injected_at: float
    first_second: int | None = None
    incident: int | None = None
    #: the second at which the policy opened the incident (F + M − 1 when nothing was lost)
    opening_second: int | None = None
    opened_at: float | None = None
    paged_at: float | None = None
    #: the last needed attempt: its measured latency and its actual end (launch + latency)
    last_latency: float | None = None
    last_end: float | None = None
    limit_formula: float | None = None
    limit_actual: float | None = None
    open_latency: float | None = None
    page_latency: float | None = None
    load1: float = 0.0
    #: seconds of the outage, F up to the opening second, that the daemon did not judge
    #: unavailable: "verdict/reason" → count (e.g. unknown/monitor_stalled)
    not_unavailable: dict[str, int] = field(default_factory=dict)
    error: str | None = None


# ----------------------------------------------------------------------------- simulators


async def serve_simulators(n: int) -> None:
    """Child-process mode: run `n` simulators, print their HTTP ports as one JSON line, and
    stop when stdin closes (the benchmark ended, however it ended)."""
    from monitor.simulator import Simulator

    sims = [Simulator(tls=False) for _ in range(n)]
    for sim in sims:
        await sim.start()
    print(json.dumps([sim.http_port for sim in sims]), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while await reader.read(4096):
            pass
    finally:
        for sim in sims:
            await sim.stop()


class Simulators:
    """The child process holding one simulator per lane, and its control API."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.ports: list[int] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            SCRIPT,
            "--serve-simulators",
            str(self.n),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), 30)
            self.ports = [int(p) for p in json.loads(line)]
        except (TimeoutError, ValueError, TypeError) as exc:
            await self.stop()
            raise BenchError(f"the simulator process did not start: {exc!r}") from None
        if len(self.ports) != self.n:
            await self.stop()
            raise BenchError(f"the simulator process started {len(self.ports)} of {self.n}")
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def url(self, lane: int) -> str:
        return f"http://127.0.0.1:{self.ports[lane]}"

    async def set_fault(self, lane: int, fault: str, params: dict[str, Any]) -> None:
        assert self._session is not None
        body = {"channel": "api", "fault": fault, **params}
        async with self._session.post(f"{self.url(lane)}/_sim/fault", json=body) as r:
            if r.status != 200:
                raise BenchError(f"simulator {lane} refused fault {fault!r}: {await r.text()}")

    async def unavailable(self, lane: int, start: int, end: int) -> list[int]:
        """The simulator's ground truth: API seconds in [start, end) it failed entirely."""
        assert self._session is not None
        url = f"{self.url(lane)}/_sim/truth?start={start}&end={end}"
        async with self._session.get(url) as r:
            return sorted(int(s) for s in (await r.json())["api"])


# ----------------------------------------------------------------------------- stalls


class Stalls:
    """Event-loop stalls as the benchmark sees them (the daemon's watchdog keeps its own,
    privately), and the garbage collector's pauses, to say what a stall was."""

    def __init__(self) -> None:
        #: (wall time the stall began, seconds)
        self.stalls: list[tuple[float, float]] = []
        #: (wall time the collection ended, generation, seconds)
        self.gc: list[tuple[float, int, float]] = []
        self._gc_start: float | None = None
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        elif self._gc_start is not None:
            took = time.perf_counter() - self._gc_start
            if took >= GC_KEPT:
                self.gc.append((time.time(), int(info["generation"]), took))

    async def _run(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(STALL_PROBE)
            lag = time.monotonic() - t - STALL_PROBE
            if lag >= STALL_KEPT:
                self.stalls.append((time.time() - lag, lag))

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._run(), name="bench-stalls")

    async def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def summary(self, opened: Sequence[float]) -> dict[str, Any]:
        """Stalls, and how many overlapped a GC pause or came within 1 s after an
        incident opened (the alerting path runs on the loop)."""

        def gc_in(at: float, lag: float) -> bool:
            return any(end - took <= at + lag and end >= at for end, _, took in self.gc)

        def after_open(at: float, lag: float) -> bool:
            return any(at - 1.0 <= t <= at + lag for t in opened)

        return {
            "threshold_ms": STALL_KEPT * 1000,
            "count": len(self.stalls),
            "max_ms": max((lag for _, lag in self.stalls), default=0.0) * 1000,
            "with_gc": sum(1 for at, lag in self.stalls if gc_in(at, lag)),
            "after_open": sum(1 for at, lag in self.stalls if after_open(at, lag)),
            "stalls": [{"at": at, "ms": round(lag * 1000, 1)} for at, lag in self.stalls],
            "gc_pauses": [
                {"at": at, "generation": g, "ms": round(took * 1000, 1)} for at, g, took in self.gc
            ],
        }


# ----------------------------------------------------------------------------- config


def bench_settings(args: argparse.Namespace, sims: Simulators, workdir: Path) -> Settings:
    """One service per lane, each with one HTTP probe of its own simulator; the critical
    rule from the arguments (default: the shipped 30 of 60 s), paging a local webhook."""
    services = [
        {
            "name": f"lane{i}",
            "critical": {
                "window_seconds": args.window,
                "min_unavailable_seconds": args.min_unavailable,
            },
            "probes": [
                {
                    "type": "http",
                    "name": PROBE,
                    "channel": "api",
                    "url": f"{sims.url(i)}/api/v1/account",
                    "attempts_per_second": args.k,
                    "timeout_seconds": args.timeout,
                }
            ],
        }
        for i in range(sims.n)
    ]
    return parse(
        {
            "monitor": {"vantage": "bench", "listen": "127.0.0.1:0"},
            "store": {"url": f"sqlite:///{workdir / 'availmon.db'}"},
            "report": {"dir": str(workdir / "reports")},
            "services": services,
            "notifiers": [
                {
                    "name": "local-pager",
                    "type": "webhook",
                    "url": args.page_url,
                    "tiers": ["critical"],
                }
            ],
        },
        "bench config",
    )


def last_slot(settings: Settings, service: str) -> tuple[int, float]:
    """(slot index, fraction of the second) of the probe's last slot in a second of
    `service`, from the launcher's own schedule (phases are spread by the service's name)."""
    svc = settings.service(service)
    probes = [p for p in svc.probes if p.enabled]
    phases = auto_phases(probes, svc.name)
    cfg = next(p for p in probes if p.name == PROBE)
    offsets = slot_offsets(phases[PROBE], cfg.attempts_per_second)
    j = max(range(len(offsets)), key=offsets.__getitem__)
    return j, offsets[j]


# ----------------------------------------------------------------------------- runs


@dataclass
class Bench:
    args: argparse.Namespace
    daemon: Daemon
    sims: Simulators
    receiver: PageReceiver
    rng: random.Random
    deadline: float
    jobs: list[str] = field(default_factory=list)
    total: int = 0
    results: list[RunResult] = field(default_factory=list)
    #: service → second → "verdict" or "verdict/reason", the last VERDICTS_KEPT seconds
    verdicts: dict[str, dict[int, str]] = field(default_factory=dict)
    _second: asyncio.Future[int] | None = None

    @property
    def m(self) -> int:
        return int(self.args.min_unavailable)

    def critical(self, service: str, after: int) -> Incident | None:
        """The service's Critical Issue newer than id `after`, as the policy holds it."""
        policy = self.daemon.policy
        assert policy is not None
        for inc in policy.active():
            if inc.service == service and inc.severity == "critical" and inc.id > after:
                return inc
        return None

    def page(self, incident_id: int) -> float | None:
        for p in self.receiver.pages:
            body = p["body"]
            if body.get("event") == "trigger" and body.get("incident", {}).get("id") == incident_id:
                return float(p["received_at"])
        return None

    def on_second(self, second: int, verdicts: list[SecondVerdict]) -> None:
        """Daemon listener, after the policy has seen the second: keep the services'
        verdicts, and wake the waiting lanes (instead of each lane polling the loop)."""
        for v in verdicts:
            if v.channel == SERVICE_CHANNEL:
                seen = self.verdicts.setdefault(v.service, {})
                seen[second] = f"{v.verdict}/{v.reason}" if v.reason else str(v.verdict)
                seen.pop(second - VERDICTS_KEPT, None)
        fut, self._second = self._second, None
        if fut is not None and not fut.done():
            fut.set_result(second)

    async def next_second(self, patience: float = 1.5) -> None:
        """Until the daemon's next final second (or `patience` seconds: it may be stuck)."""
        if self._second is None:
            self._second = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._second), patience)

    async def wait_final(self, service: str, second: int, limit: float) -> bool:
        """Until the daemon has finalised `second` of `service` (bounded by `limit`)."""
        end = time.time() + limit
        while self.daemon.last_final.get(service, -1) < second:
            if time.time() > end:
                return False
            await self.next_second()
        return True

    async def lane(self, lane: int, start_delay: float) -> None:
        service = f"lane{lane}"
        await asyncio.sleep(start_delay)
        # the lane's first final seconds: the daemon measures it
        await self.wait_final(service, math.floor(time.time()) + 1, self.args.timeout + 10)
        seen = 0
        while self.jobs and time.time() < self.deadline:
            case = CASES[self.jobs.pop(0)]
            result = await self.run(lane, service, case, seen)
            self.results.append(result)
            seen = max(seen, result.incident or 0)
            self.progress(result)

    async def run(self, lane: int, service: str, case: Case, seen: int) -> RunResult:
        args = self.args
        # healthy for a moment, then the fault at a random instant within a second
        inject_at = math.floor(time.time()) + 2 + self.rng.random()
        await asyncio.sleep(max(0.0, inject_at - time.time()))
        result = RunResult(case.name, lane, time.time(), load1=os.getloadavg()[0])
        await self.sims.set_fault(lane, case.fault, case.params)
        stall: asyncio.TimerHandle | None = None
        if args.stall_ms:
            # what one GC pause does: block the daemon's loop once, mid-outage
            stall = asyncio.get_running_loop().call_later(
                args.min_unavailable / 2 + 1, time.sleep, args.stall_ms / 1000
            )
        inc: Incident | None = None
        try:
            # bounded: the rule, the last attempt's timeout, finalisation, and a margin
            give_up = time.time() + args.window + args.timeout + 30
            while (inc := self.critical(service, seen)) is None and time.time() < give_up:
                await self.next_second()
            if inc is None:
                result.error = "no Critical Issue opened"
                return result
            result.incident, result.opened_at = inc.id, inc.opened_at
            give_up = time.time() + 30
            while (paged := self.page(inc.id)) is None and time.time() < give_up:
                await asyncio.sleep(0.01)  # received_at is stamped by the receiver itself
            result.paged_at = paged
            if paged is None:
                result.error = "no page received"
        finally:
            if stall is not None:
                stall.cancel()
            lifted = time.time()
            await self.sims.set_fault(lane, "ok", {})
            # every unavailable second must be final before the resolve, else seconds judged
            # after it would start the next run's window
            await self.wait_final(service, math.floor(lifted) + 1, args.timeout + 10)
            if inc is not None:
                # off the loop, as the HTTP API does (a store write)
                incidents = self.daemon.incidents
                assert incidents is not None
                await asyncio.to_thread(incidents.resolve, inc.id, "bench")
                end = time.time() + 10
                while self.critical(service, inc.id - 1) is not None and time.time() < end:
                    await self.next_second()  # the policy drops it at its next second
            else:
                # nothing to resolve: let this outage's seconds leave the rule's window
                await asyncio.sleep(args.window)
        await self.measure(result, lane, service, case, inc)
        return result

    async def measure(
        self, r: RunResult, lane: int, service: str, case: Case, inc: Incident | None
    ) -> None:
        """F from the simulator's truth; the last needed attempt from the stored evidence."""
        args, m = self.args, self.m
        lo = math.floor(r.injected_at)
        truth = await self.sims.unavailable(lane, lo, lo + m + 10)
        if not truth:
            r.error = r.error or "the simulator saw no unavailable second"
            return
        first = r.first_second = truth[0]
        store = self.daemon.store
        assert store is not None
        if inc is not None:
            events = await asyncio.to_thread(store.events, inc.id)
            opened = [e for e in events if e.kind == "opened"]
            if opened:
                r.opening_second = opened[0].data.get("second")
        last = r.opening_second if r.opening_second is not None else first + m - 1
        seen = self.verdicts.get(service, {})
        for second in range(first, last + 1):
            verdict = seen.get(second, "not seen")
            if verdict != "unavailable":
                r.not_unavailable[verdict] = r.not_unavailable.get(verdict, 0) + 1
        j, offset = last_slot(self.daemon.settings, service)
        needed = first + m - 1
        row = None
        for _ in range(30):  # the flush task writes evidence once a second
            rows = await asyncio.to_thread(store.evidence, service, needed, needed + 1)
            row = next((x for x in rows if x["probe"] == PROBE and x["slot"] == j), None)
            if row is not None:
                break
            await asyncio.sleep(0.1)
        if row is not None:
            r.last_latency = float(row["latency"])
            r.last_end = float(row["started"]) + r.last_latency
        else:
            r.error = r.error or f"no evidence of the last needed attempt ({needed}, slot {j})"
        classified = args.timeout if case.by_timeout else (r.last_latency or 0.0)
        r.limit_formula = (m - 1) + (args.k - 1) / args.k + classified
        r.limit_actual = (m - 1) + offset + classified
        if r.opened_at is not None:
            r.open_latency = r.opened_at - first
        if r.paged_at is not None:
            r.page_latency = r.paged_at - first

    def progress(self, r: RunResult) -> None:
        if self.args.quiet:
            return
        done, total = len(self.results), self.total
        if r.page_latency is not None and r.limit_actual is not None:
            what = (
                f"open {r.open_latency:.3f} s, page {r.page_latency:.3f} s "
                f"(limit {r.limit_actual:.3f} s)"
            )
        else:
            what = r.error or "incomplete"
        print(f"[{done}/{total}] lane {r.lane} {r.case}: {what}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- summary


def pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarise(case: str, runs: list[RunResult], m: int) -> dict[str, Any]:
    ok = [r for r in runs if r.page_latency is not None and r.limit_actual is not None]
    opened = [r for r in runs if r.open_latency is not None and r.limit_actual is not None]

    def col(name: str, rows: list[RunResult]) -> list[float]:
        return [float(getattr(r, name)) for r in rows if getattr(r, name) is not None]

    over_open = [r.open_latency - r.limit_actual for r in opened]  # type: ignore[operator]
    over_page = [r.page_latency - r.limit_actual for r in ok]  # type: ignore[operator]
    finalise = [r.opened_at - r.last_end for r in opened if r.last_end is not None]  # type: ignore[operator]
    dispatch = [r.paged_at - r.opened_at for r in ok if r.opened_at is not None]  # type: ignore[operator]
    rtt = col("last_latency", runs)
    lost: Counter[str] = Counter()
    for r in runs:
        lost.update(r.not_unavailable)
    page_max_over = max(over_page) if over_page else None
    return {
        "case": case,
        "runs": len(runs),
        "failed": len(runs) - len(ok),
        "limit_formula_s": pct(col("limit_formula", runs), 0.5),
        "limit_actual_s": pct(col("limit_actual", runs), 0.5),
        "last_attempt_latency_p50_s": pct(rtt, 0.5),
        "open_p50_s": pct(col("open_latency", opened), 0.5),
        "open_max_s": max(col("open_latency", opened), default=None),
        "page_p50_s": pct(col("page_latency", ok), 0.5),
        "page_max_s": max(col("page_latency", ok), default=None),
        "open_max_over_limit_s": max(over_open) if over_open else None,
        "page_max_over_limit_s": page_max_over,
        "finalise_p50_s": pct(finalise, 0.5),
        "finalise_max_s": max(finalise, default=None),
        "dispatch_p50_s": pct(dispatch, 0.5),
        "dispatch_max_s": max(dispatch, default=None),
        # runs whose incident opened at a later second than F + M − 1: a second of the
        # outage was not judged unavailable (lost, stalled), so the rule needed more
        "opened_late": sum(
            1
            for r in opened
            if r.opening_second is not None
            and r.first_second is not None
            and r.opening_second != r.first_second + m - 1
        ),
        "not_unavailable_seconds": dict(lost),
        "runs_with_not_unavailable": sum(1 for r in runs if r.not_unavailable),
        "target_met": bool(ok)
        and len(ok) == len(runs)
        and page_max_over is not None
        and page_max_over <= TARGET_SLACK,
    }


def fmt(v: Any, spec: str = ".3f") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def print_table(result: dict[str, Any]) -> None:
    cfg = result["config"]
    print(
        f"detection latency: Critical rule {cfg['min_unavailable']} of {cfg['window']} s, "
        f"k = {cfg['k']} attempts/s, HTTP probe timeout {cfg['timeout']:g} s, "
        f"{cfg['lanes']} concurrent lanes"
        + (" (all cases in one daemon)" if cfg["mixed"] else " (a fresh daemon per case)")
        + (", GC paced as by `availmon run`" if cfg.get("gc_tuned") else "")
        + (f", a {cfg['stall_ms']:g} ms loop stall mid-outage" if cfg.get("stall_ms") else "")
        + f"; load average {result['loadavg_start']:.2f} at start, "
        f"{result['loadavg_end']:.2f} at end (max during runs {result['loadavg_max']:.2f}), "
        f"{os.cpu_count()} CPUs; {result['wall_seconds']:.0f} s"
    )
    print("latencies from the start of the outage's first fully unavailable second (s)")
    head = (
        "case",
        "runs",
        "limit formula",
        "limit actual",
        "open p50",
        "open max",
        "page p50",
        "page max",
        "max − limit",
        "target met",
    )
    rows = [
        (
            c["case"],
            f"{c['runs']}" + (f" ({c['failed']} failed)" if c["failed"] else ""),
            fmt(c["limit_formula_s"]),
            fmt(c["limit_actual_s"]),
            fmt(c["open_p50_s"]),
            fmt(c["open_max_s"]),
            fmt(c["page_p50_s"]),
            fmt(c["page_max_s"]),
            fmt(c["page_max_over_limit_s"], "+.3f"),
            fmt(c["target_met"]),
        )
        for c in result["cases"]
    ]
    _table(head, rows)
    print()
    print("where the time goes (s): limit = last needed attempt's start + its round trip or")
    print("timeout; finalise = that attempt's end → incident opened; dispatch = opened → page")
    head2 = (
        "case",
        "last attempt rtt p50",
        "open max − limit",
        "finalise p50",
        "finalise max",
        "dispatch p50",
        "dispatch max",
        "opened at F+M−1",
    )
    rows2 = [
        (
            c["case"],
            fmt(c["last_attempt_latency_p50_s"], ".4f"),
            fmt(c["open_max_over_limit_s"], "+.3f"),
            fmt(c["finalise_p50_s"]),
            fmt(c["finalise_max_s"]),
            fmt(c["dispatch_p50_s"]),
            fmt(c["dispatch_max_s"]),
            f"{c['runs'] - c['failed'] - c['opened_late']}/{c['runs'] - c['failed']}",
        )
        for c in result["cases"]
    ]
    _table(head2, rows2)
    for c in result["cases"]:
        if c["not_unavailable_seconds"]:
            what = ", ".join(f"{k} {n}" for k, n in sorted(c["not_unavailable_seconds"].items()))
            print(
                f"{c['case']}: outage seconds the daemon did not judge unavailable, in "
                f"{c['runs_with_not_unavailable']} runs: {what}"
            )
    st = result["stalls"]
    longest_gc = max((g["ms"] for g in st["gc_pauses"]), default=0.0)
    print(
        f"launches skipped by the daemon: {result['launches_skipped']}; longest event-loop lag "
        f"{result['loop_max_lag_s'] * 1000:.0f} ms (daemon watchdog); loop stalls >= "
        f"{st['threshold_ms']:.0f} ms: {st['count']} (longest {st['max_ms']:.0f} ms; "
        f"{st['with_gc']} during a GC pause, {st['after_open']} within 1 s after an incident "
        f"opened); GC pauses >= {GC_KEPT * 1000:.0f} ms: {len(st['gc_pauses'])} "
        f"(longest {longest_gc:.0f} ms)"
    )


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    for r in rows:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))


# ----------------------------------------------------------------------------- main


async def phase(
    args: argparse.Namespace,
    cases: list[str],
    sims: Simulators,
    receiver: PageReceiver,
    rng: random.Random,
    deadline: float,
) -> tuple[list[RunResult], int, float]:
    """Runs of `cases` through one fresh daemon (own store); (results, launches skipped,
    the daemon's longest event-loop lag)."""
    # interleaved, so that with several cases every lane sees each kind alike
    jobs = [name for _ in range(args.runs) for name in cases]
    lanes = max(1, min(sims.n, len(jobs)))
    receiver.pages.clear()  # incident ids restart with the fresh store
    daemon: Daemon | None = None
    pacer: GcPacer | None = None
    with tempfile.TemporaryDirectory(prefix="availmon-bench-") as tmp:
        try:
            daemon = Daemon(bench_settings(args, sims, Path(tmp)), serve_http=False)
            await daemon.start()
            if args.gc_tuned:  # what `availmon run` does after start (Daemon.run)
                pacer = start_pacer(daemon.clock, daemon.in_flight)
            b = Bench(args, daemon, sims, receiver, rng, deadline, jobs, total=len(jobs))
            daemon.listeners.append(b.on_second)
            # staggered, so that the lanes' injections (and openings) do not coincide
            spacing = (args.min_unavailable + args.timeout + 10) / lanes
            await asyncio.gather(*(b.lane(i, i * spacing + rng.random()) for i in range(lanes)))
            launcher = daemon.launcher
            skipped = sum(s["skipped"] for s in launcher.stats.values()) if launcher else 0
            lag = daemon.watchdog.max_lag if daemon.watchdog is not None else float("nan")
        finally:
            if pacer is not None:
                pacer.stop()
            if daemon is not None:
                await daemon.stop()
                if daemon.store is not None:
                    daemon.store.close()
    return b.results, skipped, lag


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    cases = list(args.cases)
    # Each case has its own daemon unless --mixed (both in one: services are finalised
    # independently, so one service's hang must not hold back another's verdicts).
    phases = [cases] if args.mixed else [[c] for c in cases]
    lanes = max(1, min(args.concurrency, args.runs * max(len(p) for p in phases)))
    rng = random.Random(args.seed)
    load0 = os.getloadavg()[0]
    t0 = time.time()
    deadline = t0 + args.max_minutes * 60
    receiver = PageReceiver()
    await receiver.start()
    sims = Simulators(lanes)
    results: list[RunResult] = []
    skipped, lag = 0, 0.0
    stalls = Stalls()
    stalls.start()
    try:
        await sims.start()
        args.page_url = receiver.url
        for kinds in phases:
            done, lost, phase_lag = await phase(args, kinds, sims, receiver, rng, deadline)
            results += done
            skipped += lost
            lag = max(lag, phase_lag)
    finally:
        await stalls.stop()
        await sims.stop()
        await receiver.stop()
    summaries = [
        summarise(name, [r for r in results if r.case == name], args.min_unavailable)
        for name in cases
    ]
    return {
        "config": {
            "min_unavailable": args.min_unavailable,
            "window": args.window,
            "k": args.k,
            "timeout": args.timeout,
            "lanes": lanes,
            "runs_per_case": args.runs,
            "mixed": args.mixed,
            "gc_tuned": args.gc_tuned,
            "stall_ms": args.stall_ms,
            "seed": args.seed,
        },
        "loadavg_start": load0,
        "loadavg_end": os.getloadavg()[0],
        "loadavg_max": max([load0, *(r.load1 for r in results)]),
        "wall_seconds": time.time() - t0,
        "launches_skipped": skipped,
        "loop_max_lag_s": lag,
        "stalls": stalls.summary([r.opened_at for r in results if r.opened_at is not None]),
        "cases": summaries,
        "runs": [asdict(r) for r in results],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--runs", type=int, default=None, help="runs per case (20; --quick: 5)")
    p.add_argument(
        "--concurrency", type=int, default=None, help="lanes running at once (10; --quick: 4)"
    )
    p.add_argument("--min-unavailable", type=int, default=None, help="rule: seconds (30)")
    p.add_argument("--window", type=int, default=None, help="rule: window seconds (60)")
    p.add_argument("--k", type=int, default=2, help="attempts per second (2)")
    p.add_argument("--timeout", type=float, default=5.0, help="probe timeout_seconds (5)")
    p.add_argument(
        "--cases", nargs="+", choices=sorted(CASES), default=["5xx", "hang"], help="outages"
    )
    p.add_argument(
        "--mixed",
        action="store_true",
        help="all cases in one daemon at once (shows that one service's hang delays no other)",
    )
    p.add_argument(
        "--gc-tuned",
        action="store_true",
        help="pace the garbage collector after the daemon starts, as `availmon run` does",
    )
    p.add_argument(
        "--stall-ms",
        type=float,
        default=0.0,
        help="block the event loop this long once in the middle of each outage (a GC pause)",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed of the start instants")
    p.add_argument("--max-minutes", type=float, default=30.0, help="stop starting runs after")
    p.add_argument("--quick", action="store_true", help="5 of 10 s rule, 5 runs per case")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--quiet", action="store_true", help="no per-run progress on stderr")
    p.add_argument("--serve-simulators", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {
        "runs": 5 if quick else 20,
        "concurrency": 4 if quick else 10,
        "min_unavailable": 5 if quick else 30,
        "window": 10 if quick else 60,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.runs < 1:
        p.error("--runs: at least 1")
    if not 1 <= args.concurrency <= 100:
        p.error("--concurrency: between 1 and 100")
    if not 1 <= args.min_unavailable <= args.window:
        p.error("--min-unavailable: between 1 and --window")
    if not 1 <= args.k <= 1000:
        p.error("--k: between 1 and 1000")
    if not 0 <= args.stall_ms <= 5000:
        p.error("--stall-ms: between 0 and 5000")
    if not 0 < args.timeout <= 120:
        p.error("--timeout: between 0 and 120 seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backport_transport_cycle_fix()  # as `availmon run` does at start (monitor/daemon.py)
    if args.serve_simulators is not None:
        try:
            asyncio.run(serve_simulators(args.serve_simulators))
        except KeyboardInterrupt:
            pass
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = asyncio.run(bench(args))
    except BenchError as exc:
        print(f"detection_latency: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
