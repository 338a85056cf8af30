"""Benchmark: how big the store grows in a month, on PostgreSQL with N vantages and on SQLite
with one.

A month of what the daemons write (bench/vantages.py measured which rows each table gains
per hour with the real daemons; this writes a month of them through the same `Store`
methods, without waiting a month): per vantage, service and probe one minute count a minute
(2 attempts/s, outcome ok, and the failure outcomes during the outages); the verdict runs
around each outage; the evidence of every unavailable second (each failed API attempt,
with an HTTP probe's detail); on PostgreSQL the recent-verdict buffer of the combiner
(its steady state: one hour of every vantage's verdicts, monitor/daemon.py RECENT_KEPT).
Then VACUUM, and each table's size with its indexes (pg_total_relation_size; SQLite's
dbstat), and the database's.

First it measures the verdict write throughput: each vantage its own store and thread (as
its own daemon's store writer), writing `--capacity-seconds` seconds back to back the way
the writer does (a second's verdicts of every service, then on PostgreSQL the same rows
for the combiner, a minute's counts every 60 seconds): how many verdicts a second the
store takes, against the 90 a second that 3 vantages x 10 services x 3 verdicts offer.

    python bench/store_size.py                       # 3 vantages x 10 services x 2 channels
    python bench/store_size.py --outage-seconds 3600 # a month that breaks the SLA
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.store import Store, open_store  # noqa: E402
from monitor.store.base import MinuteCount  # noqa: E402
from monitor.verdicts import SERVICE_CHANNEL, SecondVerdict, Verdict  # noqa: E402
from probes.base import Attempt, Outcome  # noqa: E402
from tests import pgserver  # noqa: E402

MONTH_START = 1_793_491_200  # 2026-11-01T00:00:00Z
RECENT_KEPT = 3600  # monitor/daemon.py
PROBES = (("api", "api-account"), ("smtp", "smtp-injection"))
PER_SECOND = 2


def _outages(days: int, outages: int, seconds: int) -> list[tuple[int, int]]:
    """`outages` spells of `seconds` in total, spread evenly over the month: [a, b)."""
    if not outages or not seconds:
        return []
    each = max(1, seconds // outages)
    step = days * 86400 // outages
    return [
        (MONTH_START + i * step + step // 2, MONTH_START + i * step + step // 2 + each)
        for i in range(outages)
    ]


def _minute_counts(
    vantages: list[str], services: list[str], days: int, bad: list[tuple[int, int]]
) -> Iterator[list[MinuteCount]]:
    """One hour of counts per batch (the daemon writes them once a minute)."""
    for hour in range(days * 24):
        batch = []
        for m in range(60):
            minute = MONTH_START + hour * 3600 + m * 60
            failing = sum(max(0, min(b, minute + 60) - max(a, minute)) for a, b in bad)
            for vantage in vantages:
                for service in services:
                    for channel, probe in PROBES:
                        n = 60 * PER_SECOND
                        if channel == "api" and failing:
                            fail = failing * PER_SECOND
                            batch.append(
                                MinuteCount(
                                    service,
                                    channel,
                                    probe,
                                    minute,
                                    str(Outcome.SERVER_ERROR),
                                    fail,
                                    vantage,
                                )
                            )
                            n -= fail
                        if n:
                            batch.append(
                                MinuteCount(
                                    service, channel, probe, minute, str(Outcome.OK), n, vantage
                                )
                            )
        yield batch


def _verdicts(vantage: str, service: str, a: int, b: int) -> list[SecondVerdict]:
    """The seconds around one outage [a, b): the runs it cuts (available, unavailable,
    available again), as the detector's stream writes them."""
    out = []
    for t in range(a - 1, b + 1):
        bad = a <= t < b
        api = Verdict.UNAVAILABLE if bad else Verdict.AVAILABLE
        for channel, verdict in (("api", api), ("smtp", Verdict.AVAILABLE), (SERVICE_CHANNEL, api)):
            counts = (
                {"server_error": PER_SECOND} if bad and channel != "smtp" else {"ok": PER_SECOND}
            )
            out.append(SecondVerdict(service, channel, t, verdict, vantage, counts=counts))
    return out


