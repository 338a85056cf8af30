"""Generic webhook: a receiver that verifies the HMAC signature before accepting."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from aiohttp import web

from alerting.notifiers import NOTIFIERS
from alerting.notifiers.base import TransportError
from alerting.notifiers.webhook import SCHEMA, WebhookConfig
from monitor.clock import FakeClock

SECRET = "whsec-0123456789abcdef"


async def verifying(req: Any) -> web.Response:
    """What the README tells a receiver to do: HMAC the raw body, compare in constant time."""
    expected = "sha256=" + hmac.new(SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    given = req.headers.get("X-Availmon-Signature", "")
    if not hmac.compare_digest(expected, given):
        return web.Response(status=401, text="bad signature")
    body = json.loads(req.body)
    if body.get("schema") != SCHEMA or not isinstance(body.get("incident"), dict):
        return web.Response(status=422, text="unknown schema")
    return web.Response(status=204)


def notifier(url: str, session: Any, clock: FakeClock, **kw: Any) -> Any:
    return NOTIFIERS["webhook"](WebhookConfig(name="hook", url=url, **kw), session, clock)


async def test_signed_delivery_is_accepted_and_documented_fields_present(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(verifying)
    n = notifier(rx.url + "/in", session, clock, secret=SECRET, headers={"X-Team": "sre"})
    await n.send(make_item("acknowledge", 5, acknowledged_by="alice"))
    (req,) = rx.requests
    body = req.json()
    assert body["schema"] == "availmon.notification/v1"
    assert (body["id"], body["notifier"], body["seq"], body["event"]) == (
        5,
        "hook",
        5,
        "acknowledge",
    )
    assert body["incident"]["acknowledged_by"] == "alice"
    assert {"tier", "summary", "text", "at", "vantage"} <= body.keys()
    assert req.headers["X-Availmon-Event"] == "acknowledge"
    assert req.headers["X-Availmon-Timestamp"] == str(int(clock.wall()))
    assert req.headers["X-Team"] == "sre"


async def test_wrong_secret_is_rejected_permanently(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(verifying)
    with pytest.raises(TransportError) as err:
        await notifier(rx.url, session, clock, secret="not-the-secret").send(make_item())
    assert err.value.permanent
    assert "HTTP 401" in err.value.message
    assert "not-the-secret" not in str(err.value)


async def test_no_secret_means_no_signature_header(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(verifying)
    with pytest.raises(TransportError):
        await notifier(rx.url, session, clock).send(make_item())
    assert "X-Availmon-Signature" not in rx.requests[0].headers


async def test_server_error_is_retryable(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(verifying)
    rx.then(502, "bad gateway")
    n = notifier(rx.url, session, clock, secret=SECRET)
    with pytest.raises(TransportError) as err:
        await n.send(make_item())
    assert not err.value.permanent
    await n.send(make_item())
    # a retry is the same delivery: same id, byte-identical body
    assert rx.requests[0].body == rx.requests[1].body
