"""The numbers of the monthly availability report, computed from the Store's verdict runs.

Everything is counted in real seconds of a calendar month of the report time zone, as
half-open intervals ``[start, end)`` of epoch seconds (so a DST month has 743 or 745 hours);
an outage's ``end`` is the first second that was no longer unavailable. Seconds without any
stored verdict count as unknown (not measured), never as unavailable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from alerting.case import callback_of
from alerting.model import Severity
from monitor.clock import SystemClock
from monitor.config import ServiceConfig, Settings
from monitor.intervals import (
    Interval,
    intersect,
    length,
    merge_gaps,
    month_bounds,
    per_bucket,
    subtract,
    union,
)
from monitor.quorum import Quorum, combined
from monitor.reports.method import method
from monitor.reports.seal import load_signing_key, seal
from monitor.store.base import Incident, Run, Store
from monitor.verdicts import CHANNELS, SERVICE_CHANNEL, Verdict
from probes.base import QUALIFYING, SEEING

#: the keys of a report: ARCHITECTURE.md "Report JSON keys" first, then this module's extras
CONTRACT_KEYS: tuple[str, ...] = (
    "service",
    "month",
    "timezone",
    "total_seconds",
    "excluded_seconds",
    "unknown_seconds",
    "unavailable_seconds",
    "availability_percent",
    "availability_measured_percent",
    "attempts_per_second",
    "coverage_percent",
    "slo_target_percent",
    "met",
    "error_budget_seconds",
    "budget_used_percent",
    "outages",
    "incidents",
    "daily",
)
EXTRA_KEYS: tuple[str, ...] = (
    "vantage",
    "vantages",
    "generated_at",
    "partial",
    "period",
    "credit_percent",
    "longest_outage",
    "blind",
    "maintenance",
    "timeline",
    "warnings",
    "blocklist",
    "method",
    "digest",
    "signature",
)
REPORT_KEYS: tuple[str, ...] = CONTRACT_KEYS + EXTRA_KEYS

#: a month whose coverage is below this carries a warning
MIN_COVERAGE_PERCENT = 99.9
#: seconds sampled across an outage, per channel, between its first and last (every
#: failed attempt of those two is quoted; of a sampled second, the first failed one)
EVIDENCE_SAMPLE_SECONDS = 8
#: at most this many failed attempts quoted from an outage's first or last second
EVIDENCE_PER_SECOND = 64
#: detail fields of an attempt worth quoting as evidence
_EVIDENCE_DETAIL = ("status", "code", "enhanced", "stage", "error", "reason")
#: incident timeline kinds that count as a periodic update sent to the customer
UPDATE_EVENT_KINDS = frozenset({"update", "update_sent", "updated"})


@runtime_checkable
class AttemptTotals(Protocol):
    """A backend that sums its per-minute attempt counts itself: one aggregate query
    instead of a row per (minute, probe, outcome), which is ~90 000 rows for a month of
    one service and most of a report's time. Used when the store offers it."""

    def attempt_totals(self, service: str, start: int, end: int) -> dict[str, int]:
        """channel → attempts (all outcomes) in the minutes starting in [start, end)."""
        ...


@runtime_checkable
class BlindMinutes(Protocol):
    """A backend that finds blind minutes itself (one aggregate query); otherwise they are
    found from `minute_counts`."""

    def blind_minutes(self, service: str, start: int, end: int) -> dict[str, list[int]]:
        """channel → sorted minutes starting in [start, end) that had attempts but no
        ok, timeout or server_error one."""
        ...


# ----------------------------------------------------------------------------- timelines


class Timeline:
    """One channel over the report period: unavailable / available / unknown intervals.

    Seconds that have no run at all (the monitor was not running and nobody filled the
    gap) are unknown, like seconds whose verdict says so.
    """

    def __init__(self, unavailable: list[Interval], available: list[Interval], period: Interval):
        self.period = period
        self.unavailable = unavailable
        self.available = available
        self.unknown = subtract(subtract([period], unavailable), available)

    @classmethod
    def from_runs(cls, runs: Sequence[Run], period: Interval, quorum: Quorum) -> Timeline:
        """The channel's timeline with its vantages combined by the quorum rule."""
        unav: list[Interval] = []
        avail: list[Interval] = []
        for a, b, verdict in combined(runs, period[0], period[1], quorum):
            if verdict is Verdict.UNAVAILABLE:
                unav.append((a, b))
            elif verdict is Verdict.AVAILABLE:
                avail.append((a, b))
        return cls(union(unav), union(avail), period)


