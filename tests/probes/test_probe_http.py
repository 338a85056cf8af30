"""The HTTP probe against real servers on 127.0.0.1: aiohttp apps and raw asyncio servers."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr, ValidationError

from monitor.clock import SystemClock
from probes import PROBES
from probes.base import Outcome, ProbeConfigError, ProbeContext, Result
from probes.http import MAX_BODY, HttpProbe, HttpProbeConfig

SECRET = "sk-live-0123456789abcdef"
MakeCtx = Callable[..., ProbeContext]


async def _forever() -> None:
    await asyncio.Event().wait()


def _app() -> web.Application:
    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status")

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "method": request.method,
                "headers": dict(request.headers),
                "body": (await request.read()).decode(),
            }
        )

    async def hang(request: web.Request) -> web.Response:
        await _forever()
        raise AssertionError("unreachable")

    async def slow_body(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        resp.content_length = 10_000
        await resp.prepare(request)
        await resp.write(b"x" * 100)
        await _forever()
        return resp

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"y" * (4 * MAX_BODY))

    app = web.Application()
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/hang", hang)
    app.router.add_get("/slow-body", slow_body)
    app.router.add_get("/big", big)
    return app


@asynccontextmanager
async def web_server(tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """An aiohttp app on an ephemeral loopback port; yields its base URL."""
    runner = web.AppRunner(_app(), shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A raw TCP server running `handler` per connection; yields an http:// base URL."""
    tasks: set[asyncio.Task[None]] = set()

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.sleep(0)


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"\x00\x17SSH-2.0-OpenSSH not http at all\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.2)


async def _close_before_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    sock = writer.get_extra_info("socket")
    # linger 0: close() sends RST instead of FIN
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _forever()


async def _not_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\nthis port speaks plain text\r\n")
    await writer.drain()
    await asyncio.sleep(0.2)


def probe_for(url: str, *, lean: bool | None = None, **kwargs: Any) -> HttpProbe:
    """The registered probe; `lean` False forces aiohttp's ClientSession for a fresh
    connection (the path taken when probes/compat_aiohttp.py turns the lean one off)."""
    config = HttpProbeConfig(name="api", url=url, **kwargs)
    probe = (
        PROBES["http"](config, SystemClock())
        if lean is None
        else HttpProbe(config, SystemClock(), lean=lean)
    )
    assert isinstance(probe, HttpProbe)
    return probe


@pytest.fixture(params=[True, False], ids=["lean", "session"])
def lean(request: pytest.FixtureRequest) -> bool:
    """The outcome table holds on both fresh-connection paths."""
    return bool(request.param)


async def attempt(probe: HttpProbe, ctx: ProbeContext) -> Result:
    try:
        return await probe.run(ctx)
    finally:
        await probe.close()


def test_registered() -> None:
    assert PROBES["http"] is HttpProbe


# ------------------------------------------------------------------- the table, one row each


@pytest.mark.parametrize(
    ("path", "kwargs", "outcome", "status"),
    [
        ("/status/200", {}, Outcome.OK, 200),
        ("/status/204", {}, Outcome.OK, 204),
        ("/status/500", {}, Outcome.SERVER_ERROR, 500),
        ("/status/503", {}, Outcome.SERVER_ERROR, 503),
        ("/status/401", {}, Outcome.CLIENT_ERROR, 401),
        ("/status/420", {}, Outcome.CLIENT_ERROR, 420),
        ("/status/429", {}, Outcome.CLIENT_ERROR, 429),
        ("/status/302", {}, Outcome.CLIENT_ERROR, 302),
        ("/status/404", {"expect_status": [404]}, Outcome.OK, 404),
        ("/status/200", {"expect_status": [201]}, Outcome.CLIENT_ERROR, 200),
    ],
    ids=[
        "2xx-ok",
        "204-ok",
        "5xx-server_error",
        "503-server_error",
        "4xx-client_error",
        "420-quota-rate_limited",
        "429-rate_limited",
        "3xx-not-followed-client_error",
        "expect_status-404-ok",
        "unexpected-2xx-client_error",
    ],
)
async def test_status_table(
    make_ctx: MakeCtx, lean: bool, path: str, kwargs: dict[str, Any], outcome: Outcome, status: int
) -> None:
    async with web_server() as base:
        result = await attempt(probe_for(base + path, lean=lean, **kwargs), make_ctx())
    assert result.outcome is outcome
    assert result.detail["status"] == status
    assert result.detail.get("rate_limited", False) is (status in (420, 429))


