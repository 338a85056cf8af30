"""The vantage quorum: one verdict per second out of the verdicts of several vantage points.

This is the only implementation of the rule; the HTTP API (`monitor/seconds.py`), the
report (`monitor/reports/compute.py`) and, with several vantages, the policy all call it.

A second of a channel (or of the service) is

- ``unavailable`` when at least ``required(quorum, measured)`` of the vantages that
  *measured* it (said available or unavailable) say unavailable;
- ``available`` when some vantage measured it and fewer said unavailable;
- ``unknown`` when vantages have a row for it but none measured it (down, blind, stalled:
  those do not vote); and absent (None) when no vantage has a row at all.

``quorum`` (`services[].quorum`): ``None`` or ``"all"`` (the default, the SLA's "all such
calls fail": every measuring vantage must agree), ``"majority"`` (more than half of those
that measured), or a number N (N of those that measured; when fewer than N measured, all of
them must agree, so a lone vantage is never outvoted by vantages that were not looking).
One vantage alone is therefore combined to its own verdict, whatever the quorum.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from typing import Literal

from monitor.verdicts import COMBINED, Run, SecondVerdict, UnknownReason, Verdict

Quorum = int | Literal["all", "majority"] | None

#: a verdict stretch on one track: (first, last inclusive, verdict word)
Span = tuple[int, int, str]

_UNKNOWN = str(Verdict.UNKNOWN)
_UNAVAILABLE = str(Verdict.UNAVAILABLE)
_AVAILABLE = str(Verdict.AVAILABLE)


def required(quorum: Quorum, measured: int) -> int:
    """How many of `measured` vantages must say unavailable (at least 1 when measured)."""
    if quorum is None or quorum == "all":
        return measured
    if quorum == "majority":
        return measured // 2 + 1
    return min(quorum, measured)


def combine(labels: Iterable[str | None], quorum: Quorum = None) -> str | None:
    """One second's verdict word from its vantages' words (None: that vantage has no row).

    Returns None when no vantage has a row at all, so callers can tell "no data" apart."""
    seen = False
    measured = unavailable = 0
    for label in labels:
        if label is None:
            continue
        seen = True
        if label == _UNKNOWN:
            continue
        measured += 1
        if label == _UNAVAILABLE:
            unavailable += 1
    if not seen:
        return None
    if not measured:
        return _UNKNOWN
    return _UNAVAILABLE if unavailable >= required(quorum, measured) else _AVAILABLE


def combine_second(
    verdicts: Sequence[SecondVerdict], quorum: Quorum = None, vantage: str = COMBINED
) -> SecondVerdict:
    """The combined verdict of one (service, channel, second) from its vantages' verdicts
    (at least one): what the policy and the gauges consume when several vantages measure.

    An unknown result keeps the first vantage's reason; counts are summed; the second is
    degraded when it is not unavailable and some vantage saw a qualifying failure in it,
    and excluded when it lies in maintenance (every vantage shares the windows)."""
    first = verdicts[0]
    word = combine((str(v.verdict) for v in verdicts), quorum) or str(Verdict.UNKNOWN)
    verdict = Verdict(word)
    reason: UnknownReason | None = None
    if verdict is Verdict.UNKNOWN:
        reason = next((v.reason for v in verdicts if v.reason is not None), None)
    counts: Counter[str] = Counter()
    for v in verdicts:
        counts.update(v.counts)
    return SecondVerdict(
        service=first.service,
        channel=first.channel,
        second=first.second,
        verdict=verdict,
        vantage=vantage,
        reason=reason,
        degraded=verdict is not Verdict.UNAVAILABLE
        and any(v.degraded or v.verdict is Verdict.UNAVAILABLE for v in verdicts),
        excluded=any(v.excluded for v in verdicts),
        counts=dict(counts),
    )


def sweep(
    tracks: Sequence[Sequence[Span]], start: int, end: int
) -> Iterator[tuple[int, int, list[str | None]]]:
    """Cut [start, end) into stretches where every track holds one value (None: no span).

    Each track's spans must be sorted and must not overlap, which "never labelled twice"
    guarantees for the runs of one stream. Cost is linear in the number of spans, not of
    seconds, which is what keeps a day or a month cheap."""
    cuts = {start, end}
    for track in tracks:
        for first, last, _ in track:
            if start < first < end:
                cuts.add(first)
            if start < last + 1 < end:
                cuts.add(last + 1)
    points = sorted(cuts)
    index = [0] * len(tracks)
    for a, b in pairwise(points):
        labels: list[str | None] = []
        for n, track in enumerate(tracks):
            i = index[n]
            while i < len(track) and track[i][1] < a:
                i += 1
            index[n] = i
            labels.append(track[i][2] if i < len(track) and track[i][0] <= a else None)
        yield a, b, labels


def tracks(runs: Iterable[Run]) -> list[list[Span]]:
    """The runs of one channel as one sorted track per vantage (vantage name order)."""
    by_vantage: dict[str, list[Span]] = {}
    for r in runs:
        by_vantage.setdefault(r.vantage, []).append((r.first, r.last, str(r.verdict)))
    return [sorted(by_vantage[v]) for v in sorted(by_vantage)]


def combined(
    runs: Iterable[Run], start: int, end: int, quorum: Quorum = None
) -> Iterator[tuple[int, int, Verdict]]:
    """Half-open stretches ``(a, b, verdict)`` of [start, end) with the combined verdict of
    one channel's runs (all vantages); stretches no vantage has a row for are left out."""
    found = tracks(runs)
    if not found:
        return
    pending: tuple[int, int, str] | None = None
    for a, b, labels in sweep(found, start, end):
        word = combine(labels, quorum)
        if word is None:
            continue
        if pending is not None and pending[1] == a and pending[2] == word:
            pending = (pending[0], b, word)
            continue
        if pending is not None:
            yield pending[0], pending[1], Verdict(pending[2])
        pending = (a, b, word)
    if pending is not None:
        yield pending[0], pending[1], Verdict(pending[2])