def _blind_minutes(store: Store, service: str, start: int, end: int) -> dict[str, list[int]]:
    if isinstance(store, BlindMinutes):
        return store.blind_minutes(service, start, end)
    seeing: dict[tuple[str, int], bool] = {}
    for c in store.minute_counts(service, start, end):
        key = (c.channel, c.minute)
        seeing[key] = seeing.get(key, False) or (c.outcome in SEEING and c.count > 0)
    out: dict[str, list[int]] = {}
    for (channel, minute), saw in sorted(seeing.items()):
        if not saw:
            out.setdefault(channel, []).append(minute)
    return out


def blind_spells(
    store: Store, service: str, period: Interval, blind_after: int
) -> dict[str, list[Interval]]:
    """Per channel, the stretches in which the monitor was blind (ARCHITECTURE.md "Issues"): runs of
    consecutive minutes whose attempts were all client or probe errors, at least
    `blind_after` seconds long. Found per minute from the stored per-minute counts, so a
    minute only partly blind at either end of a spell counts as measured."""
    start, end = period
    first = start - start % 60
    spells: dict[str, list[Interval]] = {}
    for channel, minutes in _blind_minutes(store, service, first, end).items():
        runs = union((m, m + 60) for m in minutes)
        kept = intersect([r for r in runs if r[1] - r[0] >= blind_after], [period])
        if kept:
            spells[channel] = kept
    return spells


def _unblind(
    timelines: dict[str, Timeline], spells: dict[str, list[Interval]], combine: str
) -> None:
    """Make blind seconds unknown: a blind channel's seconds read as available (client
    errors are not failures) but say nothing of the platform; the service's second is
    unknown where the blind channels' true state could change its verdict (any: a blind
    channel; all: no channel seen available)."""
    period = timelines[SERVICE_CHANNEL].period
    for channel, spell in spells.items():
        tl = timelines.get(channel)
        if tl is not None:
            timelines[channel] = Timeline(tl.unavailable, subtract(tl.available, spell), period)
    svc = timelines[SERVICE_CHANNEL]
    doubt = union(iv for spell in spells.values() for iv in spell)
    if combine == "all":
        seen = union(
            iv for ch, tl in timelines.items() if ch != SERVICE_CHANNEL for iv in tl.available
        )
        doubt = subtract(doubt, seen)
    timelines[SERVICE_CHANNEL] = Timeline(svc.unavailable, subtract(svc.available, doubt), period)


# ----------------------------------------------------------------------------- the report