async def test_no_headers_by_deadline_is_timeout(make_ctx: MakeCtx, lean: bool) -> None:
    async with web_server() as base:
        result = await attempt(probe_for(base + "/hang", lean=lean), make_ctx(0.3))
    assert result.outcome is Outcome.TIMEOUT
    assert result.detail["error"] == "TimeoutError"
    assert "status" not in result.detail


async def test_stalled_body_is_timeout(make_ctx: MakeCtx, lean: bool) -> None:
    async with web_server() as base:
        # long enough for the headers to arrive even on a loaded machine
        result = await attempt(probe_for(base + "/slow-body", lean=lean), make_ctx(1.0))
    assert result.outcome is Outcome.TIMEOUT
    assert result.detail["status"] == 200  # headers came, the body did not
    assert "processing" in result.detail["phases"]


async def test_silent_server_is_timeout(make_ctx: MakeCtx, lean: bool) -> None:
    async with raw_server(_silent) as base:
        result = await attempt(probe_for(base + "/", lean=lean), make_ctx(0.3))
    assert result.outcome is Outcome.TIMEOUT


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (_garbage, "ClientResponseError"),
        (_close_before_reply, "ServerDisconnectedError"),
        (_reset, None),
    ],
    ids=["garbage-bytes-server_error", "closed-before-reply-server_error", "reset-server_error"],
)
async def test_broken_server_is_server_error(
    make_ctx: MakeCtx, lean: bool, handler: Handler, error: str | None
) -> None:
    async with raw_server(handler) as base:
        result = await attempt(probe_for(base + "/", lean=lean), make_ctx())
    assert result.outcome is Outcome.SERVER_ERROR
    if error is not None:
        assert result.detail["error"] == error
    assert result.detail["message"]


@pytest.mark.parametrize("handler", [_close_before_reply, _reset], ids=["closed", "reset"])
async def test_one_attempt_is_one_request_never_silently_retried(
    make_ctx: MakeCtx, handler: Handler
) -> None:
    # aiohttp re-sends an idempotent request once when the connection breaks; the
    # customer's own call would have failed, so the attempt must fail too.
    connections = 0

    async def first_fails(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            await handler(reader, writer)
            return
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()

    async with raw_server(first_fails) as base:
        result = await attempt(probe_for(base + "/"), make_ctx())
    assert result.outcome is Outcome.SERVER_ERROR
    assert connections == 1


async def test_connection_refused_is_server_error(make_ctx: MakeCtx) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await attempt(probe_for(f"http://127.0.0.1:{port}/"), make_ctx())
    assert result.outcome is Outcome.SERVER_ERROR
    assert result.detail["error"] == "ClientConnectorError"


async def test_dns_failure_is_probe_error(make_ctx: MakeCtx) -> None:
    result = await attempt(probe_for("http://availmon-test.invalid/"), make_ctx())
    assert result.outcome is Outcome.PROBE_ERROR
    assert result.detail["error"] == "ClientConnectorDNSError"


# ------------------------------------------------------------------------------------ TLS


async def test_tls_with_ca_file_ok(
    make_ctx: MakeCtx, server_tls: ssl.SSLContext, ca_file: Path
) -> None:
    async with web_server(server_tls) as base:
        result = await attempt(probe_for(base + "/status/200", ca_file=ca_file), make_ctx())
    assert result.outcome is Outcome.OK
    assert result.detail["phases"]["connect"] >= 0


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"ca_file": "CA"}],
    ids=["untrusted-ca-server_error", "foreign-cert-server_error"],
)
async def test_tls_handshake_failure_is_server_error(
    make_ctx: MakeCtx,
    server_tls: ssl.SSLContext,
    foreign_tls: ssl.SSLContext,
    ca_file: Path,
    kwargs: dict[str, Any],
) -> None:
    tls = server_tls if not kwargs else foreign_tls
    if kwargs:
        kwargs = {"ca_file": ca_file}
    async with web_server(tls) as base:
        result = await attempt(probe_for(base + "/status/200", **kwargs), make_ctx())
    assert result.outcome is Outcome.SERVER_ERROR
    assert result.detail["error"] == "ClientConnectorCertificateError"


