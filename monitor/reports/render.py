"""Reports rendered as JSON, CSV, Markdown or a self-contained HTML page with inline SVG.

CSV is "long": one row per number (``service, month, section, item, field, value``), so it
carries every figure of the JSON and stays one table. Markdown and HTML show the same values
formatted by the same function, so a number never differs between formats.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

CSV_HEADER = ("service", "month", "section", "item", "field", "value")
_IDENTITY = ("service", "month")


def fmt_value(value: Any) -> str:
    """The one textual form of a report value, shared by CSV, Markdown and HTML."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "+".join(fmt_value(v) for v in value)
    return str(value)


# ----------------------------------------------------------------------------- json / csv


def _json(reports: list[dict[str, Any]]) -> str:
    data: Any = reports[0] if len(reports) == 1 else reports
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _flat_fields(obj: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in obj.items():
        if isinstance(value, dict):
            yield from _flat_fields(value, f"{prefix}{key}.")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            continue  # nested tables (an outage's evidence) are their own section
        else:
            yield f"{prefix}{key}", value


def flatten(report: dict[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    """(section, item, field, value) for every value of a report: the CSV's rows."""
    for key, value in report.items():
        if key in _IDENTITY:
            continue
        if key == "method":
            for field, v in _flat_fields(value):
                yield key, "", field, v
            for sub in ("probes", "classification"):
                for i, row in enumerate(value[sub], start=1):
                    for field, v in _flat_fields(row):
                        yield f"{key}.{sub}", str(i), field, v
            continue
        if key == "timeline":
            for ch, kinds in value.items():
                for kind, ivs in kinds.items():
                    for i, (a, b) in enumerate(ivs, start=1):
                        yield key, f"{ch}.{kind}.{i}", "start_epoch", a
                        yield key, f"{ch}.{kind}.{i}", "end_epoch", b
            continue
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            for i, row in enumerate(value, start=1):
                item = row["date"] if key == "daily" else str(i)
                for field, v in _flat_fields(row):
                    yield key, item, field, v
                for sub, rows in row.items():
                    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
                        for j, r in enumerate(rows, start=1):
                            for field, v in _flat_fields(r):
                                yield f"{key}.{sub}", f"{item}.{j}", field, v
        elif isinstance(value, list):
            for i, v in enumerate(value, start=1):
                yield key, str(i), "text", v
        elif isinstance(value, dict):
            for field, v in _flat_fields(value, f"{key}."):
                yield "summary", "", field, v
        else:
            yield "summary", "", key, value


def _csv(reports: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    for r in reports:
        for section, item, field, value in flatten(r):
            w.writerow((r["service"], r["month"], section, item, field, fmt_value(value)))
    return buf.getvalue()


# ----------------------------------------------------------------------------- markdown

#: (label, key path) of the headline figures, in the order every format shows them
SUMMARY_ROWS: tuple[tuple[str, str], ...] = (
    ("Availability %", "availability_percent"),
    ("SLO target %", "slo_target_percent"),
    ("Met", "met"),
    ("Availability over measured seconds %", "availability_measured_percent"),
    ("Coverage %", "coverage_percent"),
    ("Total seconds", "total_seconds"),
    ("Excluded seconds (maintenance)", "excluded_seconds"),
    ("Unknown seconds (not measured)", "unknown_seconds"),
    ("Unavailable seconds: service", "unavailable_seconds.service"),
    ("Unavailable seconds: api", "unavailable_seconds.api"),
    ("Unavailable seconds: smtp", "unavailable_seconds.smtp"),
    ("Error budget seconds", "error_budget_seconds"),
    ("Budget used %", "budget_used_percent"),
    ("Service credit %", "credit_percent"),
    ("Attempts/s api configured", "attempts_per_second.api.configured"),
    ("Attempts/s api observed", "attempts_per_second.api.observed"),
    ("Attempts/s smtp configured", "attempts_per_second.smtp.configured"),
    ("Attempts/s smtp observed", "attempts_per_second.smtp.observed"),
    ("Longest outage seconds", "longest_outage.seconds"),
    ("Longest outage start", "longest_outage.start"),
    ("Longest outage start epoch", "longest_outage.start_epoch"),
    ("Longest outage end epoch", "longest_outage.end_epoch"),
    ("Partial month", "partial"),
    ("Period start", "period.start"),
    ("Period end", "period.end"),
    ("Period start epoch", "period.start_epoch"),
    ("Period end epoch", "period.end_epoch"),
    ("Seconds in the month", "period.month_seconds"),
    ("Vantage", "vantage"),
    ("Generated at", "generated_at"),
)


def lookup(report: dict[str, Any], path: str) -> Any:
    value: Any = report
    for part in path.split("."):
        if value is None:
            return None
        value = value[part]
    return value


def _md_cell(value: Any) -> str:
    return fmt_value(value).replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _md_records(rows: list[dict[str, Any]], first: str = "#") -> list[str]:
    """A table of records with every scalar field as a column (nested tables left out)."""
    columns: list[str] = []
    for row in rows:
        for key, value in row.items():
            if key not in columns and not (
                isinstance(value, list) and value and isinstance(value[0], dict)
            ):
                columns.append(key)
    return _md_table(
        [first, *columns],
        [[i, *(row.get(c) for c in columns)] for i, row in enumerate(rows, start=1)],
    )


#: (label, key) of the Method's scalar fields, in the order every format shows them
METHOD_ROWS: tuple[tuple[str, str], ...] = (
    ("Formula", "formula"),
    ("Qualifying failures", "qualifying_outcomes"),
    ("Channels", "channels"),
    ("Channels combined", "combine"),
    ("Vantage quorum", "quorum"),
    ("Vantage points", "vantages"),
    ("Attempt id", "attempt_id"),
    ("Classification overrides", "overrides"),
    ("Maintenance excluded seconds", "excluded_seconds"),
    ("Maintenance windows", "maintenance_windows"),
    ("Blind after seconds", "blind_after_seconds"),
    ("Outages merged across gaps of seconds", "merge_gap_seconds"),
    ("Configuration", "config"),
)


def overrides_text(classify: dict[str, str]) -> str:
    """A probe's classification overrides on one line ("none" without any)."""
    return ", ".join(f"{k} → {v}" for k, v in classify.items()) or "none"


def method_probes(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The Method's probes with their overrides as text (a table cell each)."""
    return [{**p, "classify": overrides_text(p["classify"])} for p in r["method"]["probes"]]


def verify_hint(r: dict[str, Any]) -> str:
    sig = r.get("signature")
    if sig is None:
        return "availmon report verify FILE.json (not signed: the digest only)"
    return "availmon report verify FILE.json --signature FILE.json.sig --public-key KEY.pem"


def _md_method(r: dict[str, Any], level: str) -> list[str]:
    m = r["method"]
    out = [f"{level}# Method", "", f"> **SLA:** {m['sla']}", ""]
    out += _md_table(["Method", "Value"], [[label, m[key]] for label, key in METHOD_ROWS])
    out += [f"{level}## Probes", ""]
    out += _md_records(method_probes(r))
    out += [f"{level}## Classification (defaults; a probe's overrides win)", ""]
    out += _md_records(m["classification"])
    return out


def _md_integrity(r: dict[str, Any], level: str) -> list[str]:
    sig = r.get("signature")
    rows = [
        ["SHA-256 of the JSON report", r["digest"]["value"]],
        ["Canonical form", r["digest"]["canonical"]],
        ["Signature", "not signed" if sig is None else f"Ed25519, key {sig['fingerprint']}"],
        ["Verify", verify_hint(r)],
    ]
    return [f"{level}# Integrity", "", *_md_table(["Integrity", "Value"], rows)]


def _md_one(r: dict[str, Any], level: str) -> list[str]:
    out = [f"{level} Availability report: {r['service']}, {r['month']} ({r['timezone']})", ""]
    for w in r["warnings"]:
        out += [f"> **Warning:** {w}", ""]
    rows = [[label, lookup(r, path)] for label, path in SUMMARY_ROWS]
    out += _md_table(["Figure", "Value"], rows)
    out += [f"{level}# Outages ({len(r['outages'])})", ""]
    out += _md_records(r["outages"]) if r["outages"] else ["None.", ""]
    evidence = [
        {"outage": i, **e} for i, o in enumerate(r["outages"], start=1) for e in o["evidence"]
    ]
    if evidence:
        out += [
            f"{level}## Evidence (per outage and channel: every failed attempt of its first and"
            " last seconds, and a sample across it)",
            "",
        ]
        out += _md_records(evidence)
    out += [f"{level}# Incidents ({len(r['incidents'])})", ""]
    out += _md_records(r["incidents"]) if r["incidents"] else ["None.", ""]
    if r.get("vantages"):
        out += [
            f"{level}# Vantage points (each one's own seconds; the figures above combine them)",
            "",
        ]
        out += _md_records(r["vantages"])
    if r["blind"]:
        out += [f"{level}# Monitor blind (not measured: only client or probe errors)", ""]
        out += _md_records(r["blind"])
    if r.get("blocklist"):
        out += [f"{level}# Blocklist listings ({len(r['blocklist'])})", ""]
        out += _md_records(r["blocklist"])
    if r["maintenance"]:
        out += [f"{level}# Maintenance windows (excluded)", ""]
        out += _md_records(r["maintenance"])
    out += [f"{level}# Daily", ""]
    out += _md_records(r["daily"])
    stretches = [
        {"channel": ch, "kind": kind, "start_epoch": a, "end_epoch": b, "seconds": b - a}
        for ch, kinds in r["timeline"].items()
        for kind, ivs in kinds.items()
        for a, b in ivs
    ]
    out += [f"{level}# Timeline (unavailable and unknown stretches, end exclusive)", ""]
    out += _md_records(stretches) if stretches else ["None.", ""]
    out += _md_method(r, level)
    out += _md_integrity(r, level)
    return out


def _md(reports: list[dict[str, Any]]) -> str:
    if len(reports) == 1:
        return "\n".join(_md_one(reports[0], "#"))
    out = ["# Availability reports", ""]
    out += _md_table(
        [
            "service",
            "month",
            "availability_percent",
            "slo_target_percent",
            "met",
            "unavailable_seconds.service",
            "coverage_percent",
            "budget_used_percent",
        ],
        [
            [
                r["service"],
                r["month"],
                r["availability_percent"],
                r["slo_target_percent"],
                r["met"],
                r["unavailable_seconds"]["service"],
                r["coverage_percent"],
                r["budget_used_percent"],
            ]
            for r in reports
        ],
    )
    for r in reports:
        out += _md_one(r, "##")
    return "\n".join(out)


# ----------------------------------------------------------------------------- html / svg

_CHART_X0 = 64.0  # room for the strip labels
_CHART_W = 920.0
#: a stretch narrower than this (viewBox units ≈ px at 1000 px wide) is widened to it and
#: gets a marker above the strip, so that a one-second outage never vanishes in a pixel
_MIN_W = 2.0
_MARK_BELOW = 4.0
_COLOURS = {
    "unavailable": "#d62728",
    "unknown": "#8c8c8c",
    "available": "#2ca02c",
    "excluded": "#1f77b4",
}


def _num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _el(tag: str, attrs: dict[str, Any], text: str | None = None, title: str | None = None) -> str:
    """One SVG element; numbers rounded to 0.01, text and tooltips escaped."""
    at = " ".join(
        f'{k.rstrip("_").replace("_", "-")}="{_num(v) if isinstance(v, float) else escape(str(v))}"'
        for k, v in attrs.items()
    )
    inner = (escape(text) if text is not None else "") + (
        f"<title>{escape(title)}</title>" if title is not None else ""
    )
    return f"<{tag} {at}>{inner}</{tag}>" if inner else f"<{tag} {at}/>"


def _day_starts(r: dict[str, Any]) -> list[tuple[str, int]]:
    """Every local day of the report's month (a partial month too) and its first second."""
    tz = ZoneInfo(r["timezone"])
    first = date.fromisoformat(r["month"] + "-01")
    days = []
    d = first
    while d.month == first.month:
        days.append((d.isoformat(), int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp())))
        d += timedelta(days=1)
    return days


def _stretches(
    ivs: list[tuple[int, int]], x: Callable[[float], float]
) -> tuple[list[tuple[float, float, int]], list[float]]:
    """Pixel rectangles (x0, x1, seconds) joined where they touch, and short-stretch markers."""
    rects: list[tuple[float, float, int]] = []
    marks: list[float] = []
    for a, b in ivs:
        x0, x1 = x(a), x(b)
        if x1 - x0 < _MARK_BELOW:
            marks.append((x0 + x1) / 2)
        if x1 - x0 < _MIN_W:
            mid = (x0 + x1) / 2
            x0, x1 = mid - _MIN_W / 2, mid + _MIN_W / 2
        if rects and x0 <= rects[-1][1]:
            p = rects[-1]
            rects[-1] = (p[0], max(p[1], x1), p[2] + b - a)
        else:
            rects.append((x0, x1, b - a))
    joined: list[float] = []
    for m in marks:
        if not joined or m - joined[-1] > 3:
            joined.append(m)
    return rects, joined


Strips = dict[str, dict[str, list[tuple[int, int]]]]


def timeline_svg(r: dict[str, Any], strips: Strips, uid: str) -> Markup:
    """Month at a glance: one strip per channel; unavailable red, unknown grey,
    maintenance hatched blue; short stretches widened and marked with a triangle."""
    start = r["period"]["start_epoch"]
    month_len = r["period"]["month_seconds"]
    end = r["period"]["end_epoch"]

    def x(t: float) -> float:
        return _CHART_X0 + (t - start) / month_len * _CHART_W

    row_h, gap, top = 22.0, 16.0, 26.0
    height = top + len(strips) * (row_h + gap) + 6
    parts = [
        f'<svg class="timeline" viewBox="0 0 1000 {_num(height)}" role="img" '
        'aria-label="month at a glance" xmlns="http://www.w3.org/2000/svg">',
        f'<defs><pattern id="{uid}-hatch" width="4" height="4" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="4" height="4" fill="#dbe8f5"/>'
        f'<line x1="0" y1="0" x2="0" y2="4" stroke="{_COLOURS["excluded"]}" stroke-width="1.6"/>'
        "</pattern></defs>",
    ]
    for i, (day, t) in enumerate(_day_starts(r)):
        xd = x(t)
        parts.append(
            _el("line", {"x1": xd, "y1": top - 6, "x2": xd, "y2": height - 6, "class_": "grid"})
        )
        if i % 2 == 0:
            parts.append(
                _el("text", {"x": xd + 1, "y": top - 10, "class_": "tick"}, str(int(day[8:])))
            )
    for n, (name, kinds) in enumerate(strips.items()):
        y = top + n * (row_h + gap)
        parts.append(_el("text", {"x": 0.0, "y": y + row_h * 0.7, "class_": "label"}, name))
        box = {"x": _CHART_X0, "y": y, "height": row_h}
        parts.append(_el("rect", {**box, "width": _CHART_W, "class_": "future"}))
        if end > start:
            elapsed = {"width": x(end) - _CHART_X0, "fill": _COLOURS["available"], "opacity": 0.35}
            parts.append(_el("rect", {**box, **elapsed}))
        for kind in ("excluded", "unknown", "unavailable"):
            rects, marks = _stretches(kinds.get(kind, []), x)
            fill = f"url(#{uid}-hatch)" if kind == "excluded" else _COLOURS[kind]
            for x0, x1, secs in rects:
                attrs = {**box, "x": x0, "width": x1 - x0, "fill": fill}
                parts.append(_el("rect", attrs, title=f"{name}: {secs} s {kind}"))
            if kind != "excluded":
                for m in marks:
                    d = f"M{_num(m - 3.5)} {_num(y - 7)} h7 l-3.5 5.5 z"
                    parts.append(_el("path", {"d": d, "fill": _COLOURS[kind], "class_": "mark"}))
    parts.append("</svg>")
    return Markup("".join(parts))


def daily_svg(r: dict[str, Any]) -> Markup:
    """Unavailable seconds per local day; any nonzero day gets at least a visible bar."""
    by_date = {d["date"]: d for d in r["daily"]}
    empty = {"unavailable_seconds": 0, "unknown_seconds": 0}
    days = [{"date": day, **by_date.get(day, empty)} for day, _ in _day_starts(r)]
    width, height, x0, base, top = 1000.0, 190.0, 64.0, 160.0, 18.0
    n = len(days)
    slot = (width - x0 - 8) / n
    peak = max((d["unavailable_seconds"] for d in days), default=0)
    scale_max = max(peak, 1)
    parts = [
        f'<svg class="daily" viewBox="0 0 {_num(width)} {_num(height)}" role="img" '
        'aria-label="unavailable seconds per day" xmlns="http://www.w3.org/2000/svg">'
    ]
    for frac in (0.0, 0.5, 1.0):
        y = base - frac * (base - top)
        parts.append(_el("line", {"x1": x0, "y1": y, "x2": width - 8, "y2": y, "class_": "grid"}))
        label = f"{_num(frac * scale_max)} s"
        parts.append(_el("text", {"x": x0 - 4, "y": y + 3, "class_": "tick end"}, label))
    for i, d in enumerate(days):
        xs = x0 + i * slot
        mid = xs + slot / 2
        v = d["unavailable_seconds"]
        if v > 0:
            h = max(2.5, v / scale_max * (base - top))
            bar = {"x": xs + slot * 0.15, "y": base - h, "width": slot * 0.7, "height": h}
            title = f"{d['date']}: {v} s unavailable"
            parts.append(_el("rect", {**bar, "fill": _COLOURS["unavailable"]}, title=title))
            parts.append(_el("text", {"x": mid, "y": base - h - 3, "class_": "tick mid"}, str(v)))
        if d["unknown_seconds"] > 0:
            dot = {"cx": mid, "cy": base + 22, "r": 2.5, "fill": _COLOURS["unknown"]}
            title = f"{d['date']}: {d['unknown_seconds']} s not measured"
            parts.append(_el("circle", dot, title=title))
        day = str(int(d["date"][8:]))
        parts.append(_el("text", {"x": mid, "y": base + 12, "class_": "tick mid"}, day))
    parts.append("</svg>")
    return Markup("".join(parts))


@functools.cache
def _env() -> Environment:
    """One environment per process, so the template is compiled once: compiling it runs
    Python's compile() on the generated module, which holds the GIL for ~0.1 s — in a
    report thread of the daemon, that long without a launch (bench/overload.py)."""
    env = Environment(
        loader=PackageLoader("monitor.reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["v"] = fmt_value
    env.filters["when"] = when
    env.filters["overrides"] = overrides_text
    env.filters["shown"] = shown
    env.globals["lookup"] = lookup
    return env


def when(value: str | None) -> str:
    """An ISO-8601 time of the report (already in its zone) to the second, with its offset
    ("UTC" for +00:00): ``2026-11-01 01:30:00 -04:00``. Never microseconds."""
    if value is None:
        return ""
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    offset = t.utcoffset()
    if offset is None:
        return t.strftime("%Y-%m-%d %H:%M:%S")
    zone = "UTC" if not offset else t.strftime("%z")
    if zone != "UTC":
        zone = f"{zone[:3]}:{zone[3:5]}"
    return f"{t.strftime('%Y-%m-%d %H:%M:%S')} {zone}"


_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?$")


def shown(value: Any) -> str:
    """A figure as the HTML shows it: times by `when`, everything else by `fmt_value`."""
    if isinstance(value, str) and _ISO_TIME.match(value):
        return when(value)
    if isinstance(value, list):
        return ", ".join(shown(v) for v in value)
    return fmt_value(value)


def _strips(r: dict[str, Any]) -> Strips:
    excluded = [(m["start_epoch"], m["end_epoch"]) for m in r["maintenance"]]
    return {
        ch: {
            "excluded": excluded,
            "unknown": [(a, b) for a, b in kinds["unknown"]],
            "unavailable": [(a, b) for a, b in kinds["unavailable"]],
        }
        for ch, kinds in r["timeline"].items()
    }


#: not-measured stretches of the service at least this long are listed in the HTML, so that
#: a coverage warning says when the monitor was down
GAP_LISTED_SECONDS = 60


def _gaps(r: dict[str, Any]) -> list[dict[str, Any]]:
    tz = ZoneInfo(r["timezone"])
    return [
        {
            "start": datetime.fromtimestamp(a, tz).isoformat(),
            "end": datetime.fromtimestamp(b, tz).isoformat(),
            "seconds": b - a,
        }
        for a, b in r["timeline"].get("service", {}).get("unknown", [])
        if b - a >= GAP_LISTED_SECONDS
    ]


def _html(reports: list[dict[str, Any]]) -> str:
    views = [
        {
            "r": r,
            "timeline": timeline_svg(r, _strips(r), f"r{i}"),
            "daily": daily_svg(r),
            "gaps": _gaps(r),
        }
        for i, r in enumerate(reports)
    ]
    template = _env().get_template("report.html.j2")
    return template.render(
        views=views,
        summary_rows=SUMMARY_ROWS,
        method_rows=METHOD_ROWS,
        gap_min=GAP_LISTED_SECONDS,
        method_probes=method_probes,
        verify_hint=verify_hint,
    )


def warm() -> None:
    """Compile the HTML template and the sections it includes now (the daemon does,
    before its first launch)."""
    env = _env()
    for name in env.list_templates(extensions=["j2"]):
        env.get_template(name)


FORMATS: dict[str, Callable[[list[dict[str, Any]]], str]] = {
    "json": _json,
    "csv": _csv,
    "md": _md,
    "html": _html,
}
EXTENSIONS = {"json": "json", "csv": "csv", "md": "md", "html": "html"}


def render(reports: list[dict[str, Any]], fmt: str) -> str:
    """One document of `fmt` ("json", "csv", "md", "html") covering all given reports."""
    if not reports:
        raise ValueError("render needs at least one report")
    try:
        return FORMATS[fmt](reports)
    except KeyError:
        raise ValueError(f"unknown report format {fmt!r} (json, csv, md, html)") from None