def _iso(t: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(t, tz).isoformat()


def _pct(num: float, den: float) -> float | None:
    return None if den <= 0 else round(100.0 * num / den, 6)


def _service(settings: Settings, name: str) -> ServiceConfig:
    try:
        return settings.service(name)
    except KeyError:
        known = ", ".join(s.name for s in settings.services)
        raise ValueError(f"unknown service {name!r} (configured: {known})") from None


class NoData(ValueError):
    """The month has no stored second of the service (one line, for the CLI and API)."""


def build_report(
    store: Store,
    settings: Settings,
    service: str,
    month: str,
    *,
    now: float | None = None,
    vantage: str | None = None,
) -> dict[str, Any]:
    """The report of one service for one calendar month, as a JSON-ready dict.

    A month not over yet is reported up to `now` and flagged ``partial``. `vantage`
    restricts the report to one vantage point; None combines all of them by quorum.
    """
    tz = ZoneInfo(settings.report.timezone)
    month_start, month_end = month_bounds(month, tz)
    svc = _service(settings, service)
    now = SystemClock().wall() if now is None else now

    partial = now < month_end
    end = max(month_start, min(month_end, math.floor(now)))
    if partial:
        # the newest seconds are not final yet (an attempt may still be in flight); stop
        # at the last final one unless the monitor has been silent longer than that lag,
        # in which case the silence is rightly unknown
        last = store.last_second(service, SERVICE_CHANNEL, vantage)
        lag = math.ceil(svc.max_timeout) + 60
        if last is not None and month_start <= last + 1 < end and end - (last + 1) <= lag:
            end = last + 1
    period: Interval = (month_start, end)
    total = end - month_start

    windows = [
        w
        for w in store.list_maintenance(None, month_start, month_end)
        if w.service in (service, "*")
    ]
    excluded_month = intersect(union((w.start, w.end) for w in windows), [(month_start, month_end)])
    excluded = intersect(excluded_month, [period])

    runs = {
        ch: store.runs(service, ch, month_start, end, vantage)
        for ch in (SERVICE_CHANNEL, *CHANNELS)
    }
    if not runs[SERVICE_CHANNEL]:
        # before the monitor existed, or a month still to come: nothing to report, and a
        # report of 100 % "met" with 0 % coverage would only mislead a credit claim
        raise NoData(f"no second of {service} is stored for {month}: nothing to report")
    timelines = {ch: Timeline.from_runs(r, period, svc.quorum) for ch, r in runs.items()}
    blind = blind_spells(store, service, period, svc.non_critical.blind_after_seconds)
    _unblind(timelines, blind, svc.combine)
    vantages = sorted({r.vantage for r in runs[SERVICE_CHANNEL]})
    service_tl = timelines[SERVICE_CHANNEL]
    unav_sla = subtract(service_tl.unavailable, excluded)
    unknown_sla = subtract(service_tl.unknown, excluded)

    excluded_s = length(excluded)
    unknown_s = length(unknown_sla)
    unavailable = {ch: length(subtract(tl.unavailable, excluded)) for ch, tl in timelines.items()}
    counted = total - excluded_s
    measured = counted - unknown_s
    availability = (
        None if counted <= 0 else round(100.0 - 100.0 * unavailable[SERVICE_CHANNEL] / counted, 6)
    )
    measured_pct = (
        None if measured <= 0 else round(100.0 - 100.0 * unavailable[SERVICE_CHANNEL] / measured, 6)
    )
    coverage = _pct(measured, counted)

    # the budget is the whole month's, also while the month runs: "how much of this
    # month's allowance is spent so far" (equal to the contract formula once complete)
    budget = (1.0 - svc.slo_target_percent / 100.0) * (
        (month_end - month_start) - length(excluded_month)
    )
    budget_used = _pct(unavailable[SERVICE_CHANNEL], budget)
    # decided on seconds, not on the rounded percentage: 268 s of a 31-day month is a
    # miss even though 99.989994 % might print as 99.99; a tiny tolerance absorbs the
    # float error of (100 - target) / 100 at an exact boundary
    allowed = (100.0 - svc.slo_target_percent) / 100.0 * counted
    met = None if counted <= 0 else unavailable[SERVICE_CHANNEL] <= allowed * (1 + 1e-12)

    key = (
        None
        if settings.report.signing_key is None
        else load_signing_key(settings.report.signing_key)
    )
    outages = _outages(
        store,
        service,
        unav_sla,
        timelines,
        excluded,
        settings.report.merge_gap_seconds,
        tz,
        vantage,
    )
    longest = max(outages, key=lambda o: (o["seconds"], -o["start_epoch"]), default=None)

    warnings: list[str] = []
    if partial:
        warnings.append(f"partial month: reported up to {_iso(end, tz)}")
    if coverage is not None and coverage < MIN_COVERAGE_PERCENT:
        warnings.append(
            f"coverage {coverage:.3f} % is below {MIN_COVERAGE_PERCENT} %: {unknown_s} s were "
            "not measured (monitor down or blind); they are not counted as unavailable"
        )
    for channel, spell in sorted(blind.items()):
        warnings.append(
            f"monitor blind on {channel} for {length(spell)} s in {len(spell)} spell(s) (only"
            " client or probe errors, e.g. a revoked key): counted as not measured"
        )
    if counted <= 0:
        warnings.append("no seconds to report in this period")
    if len(vantages) > 1:
        quorum = svc.quorum if svc.quorum is not None else "all"
        warnings.append(f"combined {len(vantages)} vantage points with quorum {quorum}")

    report = {
        "service": service,
        "month": month,
        "timezone": settings.report.timezone,
        "total_seconds": total,
        "excluded_seconds": excluded_s,
        "unknown_seconds": unknown_s,
        "unavailable_seconds": {ch: unavailable[ch] for ch in (SERVICE_CHANNEL, *CHANNELS)},
        "availability_percent": availability,
        "availability_measured_percent": measured_pct,
        "attempts_per_second": _attempt_rates(
            store,
            svc,
            month_start,
            end,
            {ch: total - length(timelines[ch].unknown) for ch in CHANNELS},
        ),
        "coverage_percent": coverage,
        "slo_target_percent": svc.slo_target_percent,
        "met": met,
        "error_budget_seconds": round(budget, 3),
        "budget_used_percent": None if budget_used is None else round(budget_used, 3),
        "outages": outages,
        "incidents": _incidents(
            store, svc, month_start, end, now, tz, settings.sev1.callback_minutes
        ),
        "daily": _daily(month, month_start, end, tz, unav_sla, unknown_sla, excluded),
        "vantage": vantage
        if vantage is not None
        else (vantages[0] if len(vantages) == 1 else None),
        "vantages": _by_vantage(store, svc, runs[SERVICE_CHANNEL], period, excluded),
        "generated_at": _iso(now, tz),
        "partial": partial,
        "period": {
            "start": _iso(month_start, tz),
            "end": _iso(end, tz),
            "start_epoch": month_start,
            "end_epoch": end,
            "month_seconds": month_end - month_start,
        },
        # a credit is due on a whole month, never on the part of one that has passed
        "credit_percent": None if partial else _credit(settings, availability, counted),
        "longest_outage": None
        if longest is None
        else {k: v for k, v in longest.items() if k != "evidence"},
        "blind": [
            {
                "channel": channel,
                "start": _iso(a, tz),
                "end": _iso(b, tz),
                "start_epoch": a,
                "end_epoch": b,
                "seconds": b - a,
            }
            for channel, spell in sorted(blind.items())
            for a, b in spell
        ],
        "maintenance": [
            {
                "start": _iso(max(w.start, month_start), tz),
                "end": _iso(min(w.end, month_end), tz),
                "start_epoch": max(w.start, month_start),
                "end_epoch": min(w.end, month_end),
                "service": w.service,
                "reason": w.reason,
            }
            for w in sorted(windows, key=lambda w: (w.start, w.end))
        ],
        # where in time each channel was unavailable or unmeasured (half-open epoch
        # seconds, maintenance not cut out): what the month-at-a-glance chart draws; a
        # channel the service has no probe for is left out rather than shown unmeasured
        "timeline": {
            ch: {
                "unavailable": [[a, b] for a, b in tl.unavailable],
                "unknown": [[a, b] for a, b in tl.unknown],
            }
            for ch, tl in timelines.items()
            if ch == SERVICE_CHANNEL or ch in svc.channels
        },
        "warnings": warnings,
        "blocklist": _blocklist(store, svc, month_start, end, tz),
        "method": method(
            settings,
            svc,
            vantages,
            excluded_seconds=excluded_s,
            maintenance_windows=len(windows),
        ),
    }
    return seal(report, key)


def _blocklist(
    store: Store, svc: ServiceConfig, start: int, end: int, tz: ZoneInfo
) -> list[dict[str, Any]]:
    """Every listing spell of the service's sending IPs and domains that overlapped the
    period, clipped to it (``end`` None: still listed when the report was made); `code`
    and `txt` are what the list answered when the listing was first seen."""
    out = []
    for spell in store.spells(svc.name, start, end):
        first = max(spell.started_at, start)
        last = None if spell.ended_at is None else min(spell.ended_at, end)
        out.append(
            {
                "zone": spell.zone,
                "target": spell.target,
                "start": _iso(first, tz),
                "end": None if last is None else _iso(last, tz),
                "start_epoch": first,
                "end_epoch": last,
                "ongoing": spell.ended_at is None,
                "code": ",".join(spell.codes),
                "txt": spell.txt,
            }
        )
    return out


def _outages(
    store: Store,
    service: str,
    unav: list[Interval],
    timelines: dict[str, Timeline],
    excluded: list[Interval],
    gap: int,
    tz: ZoneInfo,
    vantage: str | None,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    channel_unav = {ch: subtract(timelines[ch].unavailable, excluded) for ch in CHANNELS}
    for group in merge_gaps(unav, gap):
        a, b = group[0][0], group[-1][1]
        span = [(a, b)]
        out.append(
            {
                "start": _iso(a, tz),
                "end": _iso(b, tz),
                "start_epoch": a,
                "end_epoch": b,
                "seconds": length(group),
                "channels": [ch for ch in CHANNELS if intersect(channel_unav[ch], span)],
                "evidence": _evidence(store, service, channel_unav, (a, b), tz, vantage),
            }
        )
    return out


def _nth_second(ivs: list[Interval], n: int) -> int:
    """The n-th (from 0) second of sorted disjoint intervals."""
    for a, b in ivs:
        if n < b - a:
            return a + n
        n -= b - a
    raise IndexError(n)


def _evidence(
    store: Store,
    service: str,
    ch_unav: dict[str, list[Interval]],
    span: Interval,
    tz: ZoneInfo,
    vantage: str | None,
) -> list[dict[str, Any]]:
    """Per channel unavailable in the outage: every failed (qualifying) attempt of the
    channel's first and last unavailable seconds in it, and the first failed attempt of up
    to `EVIDENCE_SAMPLE_SECONDS` seconds spread evenly between them; each with its attempt
    id, so the vendor can find it in the platform's logs. Of every vantage, or the one the
    report is restricted to."""
    sample: list[dict[str, Any]] = []
    for ch in CHANNELS:
        mine = intersect(ch_unav[ch], [span])
        if not mine:
            continue
        n = length(mine)
        first, last = mine[0][0], mine[-1][1] - 1
        picks: dict[int, str] = {first: "first"}
        picks.setdefault(last, "last")
        if n > 2:
            k = min(EVIDENCE_SAMPLE_SECONDS, n - 2)
            for i in range(1, k + 1):
                picks.setdefault(_nth_second(mine, round(i * (n - 1) / (k + 1))), "sample")
        for second, part in sorted(picks.items()):
            rows = store.evidence(
                service, second, second + 1, limit=8 * EVIDENCE_PER_SECOND, vantage=vantage
            )
            failed = [r for r in rows if r.get("channel") == ch and r.get("outcome") in QUALIFYING]
            for row in failed[: 1 if part == "sample" else EVIDENCE_PER_SECOND]:
                sample.append(_evidence_item(row, ch, part, tz))
    return sorted(sample, key=lambda e: (e["second"], e["channel"], e["vantage"], e["slot"]))


def _evidence_item(row: dict[str, Any], ch: str, part: str, tz: ZoneInfo) -> dict[str, Any]:
    detail = row.get("detail") or {}
    item: dict[str, Any] = {
        "t": _iso(row["second"], tz),
        "second": row["second"],
        "channel": ch,
        "probe": row.get("probe"),
        "outcome": str(row["outcome"]),
        "latency": row.get("latency"),
        "attempt_id": row.get("attempt_id"),
        "vantage": row.get("vantage") or "",
        "slot": row.get("slot"),
        "part": part,
    }
    item.update({k: detail[k] for k in _EVIDENCE_DETAIL if detail.get(k) is not None})
    return item


def _by_vantage(
    store: Store,
    svc: ServiceConfig,
    runs: Sequence[Run],
    period: Interval,
    excluded: list[Interval],
) -> list[dict[str, Any]]:
    """What each vantage measured itself (its own service verdicts, maintenance
    excluded), beside the combined figures: a regional problem shows as one vantage's
    unavailable seconds that the quorum did not count."""
    out: list[dict[str, Any]] = []
    counted = length([period]) - length(excluded)
    for name in sorted({r.vantage for r in runs}):
        mine = [r for r in runs if r.vantage == name]
        spans: dict[str, list[Interval]] = {}
        for r in mine:
            spans.setdefault(str(r.verdict), []).append((r.first, r.last + 1))
        seconds = {
            word: length(subtract(intersect(union(ivs), [period]), excluded))
            for word, ivs in spans.items()
        }
        unavailable = seconds.get(str(Verdict.UNAVAILABLE), 0)
        measured = unavailable + seconds.get(str(Verdict.AVAILABLE), 0)
        attempts = store.attempt_totals(svc.name, period[0], period[1], vantage=name)
        out.append(
            {
                "vantage": name,
                "measured_seconds": measured,
                "unavailable_seconds": unavailable,
                "unknown_seconds": seconds.get(str(Verdict.UNKNOWN), 0),
                "not_stored_seconds": max(0, counted - sum(seconds.values())),
                "attempts": sum(attempts.values()),
            }
        )
    return out


def _attempt_rates(
    store: Store, svc: ServiceConfig, start: int, end: int, measured: dict[str, int]
) -> dict[str, dict[str, float | None]]:
    """Configured k per channel (summed over its probes) and the mean observed from the
    per-minute counts over the channel's *measured* seconds (not over the seconds the
    monitor was down, which would make a healthy 2/s read 0.004/s)."""
    observed = {ch: 0 for ch in CHANNELS}
    if isinstance(store, AttemptTotals):
        for channel, n in store.attempt_totals(svc.name, start, end).items():
            if channel in observed:
                observed[channel] += n
    else:
        for mc in store.minute_counts(svc.name, start, end):
            if mc.channel in observed:
                observed[mc.channel] += mc.count
    rates: dict[str, dict[str, float | None]] = {}
    for ch in CHANNELS:
        k = sum(p.attempts_per_second for p in svc.probes if p.enabled and p.channel == ch)
        seconds = measured.get(ch, end - start)
        rates[ch] = {
            "configured": float(k),
            "observed": None if seconds <= 0 else round(observed[ch] / seconds, 4),
        }
    return rates


def _credit(settings: Settings, availability: float | None, counted: int) -> float | None:
    """The lowest credit tier whose `below_percent` exceeds the availability."""
    if availability is None or counted <= 0:
        return None
    tiers = [t for t in settings.report.credits if availability < t.below_percent]
    if not tiers:
        return None
    return min(tiers, key=lambda t: t.below_percent).credit_percent


def _daily(
    month: str,
    start: int,
    end: int,
    tz: ZoneInfo,
    unav: list[Interval],
    unknown: list[Interval],
    excluded: list[Interval],
) -> list[dict[str, Any]]:
    """Per local date that has begun within the period."""
    if end <= start:
        return []
    year, mon = int(month[:4]), int(month[5:])
    days: list[date] = []
    bounds: list[int] = []
    d = date(year, mon, 1)
    while d.month == mon:
        t = int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp())
        if t >= end and days:
            break
        days.append(d)
        bounds.append(t)
        d += timedelta(days=1)
    bounds.append(end)
    u = per_bucket(unav, bounds)
    k = per_bucket(unknown, bounds)
    x = per_bucket(excluded, bounds)
    return [
        {
            "date": day.isoformat(),
            "seconds": bounds[i + 1] - bounds[i],
            "unavailable_seconds": u[i],
            "unknown_seconds": k[i],
            "excluded_seconds": x[i],
        }
        for i, day in enumerate(days)
    ]


def daily_history(
    store: Store, settings: Settings, service: str, first: date, last: date, now: float
) -> list[dict[str, Any]]:
    """Per local date first..last (the report time zone) of `service`, per channel and for
    the service: the day's seconds up to `now`, and of them the unavailable, unknown (not
    measured, or blind) and excluded (maintenance) ones, by the report's rules, so a
    day's bar and the report's ``daily`` row agree. Days not begun yet are left out."""
    tz = ZoneInfo(settings.report.timezone)
    svc = _service(settings, service)
    days: list[date] = []
    bounds: list[int] = []
    d = first
    while d <= last:
        t = int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp())
        if t >= now:
            break
        days.append(d)
        bounds.append(t)
        d += timedelta(days=1)
    if not days:
        return []
    nxt = last + timedelta(days=1)
    bounds.append(min(int(now), int(datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp())))
    period: Interval = (bounds[0], bounds[-1])
    excluded = intersect(
        union(
            (w.start, w.end)
            for w in store.list_maintenance(None, *period)
            if w.service in (service, "*")
        ),
        [period],
    )
    channels = (SERVICE_CHANNEL, *svc.channels)
    timelines = {
        ch: Timeline.from_runs(store.runs(service, ch, *period), period, svc.quorum)
        for ch in channels
    }
    _unblind(
        timelines,
        blind_spells(store, service, period, svc.non_critical.blind_after_seconds),
        svc.combine,
    )
    x = per_bucket(excluded, bounds)
    per = {
        ch: (
            per_bucket(subtract(tl.unavailable, excluded), bounds),
            per_bucket(subtract(tl.unknown, excluded), bounds),
        )
        for ch, tl in timelines.items()
    }
    return [
        {
            "date": day.isoformat(),
            "seconds": bounds[i + 1] - bounds[i],
            "excluded_seconds": x[i],
            "channels": {
                ch: {"unavailable_seconds": u[i], "unknown_seconds": k[i]}
                for ch, (u, k) in per.items()
            },
        }
        for i, day in enumerate(days)
    ]


