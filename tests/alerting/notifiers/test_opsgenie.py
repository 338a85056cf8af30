"""Opsgenie Alert API against a loopback receiver that rejects what Opsgenie rejects."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import unquote

import pytest
from aiohttp import web
from pydantic import SecretStr

from alerting.notifiers import NOTIFIERS
from alerting.notifiers.base import TransportError
from alerting.notifiers.opsgenie import OpsgenieConfig, OpsgenieNotifier
from monitor.clock import FakeClock
from monitor.schema import ConfigError

KEY = "eb243592-faa2-4ba2-a551q-1afdf565c889"
PRIORITIES = {"P1", "P2", "P3", "P4", "P5"}
ACTIONS = {"notes": "note", "acknowledge": None, "close": None}


def _reply(status: int, **extra: Any) -> web.Response:
    body = {"took": 0.01, "requestId": str(uuid.uuid4()), **extra}
    return web.json_response(body, status=status)


def create_errors(body: dict[str, Any]) -> list[str]:
    errors = []
    msg = body.get("message")
    if not isinstance(msg, str) or not msg.strip() or len(msg) > 130:
        errors.append("message: may not be empty and must be at most 130 characters")
    if len(body.get("alias", "")) > 512:
        errors.append("alias: at most 512 characters")
    if "priority" in body and body["priority"] not in PRIORITIES:
        errors.append("priority: must be one of P1..P5")
    if len(body.get("description", "")) > 15000:
        errors.append("description: at most 15000 characters")
    if len(body.get("source", "")) > 100:
        errors.append("source: at most 100 characters")
    tags = body.get("tags", [])
    if len(tags) > 20 or any(not isinstance(t, str) or len(t) > 50 for t in tags):
        errors.append("tags: at most 20 tags of 50 characters")
    details = body.get("details", {})
    if not isinstance(details, dict) or any(not isinstance(v, str) for v in details.values()):
        errors.append("details: must map strings to strings")
    for r in body.get("responders", []):
        if r.get("type") not in ("team", "user", "escalation", "schedule"):
            errors.append("responders: invalid type")
    return errors


async def opsgenie(req: Any) -> web.Response:
    if req.headers.get("Authorization") != f"GenieKey {KEY}":
        return _reply(401, message="Could not authenticate")
    body = req.json()
    parts = req.raw_path.split("?")[0].split("/")
    if req.raw_path.split("?")[0] == "/v2/alerts":
        errors = create_errors(body)
        if errors:
            return _reply(422, message="Request body is not processable", errors=errors)
        return _reply(202, result="Request will be processed")
    # /v2/alerts/{identifier}/{action}: the identifier must be ONE path segment
    if len(parts) != 5 or parts[:3] != ["", "v2", "alerts"] or parts[4] not in ACTIONS:
        return _reply(404, message="not found")
    if req.query.get("identifierType") != "alias":
        return _reply(422, message="identifierType must be alias here")
    if len(unquote(parts[3])) > 512:
        return _reply(422, message="alias too long")
    if parts[4] == "notes" and not body.get("note"):
        return _reply(422, message="note: may not be empty")
    return _reply(202, result="Request will be processed")


def notifier(url: str, session: Any, clock: FakeClock, **kw: Any) -> Any:
    cfg = OpsgenieConfig(name="og", api_key=kw.pop("key", KEY), url=url, **kw)
    return NOTIFIERS["opsgenie"](cfg, session, clock)


async def test_trigger_creates_an_alert_with_alias(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(opsgenie)
    responders = [{"type": "team", "name": "sre"}]
    n = notifier(rx.url, session, clock, priority="P1", responders=responders)
    n.validate()
    await n.send(make_item("trigger", summary="S" * 400))  # clipped to 130
    (req,) = rx.requests
    body = req.json()
    assert req.path == "/v2/alerts"
    assert body["alias"] == "availmon/sparkpost-us/7"
    assert len(body["message"]) == 130
    assert (body["priority"], body["source"], body["entity"]) == ("P1", "vp-1", "sparkpost-us")
    assert body["responders"] == responders
    assert body["details"]["unavailable_seconds"] == "30"


@pytest.mark.parametrize(
    ("event", "action"),
    [("update", "notes"), ("recover", "notes"), ("acknowledge", "acknowledge"),
     ("resolve", "close")],
    ids=["update", "recover", "ack", "resolve"],
)  # fmt: skip
async def test_follow_ups_address_the_alert_by_encoded_alias(
    serve: Any, session: Any, clock: FakeClock, make_item: Any, event: str, action: str
) -> None:
    rx = await serve(opsgenie)
    item = make_item(event, 2, acknowledged_by="alice", resolved_by="bob")
    await notifier(rx.url + "/", session, clock).send(item)
    (req,) = rx.requests
    assert req.raw_path == f"/v2/alerts/availmon%2Fsparkpost-us%2F7/{action}?identifierType=alias"
    body = req.json()
    if action == "notes":
        assert "Unavailable since" in body["note"]
    else:
        assert body["user"] == {"acknowledge": "alice", "resolve": "bob"}[event]


async def test_wrong_key_is_permanent_and_not_echoed(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(opsgenie)
    wrong = "0000-wrong-key-0000"
    with pytest.raises(TransportError) as err:
        await notifier(rx.url, session, clock, key=wrong).send(make_item())
    assert err.value.permanent
    assert "HTTP 401" in err.value.message
    assert wrong not in str(err.value)


async def test_unprocessable_alert_is_permanent(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(opsgenie)
    n = notifier(rx.url, session, clock, responders=[{"type": "squad", "name": "x"}])
    with pytest.raises(TransportError) as err:  # validate() would have refused this config
        await n.send(make_item())
    assert err.value.permanent
    assert "HTTP 422" in err.value.message


async def test_rate_limit_is_retryable(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(opsgenie)
    rx.then(429, "too many", {"Retry-After": "3"})
    with pytest.raises(TransportError) as err:
        await notifier(rx.url, session, clock).send(make_item())
    assert (err.value.permanent, err.value.retry_after) == (False, 3.0)


@pytest.mark.parametrize(
    "responders",
    [[{"type": "squad", "name": "x"}], [{"type": "team"}]],
    ids=["bad-type", "no-identity"],
)
def test_validate_checks_responders(responders: list[dict[str, str]]) -> None:
    cfg = OpsgenieConfig(name="og", api_key=SecretStr(KEY), responders=responders)
    with pytest.raises(ConfigError, match=r"notifiers\.og\.responders\[0\]"):
        OpsgenieNotifier(cfg, None, FakeClock()).validate()  # type: ignore[arg-type]
