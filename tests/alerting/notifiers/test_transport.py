"""The shared HTTP transport: status → ok / retryable / permanent, Retry-After, secrets."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from alerting.notifiers.base import (
    Payload,
    TransportError,
    fit_key,
    parse_retry_after,
    post_json,
)
from monitor.clock import FakeClock

NOW = 1_763_894_400.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("30", 30.0),
        (" 2.5 ", 2.5),
        ("-4", 0.0),
        (format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True), 90.0),
        (format_datetime(datetime.fromtimestamp(NOW - 90, UTC), usegmt=True), 0.0),
        ("soon", None),
        ("inf", None),
        ("", None),
        (None, None),
    ],
    ids=[
        "seconds",
        "fraction",
        "negative",
        "http-date",
        "past-date",
        "junk",
        "inf",
        "empty",
        "absent",
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(400, True), (401, True), (403, True), (404, True), (408, False), (409, True),
     (422, True), (429, False), (500, False), (502, False), (503, False), (301, True)],
    ids=lambda v: str(v),
)  # fmt: skip
async def test_status_mapping(
    serve: Any, session: aiohttp.ClientSession, status: int, permanent: bool
) -> None:
    async def handler(req: Any) -> web.Response:
        headers = {"Location": "http://127.0.0.1:1/elsewhere"} if status == 301 else None
        return web.Response(status=status, text="nope", headers=headers)

    rx = await serve(handler)
    with pytest.raises(TransportError) as err:
        await post_json(session, rx.url + "/x", {"a": 1}, clock=FakeClock(NOW), timeout=5)
    assert err.value.permanent is permanent
    assert f"HTTP {status}" in err.value.message
    assert len(rx.requests) == 1  # a redirect was not followed


async def test_2xx_is_ok_and_body_is_compact_json(
    serve: Any, session: aiohttp.ClientSession
) -> None:
    async def handler(req: Any) -> web.Response:
        return web.Response(status=202, text='{"status":"success"}')

    rx = await serve(handler)
    status, body = await post_json(session, rx.url, {"a": "é"}, clock=FakeClock(NOW), timeout=5)
    assert (status, body) == (202, '{"status":"success"}')
    assert rx.requests[0].body == '{"a":"é"}'.encode()
    assert rx.requests[0].headers["Content-Type"] == "application/json"


async def test_narrowed_ok_set_rejects_other_2xx(
    serve: Any, session: aiohttp.ClientSession
) -> None:
    async def handler(req: Any) -> web.Response:
        return web.Response(status=204)

    rx = await serve(handler)
    with pytest.raises(TransportError) as err:
        await post_json(session, rx.url, {}, clock=FakeClock(NOW), timeout=5, ok=(200,))
    assert err.value.permanent


async def test_429_carries_retry_after(serve: Any, session: aiohttp.ClientSession) -> None:
    async def handler(req: Any) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "17"})

    rx = await serve(handler)
    with pytest.raises(TransportError) as err:
        await post_json(session, rx.url, {}, clock=FakeClock(NOW), timeout=5)
    assert (err.value.permanent, err.value.retry_after) == (False, 17.0)


async def test_connection_refused_is_retryable(session: aiohttp.ClientSession) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransportError) as err:
        await post_json(session, f"http://127.0.0.1:{port}/x", {}, clock=FakeClock(NOW), timeout=5)
    assert not err.value.permanent
    assert "cannot reach http://127.0.0.1" in err.value.message


async def test_timeout_is_retryable(serve: Any, session: aiohttp.ClientSession) -> None:
    release = asyncio.Event()

    async def handler(req: Any) -> web.Response:
        await release.wait()
        return web.Response()

    rx = await serve(handler)
    try:
        with pytest.raises(TransportError) as err:
            await post_json(session, rx.url, {}, clock=FakeClock(NOW), timeout=0.2)
    finally:
        release.set()
    assert not err.value.permanent
    assert "no reply" in err.value.message


async def test_secrets_and_paths_never_in_messages(
    serve: Any, session: aiohttp.ClientSession
) -> None:
    secret = "s3cr3t-token-value"

    async def handler(req: Any) -> web.Response:
        return web.Response(status=403, text=f"bad token {secret} for {req.path}")

    rx = await serve(handler)
    url = f"{rx.url}/hooks/{secret}"
    with pytest.raises(TransportError) as err:
        await post_json(session, url, {}, clock=FakeClock(NOW), timeout=5, secrets=[secret])
    assert secret not in str(err.value)
    assert "***" in err.value.message


def test_fit_key_keeps_short_keys_and_hashes_long_ones() -> None:
    assert fit_key("availmon/a/1", 255) == "availmon/a/1"
    long = "availmon/" + "s" * 300 + "/1"
    fitted = fit_key(long, 255)
    assert len(fitted) == 255
    assert fitted == fit_key(long, 255)  # stable: acknowledge/resolve must find the alert
    assert fitted != fit_key(long[:-1] + "2", 255)


@pytest.mark.parametrize(
    "payload",
    [{"seq": 1}, {"seq": 1, "incident": {"service": "a", "severity": "critical"}}],
    ids=["no-incident", "no-dedup-key"],
)
def test_malformed_payload_is_permanent(payload: dict[str, Any], make_item: Any) -> None:
    item = make_item()
    item.payload = payload
    with pytest.raises(TransportError) as err:
        Payload.of(item)
    assert err.value.permanent
