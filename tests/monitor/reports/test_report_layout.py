"""The HTML report's layout in a real headless Chromium (Debian's, driven by Playwright):
at 1280 px and as printed to an A4 PDF no table or cell runs out of its report's card, times
read to the second in the report's zone, and the Method, evidence and integrity sections
are there."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from alerting.case import CALLBACK_EVENT
from alerting.model import IncidentState, Severity
from monitor.config import parse
from monitor.reports.compute import build_report
from monitor.reports.render import render
from monitor.store.base import BlocklistSpell, Incident, IncidentEvent, Store
from probes.base import Outcome
from tests.monitor.reports.conftest import Feeder, Pattern, T

CHROMIUM = "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.external,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed"),
]

#: A4 (210 mm) less the template's @page margins (12 mm each side), in CSS pixels
A4_CONTENT_PX = round((210 - 24) / 25.4 * 96)

#: every element of each report whose box leaves its card (section.report), and every
#: scrolling container or table cell whose content is wider than itself
OVERFLOWS = """
() => {
  const out = [];
  for (const card of document.querySelectorAll("section.report")) {
    const box = card.getBoundingClientRect();
    for (const el of card.querySelectorAll("*")) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      if (el.closest("svg") && el.tagName.toLowerCase() !== "svg") continue;
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5) {
        out.push(`${el.tagName} ${el.className || ""} ${Math.round(r.left)}-${Math.round(r.right)}`
                 + ` outside ${Math.round(box.left)}-${Math.round(box.right)}: `
                 + (el.textContent || "").slice(0, 60));
      }
    }
    for (const el of card.querySelectorAll("table, td, th, .wide")) {
      if (el.scrollWidth > el.clientWidth + 1) {
        out.push(`${el.tagName} ${el.className || ""} scrolls ${el.scrollWidth}`
                 + ` > ${el.clientWidth}: ` + (el.textContent || "").slice(0, 60));
      }
    }
  }
  if (document.documentElement.scrollWidth > window.innerWidth) {
    out.push(`page scrolls: ${document.documentElement.scrollWidth} > ${window.innerWidth}`);
  }
  return out;
}
"""


def _settings() -> Any:
    """Two vantages with long names, a long probe URL with a key in its query, overrides."""
    return parse(
        {
            "monitor": {"vantage": "availmon-eu-west-1-production-a"},
            "report": {"timezone": "Europe/Paris"},
            "services": [
                {
                    "name": "sparkpost-eu-transmissions",
                    "probes": [
                        {
                            "name": "api-transmissions-account-endpoint",
                            "type": "http",
                            "url": "https://api.eu.sparkpost.example/api/v1/account/"
                            "transmissions/very/long/path/segment/for/wrapping?api_key=s3cret",
                            "attempts_per_second": 1,
                            "classify": {"503": "client_error", "4.7.1": "server_error"},
                        },
                        {
                            "name": "smtp-injection-587",
                            "type": "smtp",
                            "host": "smtp.eu.sparkpostmail.example",
                            "attempts_per_second": 1,
                            "depth": "rcpt",
                        },
                    ],
                }
            ],
        }
    )


@pytest.fixture
def report(store: Store) -> dict[str, Any]:
    settings = _settings()
    name = "sparkpost-eu-transmissions"
    start = T("2026-05-01T00:00:00+02:00")
    outage = (
        Pattern()
        .add("api", start + 100, start + 101, Outcome.SERVER_ERROR)
        .add("smtp", start + 2000, start + 2400, Outcome.TIMEOUT)
        .add("api", start + 2200, start + 2300, Outcome.SERVER_ERROR)
    )
    for vantage in ("availmon-eu-west-1-production-a", "availmon-eu-central-1-production-b"):
        Feeder(settings, store, vantage).run(start, start + 3600, outage)
    store.add_maintenance("*", start + 3000, start + 3300, "planned database upgrade " * 4)
    opened = float(start + 2030) + 0.123456
    inc = store.create_incident(
        Incident(
            0,
            name,
            Severity.CRITICAL,
            IncidentState.RESOLVED,
            "unavailable",
            "Critical Issue: sparkpost-eu-transmissions unavailable (api, smtp)",
            opened,
            acknowledged_at=opened + 612.654321,
            recovered_at=opened + 600.5,
            resolved_at=opened + 7200.75,
            unavailable_seconds=400,
        )
    )
    store.add_event(IncidentEvent(inc.id, opened + 1800, "update"))
    store.add_event(IncidentEvent(inc.id, opened + 1801, "notified", {"event": "update"}))
    called = opened + 754.3
    store.add_event(
        IncidentEvent(
            inc.id, called, CALLBACK_EVENT, {"at": called, "by": "SparkPost Support (Jane Doe)"}
        )
    )
    store.open_spell(
        BlocklistSpell(
            name, "192.0.2.10", "bl.spamcop.net", float(start + 600), None, ("127.0.0.2",),
            "Blocked - see https://www.spamcop.net/bl.shtml?192.0.2.10 " * 3,
        )
    )  # fmt: skip
    return build_report(store, settings, name, "2026-05", now=T("2026-06-15T00:00:00Z"))


@pytest.fixture
def browser(report: dict[str, Any]) -> Iterator[Any]:
    """Started after the report is built: Playwright's sync API runs an event loop on this
    thread, and the store guard refuses store calls on a loop's thread."""
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield b
        finally:
            b.close()


