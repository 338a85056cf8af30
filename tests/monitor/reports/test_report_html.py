"""The HTML report in a real headless Chromium: it renders, prints to PDF, logs no errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from monitor.reports.compute import build_report
from monitor.reports.render import render
from monitor.store.base import Store
from probes.base import Outcome
from tests.monitor.reports.conftest import Feeder, Pattern, T, settings_for

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.external,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed"),
]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def page(tmp_path: Path, store: Store) -> Path:
    settings = settings_for(credits=[{"below_percent": 99.99, "credit_percent": 10}])
    start = T("2026-05-01T00:00:00Z")
    pattern = (
        Pattern()
        .add("api", start + 100, start + 101, Outcome.SERVER_ERROR)
        .add("smtp", start + 2000, start + 2040, Outcome.TIMEOUT)
        .add("api", start + 2500, start + 2510, None)
        .add("smtp", start + 2500, start + 2510, None)
    )
    Feeder(settings, store).run(start, start + 3600, pattern)
    store.add_maintenance("*", start + 3000, start + 3300, "planned")
    report = build_report(store, settings, "mail", "2026-05", now=T("2026-06-15T00:00:00Z"))
    path = tmp_path / "report.html"
    path.write_text(render([report, report], "html"), encoding="utf-8")
    return path


def test_chromium_renders_screenshot_and_pdf_without_errors(tmp_path: Path, page: Path) -> None:
    png, pdf = tmp_path / "report.png", tmp_path / "report.pdf"
    shot = chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,2000", page.as_uri())
    assert png.exists() and png.stat().st_size > 20_000, shot.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = chromium(tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer", page.as_uri())
    assert pdf.exists() and pdf.stat().st_size > 10_000, printed.stderr[-2000:]
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-"
    # two reports, a page break after the first: at least two pages
    assert (
        data.count(b"/Type /Page\n") + data.count(b"/Type /Page ") + data.count(b"/Type/Page") >= 2
    )
    for run in (shot, printed):
        bad = [
            line
            for line in run.stderr.splitlines()
            if "Uncaught" in line or ("CONSOLE" in line and "report.html" in line)
        ]
        assert bad == []


def test_chromium_dom_has_the_report_and_both_charts(tmp_path: Path, page: Path) -> None:
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="timeline"') == 2
    assert dom.stdout.count('class="daily"') == 2
    assert "Availability report: mail, 2026-05" in dom.stdout
    assert "SLO missed" not in dom.stdout and "SLO met" in dom.stdout
