"""Stored seconds as people read them: per-second rows for the HTTP API and verdict counts.

Reads verdict runs from any `Store` backend and combines the vantages with the one quorum
rule (`monitor/quorum.py`), so `/api/v1/seconds`, the report and the gauges agree about
every second; with `vantage` named, that vantage's own verdicts, uncombined.
"""

from __future__ import annotations

from typing import Any

from monitor.intervals import Interval, union
from monitor.quorum import Quorum, Span, combine, sweep, tracks
from monitor.store.base import Store, excluded_spans
from monitor.verdicts import CHANNELS, SERVICE_CHANNEL, Verdict

_UNKNOWN = str(Verdict.UNKNOWN)

#: the row keys of `seconds`, after ``t``: the service's verdict, then each channel
_COLUMNS: tuple[str, ...] = (SERVICE_CHANNEL, *CHANNELS)


def seconds(
    store: Store,
    service: str,
    start: int,
    end: int,
    *,
    quorum: Quorum = None,
    vantage: str | None = None,
) -> list[dict[str, Any]]:
    """Per-second rows `{"t", "verdict", "api", "smtp"}` for [start, end).

    `verdict` is the service's combined verdict, `api` / `smtp` the channels'. The range is
    clipped to the service's stored seconds (first to last over all its channels): seconds
    outside are omitted, while a second inside it that a channel has no row for (a gap)
    reads "unknown", the same as a stored unknown."""
    stored = store.bounds(service, vantage)
    if stored is None:
        return []
    lo, hi = max(start, stored[0]), min(end, stored[1] + 1)
    if lo >= hi:
        return []
    per_channel = [tracks(store.runs(service, ch, lo, hi, vantage)) for ch in _COLUMNS]
    flat: list[list[Span]] = []
    groups: list[range] = []
    for group in per_channel:
        groups.append(range(len(flat), len(flat) + len(group)))
        flat.extend(group)
    out: list[dict[str, Any]] = []
    for a, b, labels in sweep(flat, lo, hi):
        service_v, api_v, smtp_v = (
            combine((labels[i] for i in group), quorum) or _UNKNOWN for group in groups
        )
        # a list comprehension, not extend(genexpr): this line is the whole cost of a day
        out += [{"t": t, "verdict": service_v, "api": api_v, "smtp": smtp_v} for t in range(a, b)]
    return out


def verdict_counts(
    store: Store,
    service: str,
    channel: str,
    start: int,
    end: int,
    *,
    quorum: Quorum = None,
    vantage: str | None = None,
    maintenance: bool = False,
) -> dict[str, int]:
    """Seconds per verdict in [start, end), vantages combined.

    Keys are always `available`, `unavailable`, `unknown`; seconds with no stored verdict
    count in none of them (total − sum = unmeasured). With `maintenance`, the stored
    seconds inside a maintenance window of the service (or of '*') count under an extra
    key `excluded` instead of their verdict."""
    counts = {str(v): 0 for v in (Verdict.AVAILABLE, Verdict.UNAVAILABLE, Verdict.UNKNOWN)}
    if maintenance:
        counts["excluded"] = 0
    if end <= start:
        return counts
    found = tracks(store.runs(service, channel, start, end, vantage))
    windows: list[Interval] = []
    if maintenance:
        windows = union(
            (max(a, start), min(b, end))
            for a, b in excluded_spans(store.list_maintenance(service, start, end), service)
        )
    flat = [*found, [(a, b - 1, "excluded") for a, b in windows]]
    for a, b, labels in sweep(flat, start, end):
        verdict = combine(labels[:-1], quorum)
        if verdict is None:
            continue
        if labels[-1] is not None:
            verdict = "excluded"
        counts[verdict] += b - a
    return counts