def _open(browser: Any, html: str, width: int, media: str = "screen") -> Any:
    page = browser.new_page(viewport={"width": width, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.emulate_media(media=media)
    page.set_content(html, wait_until="load")
    page.errors = errors
    return page


def test_at_1280_px_nothing_leaves_its_card(browser: Any, report: dict[str, Any]) -> None:
    page = _open(browser, render([report], "html"), 1280)
    assert page.evaluate(OVERFLOWS) == []
    # the checks can fail: a table wider than its card is found
    page.evaluate("() => document.querySelector('table.probes').style.minWidth = '1600px'")
    assert any("TABLE probes" in line for line in page.evaluate(OVERFLOWS))
    assert page.errors == []


def test_printed_to_a4_nothing_leaves_its_card_and_the_pdf_has_pages(
    browser: Any, report: dict[str, Any]
) -> None:
    html = render([report, report], "html")
    page = _open(browser, html, A4_CONTENT_PX, media="print")
    assert page.evaluate(OVERFLOWS) == []
    pdf = page.pdf(format="A4", print_background=True)
    assert pdf[:5] == b"%PDF-"
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 4  # two reports, each over a page
    assert page.errors == []


def test_times_read_to_the_second_in_the_report_zone(browser: Any, report: dict[str, Any]) -> None:
    page = _open(browser, render([report], "html"), 1280)
    text = page.inner_text("body")
    assert not re.search(r"\d\d:\d\d:\d\d[.,]\d", text), "a time shows its fraction"
    assert not re.search(r"\d\dT\d\d:", text), "a time shows ISO's T"
    incident = page.inner_text("section.report table:has(th:text('vendor called back'))")
    # opened at 00:33:50.123456 Paris time (+02:00 in May), acknowledged 612.65 s later
    assert "2026-05-01 00:33:50 +02:00" in incident
    assert "2026-05-01 00:44:02 +02:00 (612.654 s, in time)" in incident
    assert "2026-05-01 00:46:24 +02:00 by SparkPost Support (Jane Doe)" in incident
    assert "updates sent to the customer" in incident
    assert "1 sent of 4 due, 1 delivered" in incident
    assert "Times are in Europe/Paris, to the second." in text


def test_method_evidence_and_integrity_are_shown(browser: Any, report: dict[str, Any]) -> None:
    page = _open(browser, render([report], "html"), 1280)
    text = page.inner_text("body")
    assert report["method"]["sla"] in text
    probes = page.inner_text("table.probes")
    assert "https://api.eu.sparkpost.example/api/v1/account/transmissions" in probes
    assert "s3cret" not in page.content() and "api_key" not in page.content()
    assert "4.7.1 → server_error, 503 → client_error" in probes
    assert "smtp.eu.sparkpostmail.example:587 (starttls)" in probes and "rcpt" in probes
    ids = page.locator("table.evidence-table td.id").all_inner_texts()
    quoted = [e["attempt_id"] for o in report["outages"] for e in o["evidence"]]
    assert ids == quoted and len(set(ids)) == len(ids)
    assert any(i.endswith("@availmon-eu-central-1-production-b") for i in ids)
    assert report["digest"]["value"] in page.inner_text("table.integrity")
    # the merged blocklist section is there too (and the overflow checks above cover it)
    assert "Blocklist listings (1)" in text and "bl.spamcop.net" in text
