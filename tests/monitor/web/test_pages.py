"""The main listener's pages for people, fetched as a browser would fetch them but read as
HTML text (no browser: the Playwright tests do that): the overview `/` and an incident's
page of a real daemon against the simulator, the static files, the error pages, the
security headers, the web view's event stream, and the pages before the store is open."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

import monitor.web
from monitor.config import load
from monitor.daemon import Daemon
from monitor.simulator import Simulator
from monitor.statuspage import channel_name
from monitor.web import CSP, DAYS, STATUS_FEED, make_web_app
from tests.loopback import until
from tests.monitor.web.rig import (
    ACKER,
    API_KEY,
    NOTE,
    config,
    note_and_ack,
    open_critical,
    running,
)

pytestmark = [pytest.mark.slow]

TOKEN = "web-api-token-0815"
HOSTILE = '<script>alert("note")</script>'
CHANNELS = ("api", "smtp", "service")

STATIC = {
    "app.js": "text/javascript",
    "status.js": "text/javascript",
    "style.css": "text/css",
    "favicon.svg": "image/svg+xml",
}


async def _events(
    http: aiohttp.ClientSession, url: str, want: set[str], lines: int = 5000
) -> dict[str, Any]:
    """The data of the first event of each name in `want` on the stream at `url`."""
    found: dict[str, Any] = {}
    async with http.get(url) as r:
        assert r.status == 200 and r.content_type == "text/event-stream"
        event = None
        for _ in range(lines):
            line = (await asyncio.wait_for(r.content.readline(), 30)).decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: ") and event in want and event not in found:
                found[event] = json.loads(line[len("data: ") :])
                if set(found) == want:
                    return found
    raise AssertionError(f"only {sorted(found)} of {sorted(want)} in {lines} lines")


def _watchers(d: Daemon) -> int:
    """Streams open on the main listener's status feed."""
    assert d._runner is not None
    return len(d._runner.app[STATUS_FEED]._watchers)


async def _read_to_the_end(url: str) -> int:
    """Read the stream at `url` until the server ends it: the bytes read."""
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        assert r.status == 200
        n = 0
        for _ in range(100_000):  # chunks
            chunk = await r.content.readany()
            if not chunk:
                return n
            n += len(chunk)
    raise AssertionError("the stream did not end")


