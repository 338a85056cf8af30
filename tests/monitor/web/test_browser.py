"""The web view, the incident page and the public status page in a real headless
Chromium (Debian's /usr/bin/chromium, driven by Playwright; no browser download), served
by a real daemon probing the simulator:

* the live strip advances as the daemon stores seconds (Server-Sent Events, not polling);
* an injected outage turns the strip's newest seconds and the components red, on `/` and
  on `/status`, without a reload;
* the Acknowledge button (token asked once, kept in sessionStorage) puts the
  acknowledgement on the incident's timeline, a note follows without asking again, and
  the maintenance form adds a window; an open incident page reloads itself when the
  incident changes elsewhere (a note through the JSON API);
* no console error on any page, no element wider than the viewport at desktop and phone
  widths, and axe-core (bundled by axe-playwright-python) finds no serious violation;
* the public page shows no note, name, evidence or secret.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.config import load
from monitor.daemon import Daemon
from monitor.demo import simulated_config
from monitor.simulator import Simulator

CHROMIUM = "/usr/bin/chromium"
async_api = pytest.importorskip("playwright.async_api")
pytest.importorskip("axe_playwright_python")
pytestmark = [
    pytest.mark.external,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed"),
]

TOKEN = "web-token-0f9e8d7c6b5a"
API_KEY = "sp-secret-key-web-4711"
NOTE = "internal-note-from-the-browser"
WHO = "Dana Oncall"
VENDOR = "Vic Vendor"
ELSEWHERE = "noted-elsewhere-while-the-page-was-open"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: the bound on every wait for the page to change (a bound, not a speed claim)
WAIT_MS = 40_000
VIEWPORTS = {"desktop": (1280, 900), "phone": (390, 844)}

#: every visible element whose box leaves the viewport, and a page that scrolls sideways
OVERFLOWS = """
() => {
  const out = [];
  const w = window.innerWidth;
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (el.closest(".sr-only")) continue;
    if (r.left < -0.5 || r.right > w + 0.5) {
      out.push(`${el.tagName}.${el.className} ${Math.round(r.left)}-${Math.round(r.right)} > ${w}: `
               + (el.textContent || "").trim().slice(0, 50));
    }
  }
  if (document.documentElement.scrollWidth > w) {
    out.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} > ${w}`);
  }
  return out;
}
"""
AXE_JS = (files("axe_playwright_python") / "axe.min.js").read_text()


@pytest.fixture
async def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    monkeypatch.setenv("AVAILMON_WEB_T", TOKEN)
    sim = Simulator(tls=False, api_key=API_KEY, smtp_password=API_KEY)
    await sim.start()
    path = simulated_config(
        sim, tmp_path, api_key=API_KEY, monitor_lines='\napi_token = "env:AVAILMON_WEB_T"\n'
    )
    d = Daemon(load(path), config_path=path)
    await d.start()
    try:
        yield sim, d, f"http://127.0.0.1:{d.http_port}"
    finally:
        await d.stop()
        await sim.stop()


async def _axe(page: Any) -> list[str]:
    # evaluated, not added as a <script>: the pages' CSP forbids inline scripts
    await page.evaluate(AXE_JS)
    result = await page.evaluate("async () => await axe.run(document)")
    assert len(result["passes"]) > 5  # axe did run its rules on this page
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def _act(page: Any, action: str, by: str, text: str, shows: str) -> str:
    """Click an incident button, fill the form, save; the timeline entry it made."""
    await page.click(f'[data-action="{action}"]')
    await page.fill('#note-form [name="by"]', by)
    if text:
        await page.fill('#note-form [name="text"]', text)
    async with page.expect_navigation():
        await page.click('#note-form button[type="submit"]')
    await page.wait_for_selector(f'[data-kind="{shows}"]', timeout=WAIT_MS)
    return str(await page.text_content(f'[data-kind="{shows}"]') or "")


async def _strip_last(page: Any) -> int:
    raw = await page.get_attribute('[data-strip="simulated"]', "data-last")
    return int(raw) if raw else 0


async def test_the_pages_live_in_a_browser(served: Any) -> None:
    sim, d, base = served
    problems: list[str] = []
    dialogs: list[str] = []
    async with async_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            page.on(
                "console",
                lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

            async def on_dialog(dialog: Any) -> None:
                dialogs.append(dialog.message)
                await dialog.accept(TOKEN)

            page.on("dialog", on_dialog)

            # --- the live strip advances, pushed
            await page.goto(f"{base}/")
            await page.wait_for_function(
                """() => +document.querySelector('[data-strip="simulated"]').dataset.last > 0""",
                timeout=WAIT_MS,
            )
            first = await _strip_last(page)
            await page.wait_for_function(
                f"""() => +document.querySelector('[data-strip="simulated"]').dataset.last
                       >= {first + 3}""",
                timeout=WAIT_MS,
            )
            assert await _strip_last(page) >= first + 3
            assert await page.text_content("#live-state") == "live"
            newest = page.locator('[data-strip="simulated"] i').last
            assert await newest.get_attribute("class") == "s-available"

            # --- an outage turns the strip and the components red, without a reload
            sim.set_fault("api", "5xx", status=503)
            await page.wait_for_function(
                """() => document.querySelector('[data-strip="simulated"] i:last-child')
                          .className === 's-unavailable'""",
                timeout=WAIT_MS,
            )
            await page.wait_for_function(
                """() => document.querySelector('[data-component="simulated.api"]')
                          .classList.contains('st-major_outage')""",
                timeout=WAIT_MS,
            )
            assert await page.text_content('[data-verdict="simulated:api"]') == "unavailable"
            assert await page.text_content('[data-verdict="simulated:smtp"]') == "available"
            smtp = await page.get_attribute('[data-component="simulated.smtp"]', "class")
            assert smtp is not None and "st-operational" in smtp

            public = await context.new_page()
            public.on(
                "console",
                lambda m: (
                    problems.append(f"console /status: {m.text}") if m.type == "error" else None
                ),
            )
            await public.goto(f"{base}/status")
            await public.wait_for_function(
                """() => document.querySelector('[data-component="simulated"]')
                          .classList.contains('st-major_outage')""",
                timeout=WAIT_MS,
            )
            # the Critical Issue opens (the demo rule: 5 of 10 s)
            await page.wait_for_function(
                """() => document.getElementById('indicator').classList.contains('ind-critical')""",
                timeout=WAIT_MS,
            )

            # --- the incident page: acknowledge through the button
            await page.goto(f"{base}/")
            link = page.locator(".incidents-open a").first
            href = await link.get_attribute("href")
            assert href is not None and href.startswith("/incidents/")
            await link.click()
            await page.wait_for_url(f"{base}{href}")
            assert await page.locator('[data-kind="opened"]').count() == 1
            assert await page.locator('[data-kind="acknowledged"]').count() == 0
            assert WHO in await _act(page, "ack", WHO, "", "acknowledged")
            assert await page.text_content("#incident-state") == "acknowledged"
            assert await page.locator('[data-action="ack"]').count() == 0
            assert dialogs and len(dialogs) == 1  # the token was asked for once
            stored = await page.evaluate("() => sessionStorage.getItem('availmon.token')")
            assert stored == TOKEN

            # a note: the token is not asked for again
            assert NOTE in await _act(page, "note", WHO, NOTE, "note")
            assert len(dialogs) == 1
            incident_path = href

            # the vendor's callback: who called, on the timeline
            assert VENDOR in await _act(page, "callback", VENDOR, "case 4711", "vendor_callback")

            # the page follows its incident: a note made elsewhere (another on-call, through
            # the JSON API) shows on it, and the test never reloads it
            await page.wait_for_selector("#live-state.live", timeout=WAIT_MS)
            await page.evaluate("() => { window.sameDocument = true; }")
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    f"{base}/api/v1{href}/notes",
                    json={"by": "Sam Elsewhere", "text": ELSEWHERE},
                    headers={"Authorization": f"Bearer {TOKEN}"},
                ) as r:
                    assert r.status == 200, await r.text()
            await page.wait_for_function(
                """(text) => Array.from(document.querySelectorAll('[data-kind="note"]'))
                                .some((e) => e.textContent.includes(text))""",
                arg=ELSEWHERE,
                timeout=WAIT_MS,
            )
            # it reloaded itself: the marker set on the old document is gone
            assert await page.evaluate("() => window.sameDocument === undefined")

            # a wrong token is refused with the API's one line, and forgotten
            await page.evaluate("() => sessionStorage.setItem('availmon.token', 'wrong')")
            await page.click('[data-action="note"]')
            await page.fill('#note-form [name="text"]', "never stored")
            await page.click('#note-form button[type="submit"]')
            await page.wait_for_function(
                "() => document.getElementById('msg').textContent.length > 0", timeout=WAIT_MS
            )
            assert "bearer token" in (await page.text_content("#msg") or "")
            assert await page.evaluate("() => sessionStorage.getItem('availmon.token')") is None
            # the browser logs the 401 itself: that one is expected
            problems[:] = [p for p in problems if "401" not in p]

            # --- the maintenance form
            await page.evaluate(f"() => sessionStorage.setItem('availmon.token', '{TOKEN}')")
            await page.goto(f"{base}/")
            await page.fill('#maintenance-form [name="start"]', "2099-01-02T03:00:00")
            await page.fill('#maintenance-form [name="end"]', "2099-01-02T04:00:00")
            await page.fill('#maintenance-form [name="reason"]', "database upgrade")
            # The "Window #n added" line shows for 600 ms before the page reloads: on a
            # loaded machine a poll can miss it, so the API's answer is what is awaited.
            async with page.expect_response(
                lambda r: r.url.endswith("/api/v1/maintenance") and r.request.method == "POST",
                timeout=WAIT_MS,
            ) as answer:
                await page.click('#maintenance-form button[type="submit"]')
            response = await answer.value
            assert response.status == 201, await response.text()
            assert "id" in await response.json()
            windows = await asyncio.to_thread(d.store.list_maintenance)
            assert [w.reason for w in windows] == ["database upgrade"]
            await page.wait_for_selector("text=database upgrade", timeout=WAIT_MS)

            # --- layout and accessibility of every page at both widths
            for name, (width, height) in VIEWPORTS.items():
                for path in ("/", incident_path, "/status"):
                    await page.set_viewport_size({"width": width, "height": height})
                    await page.goto(f"{base}{path}")
                    await page.wait_for_load_state("load")
                    over = await page.evaluate(OVERFLOWS)
                    assert over == [], (name, path, over[:5])
                    if name == "desktop":
                        serious = await _axe(page)
                        assert serious == [], (path, serious)

            # --- resolve through the button, once the platform answers again
            sim.set_fault("api", "ok")
            await page.set_viewport_size({"width": 1280, "height": 900})
            await page.goto(f"{base}{incident_path}")
            await _act(page, "resolve", WHO, "load balancer fixed", "resolved")
            assert await page.text_content("#incident-state") == "resolved"
            assert await page.locator("[data-action]").count() == 1  # only "Add note" is left

            # --- the public page: the history, and nothing internal
            await public.reload()
            await public.wait_for_selector(".incident .is-resolved", timeout=WAIT_MS)
            text = await public.content()
            internal = (NOTE, WHO, VENDOR, API_KEY, TOKEN, ELSEWHERE, "attempt_id", "evidence",
                        "database upgrade", "case 4711", "load balancer")  # fmt: skip
            for private in internal:
                assert private not in text, private
            assert "Scheduled maintenance of simulated" in text  # the window, by its name
            assert "Unavailable: " in text  # the incident, by its public name
        finally:
            await browser.close()
    assert problems == []
