"""Alertmanager notifier against a loopback receiver that checks the API v2 alert shape;
the real binary is exercised in tests/alerting/test_alertmanager_real.py."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web

from alerting.notifiers import NOTIFIERS
from alerting.notifiers.alertmanager import AlertmanagerConfig, AlertmanagerNotifier
from alerting.notifiers.base import Restorable, TransportError
from monitor.clock import FakeClock


async def alertmanager(req: Any) -> web.Response:
    if req.path != "/api/v2/alerts":
        return web.Response(status=404)
    alerts = req.json()
    if not isinstance(alerts, list):
        return web.json_response("alerts must be an array", status=400)
    for a in alerts:
        labels = a.get("labels")
        if not isinstance(labels, dict) or not labels.get("alertname"):
            return web.json_response("labels.alertname required", status=400)
        if any(
            not isinstance(v, str) for v in [*labels.values(), *a.get("annotations", {}).values()]
        ):
            return web.json_response("label and annotation values must be strings", status=400)
        for key in ("startsAt", "endsAt"):
            if key in a:
                datetime.fromisoformat(a[key])  # RFC 3339, else the handler errors (500)
    return web.Response(status=200)


def notifier(url: str, session: Any, clock: FakeClock, **kw: Any) -> AlertmanagerNotifier:
    cfg = AlertmanagerConfig(name="am", url=url, resend_every_seconds=60, **kw)
    n = NOTIFIERS["alertmanager"](cfg, session, clock)
    assert isinstance(n, AlertmanagerNotifier)
    return n


def ends(req: Any, i: int = 0) -> float:
    return datetime.fromisoformat(req.json()[i]["endsAt"]).timestamp()


async def test_firing_alert_expires_after_four_resend_periods(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(alertmanager)
    n = notifier(rx.url, session, clock, labels={"team": "sre", "incident_id": "spoof"})
    try:
        await n.send(make_item("trigger"))
        (req,) = rx.requests
        (alert,) = req.json()
        assert alert["labels"] == {
            "alertname": "AvailmonCriticalIssue", "service": "sparkpost-us",
            "severity": "critical", "incident_id": "7", "team": "sre",
        }  # fmt: skip
        assert alert["startsAt"] == "2025-11-23T10:40:00.000Z"
        assert ends(req) == clock.wall() + 240
        assert alert["annotations"]["vantage"] == "vp-1"
    finally:
        await n.close()


@pytest.mark.parametrize("event", ["update", "acknowledge", "recover"], ids=str)
async def test_non_resolving_events_keep_the_alert_firing_with_same_labels(
    serve: Any, session: Any, clock: FakeClock, make_item: Any, event: str
) -> None:
    rx = await serve(alertmanager)
    n = notifier(rx.url, session, clock)
    try:
        await n.send(make_item("trigger", 1))
        clock.advance(30)
        await n.send(make_item(event, 2, state="acknowledged", acknowledged_by="alice"))
        first, second = (r.json()[0] for r in rx.requests)
        assert first["labels"] == second["labels"]
        assert ends(rx.requests[1]) == clock.wall() + 240
        assert second["annotations"]["acknowledged_by"] == "alice"
        assert list(n.active) == ["availmon/sparkpost-us/7"]
    finally:
        await n.close()


async def test_resolve_ends_now_and_stops_resending(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(alertmanager)
    n = notifier(rx.url, session, clock)
    try:
        await n.send(make_item("trigger", 1))
        await n.send(make_item("resolve", 2, state="resolved"))
        assert ends(rx.requests[1]) == clock.wall()
        assert n.active == {}
        assert await n.resend_active() == 0
        assert len(rx.requests) == 2
    finally:
        await n.close()


async def test_resend_reposts_every_active_alert(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(alertmanager)
    n = notifier(rx.url, session, clock)
    try:
        await n.send(make_item("trigger", 1, incident_id=7))
        await n.send(make_item("trigger", 1, incident_id=8, severity="non_critical"))
        clock.advance(60)
        assert await n.resend_active() == 2
        resent = rx.requests[-1].json()
        assert {a["labels"]["alertname"] for a in resent} == {
            "AvailmonCriticalIssue", "AvailmonNonCriticalIssue",
        }  # fmt: skip
        assert ends(rx.requests[-1], 1) == clock.wall() + 240
    finally:
        await n.close()


async def test_background_task_resends_until_resolved(
    serve: Any, session: Any, make_item: Any
) -> None:
    rx = await serve(alertmanager)
    cfg = AlertmanagerConfig(name="am", url=rx.url, resend_every_seconds=5)
    n = AlertmanagerNotifier(cfg, session, FakeClock())
    # the config allows 5 s at least; bypass validation to keep the test short
    n.config = cfg.model_copy(update={"resend_every_seconds": 0.05})
    try:
        await n.send(make_item("trigger", 1))
        for _ in range(200):  # bounded: ~10 s at worst
            if len(rx.requests) >= 3:
                break
            await asyncio.sleep(0.05)
        assert len(rx.requests) >= 3
        assert all(r.json()[0]["labels"]["incident_id"] == "7" for r in rx.requests)
    finally:
        await n.close()


async def test_restore_rebuilds_active_alerts_after_restart(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(alertmanager)
    n = notifier(rx.url, session, clock)
    assert isinstance(n, Restorable)
    sent = [
        replace(make_item("trigger", 1, incident_id=7, notifier="am"), state="sent"),
        replace(make_item("trigger", 1, incident_id=8, notifier="am"), state="sent"),
        replace(make_item("resolve", 2, incident_id=8, notifier="am"), state="sent"),
        replace(make_item("trigger", 1, incident_id=9, notifier="other"), state="sent"),
    ]
    try:
        n.restore(sent)
        assert list(n.active) == ["availmon/sparkpost-us/7"]
        for _ in range(200):  # the restored alert is re-posted at once, in the background
            if rx.requests:
                break
            await asyncio.sleep(0.02)
        assert [a["labels"]["incident_id"] for a in rx.requests[0].json()] == ["7"]
    finally:
        await n.close()


async def test_rejected_alert_is_permanent_and_not_remembered(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(alertmanager)
    rx.then(400, "bad alert")
    n = notifier(rx.url, session, clock)
    with pytest.raises(TransportError) as err:
        await n.send(make_item("trigger"))
    assert err.value.permanent
    assert n.active == {}
    await n.close()
