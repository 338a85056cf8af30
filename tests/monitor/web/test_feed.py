"""The status page's Atom feed (`/history.atom`, monitor/web/feed.py) of a real daemon
against the simulator, through an outage and a maintenance window, read by feedparser:
RFC 4287's required elements, one entry per incident and per window with ids that stay
put, the entry following the incident's public status, and nothing internal in it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

import aiohttp
import feedparser
import pytest

from monitor.statuspage import Snapshot
from monitor.web.feed import atom
from tests.loopback import until_value
from tests.monitor.reports.conftest import T
from tests.monitor.web.rig import (
    PRIVATE,
    note_and_ack,
    open_critical,
    recover_and_resolve,
    running,
)

ATOM = "{http://www.w3.org/2005/Atom}"
URL = "https://status.example.com/"
TITLE = "Example Mail & Co"


def _check(body: bytes, title: str = TITLE, base: str = "https://status.example.com") -> Any:
    """Well-formed XML with RFC 4287's required elements; feedparser reads it cleanly."""
    root = ET.fromstring(body)
    assert root.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated"):
        assert root.find(f"{ATOM}{required}") is not None, required
    assert root.find(f"{ATOM}author/{ATOM}name") is not None
    for entry in root.findall(f"{ATOM}entry"):
        for required in ("id", "title", "updated"):
            assert (entry.findtext(f"{ATOM}{required}") or "").strip(), required
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    f = parsed.feed
    assert f.id.startswith("urn:uuid:") and f.title == title and f.updated_parsed
    assert f.author == title
    links = {link.rel: link.href for link in f.links}
    assert links["self"] == f"{base}/history.atom"
    assert links["alternate"] == f"{base}/status"
    for e in parsed.entries:
        assert e.id.startswith("urn:uuid:") and e.updated_parsed and e.title
        assert e.link.startswith(f"{base}/status#")
    return parsed


@pytest.mark.slow
async def test_the_feed_follows_an_incident_and_a_window_and_shows_nothing_internal(
    tmp_path: Path,
) -> None:
    status = f'title = "{TITLE}"\nurl = "{URL}"\n'
    seen: list[bytes] = []
    async with running(tmp_path, status) as (d, sim), aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{d.http_port}/history.atom"

        async def feed() -> Any:
            async with http.get(url) as r:
                assert r.status == 200
                assert r.content_type == "application/atom+xml"
                body = await r.read()
            seen.append(body)
            return _check(body)

        def incident_entries(parsed: Any) -> list[Any]:
            return [e for e in parsed.entries if e.link.split("#")[1].startswith("incident-")]

        async def when(what: str, test: Any) -> Any:
            async def probe() -> Any:
                parsed = await feed()
                return parsed if test(parsed) else None

            return await until_value(what, probe, polls=400)

        empty = await feed()
        assert empty.entries == []

        assert d.store is not None
        now = int(time.time())
        added = await asyncio.to_thread(
            d.store.add_maintenance, "simulated", now + 3600, now + 7200, "db upgrade", "test"
        )
        with_window = await feed()
        [window] = with_window.entries
        assert window.link == f"{URL}status#maintenance-m{added.id}"
        assert "[scheduled]" in window.title and window.tags[0].term == "maintenance"

        ident = await open_critical(d, sim)
        investigating = await when("the incident's entry", lambda p: len(incident_entries(p)) == 1)
        [entry] = incident_entries(investigating)
        assert entry.link.endswith(f"#incident-{ident}")
        assert entry.title.endswith("[investigating]"), entry.title
        assert entry.tags[0].term == "incident-critical"
        assert len(investigating.entries) == 2  # the incident and the window
        again = await feed()
        assert [e.id for e in again.entries] == [e.id for e in investigating.entries]
        assert window.id in {e.id for e in again.entries}  # stable since the first fetch
        assert again.feed.id == empty.feed.id

        await note_and_ack(d, ident)
        identified = await feed()
        [acked] = incident_entries(identified)
        assert acked.id == entry.id and acked.title.endswith("[identified]"), acked.title
        assert acked.updated_parsed >= entry.updated_parsed
        assert "identified" in acked.content[0].value

        await recover_and_resolve(d, sim, ident)
        resolved = await when(
            "the resolved entry",
            lambda p: incident_entries(p)[0].title.endswith("[resolved]"),
        )
        [done] = incident_entries(resolved)
        assert done.id == entry.id and len(resolved.entries) == 2
        assert done.updated_parsed > entry.updated_parsed
        assert done.published_parsed == entry.published_parsed
        content = done.content[0].value
        for status_word in ("investigating", "identified", "monitoring", "resolved"):
            assert status_word in content, status_word
        assert resolved.feed.updated_parsed >= done.updated_parsed
    text = b"\n".join(seen).decode()
    for private in PRIVATE:
        assert private not in text, private


def _snapshot(name: str) -> Snapshot:
    now = T("2026-04-02T10:00:00Z")
    incident = {
        "id": "7", "name": f"Major outage of {name}", "status": "resolved",
        "impact": "critical", "created_at": "2026-04-02T09:00:00.000Z",
        "updated_at": "2026-04-02T09:30:00.000Z",
        "incident_updates": [
            {"display_at": "2026-04-02T09:30:00.000Z", "status": "resolved", "body": "Fixed."},
            {"display_at": "2026-04-02T09:00:00.000Z", "status": "investigating", "body": "x"},
        ],
    }  # fmt: skip
    window = {
        "id": "m3", "name": "Scheduled maintenance of every service", "status": "scheduled",
        "created_at": "2026-04-03T00:00:00.000Z", "updated_at": "2026-04-02T10:00:00.000Z",
        "scheduled_for": "2026-04-03T00:00:00.000Z", "scheduled_until": "2026-04-03T01:00:00.000Z",
    }  # fmt: skip
    return Snapshot(now, ZoneInfo("UTC"), name, "", [], [incident], [window])


def test_a_title_with_markup_or_a_control_character_still_makes_a_well_formed_feed() -> None:
    title = "Mail <b>&</b> \x01co\x1f"  # TOML's \u0001 makes such a title
    body = atom(_snapshot(title), "http://127.0.0.1:8080", title)
    parsed = _check(body, "Mail <b>&</b> co", "http://127.0.0.1:8080")
    assert [e.title for e in parsed.entries] == [
        "Scheduled maintenance of every service [scheduled]",
        "Major outage of Mail <b>&</b> co [resolved]",
    ]
    assert [e.link.split("#")[1] for e in parsed.entries] == ["maintenance-m3", "incident-7"]
    # the ids depend on the page and the entry only
    again = feedparser.parse(atom(_snapshot(title), "http://127.0.0.1:8080", title))
    assert [e.id for e in again.entries] == [e.id for e in parsed.entries]
    other = feedparser.parse(atom(_snapshot(title), "https://elsewhere.example", title))
    assert not {e.id for e in other.entries} & {e.id for e in parsed.entries}
    assert parsed.entries[1].content[0].value.splitlines() == [
        "2026-04-02T09:30:00.000Z — resolved: Fixed.",
        "2026-04-02T09:00:00.000Z — investigating: x",
    ]
