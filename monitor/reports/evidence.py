"""`availmon report --evidence FILE.csv`: every stored attempt of a month's unavailable
seconds, one row each, so that a vendor can check every second the claim counts.

The seconds are the service's unavailable seconds that the SLA counts (maintenance cut
out), exactly those behind ``unavailable_seconds.service``; the rows are every attempt
the store kept in them (evidence is kept for unavailable and degraded seconds for
``store.evidence_retention_days``), of every channel and vantage, or of the one vantage
the report is restricted to. Read from the store in bounded pieces, written as they come.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any
from zoneinfo import ZoneInfo

from monitor.intervals import Interval, intersect, subtract, union
from monitor.store.base import Store
from monitor.verdicts import SERVICE_CHANNEL

EVIDENCE_COLUMNS = (
    "service",
    "second",
    "time",
    "channel",
    "probe",
    "vantage",
    "slot",
    "attempt_id",
    "outcome",
    "latency_seconds",
    "started",
    "status",
    "code",
    "enhanced",
    "stage",
    "error",
    "reason",
    "detail",
)
#: seconds read from the store at once, and the most rows one read may return
_CHUNK_SECONDS = 3600
_CHUNK_ROWS = 200_000


def counted_unavailable(report: dict[str, Any]) -> list[Interval]:
    """The service's unavailable seconds the report counts: its timeline's, maintenance
    and everything outside the period cut out."""
    period = [(report["period"]["start_epoch"], report["period"]["end_epoch"])]
    timeline = report["timeline"][SERVICE_CHANNEL]["unavailable"]
    windows = union((m["start_epoch"], m["end_epoch"]) for m in report["maintenance"])
    return subtract(intersect(union((a, b) for a, b in timeline), period), windows)


def attempts_in(
    store: Store, service: str, intervals: list[Interval], vantage: str | None
) -> Iterator[dict[str, Any]]:
    """Every stored attempt of the service with its second in `intervals`, by second."""
    for a, b in intervals:
        t = a
        while t < b:
            hi = min(b, t + _CHUNK_SECONDS)
            rows = store.evidence(service, t, hi, limit=_CHUNK_ROWS, vantage=vantage)
            if len(rows) == _CHUNK_ROWS:
                # a full read may have cut a second short: keep the whole seconds and read
                # on from the last (one second never holds that many attempts)
                last = rows[-1]["second"]
                if last == t:
                    raise RuntimeError(f"more than {_CHUNK_ROWS} attempts in second {t}")
                rows = [r for r in rows if r["second"] < last]
                hi = last
            yield from rows
            t = hi


def _row(r: dict[str, Any], tz: ZoneInfo) -> list[Any]:
    detail = r.get("detail") or {}
    return [
        r["service"],
        r["second"],
        datetime.fromtimestamp(r["second"], tz).isoformat(),
        r["channel"],
        r["probe"],
        r.get("vantage") or "",
        r["slot"],
        r["attempt_id"],
        r["outcome"],
        f"{r['latency']:.6f}",
        datetime.fromtimestamp(r["started"], tz).isoformat(timespec="microseconds"),
        *("" if detail.get(k) is None else detail[k] for k in EVIDENCE_COLUMNS[11:17]),
        json.dumps(detail, sort_keys=True, separators=(",", ":")) if detail else "",
    ]


def write_evidence_csv(
    store: Store, reports: list[dict[str, Any]], out: IO[str], vantage: str | None
) -> tuple[int, int]:
    """Write the CSV of every report's counted unavailable seconds to `out`; returns
    (attempts written, seconds covered)."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(EVIDENCE_COLUMNS)
    rows = seconds = 0
    for report in reports:
        tz = ZoneInfo(report["timezone"])
        intervals = counted_unavailable(report)
        seconds += sum(b - a for a, b in intervals)
        for r in attempts_in(store, report["service"], intervals, vantage):
            w.writerow(_row(r, tz))
            rows += 1
    return rows, seconds
