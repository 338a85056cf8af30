"""The Statuspage-compatible JSON (`/api/v2/*.json`, monitor/statuspage.py) of a real
daemon probing the simulator, through an outage: the documented field names and value
sets of Statuspage's public v2 API on every endpoint, the component status and the
overall indicator following the verdicts and the unresolved incidents, maintenance
windows as scheduled maintenances, and nothing internal (notes, evidence, secrets)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alerting.model import Incident, IncidentEvent, IncidentState, Severity
from monitor import statuspage
from monitor.config import load
from monitor.daemon import Daemon
from monitor.demo import simulated_config
from monitor.simulator import Simulator
from monitor.store.base import Store
from tests.loopback import until_value
from tests.monitor.reports.conftest import settings_for
from tests.monitor.reports.conftest import store as store  # the fixture

API_KEY = "sp-secret-key-4711"
NOTE = "internal-note-do-not-publish"
ENDPOINTS = (
    "summary.json", "status.json", "components.json", "incidents.json",
    "incidents/unresolved.json", "scheduled-maintenances.json",
    "scheduled-maintenances/upcoming.json", "scheduled-maintenances/active.json",
)  # fmt: skip
# Statuspage's public v2 API (https://metastatuspage.com/api/v2): fields and value sets
PAGE = {"id", "name", "url", "time_zone", "updated_at"}
COMPONENT = {
    "id", "name", "status", "created_at", "updated_at", "position", "description",
    "showcase", "start_date", "group_id", "page_id", "group", "only_show_if_degraded",
}  # fmt: skip
INCIDENT = {
    "id", "name", "status", "created_at", "updated_at", "monitoring_at", "resolved_at",
    "impact", "shortlink", "started_at", "page_id", "incident_updates", "components",
}  # fmt: skip
UPDATE = {
    "id", "status", "body", "incident_id", "created_at", "updated_at", "display_at",
    "affected_components", "deliver_notifications", "custom_tweet", "tweet_id",
}  # fmt: skip
COMPONENT_STATUS = {
    "operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance",
}  # fmt: skip
INCIDENT_STATUS = {"investigating", "identified", "monitoring", "resolved", "postmortem"}
MAINTENANCE_STATUS = {"scheduled", "in_progress", "verifying", "completed"}
IMPACT = {"none", "minor", "major", "critical", "maintenance"}
INDICATOR = {"none": "All Systems Operational", "minor": "Minor Service Outage",
             "major": "Partial System Outage", "critical": "Major Service Outage"}  # fmt: skip


def _check_shape(name: str, body: dict[str, Any]) -> None:
    assert set(body["page"]) == PAGE, name
    for c in body.get("components", []):
        assert set(c) - {"components"} == COMPONENT, (name, c)
        assert c["status"] in COMPONENT_STATUS
    for i in body.get("incidents", []):
        assert set(i) == INCIDENT, (name, i)
        assert i["status"] in INCIDENT_STATUS and i["impact"] in IMPACT
        for u in i["incident_updates"]:
            assert set(u) == UPDATE and u["status"] in INCIDENT_STATUS
    for m in body.get("scheduled_maintenances", []):
        assert set(m) == INCIDENT | {"scheduled_for", "scheduled_until"}, (name, m)
        assert m["status"] in MAINTENANCE_STATUS and m["impact"] in IMPACT
    if "status" in body:
        assert INDICATOR[body["status"]["indicator"]] == body["status"]["description"]


@pytest.mark.slow
async def test_the_statuspage_json_follows_an_outage_and_shows_nothing_internal(
    tmp_path: Path,
) -> None:
    sim = Simulator(tls=False, api_key=API_KEY, smtp_password=API_KEY)
    await sim.start()
    path = simulated_config(sim, tmp_path, api_key=API_KEY)
    d = Daemon(load(path), config_path=path)
    await d.start()
    seen: list[str] = []
    try:
        base = f"http://127.0.0.1:{d.http_port}/api/v2"
        async with aiohttp.ClientSession() as http:

            async def get(name: str) -> dict[str, Any]:
                async with http.get(f"{base}/{name}") as r:
                    assert r.status == 200, name
                    body: dict[str, Any] = await r.json()
                _check_shape(name, body)
                seen.append(json.dumps(body))
                return body

            async def when(what: str, name: str, test: Any) -> dict[str, Any]:
                async def probe() -> dict[str, Any] | None:
                    body = await get(name)
                    return body if test(body) else None

                return await until_value(what, probe, polls=400)

            def status_of(body: dict[str, Any], ident: str) -> str:
                return next(c["status"] for c in body["components"] if c["id"] == ident)

            healthy = await when(
                "a measured, healthy platform",
                "summary.json",
                lambda b: (
                    b["status"]["indicator"] == "none" and d.last_final.get("simulated") is not None
                ),
            )
            assert {c["id"] for c in healthy["components"]} == {
                "simulated", "simulated.api", "simulated.smtp",
            }  # fmt: skip
            group = next(c for c in healthy["components"] if c["id"] == "simulated")
            assert group["group"] and group["components"] == ["simulated.api", "simulated.smtp"]
            assert healthy["incidents"] == [] and healthy["scheduled_maintenances"] == []

            assert d.store is not None
            now = int(time.time())
            d.store.add_maintenance("simulated", now + 3600, now + 7200, "db upgrade", "test")
            upcoming = await get("scheduled-maintenances/upcoming.json")
            [window] = upcoming["scheduled_maintenances"]
            assert window["status"] == "scheduled" and window["components"][0]["id"] == "simulated"
            assert (await get("scheduled-maintenances/active.json"))["scheduled_maintenances"] == []

            sim.set_fault("api", "5xx", status=503)
            outage = await when(
                "the Critical Issue on the status page",
                "summary.json",
                lambda b: b["status"]["indicator"] == "critical",
            )
            assert status_of(outage, "simulated") == "major_outage"
            assert status_of(outage, "simulated.api") == "major_outage"
            assert status_of(outage, "simulated.smtp") == "operational"
            [incident] = outage["incidents"]
            assert (incident["status"], incident["impact"]) == ("investigating", "critical")
            assert [u["status"] for u in incident["incident_updates"]] == ["investigating"]
            assert incident["components"][0]["id"] == "simulated"
            ident = int(incident["id"])
            assert d.incidents is not None
            await asyncio.to_thread(d.incidents.note, ident, "oncall", NOTE)
            await asyncio.to_thread(d.incidents.ack, ident, "oncall")
            ackd = await get("incidents/unresolved.json")
            assert ackd["incidents"][0]["status"] == "identified"

            sim.set_fault("api", "ok")
            recovered = await when(
                "the recovery",
                "incidents.json",
                lambda b: b["incidents"][0]["status"] == "monitoring",
            )
            assert recovered["incidents"][0]["monitoring_at"] is not None
            after = await get("summary.json")
            assert after["status"]["indicator"] == "critical"  # unresolved: still critical
            assert status_of(after, "simulated.api") == "partial_outage"  # in the last 5 min
            await asyncio.to_thread(
                d.incidents.resolve, ident, "oncall", "vendor fixed a load balancer"
            )
            done = await get("summary.json")
            assert done["incidents"] == []  # the summary lists unresolved ones
            assert done["status"]["indicator"] == "minor"  # the api's outage of minutes ago
            history = (await get("incidents.json"))["incidents"]
            assert history[0]["status"] == "resolved" and history[0]["resolved_at"]
            assert [u["status"] for u in history[0]["incident_updates"]] == [
                "resolved", "monitoring", "identified", "investigating",
            ]  # fmt: skip
            for name in ENDPOINTS:
                await get(name)
        text = "\n".join(seen)
        for private in (NOTE, API_KEY, "oncall", "vendor fixed", "attempt_id", "evidence"):
            assert private not in text, private
    finally:
        await d.stop()
        await sim.stop()


def test_an_incident_whose_opened_event_is_not_stored_yet_has_its_first_update(
    store: Store,
) -> None:
    """The store writer applies an incident's row and its "opened" event as two writes
    (monitor/writer.py): a read between them still shows the incident's first update, with
    the id it keeps once the event is stored."""
    settings = settings_for()
    now = 1_780_000_000.0
    template = Incident(0, "mail", Severity.CRITICAL, IncidentState.OPEN, "unavailable", "", now)
    inc = store.create_incident(template)
    [before] = statuspage.snapshot(settings, store, now + 1).unresolved
    assert [(u["status"], u["id"]) for u in before["incident_updates"]] == [
        ("investigating", f"{inc.id}-0")
    ]
    store.add_event(IncidentEvent(inc.id, now, "opened", {}))
    store.add_event(IncidentEvent(inc.id, now + 5, "note", {"text": "internal"}))
    [after] = statuspage.snapshot(settings, store, now + 6).unresolved
    assert after["incident_updates"] == before["incident_updates"]
    snap = statuspage.snapshot(settings, store, now + 6)
    assert snap.revisions == {inc.id: "open:2"}  # a note changes the page's mark
