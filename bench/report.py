"""Benchmark: a month of 10 services x 2 channels through the real detector and store, then
the monthly reports, the per-second API backend and the store's size on disk.

    python bench/report.py                 # build the month (minutes), then measure
    python bench/report.py --reuse         # measure an already built store again
    python bench/report.py --days 2        # a quick run on the first days only

The month is made the way the daemon makes it: synthetic attempts (k per second per probe)
go through `Detector`, whose sink writes verdicts and evidence to `SQLiteStore`, with the
daemon's per-minute attempt counts and its restart-gap filling. The pattern is seeded and
realistic: a few hundred short outages, some long ones, flaky (degraded) seconds, seconds
with nothing launched, and two monitor restarts that leave gaps. Two worker processes share
the building (five services each, one writer per stream as in the daemon).

Targets (issue 4): store <= 50 MB; the ten reports < 1 s together; one day of
`store.seconds` for one service < 100 ms.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.config import Settings, parse
from monitor.detector import Detector
from monitor.intervals import month_bounds
from monitor.reports.compute import build_report
from monitor.reports.evidence import write_evidence_csv
from monitor.reports.render import render
from monitor.seconds import seconds
from monitor.store import open_store
from monitor.store.base import MinuteCount
from monitor.store.sqlite import SQLiteStore
from monitor.verdicts import SERVICE_CHANNEL, SecondVerdict, UnknownReason
from probes.base import Attempt, Outcome

MONTH = "2026-03"
SERVICES = [f"svc{i:02d}" for i in range(10)]
VANTAGE = "bench"
FAIL: dict[tuple[str, Outcome], dict[str, Any]] = {
    ("api", Outcome.SERVER_ERROR): {"status": 503},
    ("api", Outcome.TIMEOUT): {"error": "TimeoutError", "stage": "headers"},
    ("smtp", Outcome.SERVER_ERROR): {"code": 421, "enhanced": "4.3.2", "stage": "data"},
    ("smtp", Outcome.TIMEOUT): {"error": "SMTPTimeoutError", "stage": "banner"},
}


def settings(k: int) -> Settings:
    return parse(
        {
            "monitor": {"vantage": VANTAGE},
            "services": [
                {
                    "name": name,
                    "probes": [
                        {
                            "name": "api",
                            "type": "http",
                            "url": "http://127.0.0.1:1/",
                            "attempts_per_second": k,
                        },
                        {
                            "name": "smtp",
                            "type": "smtp",
                            "host": "127.0.0.1",
                            "attempts_per_second": k,
                        },
                    ],
                }
                for name in SERVICES
            ],
        }
    )


# second → {(service, channel): (failed attempts of k, outcome)}; absent: all ok
Faults = dict[int, dict[tuple[str, str], tuple[int, Outcome]]]


def pattern(
    start: int, end: int, k: int, seed: int = 4
) -> tuple[Faults, list[tuple[int, int]], int]:
    """Faults per second, the monitor's restarts (gaps), and the number of outages drawn."""
    rng = random.Random(seed)
    faults: Faults = {}
    drawn = 0

    def fail(svc: str, channels: tuple[str, ...], a: int, b: int, n: int, outcome: Outcome) -> None:
        for t in range(max(a, start), min(b, end)):
            for ch in channels:
                faults.setdefault(t, {})[(svc, ch)] = (n, outcome)

    for svc in SERVICES:
        outcomes = (Outcome.SERVER_ERROR, Outcome.TIMEOUT)
        for _ in range(30):  # short outages, 1-20 s
            a = rng.randrange(start, end - 60)
            chans = rng.choice((("api",), ("smtp",), ("api", "smtp")))
            fail(svc, chans, a, a + rng.randint(1, 20), k, rng.choice(outcomes))
            drawn += 1
        for _ in range(2):  # long outages, 5-45 min
            a = rng.randrange(start, end - 3600)
            fail(
                svc,
                (rng.choice(("api", "smtp")),),
                a,
                a + rng.randint(300, 2700),
                k,
                rng.choice(outcomes),
            )
            drawn += 1
        for _ in range(300):  # flaky seconds: some attempts fail, the second is degraded
            a = rng.randrange(start, end)
            if k > 1:
                fail(svc, (rng.choice(("api", "smtp")),), a, a + 1, k - 1, Outcome.TIMEOUT)
        for _ in range(5):  # nothing launched for a few seconds
            a = rng.randrange(start, end - 60)
            fail(svc, ("api", "smtp"), a, a + rng.randint(1, 5), -1, Outcome.OK)
    # the monitor itself was down twice (an upgrade, a crash): 10 minutes and 2 hours
    gaps = []
    for length, where in ((600, 0.3), (7200, 0.7)):
        a = start + int((end - start) * rng.uniform(where - 0.1, where + 0.1))
        gaps.append((a, a + min(length, (end - start) // 20)))
    return faults, sorted(gaps), drawn


def build_part(db: str, services: list[str], start: int, end: int, k: int) -> tuple[int, int]:
    """One worker: the daemon's data path for `services`; returns (attempts, seconds)."""
    full = settings(k)
    mine = [s for s in full.services if s.name in services]
    store = SQLiteStore(db)
    faults, gaps, _ = pattern(start, end, k)
    verdicts: list[SecondVerdict] = []
    evidence: list[Attempt] = []
    counts: Counter[tuple[str, str, str, int, str]] = Counter()
    attempts = 0

    def sink(second: int, vs: list[SecondVerdict], ev: list[Attempt]) -> None:
        verdicts.extend(vs)
        evidence.extend(ev)

    def flush() -> None:
        store.write_verdicts(verdicts)
        store.write_evidence(evidence)
        store.write_minute_counts(MinuteCount(*key, n) for key, n in counts.items())
        verdicts.clear()
        evidence.clear()
        counts.clear()

    stretches = []
    t = start
    for a, b in gaps:
        stretches.append((t, a))
        t = b
    stretches.append((t, end))
    probes = [(s.name, p.channel, p.name) for s in mine for p in s.probes]
    ok = Outcome.OK
    for a, b in stretches:
        for svc in mine:  # the daemon's restart: the gap is unknown(monitor_down)
            for channel in [*svc.channels, SERVICE_CHANNEL]:
                last = store.last_second(svc.name, channel, VANTAGE)
                if last is not None and last + 1 <= a - 1:
                    store.fill_unknown(
                        svc.name, channel, VANTAGE, last + 1, a - 1, UnknownReason.MONITOR_DOWN
                    )
        detector = Detector(mine, VANTAGE, sink, start_second=a)
        completed = detector.completed
        for second in range(a, b):
            minute = second - second % 60
            here = faults.get(second)
            for name, ch, probe in probes:
                bad, outcome = here.get((name, ch), (0, ok)) if here else (0, ok)
                if bad < 0:
                    continue  # nothing launched
                for slot in range(k):
                    o = outcome if slot < bad else ok
                    completed(
                        Attempt(
                            f"{probe}-{second}-{slot}",
                            name,
                            ch,
                            probe,
                            second,
                            slot,
                            o,
                            0.05,
                            second + slot / k,
                            FAIL.get((ch, o), {}),
                        )
                    )
                attempts += k
                if bad:
                    counts[(name, ch, probe, minute, str(outcome))] += bad
                if bad < k:
                    counts[(name, ch, probe, minute, "ok")] += k - bad
            detector.advance(second + 1.0)
            if len(verdicts) > 100_000:
                flush()
        detector.advance(float(b))
        flush()
    store.close()
    return attempts, end - start


def expected(
    faults: Faults, gaps: list[tuple[int, int]], month_start: int, end: int, k: int
) -> dict[str, tuple[int, int]]:
    """Per service, the (unavailable, unknown) seconds the report must find in the month,
    worked out from the pattern alone (the detector's rule, not its code)."""
    down = {t for a, b in gaps for t in range(max(a, month_start), min(b, end))}
    out: dict[str, tuple[int, int]] = {}
    for svc in SERVICES:
        unav = unknown = 0
        for t in range(month_start, end):
            if t in down:
                unknown += 1
                continue
            here = faults.get(t)
            if not here:
                continue
            api, smtp = here.get((svc, "api"), (0, None)), here.get((svc, "smtp"), (0, None))
            if api[0] < 0 and smtp[0] < 0:
                unknown += 1
            elif api[0] == k or smtp[0] == k:
                unav += 1
        out[svc] = (unav, unknown)
    return out


class AggregatingStore(SQLiteStore):
    """The store with the aggregate the report would use (compute.AttemptTotals), as
    proposed to the store's owner: one SUM ... GROUP BY instead of ~90 000 rows."""

    def attempt_totals(
        self, service: str, start: int, end: int, vantage: str | None = None
    ) -> dict[str, int]:
        # grouped by channel only: the primary key's order, no temporary B-tree
        rows = self._query(
            "SELECT s.channel, SUM(m.count) FROM minute_counts m"
            " JOIN attempt_sources s ON s.id = m.source"
            " WHERE s.service = ? AND m.minute >= ? AND m.minute < ?"
            + ("" if vantage is None else " AND s.vantage = ?")
            + " GROUP BY s.channel",
            (service, start, end, *(() if vantage is None else (vantage,))),
        )
        return {r[0]: int(r[1]) for r in rows}


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(best, median) wall seconds over `repeat` runs, and the last result."""
    times = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), result


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--db", default="/tmp/availmon-bench-report/availmon.db")
    ap.add_argument("--reuse", action="store_true", help="measure an existing store, do not build")
    ap.add_argument("--days", type=int, default=None, help="build only the first N days")
    ap.add_argument("-k", type=int, default=2, help="attempts per second per probe (default 2)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    s = settings(args.k)
    tz = s.report.timezone
    from zoneinfo import ZoneInfo

    month_start, month_end = month_bounds(MONTH, ZoneInfo(tz))
    end = month_end if args.days is None else month_start + args.days * 86400
    start = month_start - 3600  # the month begins with the monitor already running
    db = Path(args.db)
    build_s = 0.0
    attempts = 0
    if not args.reuse:
        db.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        open_store(f"sqlite:///{db}").close()
        groups = [SERVICES[i :: args.workers] for i in range(args.workers)]
        t0 = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(args.workers) as pool:
            parts = pool.starmap(build_part, [(str(db), g, start, end, args.k) for g in groups])
        build_s = time.perf_counter() - t0
        attempts = sum(p[0] for p in parts)
    faults, gaps, drawn = pattern(start, end, args.k)

    store = SQLiteStore(str(db))
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = db.stat().st_size
    tables: dict[str, int] = {}
    try:
        for row in store._query("SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name"):
            tables[row["name"]] = int(row["bytes"])
    except Exception:  # dbstat is a compile-time option of SQLite
        tables = {}

    now = month_end + 3600.0
    best, median, reports = timed(
        lambda: [build_report(store, s, name, MONTH, now=now) for name in SERVICES], args.repeat
    )
    _, one_median, _ = timed(
        lambda: build_report(store, s, SERVICES[0], MONTH, now=now), args.repeat
    )
    aggregating = AggregatingStore(str(db))
    agg_best, agg_median, agg_reports = timed(
        lambda: [build_report(aggregating, s, name, MONTH, now=now) for name in SERVICES],
        args.repeat,
    )
    same = [{k: v for k, v in r.items() if k != "generated_at"} for r in agg_reports] == [
        {k: v for k, v in r.items() if k != "generated_at"} for r in reports
    ]
    aggregating.close()
    day = month_start + 14 * 86400 if end - month_start > 15 * 86400 else month_start
    sec_best, sec_median, rows = timed(
        lambda: seconds(store, SERVICES[0], day, day + 86400), args.repeat
    )
    html_best, _, html = timed(lambda: render(reports, "html"), 1)

    def export() -> tuple[int, int, int]:
        buf = io.StringIO()
        rows, secs = write_evidence_csv(store, reports, buf, None)
        return rows, secs, len(buf.getvalue())

    csv_best, _, (csv_rows, csv_seconds, csv_bytes) = timed(export, 1)
    quoted = sum(len(o["evidence"]) for r in reports for o in r["outages"])
    outages = sum(len(r["outages"]) for r in reports)
    want = expected(faults, gaps, month_start, end, args.k)
    got = {
        r["service"]: (r["unavailable_seconds"]["service"], r["unknown_seconds"]) for r in reports
    }
    # seconds after `end` (a short --days run) are unknown too: not measured
    got = {n: (u, k - (month_end - end)) for n, (u, k) in got.items()}
    exact = got == want
    run_rows = store._query("SELECT COUNT(*) FROM runs")[0][0]
    mc_rows = store._query("SELECT COUNT(*) FROM minute_counts")[0][0]
    ev_rows = store._query("SELECT COUNT(*) FROM evidence")[0][0]
    store.close()

    mb = 1024 * 1024
    print(
        f"availmon report benchmark: {len(SERVICES)} services x 2 channels, k={args.k}, "
        f"{(end - start) / 86400:.1f} days of {MONTH} ({tz}), {os.cpu_count()} CPUs"
    )
    print(
        f"pattern: {drawn} outages drawn, monitor gaps {[(b - a) for a, b in gaps]} s; "
        f"reports found {outages} outages"
    )
    if build_s:
        print(
            f"build: {attempts:,} attempts through detector+store in {build_s:.1f} s "
            f"({args.workers} workers)"
        )
    print(f"exact: unavailable and unknown seconds of every service match the pattern: {exact}")
    if not exact:
        print(f"  expected {want}\n  reported {got}")
    print(f"rows: runs {run_rows:,}, minute_counts {mc_rows:,}, evidence {ev_rows:,}")
    print()
    print(f"{'measure':<50}{'value':>14}{'target':>12}  ok")
    lines = [
        ("store size on disk (MB)", size / mb, "<= 50", size <= 50 * mb),
        ("10 monthly reports, best (s)", best, "< 1", best < 1),
        ("10 monthly reports, median (s)", median, "< 1", median < 1),
        ("1 monthly report, median (s)", one_median, "", True),
        ("10 reports, store with attempt_totals, best (s)", agg_best, "< 1", agg_best < 1),
        ("10 reports, store with attempt_totals, median (s)", agg_median, "< 1", agg_median < 1),
        ("store.seconds 1 service x 1 day, best (ms)", sec_best * 1000, "< 100", sec_best < 0.1),
        (
            "store.seconds 1 service x 1 day, median (ms)",
            sec_median * 1000,
            "< 100",
            sec_median < 0.1,
        ),
        ("render html of 10 reports (s)", html_best, "", True),
        ("evidence CSV of 10 reports (s)", csv_best, "", True),
    ]
    for name, value, target, ok in lines:
        print(f"{name:<50}{value:>14.3f}{target:>12}  {'yes' if ok else 'NO'}")
    print(f"(reports through attempt_totals identical to the plain ones: {same})")
    print(f"(seconds rows returned: {len(rows)}; html {len(html) / 1024:.0f} KiB)")
    print(
        f"(evidence: {quoted:,} failed attempts quoted in the reports; the CSV "
        f"{csv_rows:,} attempts of {csv_seconds:,} unavailable seconds, "
        f"{csv_bytes / mb:.1f} MB)"
    )
    if tables:
        print()
        print(f"{'table / index':<32}{'MB':>10}")
        for name, n in sorted(tables.items(), key=lambda kv: -kv[1]):
            print(f"{name:<32}{n / mb:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
