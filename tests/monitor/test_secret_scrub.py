"""Targets that echo a secret back: the evidence keeps none of it, in any form.

An HTTP server answers 500 with a reason phrase quoting the API key (as is, base64 and
URL-encoded); an SMTP server answers AUTH with a 535 that quotes the AUTH PLAIN blob and
the password. The attempts that reach the store (the launcher's `on_attempt`, which is
what the daemon writes as evidence) hold the replies with every secret form blanked.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

from monitor.schema import Scrubber
from probes.base import Outcome
from tests.monitor.test_launcher import run_launcher, settings

pytestmark = pytest.mark.slow

KEY = "sk-live-0123456789abcdef-KEY"
PASSWORD = "smtp-pass-9876543210-PW"
USER = "SMTP_Injection"


def _forms(secret: str) -> list[str]:
    return [secret, base64.b64encode(secret.encode()).decode(), quote(secret, safe="")]


def test_scrubber_blanks_every_form() -> None:
    s = Scrubber([KEY, PASSWORD], USER)
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    for form in [*_forms(KEY), *_forms(PASSWORD), plain]:
        assert s.text(f"before {form} after") == "before *** after"
    assert s.detail({"message": KEY, "phases": {"x": 1.0}, "n": 3}) == {
        "message": "***",
        "phases": {"x": 1.0},
        "n": 3,
    }
    assert Scrubber(["abc"]).text("abc") == "abc"  # too short to blank safely


@asynccontextmanager
async def _echoing_smtp() -> AsyncIterator[int]:
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 echo.test ESMTP\r\n")
        while line := await reader.readline():
            text = line.decode(errors="replace").strip()
            verb = text.split(" ", 1)[0].upper()
            if verb == "EHLO":
                writer.write(b"250-echo.test\r\n250 AUTH PLAIN LOGIN\r\n")
            elif verb == "AUTH":
                writer.write(f"535 5.7.8 rejected {text} for {PASSWORD}\r\n".encode())
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def test_echoed_secrets_never_reach_the_evidence(aiohttp_server: Any) -> None:
    async def echo(request: web.Request) -> web.Response:
        key = request.headers["Authorization"]
        reason = " ".join(_forms(key))
        return web.Response(status=500, reason=f"bad key {reason}", text=f"body {key}")

    app = web.Application()
    app.router.add_get("/api/v1/account", echo)
    http = await aiohttp_server(app)
    async with _echoing_smtp() as smtp_port:
        cfg = settings(
            [
                {
                    "type": "http",
                    "name": "api",
                    "url": f"http://127.0.0.1:{http.port}/api/v1/account",
                    "headers": {"Authorization": KEY},
                    "timeout_seconds": 1,
                },
                {
                    "type": "smtp",
                    "name": "smtp",
                    "host": "127.0.0.1",
                    "port": smtp_port,
                    "tls": "none",
                    "username": USER,
                    "password": PASSWORD,
                    "depth": "auth",
                    "timeout_seconds": 1,
                },
            ],
            max_launch_lag_ms=500,
            stall_threshold_ms=5000,
        )
        run = await run_launcher(cfg, {}, 2.5, grace=2.0)
    by_probe = {a.probe: a for a in run.attempts}
    assert by_probe["api"].outcome is Outcome.SERVER_ERROR
    assert by_probe["smtp"].outcome is Outcome.CLIENT_ERROR  # 535: the monitor's problem
    assert "***" in by_probe["api"].detail["message"]
    assert "***" in by_probe["smtp"].detail["message"]
    stored = json.dumps([a.to_json() for a in run.attempts])
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    for form in [*_forms(KEY), *_forms(PASSWORD), plain, plain.rstrip("=")]:
        assert form not in stored