def _incidents(
    store: Store,
    svc: ServiceConfig,
    start: int,
    end: int,
    now: float,
    tz: ZoneInfo,
    callback_minutes: float = 15,
) -> list[dict[str, Any]]:
    """Incidents of the service that were open at some time during the period."""
    # overlap, not opening time: an incident opened last month may have run into this one
    found: list[Incident] = store.list_incidents(
        service=svc.name, since=start, until=end, limit=10_000
    )
    out = []
    for inc in sorted(found, key=lambda i: (i.opened_at, i.id)):
        closed = inc.resolved_at if inc.resolved_at is not None else inc.recovered_at
        if inc.opened_at >= end or (inc.resolved_at is not None and inc.resolved_at < start):
            continue
        events = store.events(inc.id)
        updates = sum(1 for e in events if e.kind in UPDATE_EVENT_KINDS)
        # what reached a notifier (the outbox's "notified" events), not only what was due
        delivered = sum(
            1 for e in events if e.kind == "notified" and e.data.get("event") == "update"
        )
        item: dict[str, Any] = {
            "id": inc.id,
            "severity": inc.severity,
            "kind": inc.kind,
            "state": inc.state,
            "summary": inc.summary,
            "dedup_key": inc.dedup_key,
            "opened_at": _iso(inc.opened_at, tz),
            "acknowledged_at": None
            if inc.acknowledged_at is None
            else _iso(inc.acknowledged_at, tz),
            "acknowledged_by": inc.acknowledged_by,
            "recovered_at": None if inc.recovered_at is None else _iso(inc.recovered_at, tz),
            "resolved_at": None if inc.resolved_at is None else _iso(inc.resolved_at, tz),
            "resolved_by": inc.resolved_by,
            "unavailable_seconds": inc.unavailable_seconds,
            "updates_sent": updates,
            "updates_delivered": delivered,
            "events": len(events),
        }
        if inc.severity == Severity.CRITICAL:
            due = svc.critical.ack_within_minutes * 60.0
            tta = None if inc.acknowledged_at is None else inc.acknowledged_at - inc.opened_at
            if tta is not None:
                ack_met: bool | None = tta <= due
            elif inc.ack_breached_at is not None or now - inc.opened_at > due:
                ack_met = False
            else:
                ack_met = None  # not acknowledged yet, and not due yet
            every = svc.critical.update_every_minutes * 60.0
            until = inc.resolved_at if inc.resolved_at is not None else now
            # the vendor's callback on the Sev-1 line, against its promise (alerting/case.py)
            called = callback_of(inc, events)
            promise = callback_minutes * 60
            if called is not None:
                callback_met: bool | None = called["within"]
            elif now - inc.opened_at > promise:
                callback_met = False  # none recorded, and it is past due
            else:
                callback_met = None
            item.update(
                {
                    "ack_due_seconds": due,
                    "time_to_ack_seconds": None if tta is None else round(tta, 3),
                    "ack_met": ack_met,
                    "updates_due": max(0, math.floor((until - inc.opened_at) / every)),
                    "vendor_callback_due_seconds": promise,
                    "vendor_callback_at": None if called is None else _iso(called["at"], tz),
                    "vendor_callback_by": None if called is None else called["by"],
                    "vendor_callback_minutes": None if called is None else called["minutes"],
                    "vendor_callback_met": callback_met,
                }
            )
        else:
            item["response_due_at"] = (
                None if inc.response_due_at is None else _iso(inc.response_due_at, tz)
            )
        item["duration_seconds"] = None if closed is None else round(closed - inc.opened_at, 3)
        out.append(item)
    return out