async def test_tls_to_plain_port_is_server_error(make_ctx: MakeCtx) -> None:
    async with raw_server(_not_tls) as base:
        url = base.replace("http://", "https://") + "/"
        result = await attempt(probe_for(url, verify_tls=False), make_ctx())
    assert result.outcome is Outcome.SERVER_ERROR
    assert result.detail["error"] in ("ClientConnectorSSLError", "ClientSSLError")


async def test_verify_tls_off_accepts_any_cert(
    make_ctx: MakeCtx, foreign_tls: ssl.SSLContext
) -> None:
    async with web_server(foreign_tls) as base:
        result = await attempt(probe_for(base + "/status/200", verify_tls=False), make_ctx())
    assert result.outcome is Outcome.OK


# ----------------------------------------------------------------- request, body, phases


async def test_server_sees_headers(make_ctx: MakeCtx) -> None:
    seen: list[dict[str, str]] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        lines = head.split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        headers["_request_line"] = lines[0]
        body = await reader.readexactly(int(headers.get("Content-Length", "0")))
        headers["_body"] = body.decode()
        seen.append(headers)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async with raw_server(record) as base:
        probe = probe_for(
            base + "/api/v1/account",
            method="POST",
            body="hello",
            headers={"Authorization": SECRET},
        )
        ctx = make_ctx()
        result = await attempt(probe, ctx)
    assert result.outcome is Outcome.OK
    (headers,) = seen
    assert headers["_request_line"] == "POST /api/v1/account HTTP/1.1"
    assert headers["X-Availmon-Attempt"] == ctx.attempt_id
    assert headers["Authorization"] == SECRET
    assert headers["_body"] == "hello"
    assert SECRET not in repr(result.detail)


async def test_secret_not_in_detail_on_failure(make_ctx: MakeCtx) -> None:
    async with raw_server(_garbage) as base:
        probe = probe_for(base + "/", headers={"Authorization": SECRET})
        result = await attempt(probe, make_ctx())
    assert result.outcome is Outcome.SERVER_ERROR
    assert SECRET not in repr(result.detail)
    assert SECRET not in repr(probe.__dict__.get("_config"))


async def test_url_secrets_not_in_detail(make_ctx: MakeCtx) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://user:{SECRET}@127.0.0.1:{port}/api?key={SECRET}"
    result = await attempt(probe_for(url), make_ctx())
    assert result.outcome is Outcome.SERVER_ERROR
    assert SECRET not in repr(result.detail)


async def test_body_read_is_bounded(make_ctx: MakeCtx) -> None:
    async with web_server() as base:
        result = await attempt(probe_for(base + "/big"), make_ctx())
    assert result.outcome is Outcome.OK
    assert MAX_BODY <= result.detail["body_bytes"] < 4 * MAX_BODY


async def test_phases_recorded(make_ctx: MakeCtx) -> None:
    async with web_server() as base:
        result = await attempt(probe_for(base + "/status/200"), make_ctx())
    phases = result.detail["phases"]
    assert set(phases) >= {"connect", "processing", "transfer"}
    assert all(v >= 0 for v in phases.values())


async def test_localhost_name_records_dns_phase(make_ctx: MakeCtx) -> None:
    async with web_server() as base:
        url = base.replace("127.0.0.1", "localhost") + "/status/200"
        result = await attempt(probe_for(url), make_ctx())
    assert result.outcome is Outcome.OK
    assert "dns" in result.detail["phases"]


# ------------------------------------------------------------------- connections


