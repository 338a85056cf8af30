"""Benchmark: a month of per-second verdicts, minute counts and evidence into the SQLite store.

Writes `--days` (default 30) of seconds for `--services` (default 10) services × 3 channels
(api, smtp, service) with a realistic pattern: a few hundred short outages (some flapping),
one long outage per service, probe-error blips, degraded seconds and monitor restarts
(gaps filled with `monitor_down` as the daemon does). Prints the write rate, the file size
(per table when SQLite has dbstat), and how long the reads of reports and the API take.

    python bench/store_write.py                 # a 30-day month, ~10 minutes on 2 cores
    python bench/store_write.py --days 3        # quicker; sizes scale about linearly
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import monitor.seconds
from monitor.seconds import verdict_counts
from monitor.store.base import MinuteCount
from monitor.store.sqlite import SQLiteStore
from monitor.verdicts import SecondVerdict, UnknownReason, Verdict
from probes.base import Attempt, Outcome

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
K_ATTEMPTS = 2  # attempts per second per channel
VANTAGE = "bench-1"
PROBES = {"api": "account", "smtp": "inject"}

A, U, K = Verdict.AVAILABLE, Verdict.UNAVAILABLE, Verdict.UNKNOWN
PE, MD = UnknownReason.PROBE_ERROR, UnknownReason.MONITOR_DOWN


@dataclass(slots=True)
class Event:
    """Seconds [start, end) of one channel read `verdict` (reason for unknown)."""

    start: int
    end: int
    verdict: Verdict
    reason: UnknownReason | None = None


def plan_channel(rng: random.Random, seconds: int, days: float) -> list[Event]:
    """The non-available stretches of one channel, sorted and disjoint."""
    events: list[Event] = []
    for _ in range(round(15 * days / 30)):  # short outages, ~15 per channel-month
        start = rng.randrange(seconds)
        length = min(600, max(2, int(rng.lognormvariate(3.0, 1.0))))
        if rng.random() < 0.2:  # flapping: alternating every few seconds
            t, down = start, True
            while t < start + length:
                step = rng.randint(1, 5)
                if down:
                    events.append(Event(t, t + step, U))
                t, down = t + step, not down
        else:
            events.append(Event(start, start + length, U))
    if rng.random() < min(1.0, 0.5 * days / 30):  # the long one: ~1 per service-month
        start = rng.randrange(seconds)
        events.append(Event(start, start + rng.randint(600, 5400), U))
    for _ in range(round(20 * days / 30)):  # probe errors: DNS hiccups, EMFILE
        start = rng.randrange(seconds)
        events.append(Event(start, start + rng.randint(1, 30), K, PE))
    events.sort(key=lambda e: e.start)
    disjoint: list[Event] = []
    for e in events:
        if disjoint and e.start < disjoint[-1].end:
            e.start = disjoint[-1].end
        e.end = min(e.end, seconds)
        if e.start < e.end:
            disjoint.append(e)
    return disjoint


# a channel's plan is one byte per second (a month of 20 channels as tuples would be GBs)
CODES: list[tuple[Verdict, UnknownReason | None]] = [(A, None), (U, None), (K, PE)]


def per_second(events: list[Event], seconds: int) -> bytearray:
    out = bytearray(seconds)
    for e in events:
        code = CODES.index((e.verdict, e.reason))
        out[e.start : e.end] = bytes([code]) * (e.end - e.start)
    return out


def failing_attempt(
    service: str, channel: str, second: int, slot: int, rng: random.Random
) -> Attempt:
    probe = PROBES[channel]
    if rng.random() < 0.5:
        outcome, latency = Outcome.TIMEOUT, 5.0 if channel == "api" else 10.0
        detail: dict[str, Any] = {
            "error": "TimeoutError",
            "stage": "headers" if channel == "api" else "data",
        }
    elif channel == "api":
        outcome, latency = Outcome.SERVER_ERROR, rng.uniform(0.02, 0.4)
        detail = {
            "status": 503,
            "phase": {
                "resolve": 0.0004,
                "connect": 0.0011,
                "tls": 0.0042,
                "processing": round(latency, 4),
            },
        }
    else:
        outcome, latency = Outcome.SERVER_ERROR, rng.uniform(0.05, 0.8)
        detail = {
            "code": 421,
            "enhanced": "4.3.2",
            "stage": "mail",
            "reply": "Service shutting down",
        }
    return Attempt(
        f"{probe}:{second}:{slot}", service, channel, probe, second, slot, outcome, latency,
        second + slot / K_ATTEMPTS + 0.013, detail,
    )  # fmt: skip


def ok_attempt(service: str, channel: str, second: int, slot: int, rng: random.Random) -> Attempt:
    probe = PROBES[channel]
    latency = rng.uniform(0.03, 0.2)
    return Attempt(
        f"{probe}:{second}:{slot}", service, channel, probe, second, slot, Outcome.OK, latency,
        second + slot / K_ATTEMPTS + 0.013, {"status": 200} if channel == "api" else {"code": 250},
    )  # fmt: skip


def timed(fn: Callable[[], Any], repeat: int = 5) -> tuple[float, Any]:
    """Best of `repeat` wall times in ms, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--services", type=int, default=10)
    ap.add_argument(
        "--batch", type=int, default=60, help="seconds per write_verdicts call in the bulk fill"
    )
    ap.add_argument(
        "--daemon-seconds", type=int, default=3600, help="extra seconds written one call per second"
    )
    ap.add_argument("--db", type=Path, default=None, help="file to write (default: a temp file)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    seconds = int(args.days * 86400)
    services = [f"svc-{n:02d}" for n in range(args.services)]
    tmp = tempfile.TemporaryDirectory()
    path = args.db or Path(tmp.name) / "bench.db"
    path.unlink(missing_ok=True)
    store = SQLiteStore(str(path))
    store.migrate()

    # the whole plan up front, so that the timed loop is the store plus verdict building
    plan: dict[tuple[str, str], bytearray] = {}
    degraded: dict[tuple[str, str], set[int]] = {}
    for svc in services:
        for ch in PROBES:
            plan[(svc, ch)] = per_second(plan_channel(rng, seconds, args.days), seconds)
            degraded[(svc, ch)] = {rng.randrange(seconds) for _ in range(int(seconds * 0.002))}
    gaps: list[tuple[int, int]] = []  # monitor restarts: nothing written, then filled
    for _ in range(max(1, round(3 * args.days / 30))):
        start = rng.randrange(3600, seconds - 3600)
        gaps.append((start, start + rng.randint(20, 600)))
    in_gap = bytearray(seconds)
    for a, b in gaps:
        in_gap[a:b] = b"\x01" * (b - a)

    totals = Counter[str]()
    write_s = 0.0
    batch: list[SecondVerdict] = []
    evidence: list[Attempt] = []
    minute: Counter[tuple[str, str, str, int, str]] = Counter()
    gen_started = time.perf_counter()

    def flush(force_minute: bool) -> None:
        nonlocal batch, evidence, minute, write_s
        t = time.perf_counter()
        if batch:
            store.write_verdicts(batch)
        if evidence:
            store.write_evidence(evidence)
        if force_minute and minute:
            store.write_minute_counts(MinuteCount(*key, n) for key, n in minute.items())
            minute = Counter()
        write_s += time.perf_counter() - t
        totals["verdicts"] += len(batch)
        totals["evidence rows"] += len(evidence)
        batch, evidence = [], []

    def second_of(svc: str, i: int, out: list[SecondVerdict]) -> None:
        t = T0 + i
        m = t - t % 60
        chan: list[Verdict] = []
        for ch, probe in PROBES.items():
            verdict, reason = CODES[plan[(svc, ch)][i]]
            chan.append(verdict)
            out.append(SecondVerdict(svc, ch, t, verdict, VANTAGE, reason))
            if verdict is U:
                evidence.extend(failing_attempt(svc, ch, t, s, rng) for s in range(K_ATTEMPTS))
                minute[(svc, ch, probe, m, "timeout")] += K_ATTEMPTS
            elif verdict is K:
                minute[(svc, ch, probe, m, "probe_error")] += K_ATTEMPTS
            elif i in degraded[(svc, ch)]:
                evidence.append(failing_attempt(svc, ch, t, 0, rng))
                evidence.append(ok_attempt(svc, ch, t, 1, rng))
                minute[(svc, ch, probe, m, "server_error")] += 1
                minute[(svc, ch, probe, m, "ok")] += 1
            else:
                minute[(svc, ch, probe, m, "ok")] += K_ATTEMPTS
        combined = U if U in chan else A if A in chan else K
        out.append(
            SecondVerdict(svc, "service", t, combined, VANTAGE, PE if combined is K else None)
        )

    # ---- bulk fill: one call per `--batch` seconds
    for i in range(seconds):
        if in_gap[i]:
            continue
        if i and in_gap[i - 1]:  # restarted: fill the gap as the daemon does
            flush(True)
            t = time.perf_counter()
            for svc in services:
                for ch in (*PROBES, "service"):
                    last = store.last_second(svc, ch, VANTAGE)
                    assert last is not None
                    store.fill_unknown(svc, ch, VANTAGE, last + 1, T0 + i - 1, MD)
            write_s += time.perf_counter() - t
        for svc in services:
            second_of(svc, i, batch)
        if (i + 1) % args.batch == 0:
            flush((T0 + i + 1) % 60 == 0)
    flush(True)
    bulk_wall = time.perf_counter() - gen_started

    # ---- daemon-shaped: one call per second with that second's 30 verdicts
    daemon_calls: list[float] = []
    extra = args.daemon_seconds
    for key in plan:
        plan[key].extend(bytes(extra))
    for i in range(seconds, seconds + extra):
        for svc in services:
            second_of(svc, i, batch)
        t = time.perf_counter()
        store.write_verdicts(batch)
        daemon_calls.append(time.perf_counter() - t)
        totals["verdicts"] += len(batch)
        batch = []
        if (T0 + i + 1) % 60 == 0:
            flush(True)
    flush(True)

    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    counts = {
        table: store._query(f"SELECT COUNT(*) FROM {table}")[0][0]
        for table in ("runs", "minute_counts", "evidence")
    }
    try:
        per_table = {
            r[0]: r[1]
            for r in store._query(
                "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
            )
        }
    except sqlite3.OperationalError:
        per_table = {}

    # ---- reads
    month_end = T0 + seconds + extra
    svc0 = services[0]
    reads = [
        ("runs: 1 service × 3 channels, whole range", lambda: [
            store.runs(svc0, ch, T0, month_end) for ch in (*PROBES, "service")]),
        ("runs: all services × channels, whole range", lambda: [
            store.runs(s, ch, T0, month_end) for s in services for ch in (*PROBES, "service")]),
        ("verdict_counts: 1 service channel, whole range", lambda: verdict_counts(store,
            svc0, "service", T0, month_end, maintenance=True)),
        ("seconds(): 1 service, one day (86,400 rows)", lambda: monitor.seconds.seconds(store,
            svc0, T0, T0 + 86400)),
        ("(reference: 86,400 such dicts, no store)", lambda: [
            {"t": t, "verdict": "a", "api": "a", "smtp": "a"} for t in range(86400)]),
        ("minute_counts: 1 service, whole range", lambda: store.minute_counts(svc0, T0, month_end)),
        ("evidence: 1 service, first 1000 rows", lambda: store.evidence(svc0, T0, month_end)),
        ("last_second × 30 streams (restart)", lambda: [
            store.last_second(s, ch, VANTAGE) for s in services for ch in (*PROBES, "service")]),
    ]  # fmt: skip
    store.add_maintenance(svc0, T0 + 86400, T0 + 2 * 86400, "bench")

    n_verdicts = totals["verdicts"]
    print(f"\nstore_write: {args.days:g} days × {len(services)} services × 3 channels "
          f"(+{extra} s daemon-shaped), seed {args.seed}\n")  # fmt: skip
    bulk_rate = (n_verdicts - extra * 3 * len(services)) / write_s
    calls_ms = [c * 1e3 for c in daemon_calls]
    p99 = statistics.quantiles(calls_ms, n=100, method="inclusive")[98]
    rows = [
        ("verdicts written", f"{n_verdicts:,}"),
        ("runs stored", f"{counts['runs']:,}"),
        ("minute-count rows", f"{counts['minute_counts']:,}"),
        ("evidence rows", f"{counts['evidence']:,}"),
        ("bulk fill: wall (incl. building verdicts)", f"{bulk_wall:,.1f} s"),
        ("bulk fill: time inside the store", f"{write_s:,.1f} s"),
        ("bulk fill: store write rate", f"{bulk_rate:,.0f} verdicts/s"),
        ("daemon-shaped call (30 verdicts): mean", f"{statistics.mean(calls_ms):.3f} ms"),
        ("daemon-shaped call: p99", f"{p99:.3f} ms"),
        ("daemon-shaped call: max", f"{max(calls_ms):.3f} ms"),
        ("DB file size", f"{size / 1e6:.2f} MB"),
    ]  # fmt: skip
    rows += [
        (f"  table/index {name}", f"{b / 1e6:.2f} MB")
        for name, b in per_table.items()
        if b > 50_000
    ]
    for label, fn in reads:
        ms, _ = timed(fn)
        rows.append((f"read {label}", f"{ms:.1f} ms"))
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value:>16}")
    store.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
