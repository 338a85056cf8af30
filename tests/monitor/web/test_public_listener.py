"""`status.listen`: a second listener that serves only the public pages (the status page,
its feed and events, the Statuspage JSON, /healthz), of a real daemon against the
simulator through an outage with a note, while the main listener keeps serving all of
it; the `[status]` branding shown, escaped; nothing internal on the public side. Then
the listener's config: a taken port stops the start with one line, bad values are one-line
config errors, and a reload cannot move it."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.config import load, parse
from monitor.daemon import Daemon, DaemonError
from monitor.schema import ConfigError
from monitor.simulator import Simulator
from tests.loopback import free_port
from tests.monitor.web.rig import (
    API_KEY,
    PRIVATE,
    config,
    note_and_ack,
    open_critical,
    recover_and_resolve,
    running,
)

pytestmark = [pytest.mark.slow]

TITLE = "Mail <script>alert(1)</script>"
URL = "https://status.example.com"
LOGO = "https://cdn.example.com/logo.png"
SUPPORT = "https://support.example.com/help?a=1&b=2"
PUBLIC_ONLY_MISSING = (
    ("GET", "/api/v1/status"), ("GET", "/metrics"), ("GET", "/events"),
    ("GET", "/incidents/1"), ("GET", "/api/v1/incidents"), ("POST", "/-/reload"),
    ("GET", "/api/v1/openapi.json"), ("GET", "/readyz"), ("POST", "/api/v1/incidents/1/ack"),
)  # fmt: skip


@dataclass
class Page:
    status: int
    content_type: str
    headers: dict[str, str]
    text: str


def _status_toml(port: int) -> str:
    return (
        f'title = {json.dumps(TITLE)}\nurl = "{URL}"\nlogo_url = "{LOGO}"\n'
        f'listen = "127.0.0.1:{port}"\n'
        f'links = [{{ name = "Support & help", url = "{SUPPORT}" }}]\n'
    )


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


async def _first_status_event(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """The data of the first `status` event on the stream at `url`."""
    async with http.get(url) as r:
        assert r.status == 200 and r.content_type == "text/event-stream"
        event = None
        for _ in range(1000):  # lines
            line = (await asyncio.wait_for(r.content.readline(), 30)).decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: ") and event == "status":
                data: dict[str, Any] = json.loads(line[len("data: ") :])
                return data
        raise AssertionError("no status event in 1000 lines")


async def test_the_public_listener_serves_only_the_public_pages(tmp_path: Path) -> None:
    port = free_port()
    public_text: list[str] = []
    async with running(tmp_path, _status_toml(port)) as (d, sim), aiohttp.ClientSession() as http:
        pub = f"http://127.0.0.1:{port}"
        main = f"http://127.0.0.1:{d.http_port}"
        assert d.http_port != port

        async def get(base: str, path: str, status: int = 200) -> Page:
            async with http.get(base + path) as r:
                assert r.status == status, (base, path, r.status)
                page = Page(r.status, r.content_type, dict(r.headers), await r.text())
            public_text.append(page.text)  # only public routes are read with get()
            return page

        ident = await open_critical(d, sim)
        await note_and_ack(d, ident)

        for base in (pub, main):
            page = await get(base, "/status")
            html = page.text
            assert page.content_type == "text/html"
            assert "Content-Security-Policy" in page.headers
            assert "<script>alert(1)" not in html
            assert "Mail &lt;script&gt;alert(1)&lt;/script&gt;" in html
            assert f'src="{LOGO}"' in html
            assert 'href="https://support.example.com/help?a=1&amp;b=2"' in html
            assert "Support &amp; help" in html
            assert f'id="incident-{ident}"' in html and "identified" in html

            feed = await get(base, "/history.atom")
            assert feed.content_type == "application/atom+xml"
            assert f"{URL}/history.atom" in feed.text

            summary = json.loads((await get(base, "/api/v2/summary.json")).text)
            assert summary["page"]["name"] == TITLE and summary["page"]["url"] == URL
            assert summary["status"]["indicator"] == "critical"

            assert (await get(base, "/healthz")).status == 200

            event = await _first_status_event(http, base + "/status/events")
            assert event["indicator"] == "critical"
            assert set(event["components"]) == {"simulated", "simulated.api", "simulated.smtp"}
            assert not {"store_behind", "at", "revisions"} & set(event)  # the web view's
            public_text.append(json.dumps(event))

        for name in ("status.js", "style.css"):
            assert (await get(pub, f"/static/{name}")).content_type in (
                "text/javascript",
                "text/css",
            )
        root = await get(pub, "/")  # the public listener's / is the status page
        assert "Mail &lt;script&gt;" in root.text

        for method, path in PUBLIC_ONLY_MISSING:
            async with http.request(method, pub + path) as r:
                assert r.status == 404, (method, path, r.status)
                assert API_KEY not in await r.text()
        # the main listener still serves every one of them
        for method, path in PUBLIC_ONLY_MISSING:
            if path == "/events":
                event = await _first_status_event(http, main + path)
                assert "store_behind" in event  # the web view's: the store writer's lag
                assert event["revisions"][str(ident)].startswith("acknowledged:"), event
                continue
            if path.endswith("/ack"):
                path = f"/api/v1/incidents/{ident}/ack"
            if path == "/incidents/1":
                path = f"/incidents/{ident}"
            async with http.request(method, main + path) as r:
                assert r.status != 404, (method, path, r.status)
                assert r.status < 500, (method, path, r.status, await r.text())

        await recover_and_resolve(d, sim, ident)
        resolved = await get(pub, "/status")
        assert 'class="badge is-resolved"' in resolved.text
        for base in (pub, main):
            await get(base, "/api/v2/incidents.json")
            await get(base, "/history.atom")

        # a reload that moves the public listener is refused, named; the listener stays
        assert d.config_path is not None
        _replace(Path(d.config_path), f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}")
        refused = await d.reload("test")
        assert not refused.applied and "status.listen changed" in refused.message
        assert (await get(pub, "/healthz")).status == 200

    text = "\n".join(public_text)
    for private in PRIVATE:
        assert private not in text, private


async def test_a_taken_status_listen_port_stops_the_start_with_one_line(tmp_path: Path) -> None:
    sim = Simulator(tls=False, api_key=API_KEY, smtp_password=API_KEY)
    await sim.start()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = config(sim, tmp_path, f'listen = "127.0.0.1:{port}"\n')
        d = Daemon(load(path), config_path=path)
        try:
            with pytest.raises(DaemonError) as err:
                await d.start()
            message = str(err.value)
            assert "\n" not in message and message.startswith("status.listen:"), message
            assert f"127.0.0.1:{port}" in message
            assert d.http_port is None  # the main listener was closed again
        finally:
            await d.stop()
            await sim.stop()


def _settings(**status: Any) -> Any:
    return parse(
        {
            "services": [
                {"name": "s", "probes": [{"type": "http", "name": "p", "url": "http://x/"}]}
            ],
            "status": status,
        }
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("listen", "nope"),
        ("listen", "127.0.0.1:99999"),
        ("logo_url", "javascript:alert(1)"),
        ("url", "javascript:alert(1)"),
        ("title", ""),
        ("links", [{"name": "x", "url": "javascript:alert(1)"}]),
        ("links", [{"name": "", "url": "/x"}]),
    ],
)
def test_bad_status_fields_are_one_line_config_errors(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as err:
        _settings(**{field: value})
    message = str(err.value)
    assert "\n" not in message.strip(), message
    assert f"status.{field}" in message, message


def test_the_status_table_parses() -> None:
    s = _settings(listen="[::1]:8080", logo_url="/static/favicon.svg",
                  links=[{"name": "Support", "url": "https://x.example/"}])  # fmt: skip
    assert s.status.host_port == ("::1", 8080)
    assert _settings().status.host_port is None