def _evidence(vantage: str, service: str, a: int, b: int) -> Iterator[list[Attempt]]:
    batch = []
    for t in range(a, b):
        for slot in range(PER_SECOND):
            batch.append(
                Attempt(
                    attempt_id=f"api-account.{t}.{slot}.{vantage[:8]}",
                    service=service,
                    channel="api",
                    probe="api-account",
                    second=t,
                    slot=slot,
                    outcome=Outcome.SERVER_ERROR,
                    latency=0.0123,
                    started=t + slot / PER_SECOND + 0.004,
                    detail={
                        "status": 503,
                        "body_bytes": 92,
                        "phases": {"connect": 0.0004, "ttfb": 0.0118},
                        "message": "503 Service Unavailable",
                    },
                    vantage=vantage,
                )
            )
        if len(batch) >= 2000:
            yield batch
            batch = []
    if batch:
        yield batch


def _recent(vantages: list[str], services: list[str]) -> Iterator[list[SecondVerdict]]:
    start = MONTH_START + 30 * 86400 - RECENT_KEPT
    for t in range(start, start + RECENT_KEPT, 60):
        batch = []
        for s in range(t, t + 60):
            for vantage in vantages:
                for service in services:
                    for channel in ("api", "smtp", SERVICE_CHANNEL):
                        batch.append(
                            SecondVerdict(
                                service,
                                channel,
                                s,
                                Verdict.AVAILABLE,
                                vantage,
                                counts={"ok": PER_SECOND},
                            )
                        )
        yield batch


def capacity(url: str, vantages: list[str], services: list[str], seconds: int) -> dict[str, float]:
    """Seconds of verdicts written back to back by one thread per vantage (own store)."""
    import threading

    stores = [open_store(url) for _ in vantages]
    start = MONTH_START + 40 * 86400  # after the month, its own runs
    barrier = threading.Barrier(len(vantages) + 1)
    failed: list[BaseException] = []

    def write(store: Store, vantage: str) -> None:
        try:
            barrier.wait()
            for t in range(start, start + seconds):
                verdicts = [
                    SecondVerdict(
                        service, channel, t, Verdict.AVAILABLE, vantage, counts={"ok": PER_SECOND}
                    )
                    for service in services
                    for channel in ("api", "smtp", SERVICE_CHANNEL)
                ]
                store.write_verdicts(verdicts)
                if store.shared:
                    store.write_recent(verdicts)
                if t % 60 == 59:
                    store.write_minute_counts(
                        MinuteCount(
                            service, channel, probe, t - 59, str(Outcome.OK), 60 * PER_SECOND,
                            vantage,
                        )
                        for service in services
                        for channel, probe in PROBES
                    )  # fmt: skip
        except BaseException as exc:  # reported below
            failed.append(exc)

    threads = [
        threading.Thread(target=write, args=(st, v)) for st, v in zip(stores, vantages, strict=True)
    ]
    for th in threads:
        th.start()
    barrier.wait()
    t0 = time.perf_counter()
    for th in threads:
        th.join()
    took = time.perf_counter() - t0
    for st in stores:
        st.close()
    if failed:
        raise failed[0]
    verdicts = len(vantages) * seconds * len(services) * 3
    return {
        "seconds_written": len(vantages) * seconds,
        "wall_seconds": round(took, 2),
        "verdicts_per_second": round(verdicts / took),
        "offered_per_second": len(vantages) * len(services) * 3,
    }


def fill(
    store: Store, vantages: list[str], services: list[str], days: int, bad: list[tuple[int, int]]
) -> dict[str, float]:
    took: dict[str, float] = {}
    t0 = time.perf_counter()
    for counts in _minute_counts(vantages, services, days, bad):
        store.write_minute_counts(counts)
    took["minute_counts"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for vantage in vantages:
        for service in services:
            for a, b in bad:
                store.write_verdicts(_verdicts(vantage, service, a, b))
                for attempts in _evidence(vantage, service, a, b):
                    store.write_evidence(attempts)
    took["runs_and_evidence"] = time.perf_counter() - t0
    if store.shared:
        t0 = time.perf_counter()
        for verdicts in _recent(vantages, services):
            store.write_recent(verdicts)
        took["recent_verdicts"] = time.perf_counter() - t0
    return took


def pg_sizes(cluster: pgserver.Cluster, url: str) -> dict[str, int]:
    import psycopg

    schema = url.rsplit("%3D", 1)[1]
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f"SET search_path = {schema}")
        conn.execute("VACUUM (ANALYZE)")
        rows = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,),
        ).fetchall()
    return {name: int(size) for name, size in rows}


