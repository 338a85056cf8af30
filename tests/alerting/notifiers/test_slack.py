"""Slack incoming webhook against a loopback receiver that answers like Slack."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from alerting.notifiers import NOTIFIERS
from alerting.notifiers.base import TransportError
from alerting.notifiers.slack import SlackConfig
from monitor.clock import FakeClock

HOOK = "/services/T00000000/B00000000/aBcDeFgHiJkLmNoPqRsTuVwX"


async def slack(req: Any) -> web.Response:
    if req.path != HOOK:
        return web.Response(status=404, text="no_service")
    body = req.json()
    if not body.get("text") and not body.get("blocks"):
        return web.Response(status=400, text="no_text")
    for block in body.get("blocks", []):
        if block.get("type") not in ("section", "context", "header", "divider"):
            return web.Response(status=400, text="invalid_blocks")
        text = block.get("text", {})
        if text and (text.get("type") not in ("mrkdwn", "plain_text") or len(text["text"]) > 3000):
            return web.Response(status=400, text="invalid_blocks")
    return web.Response(status=200, text="ok")


def notifier(url: str, session: Any, clock: FakeClock) -> Any:
    n = NOTIFIERS["slack"](SlackConfig(name="slack", webhook_url=SecretStr(url)), session, clock)
    n.validate()
    return n


@pytest.mark.parametrize(
    "event", ["trigger", "update", "acknowledge", "recover", "resolve"], ids=str
)
async def test_every_event_posts_text_and_blocks(
    serve: Any, session: Any, clock: FakeClock, make_item: Any, event: str
) -> None:
    rx = await serve(slack)
    await notifier(rx.url + HOOK, session, clock).send(make_item(event, text="x" * 5000))
    body = rx.requests[0].json()
    assert body["text"] == f"[critical] sparkpost-us unavailable ({event})"
    assert "sparkpost-us" in body["blocks"][2]["elements"][0]["text"]


async def test_invalid_payload_is_permanent_and_hook_path_hidden(
    serve: Any, session: Any, clock: FakeClock, make_item: Any
) -> None:
    rx = await serve(slack)
    rx.then(400, f"invalid_payload for {HOOK}")
    with pytest.raises(TransportError) as err:
        await notifier(rx.url + HOOK, session, clock).send(make_item())
    assert err.value.permanent
    assert "aBcDeFgH" not in str(err.value)


@pytest.mark.parametrize(
    ("status", "permanent"), [(201, True), (429, False), (500, False), (410, True)], ids=str
)
async def test_anything_but_200_fails(
    serve: Any, session: Any, clock: FakeClock, make_item: Any, status: int, permanent: bool
) -> None:
    rx = await serve(slack)
    rx.then(status, "ok" if status == 201 else "channel_is_archived")
    with pytest.raises(TransportError) as err:
        await notifier(rx.url + HOOK, session, clock).send(make_item())
    assert err.value.permanent is permanent
