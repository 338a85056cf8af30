"""Interval arithmetic on epoch seconds: the one implementation every layer uses.

An interval is half-open, ``[start, end)``: ``(10, 13)`` holds the seconds 10, 11 and 12.
Lists of intervals are kept sorted and disjoint (`union` makes them so). Calendar months of
a time zone are intervals too (`month_bounds`), so a DST month has 743 or 745 hours.
Maintenance windows, outages, verdict runs and report periods are all cut with these.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

Interval = tuple[int, int]

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def union(ivs: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint, with touching intervals joined."""
    out: list[Interval] = []
    for a, b in sorted(ivs):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def length(ivs: Iterable[Interval]) -> int:
    return sum(b - a for a, b in ivs)


def subtract(ivs: Sequence[Interval], cut: Sequence[Interval]) -> list[Interval]:
    """`ivs` minus `cut`; both sorted and disjoint."""
    out: list[Interval] = []
    j = 0
    for a, b in ivs:
        while j < len(cut) and cut[j][1] <= a:
            j += 1
        k = j
        while a < b and k < len(cut) and cut[k][0] < b:
            ca, cb = cut[k]
            if ca > a:
                out.append((a, ca))
            a = max(a, cb)
            k += 1
        if a < b:
            out.append((a, b))
    return out


def intersect(x: Sequence[Interval], y: Sequence[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(x) and j < len(y):
        a = max(x[i][0], y[j][0])
        b = min(x[i][1], y[j][1])
        if a < b:
            out.append((a, b))
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return out


def per_bucket(ivs: Sequence[Interval], bounds: Sequence[int]) -> list[int]:
    """Seconds of `ivs` inside each bucket ``[bounds[i], bounds[i+1])``."""
    sums = [0] * (len(bounds) - 1)
    for a, b in ivs:
        i = max(bisect.bisect_right(bounds, a) - 1, 0)
        while i < len(sums) and bounds[i] < b:
            lo, hi = max(a, bounds[i]), min(b, bounds[i + 1])
            if lo < hi:
                sums[i] += hi - lo
            i += 1
    return sums


def merge_gaps(ivs: Sequence[Interval], gap: int) -> list[list[Interval]]:
    """Group intervals whose distance is at most `gap` seconds."""
    groups: list[list[Interval]] = []
    for iv in ivs:
        if groups and iv[0] - groups[-1][-1][1] <= gap:
            groups[-1].append(iv)
        else:
            groups.append([iv])
    return groups


def overlap(ivs: Iterable[Interval], start: int, end: int) -> int:
    """Seconds of [start, end) covered by the union of `ivs` (which may overlap)."""
    return length(union((max(a, start), min(b, end)) for a, b in ivs))


def contains(ivs: Sequence[Interval], t: int) -> bool:
    """Whether second `t` lies in one of `ivs` (sorted and disjoint: `union`'s output)."""
    i = bisect.bisect_right(ivs, (t, float("inf"))) - 1
    return i >= 0 and ivs[i][0] <= t < ivs[i][1]


def month_bounds(month: str, tz: ZoneInfo) -> tuple[int, int]:
    """Epoch seconds of the first second of `month` and of the next month, local time."""
    m = _MONTH.match(month)
    if not m:
        raise ValueError(f"month must be YYYY-MM, got {month!r}")
    year, mon = int(m.group(1)), int(m.group(2))
    nyear, nmon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    start = datetime(year, mon, 1, tzinfo=tz)
    end = datetime(nyear, nmon, 1, tzinfo=tz)
    return int(start.timestamp()), int(end.timestamp())


def previous_month(now: float, tz: ZoneInfo) -> str:
    """The calendar month (report time zone) before the one `now` falls in."""
    local = datetime.fromtimestamp(now, tz)
    first = local.date().replace(day=1) - timedelta(days=1)
    return f"{first.year:04d}-{first.month:02d}"


def month_of(now: float, tz: ZoneInfo) -> Interval:
    """The calendar month (of zone `tz`) that contains `now`."""
    return month_bounds(f"{datetime.fromtimestamp(now, tz):%Y-%m}", tz)
