"""PagerDuty Events v2 against a loopback receiver that rejects what PagerDuty rejects."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from alerting.notifiers import NOTIFIERS
from alerting.notifiers.base import TransportError
from alerting.notifiers.pagerduty import PagerDutyConfig, PagerDutyNotifier
from monitor.clock import FakeClock
from monitor.schema import ConfigError

KEY = "R0ut1ngKeyR0ut1ngKeyR0ut1ngKey01"  # 32 characters, like an integration key
SEVERITIES = {"critical", "error", "warning", "info"}


def pagerduty_errors(event: Any) -> list[str]:
    """The checks the Events API v2 makes before answering 202 (documented constraints)."""
    errors = []
    if not isinstance(event, dict):
        return ["Event object is invalid"]
    if not re.fullmatch(r"[A-Za-z0-9]{32}", str(event.get("routing_key", ""))):
        errors.append("'routing_key' is invalid")
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append("'event_action' is invalid")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("'dedup_key' must be at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append("'dedup_key' is required for acknowledge and resolve")
    if action == "trigger":
        p = event.get("payload")
        if not isinstance(p, dict):
            errors.append("'payload' is missing")
        else:
            if not p.get("summary") or len(p["summary"]) > 1024:
                errors.append("'payload.summary' is missing or too long")
            if not p.get("source"):
                errors.append("'payload.source' is missing")
            if p.get("severity") not in SEVERITIES:
                errors.append("'payload.severity' is invalid")
            if "timestamp" in p:
                try:
                    datetime.fromisoformat(p["timestamp"])
                except (TypeError, ValueError):
                    errors.append("'payload.timestamp' is invalid")
            if "custom_details" in p and not isinstance(p["custom_details"], dict):
                errors.append("'payload.custom_details' is invalid")
    return errors


async def pagerduty(req: Any) -> web.Response:
    try:
        event = req.json()
    except ValueError:
        return web.json_response({"status": "invalid event", "message": "bad JSON"}, status=400)
    errors = pagerduty_errors(event)
    if errors:
        return web.json_response(
            {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
            status=400,
        )
    return web.json_response(
        {"status": "success", "message": "Event processed", "dedup_key": event.get("dedup_key")},
        status=202,
    )


def notifier(url: str, session: aiohttp.ClientSession, clock: FakeClock, **kw: Any) -> Any:
    cfg = PagerDutyConfig(name="pd", routing_key=kw.pop("key", KEY), url=url, **kw)
    return NOTIFIERS["pagerduty"](cfg, session, clock)


async def test_trigger_carries_every_field_pagerduty_needs(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(pagerduty)
    n = notifier(rx.url + "/v2/enqueue", session, clock, severity="critical")
    n.validate()
    await n.send(make_item("trigger"))
    (req,) = rx.requests
    assert req.path == "/v2/enqueue"
    body = req.json()
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "availmon/sparkpost-us/7"
    p = body["payload"]
    assert (p["source"], p["severity"], p["component"], p["group"], p["class"]) == (
        "vp-1", "critical", "sparkpost-us", "availmon", "unavailable",
    )  # fmt: skip
    assert p["timestamp"] == "2025-11-23T10:40:00.000Z"
    assert p["custom_details"]["unavailable_seconds"] == 30
    assert "acknowledged_by" not in p["custom_details"]  # None values left out


async def test_update_retriggers_with_the_same_dedup_key(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(pagerduty)
    n = notifier(rx.url, session, clock)
    await n.send(make_item("trigger", 1))
    await n.send(make_item("update", 2, summary="still unavailable: 300 s"))
    first, second = (r.json() for r in rx.requests)
    assert second["event_action"] == "trigger"
    assert second["dedup_key"] == first["dedup_key"]
    assert second["payload"]["summary"] == "still unavailable: 300 s"


@pytest.mark.parametrize("event", ["acknowledge", "resolve"], ids=["ack", "resolve"])
async def test_follow_up_carries_only_key_action_and_dedup(
    serve: Any, session: Any, clock: FakeClock, make_item: Any, event: str
) -> None:
    rx = await serve(pagerduty)
    await notifier(rx.url, session, clock).send(make_item(event, 3))
    assert rx.requests[0].json() == {
        "routing_key": KEY,
        "event_action": event,
        "dedup_key": "availmon/sparkpost-us/7",
    }


async def test_recover_sends_nothing(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(pagerduty)
    await notifier(rx.url, session, clock).send(make_item("recover", 4))
    assert rx.requests == []


async def test_long_summary_and_service_stay_within_limits(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(pagerduty)
    item = make_item("trigger", summary="x" * 5000, service="s" * 300)
    await notifier(rx.url, session, clock).send(item)  # the receiver would answer 400
    body = rx.requests[0].json()
    assert len(body["payload"]["summary"]) == 1024
    assert len(body["dedup_key"]) == 255


async def test_receiver_rejection_is_permanent_and_hides_the_key(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    async def echoing(req: Any) -> web.Response:
        return web.json_response(
            {"status": "invalid event", "errors": [f"bad key {req.json()['routing_key']}"]},
            status=400,
        )

    rx = await serve(echoing)
    bad_key = "short-key-0123456789"
    with pytest.raises(TransportError) as err:
        await notifier(rx.url, session, clock, key=bad_key).send(make_item())
    assert err.value.permanent
    assert bad_key not in str(err.value)


async def test_fake_pagerduty_rejects_an_invalid_event(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(pagerduty)
    # a 31-character key gets past no validation but PagerDuty's own
    with pytest.raises(TransportError) as err:
        await notifier(rx.url, session, clock, key=KEY[:-1]).send(make_item())
    assert err.value.permanent
    assert "routing_key" in err.value.message


async def test_rate_limit_and_server_errors_are_retryable(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(pagerduty)
    rx.then(429, '{"status":"throttle event"}', {"Retry-After": "20"})
    rx.then(503, "try later")
    n = notifier(rx.url, session, clock)
    with pytest.raises(TransportError) as first:
        await n.send(make_item())
    with pytest.raises(TransportError) as second:
        await n.send(make_item())
    await n.send(make_item())  # the third try goes through
    assert (first.value.permanent, first.value.retry_after) == (False, 20.0)
    assert (second.value.permanent, second.value.retry_after) == (False, None)
    assert len(rx.requests) == 3


@pytest.mark.parametrize(
    "key", ["too-short", "-" * 32, "a b" * 11], ids=["short", "symbols", "space"]
)
def test_validate_wants_a_32_character_key(key: str) -> None:
    cfg = PagerDutyConfig(name="pd", routing_key=SecretStr(key))
    n = PagerDutyNotifier(cfg, None, FakeClock())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"notifiers\.pd\.routing_key"):
        n.validate()