def sqlite_sizes(path: Path) -> dict[str, int]:
    db = sqlite3.connect(path)
    try:
        db.execute("VACUUM")
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        try:
            by_name = dict(db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
        except sqlite3.OperationalError:  # no dbstat in this SQLite: the file only
            return {"(whole file)": path.stat().st_size}
        index_of = dict(db.execute("SELECT name, tbl_name FROM sqlite_master WHERE type='index'"))
        out = {t: 0 for t in tables}
        for name, size in by_name.items():
            table = index_of.get(name, name)
            if table in out:
                out[table] += int(size)
        return out
    finally:
        db.close()


def counts(store: Store, tables: list[str], url: str, cluster: Any) -> dict[str, int]:
    if cluster is not None:
        import psycopg

        schema = url.rsplit("%3D", 1)[1]
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute(f"SET search_path = {schema}")
            return {
                t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
                for t in tables
            }
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        return {t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}
    finally:
        db.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    services = [f"svc{i:02d}" for i in range(args.services)]
    bad = _outages(args.days, args.outages, args.outage_seconds)
    result: dict[str, Any] = {
        "days": args.days,
        "services": args.services,
        "unavailable_seconds_per_service": sum(b - a for a, b in bad),
        "backends": {},
    }
    cluster = pgserver.Cluster()
    cluster.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, vantages, url in (
                ("postgresql", [f"vantage-{i}" for i in range(args.vantages)], cluster.fresh_url()),
                ("sqlite", ["vantage-0"], f"sqlite:///{tmp}/availmon.db"),
            ):
                # apart from the month: a store never takes a second older than its last
                spare = cluster.fresh_url() if name == "postgresql" else f"{url}-throughput"
                rate = capacity(spare, vantages, services, args.capacity_seconds)
                store = open_store(url)
                try:
                    took = fill(store, vantages, services, args.days, bad)
                finally:
                    store.close()
                if name == "postgresql":
                    sizes = pg_sizes(cluster, url)
                else:
                    sizes = sqlite_sizes(Path(url.removeprefix("sqlite:///")))
                big = [t for t in sizes if t != "(whole file)"]
                result["backends"][name] = {
                    "vantages": len(vantages),
                    "write_seconds": {k: round(v, 1) for k, v in took.items()},
                    "throughput": rate,
                    "bytes": sizes,
                    "rows": counts(store, big, url, cluster if name == "postgresql" else None),
                    "total_bytes": sum(sizes.values()),
                }
    finally:
        cluster.stop()
    return result


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vantages", type=int, default=3, help="on PostgreSQL (3)")
    p.add_argument("--services", type=int, default=10)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--outages", type=int, default=6, help="outages per service a month (6)")
    p.add_argument(
        "--outage-seconds",
        type=int,
        default=259,
        help="unavailable seconds per service a month (259: the budget at 99.99 %%)",
    )
    p.add_argument(
        "--capacity-seconds", type=int, default=600, help="seconds per vantage written (600)"
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"a month ({args.days} days) of {args.services} services x 2 channels at "
        f"{PER_SECOND} attempts/s, {result['unavailable_seconds_per_service']} unavailable "
        f"seconds per service in {args.outages} outages"
    )
    for name, b in result["backends"].items():
        r = b["throughput"]
        print(
            f"\n{name}, {b['vantages']} vantage(s): {_mb(b['total_bytes'])}; verdict writes "
            f"{r['verdicts_per_second']:,}/s ({r['seconds_written']:,} seconds of "
            f"{args.services} services in {r['wall_seconds']} s; the daemons offer "
            f"{r['offered_per_second']}/s)"
        )
        print(f"  {'table':<16} {'rows':>12} {'size':>12}")
        for table, size in sorted(b["bytes"].items(), key=lambda kv: -kv[1]):
            if size >= 8192 * 4:
                print(f"  {table:<16} {b['rows'].get(table, 0):>12,} {_mb(size):>12}")
        print(f"  written in {b['write_seconds']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