async def _count_connections(probe: HttpProbe, make_ctx: MakeCtx, n: int) -> int:
    peers: set[int] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.add(writer.get_extra_info("peername")[1])
        for _ in range(n):
            try:
                await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    async with raw_server(serve) as base:
        probe._url = probe._url.with_host("127.0.0.1").with_port(int(base.rsplit(":", 1)[1]))
        try:
            for _ in range(n):
                result = await probe.run(make_ctx())
                assert result.outcome is Outcome.OK
        finally:
            await probe.close()
    return len(peers)


async def test_fresh_connection_per_attempt(make_ctx: MakeCtx) -> None:
    probe = probe_for("http://127.0.0.1:1/")
    assert await _count_connections(probe, make_ctx, 3) == 3


async def test_reuse_connections_keeps_alive(make_ctx: MakeCtx) -> None:
    probe = probe_for("http://127.0.0.1:1/", reuse_connections=True)
    assert await _count_connections(probe, make_ctx, 3) == 1


async def test_concurrent_attempts_are_not_queued(make_ctx: MakeCtx) -> None:
    """A hung target must not hold later attempts: no pool limit."""
    async with web_server() as base:
        probe = probe_for(base + "/hang")
        ok_probe = probe_for(base + "/status/200")
        try:
            hung = [asyncio.create_task(probe.run(make_ctx(1.0))) for _ in range(120)]
            ok = await ok_probe.run(make_ctx())
            results = await asyncio.gather(*hung)
        finally:
            await probe.close()
            await ok_probe.close()
    assert ok.outcome is Outcome.OK
    assert {r.outcome for r in results} == {Outcome.TIMEOUT}


# ------------------------------------------------------------------- overrides and config


@pytest.mark.parametrize(
    ("path", "classify", "outcome"),
    [
        ("/status/503", {"503": "client_error"}, Outcome.CLIENT_ERROR),
        ("/status/502", {"5xx": "timeout", "503": "ok"}, Outcome.TIMEOUT),
        ("/status/503", {"5xx": "timeout", "503": "ok"}, Outcome.OK),
        ("/status/429", {"429": "server_error"}, Outcome.SERVER_ERROR),
    ],
    ids=["exact-code", "class", "exact-beats-class", "429-made-qualifying"],
)
async def test_overrides(
    make_ctx: MakeCtx, path: str, classify: dict[str, str], outcome: Outcome
) -> None:
    async with web_server() as base:
        result = await attempt(probe_for(base + path, classify=classify), make_ctx())
    assert result.outcome is outcome


def _rejected(model_error: str, probe_error: str, url: str, **kwargs: Any) -> ProbeConfigError:
    """The config model rejects the field (what check-config and run report), and so does
    the probe's constructor for a config that skipped validation (model_construct)."""
    with pytest.raises(ValidationError, match=model_error) as err:
        HttpProbeConfig(name="api", url=url, **kwargs)
    assert SECRET not in str(err.value.errors(include_input=False))
    headers = {k: SecretStr(v) for k, v in kwargs.pop("headers", {}).items()}
    unchecked = HttpProbeConfig.model_construct(name="api", url=url, headers=headers, **kwargs)
    with pytest.raises(ProbeConfigError, match=probe_error) as perr:
        HttpProbe(unchecked, SystemClock())
    return perr.value


def test_bad_ca_file_fails_at_construction(tmp_path: Path) -> None:
    _rejected("no such file", "ca_file", "https://127.0.0.1/", ca_file=tmp_path / "missing.pem")


def test_header_with_line_break_fails_without_echoing_it() -> None:
    err = _rejected(
        "may not contain a line break",
        r"headers\.Authorization",
        "https://127.0.0.1/",
        headers={"Authorization": SECRET + "\r\nX: y"},
    )
    assert SECRET not in str(err)


@pytest.mark.parametrize(
    "url",
    ["http://[::1/", "http://:80/"],
    ids=["unclosed-ipv6", "no-host"],
)
def test_bad_url_fails_at_construction(url: str) -> None:
    _rejected("not a valid URL", "url", url)


def test_bad_header_name_fails_at_construction() -> None:
    _rejected(
        "not a valid HTTP field name",
        "not a valid header name",
        "http://127.0.0.1/",
        headers={"Bad Header": "v"},
    )
