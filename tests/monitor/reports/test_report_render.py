"""Every format carries the same numbers; the HTML is self-contained, escaped and keeps
short outages visible."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from monitor.config import Settings
from monitor.reports.compute import build_report
from monitor.reports.render import SUMMARY_ROWS, fmt_value, lookup, render
from monitor.store.base import Store
from probes.base import Outcome
from tests.monitor.reports.conftest import Feeder, Pattern, T, service, settings_for

AFTER = T("2026-06-15T00:00:00Z")


def _leaves(obj: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, f"{path}.{k}" if path else k)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, obj


def _numbers(report: dict[str, Any]) -> Counter[str]:
    """Every number of a report (booleans are not numbers), as text."""
    return Counter(
        fmt_value(v)
        for _, v in _leaves(report)
        if isinstance(v, int | float) and not isinstance(v, bool)
    )


@pytest.fixture
def settings() -> Settings:
    return settings_for(services=[service(name) for name in ("mail", "mail-eu")])


@pytest.fixture
def reports(store: Store, settings: Settings) -> list[dict[str, Any]]:
    """May 2026: an hour measured on the 1st, a 1-second and a 40-second outage, a window
    with a reason that needs escaping, six minutes of a blind API (only 401s)."""
    start = T("2026-05-01T00:00:00Z")
    pattern = (
        Pattern()
        .add("api", start + 100, start + 101, Outcome.SERVER_ERROR)
        .add("smtp", start + 2000, start + 2040, Outcome.TIMEOUT)
        .add("api", start + 590, start + 1000, Outcome.CLIENT_ERROR)
    )
    Feeder(settings, store).run(start, start + 3600, pattern)
    store.add_maintenance("mail", start + 3000, start + 3300, "<script>alert('x')</script> & more")
    return [
        build_report(store, settings, name, "2026-05", now=AFTER) for name in ("mail", "mail-eu")
    ]


def test_json_is_one_object_or_a_list(reports: list[dict[str, Any]]) -> None:
    one = json.loads(render(reports[:1], "json"))
    assert one == json.loads(json.dumps(reports[0]))
    both = json.loads(render(reports, "json"))
    assert [r["service"] for r in both] == ["mail", "mail-eu"]


def test_csv_carries_every_number_of_the_json(reports: list[dict[str, Any]]) -> None:
    rows = list(csv.DictReader(io.StringIO(render(reports, "csv"))))
    for r in reports:
        mine = [
            row for row in rows if row["service"] == r["service"] and row["month"] == r["month"]
        ]
        cell = {(row["section"], row["item"], row["field"]): row["value"] for row in mine}
        assert cell[("summary", "", "availability_percent")] == fmt_value(r["availability_percent"])
        assert cell[("summary", "", "unavailable_seconds.service")] == str(
            r["unavailable_seconds"]["service"]
        )
        assert cell[("summary", "", "attempts_per_second.smtp.observed")] == fmt_value(
            r["attempts_per_second"]["smtp"]["observed"]
        )
        for i, o in enumerate(r["outages"], start=1):
            assert cell[("outages", str(i), "seconds")] == str(o["seconds"])
            assert cell[("outages", str(i), "start")] == o["start"]
        for d in r["daily"]:
            assert cell[("daily", d["date"], "unavailable_seconds")] == str(
                d["unavailable_seconds"]
            )
        values = Counter(row["value"] for row in mine)
        assert not _numbers(r) - values, "numbers of the JSON missing from the CSV"


def test_markdown_carries_every_number_of_the_json(reports: list[dict[str, Any]]) -> None:
    md = render(reports, "md")
    tokens = Counter(
        t.strip() for line in md.splitlines() if line.startswith("|") for t in line.split("|")
    )
    for r in reports:
        for label, path in SUMMARY_ROWS:
            assert f"| {label} | {fmt_value(lookup(r, path))} |" in md
    # both reports in one document: each number at least as often as the JSONs hold it
    assert not (_numbers(reports[0]) + _numbers(reports[1])) - tokens
    assert "## Availability report: mail-eu, 2026-05 (UTC)" in md


def test_blind_spells_are_listed_in_every_format(reports: list[dict[str, Any]]) -> None:
    blind = reports[0]["blind"]
    assert [(b["channel"], b["seconds"]) for b in blind] == [("api", 360)]
    md = render(reports[:1], "md")
    assert "# Monitor blind" in md and "| api |" in md
    html = render(reports[:1], "html")
    assert "Monitor blind (not measured)" in html
    rows = list(csv.DictReader(io.StringIO(render(reports[:1], "csv"))))
    assert {(r["section"], r["field"], r["value"]) for r in rows} >= {
        ("blind", "seconds", "360"),
        ("blind", "channel", "api"),
    }


def test_coverage_warning_is_visible_in_every_format(reports: list[dict[str, Any]]) -> None:
    warning = next(w for w in reports[0]["warnings"] if "coverage" in w)
    assert warning in render(reports[:1], "md")
    assert warning in render(reports[:1], "csv")
    assert warning in json.loads(render(reports[:1], "json"))["warnings"]
    html = render(reports[:1], "html")
    assert 'class="warnings" role="alert"' in html and warning.replace("'", "&#39;") in html


def test_html_is_self_contained_and_escaped(reports: list[dict[str, Any]]) -> None:
    html = render(reports, "html")
    assert "<script>" not in html  # the maintenance reason is text, not markup
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in html
    # nothing to fetch at view time: no scripts, links, images, imports or remote URLs
    assert not re.search(r"<(script|link|img|iframe)\b|@import|\bsrc=|\bhref=", html)
    # (the Method names the probed URL as text, in a cell, never as something to load)
    targets = {f"{p['target']}</td>" for r in reports for p in r["method"]["probes"]}
    found = set(re.findall(r"https?://[^\s\"')]+", html))
    assert found - targets == {"http://www.w3.org/2000/svg"}
    assert '<td class="id">http://127.0.0.1:1/</td>' in html
    assert html.count('<section class="report"') == 2
    assert "@media print" in html and "break-after: page" in html
    # the monitor ran one hour of the month, with six blind minutes: the rest is listed as
    # not measured
    assert "Not measured: stretches of 60 s or more (2)" in html
    assert "<td>2026-05-01 00:10:00 UTC</td><td>2026-05-01 00:16:00 UTC</td>" in html
    assert "<td>2026-05-01 01:00:00 UTC</td><td>2026-06-01 00:00:00 UTC</td>" in html


def test_short_outage_keeps_a_visible_width_and_a_marker(reports: list[dict[str, Any]]) -> None:
    html = render(reports[:1], "html")
    timeline = html[html.index('<svg class="timeline"') : html.index("</svg>")]
    red = re.findall(
        r'<rect x="[\d.]+" y="([\d.]+)" height="[\d.]+" width="([\d.]+)" fill="#d62728">', timeline
    )
    # the 1-second api outage, on the service and api strips: ~0.0004 px at true scale
    assert len(red) >= 2
    assert all(float(w) >= 2.0 for _, w in red)
    assert timeline.count('class="mark"') >= 3  # service, api, smtp strips each have one
    assert "1 s unavailable" in timeline


def test_unknown_format_is_a_one_line_error(reports: list[dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match=r"^unknown report format 'pdf' \(json, csv, md, html\)$"):
        render(reports, "pdf")
    with pytest.raises(ValueError, match="at least one report"):
        render([], "json")


def test_the_html_template_is_compiled_once_per_process(
    reports: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # compiling it holds the GIL ~0.1 s, a stall of the daemon's launches each time
    import importlib

    from jinja2 import Environment

    module = importlib.import_module("monitor.reports.render")
    compiles: list[str] = []
    original = Environment.compile

    def counting(self: Environment, source: Any, *args: Any, **kwargs: Any) -> Any:
        compiles.append(str(args[:1]))
        return original(self, source, *args, **kwargs)

    module._env.cache_clear()
    monkeypatch.setattr(Environment, "compile", counting)
    for _ in range(3):
        assert "<html" in render(reports, "html")
    # the page and each of its sections, once each
    assert sorted(compiles) == sorted(set(compiles)), compiles
    assert "('report.html.j2',)" in compiles and len(compiles) >= 2, compiles
