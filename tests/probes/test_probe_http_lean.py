"""The HTTP probe's lean fresh-connection path against raw servers on 127.0.0.1: the body
framings aiohttp's parser handles, the bytes on the wire, and no connection left open."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import pytest

from probes.base import Outcome, ProbeContext
from probes.http import MAX_BODY
from tests.probes.test_probe_http import Handler, attempt, probe_for, raw_server

MakeCtx = Callable[..., ProbeContext]


def _replying(reply: bytes, *, then_wait: float = 0.0) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        if then_wait:
            await asyncio.sleep(then_wait)

    return handler


CHUNKED_BIG = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"4000\r\n" + b"z" * 0x4000 + b"\r\n" for _ in range(8))
    + b"0\r\n\r\n"
)


@pytest.mark.parametrize(
    ("reply", "outcome", "status", "body_bytes"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", Outcome.OK, 200, 5),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            Outcome.OK,
            200,
            5,
        ),
        (b"HTTP/1.1 200 OK\r\n\r\nuntil the close", Outcome.OK, 200, 15),
        (b"HTTP/1.1 204 No Content\r\n\r\n", Outcome.OK, 204, 0),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nContent-Length: 2\r\n\r\nno",
            Outcome.SERVER_ERROR,
            503,
            2,
        ),
        (CHUNKED_BIG, Outcome.OK, 200, None),
    ],
    ids=[
        "content-length",
        "chunked",
        "close-delimited",
        "204-no-body",
        "interim-100-skipped",
        "chunked-over-max-bounded",
    ],
)
async def test_body_framings(
    make_ctx: MakeCtx, reply: bytes, outcome: Outcome, status: int, body_bytes: int | None
) -> None:
    async with raw_server(_replying(reply)) as base:
        result = await attempt(probe_for(base + "/"), make_ctx())
    assert result.outcome is outcome, result.detail
    assert result.detail["status"] == status
    if body_bytes is None:
        assert MAX_BODY <= result.detail["body_bytes"] <= 8 * 0x4000
    else:
        assert result.detail["body_bytes"] == body_bytes
    assert set(result.detail["phases"]) == {"connect", "processing", "transfer"}


async def test_head_reply_has_no_body(make_ctx: MakeCtx) -> None:
    # the server keeps the connection open: the probe must not wait for 10 body bytes
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    async with raw_server(_replying(reply, then_wait=30)) as base:
        result = await attempt(probe_for(base + "/", method="HEAD"), make_ctx(5.0))
    assert result.outcome is Outcome.OK, result.detail
    assert result.detail["body_bytes"] == 0


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc",
    ],
    ids=["content-length-cut", "chunked-cut"],
)
async def test_body_cut_short_is_server_error(make_ctx: MakeCtx, reply: bytes) -> None:
    async with raw_server(_replying(reply)) as base:
        result = await attempt(probe_for(base + "/"), make_ctx())
    assert result.outcome is Outcome.SERVER_ERROR
    assert result.detail["status"] == 200
    assert result.detail["error"] == "ClientPayloadError"


async def test_garbage_in_body_is_server_error_not_a_hang(make_ctx: MakeCtx) -> None:
    # aiohttp's session path waits for the deadline here (a timeout); the lean one
    # reports the broken body at once
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"not-hex\r\n")
        await writer.drain()
        await asyncio.sleep(30)

    async with raw_server(handler) as base:
        result = await attempt(probe_for(base + "/"), make_ctx(10.0))
    assert result.outcome is Outcome.SERVER_ERROR
    # the two writes may reach the probe in one read on a loaded machine
    assert result.detail["error"] in ("ClientPayloadError", "ClientResponseError")


async def _request_heads(**kwargs: Any) -> dict[bool, list[bytes]]:
    """The request head each path sends for the same config, header lines sorted."""
    heads: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
        body = await reader.readexactly(int(length[0].split(b":")[1])) if length else b""
        heads.append(head + body)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()

    out: dict[bool, list[bytes]] = {}
    userinfo = kwargs.pop("userinfo", "")
    async with raw_server(record) as base:
        for reuse in (False, True):
            url = base.replace("http://", f"http://{userinfo}") + "/a%20b?k=v"
            probe = probe_for(url, reuse_connections=reuse, **kwargs)
            ctx = ProbeContext("same-id", 0, 0, 0.0, 10.0)
            result = await attempt(probe, ctx)
            assert result.outcome is Outcome.OK, result.detail
            request_line, *lines = heads.pop().split(b"\r\n")
            out[reuse] = [request_line, *sorted(lines)]
    return out


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"method": "POST", "body": '{"x": 1}', "headers": {"Authorization": "k"}},
        {"method": "DELETE"},
        {"method": "PUT", "headers": {"Content-Type": "application/json", "User-Agent": "me"}},
        {"userinfo": "user:pw@", "headers": {"Host": "api.example"}},
    ],
    ids=["get", "post-body-auth", "delete-empty", "put-own-headers", "url-credentials-host"],
)
async def test_same_request_bytes_as_aiohttp(kwargs: dict[str, Any]) -> None:
    heads = await _request_heads(**kwargs)
    fresh = [ln for ln in heads[False] if ln.lower() != b"connection: close"]
    # the session path (keep-alive) sends no Connection header; the lean one says close
    assert b"connection: close" in [ln.lower() for ln in heads[False]]
    assert fresh == heads[True]


async def test_url_credentials_with_authorization_header_is_probe_error(
    make_ctx: MakeCtx,
) -> None:
    async with raw_server(_replying(b"HTTP/1.1 200 OK\r\n\r\n")) as base:
        url = base.replace("http://", "http://u:p@") + "/"
        result = await attempt(probe_for(url, headers={"Authorization": "k"}), make_ctx())
    assert result.outcome is Outcome.PROBE_ERROR
    assert result.detail["error"] == "ValueError"


async def test_no_connection_left_open(make_ctx: MakeCtx) -> None:
    """Every ending (reply, garbage, cut body, timeout, refused) closes our socket."""
    replies = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok",
        b"",  # no reply: the attempt times out
    ]
    turn = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal turn
        reply = replies[turn % len(replies)]
        turn += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        # until the probe closes its end: a socket it leaked keeps this one open too
        await reader.read()

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    async with raw_server(handler) as base:
        probe = probe_for(base + "/")
        refused = probe_for("http://127.0.0.1:1/")
        try:
            before = fds()
            outcomes = set()
            for _ in range(3):
                results = await asyncio.gather(
                    *(probe.run(make_ctx(0.5)) for _ in range(len(replies) * 4)),
                    *(refused.run(make_ctx(0.5)) for _ in range(4)),
                )
                outcomes |= {r.outcome for r in results}
            after = fds()
            for _ in range(100):  # the server's handlers see our closes and end
                if after <= before:
                    break
                await asyncio.sleep(0.05)
                after = fds()
        finally:
            await probe.close()
            await refused.close()
    assert outcomes == {Outcome.OK, Outcome.SERVER_ERROR, Outcome.TIMEOUT}
    assert after <= before