async def test_the_overview_and_an_incidents_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = f'api_token = "{TOKEN}"\n'
    async with running(tmp_path, monitor_lines=lines) as (d, sim), aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{d.http_port}"

        async def html(path: str, status: int = 200) -> str:
            async with http.get(base + path) as r:
                assert r.status == status, (path, r.status)
                assert r.content_type == "text/html" and r.charset == "utf-8"
                assert r.headers["Content-Security-Policy"] == CSP
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                return await r.text()

        page = await html("/")
        assert "the built-in simulated email platform" in page and "(simulated)" in page
        for ch in CHANNELS:
            assert f'data-verdict="simulated:{ch}"' in page, ch
            label = "service" if ch == "service" else channel_name(ch)
            assert f'<th scope="row">{label}</th>' in page, label
            assert f'aria-label="simulated {label}: daily availability, last {DAYS} days"' in page
        assert page.count('class="bar ') == DAYS * len(CHANNELS)
        month = re.search(r"data-month-availability>([^<]*)<", page)
        assert month is not None and re.fullmatch(r"\d{1,3}\.\d{3} %", month.group(1)), month
        assert "availability</div>" in page and "<script>" not in page  # no inline script
        assert 'src="/static/app.js"' in page and 'id="maintenance-form"' in page
        assert TOKEN not in page and API_KEY not in page
        assert "All Systems Operational" in page

        ident = await open_critical(d, sim)
        await note_and_ack(d, ident)
        page = await html("/")
        assert f'href="/incidents/{ident}"' in page and "acknowledged" in page
        assert "Major Service Outage" in page

        inc = await html(f"/incidents/{ident}")
        assert f"Incident #{ident}: Critical Issue of simulated" in inc
        assert NOTE in inc and ACKER in inc  # the operators' page shows the notes and names
        assert 'data-kind="opened"' in inc and 'data-kind="acknowledged"' in inc
        assert 'data-action="resolve"' in inc and 'data-action="ack"' not in inc  # acked
        assert "api-account:" in inc  # the evidence: the attempts' ids
        assert TOKEN not in inc and API_KEY not in inc

        missing = await html("/incidents/99999", 404)
        assert "There is no incident 99999" in missing
        async with http.get(f"{base}/incidents/abc") as r:
            assert r.status == 400 and "incident id" in await r.text()

        for name, kind in STATIC.items():
            async with http.get(f"{base}/static/{name}") as r:
                assert r.status == 200 and r.content_type == kind, name
                assert len(await r.read()) > 0
        for bad in ("/static/../x", "/static/nope.js", "/static/%2e%2e%2fconfig.toml",
                    "/static/..%2f__init__.py", "/static/"):  # fmt: skip
            async with http.get(URL(base + bad, encoded=True)) as r:
                assert r.status == 404, (bad, r.status)

        # no status.url: the feed's links are the address it was fetched at
        async with http.get(f"{base}/history.atom") as r:
            assert f'href="{base}/history.atom"' in await r.text()

        # the web view's stream: the last ten minutes, then new seconds and the status
        got = await _events(http, f"{base}/events", {"backfill", "seconds", "status"})
        backfill = got["backfill"]["simulated"]
        assert backfill and all(set(row) >= {"t", "service"} for row in backfill)
        assert [row["t"] for row in backfill] == sorted(row["t"] for row in backfill)
        new = got["seconds"]
        assert new and new[0]["service"] == "simulated" and new[0]["t"] > backfill[-1]["t"] - 60
        assert got["status"]["indicator"] == "critical" and "store_behind" in got["status"]
        # the stream is closed: its subscriptions go (at its next write, a second away)
        await until("the closed stream's unsubscribe", lambda: d.live.watching == 0, polls=100)
        # ?seconds=0 (an incident page): the status alone, with the incidents' marks; the
        # stream holds no subscription to the seconds while it is open
        async with http.get(f"{base}/events?seconds=0") as r:
            assert r.status == 200
            line = ""
            for _ in range(100):
                line = (await asyncio.wait_for(r.content.readline(), 30)).decode()
                assert not line.startswith("event: backfill"), line
                if line.startswith("data: "):
                    break
            assert json.loads(line[len("data: ") :])["revisions"]
            assert d.live.watching == 0
        await until("the status stream's leave", lambda: _watchers(d) == 0, polls=100)

        # what an operator typed is text, not markup, on the page
        assert d.incidents is not None
        await asyncio.to_thread(d.incidents.note, ident, "<b>bob</b>", HOSTILE)
        inc = await html(f"/incidents/{ident}")
        assert HOSTILE not in inc and "<b>bob" not in inc
        assert "&lt;script&gt;alert(&#34;note&#34;)&lt;/script&gt;" in inc

        # a maintenance window in progress: listed, today's bars marked, the status page's
        # banner and components under maintenance
        assert d.store is not None
        now = int(time.time())
        window = await asyncio.to_thread(
            d.store.add_maintenance, "*", now - 120, now + 3600, "switch <upgrade>", "test"
        )
        page = await html("/")
        assert "switch &lt;upgrade&gt;" in page and "(active)" in page
        assert page.count("d-partmaint") == len(CHANNELS)  # today, once per channel
        status = await html("/status")
        assert f'id="maintenance-m{window.id}"' in status and "in progress until" in status
        assert 'class="badge st-under_maintenance" data-component="simulated"' in status

        # a stream open when the daemon stops ends (its browser reconnects elsewhere)
        ending = asyncio.create_task(_read_to_the_end(f"{base}/status/events"))
        await until("the stream to open", lambda: d.live.watching == 0 and _watchers(d), 100)
        # streams are bounded: one more than the limit is refused, in one JSON line
        monkeypatch.setattr(monitor.web, "MAX_STREAMS", _watchers(d))
        async with http.get(f"{base}/events") as r:
            assert r.status == 503 and r.headers["Retry-After"] == "30"
            assert "too many event streams" in (await r.json())["error"]
    assert await asyncio.wait_for(ending, 60) > 0


async def test_the_pages_before_the_store_is_open(tmp_path: Path) -> None:
    sim = Simulator(tls=False, api_key=API_KEY, smtp_password=API_KEY)
    await sim.start()
    path = config(sim, tmp_path)
    d = Daemon(load(path), config_path=path)  # not started: no store yet
    runner = web.AppRunner(make_web_app(d))
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with aiohttp.ClientSession() as http:
            for path_ in ("/", "/status", "/incidents/1"):
                async with http.get(base + path_) as r:
                    assert r.status == 503, path_
                    assert "availmon status" in await r.text()
            async with http.get(f"{base}/history.atom") as r:
                assert r.status == 503
            async with http.get(f"{base}/static/app.js") as r:
                assert r.status == 200
    finally:
        await runner.cleanup()
        await sim.stop()
