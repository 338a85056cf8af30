"""Fixtures for notifier tests: outbox items in the policy's payload schema, a FakeClock,
an aiohttp session, and loopback receivers that record requests and can be scripted to
answer 429 / 500 / 400 before behaving like the vendor."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.clock import FakeClock
from monitor.store.base import OutboxItem

T0 = 1_763_894_400.0  # 2025-11-23T10:40:00Z


def _make_item(
    event: str = "trigger",
    seq: int = 1,
    *,
    incident_id: int = 7,
    service: str = "sparkpost-us",
    severity: str = "critical",
    state: str = "open",
    summary: str | None = None,
    text: str | None = None,
    tier: str = "critical",
    notifier: str = "n",
    at: float = T0,
    **incident_fields: Any,
) -> OutboxItem:
    """An outbox item exactly as the incident policy writes it."""
    summary = summary or f"[{severity}] {service} unavailable ({event})"
    incident = {
        "id": incident_id,
        "service": service,
        "severity": severity,
        "state": state,
        "kind": "unavailable",
        "dedup_key": f"availmon/{service}/{incident_id}",
        "opened_at": T0,
        "acknowledged_at": None,
        "acknowledged_by": None,
        "recovered_at": None,
        "resolved_at": None,
        "resolved_by": None,
        "first_unavailable": int(T0) - 30,
        "last_unavailable": int(T0) - 1,
        "unavailable_seconds": 30,
        "ack_due_at": T0 + 900,
        "ack_breached_at": None,
        "response_due_at": None,
        "summary": summary,
    }
    incident.update(incident_fields)
    payload = {
        "seq": seq,
        "event": event,
        "tier": tier,
        "incident": incident,
        "summary": summary,
        "text": text or f"{summary}\nUnavailable since 10:39:30Z (30 s).\nVantage: vp-1",
        "at": at,
        "vantage": "vp-1",
    }
    return OutboxItem(
        id=seq,
        incident_id=incident_id,
        notifier=notifier,
        event=event,
        payload=payload,
        created_at=at,
        next_attempt_at=at,
    )


@dataclass
class Request:
    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Handler = Callable[[Request], Awaitable[web.StreamResponse]]


@dataclass
class Receiver:
    """A loopback HTTP server: records every request, answers scripted responses first,
    then asks the vendor fake (`handler`)."""

    handler: Handler
    url: str = ""
    requests: list[Request] = field(default_factory=list)
    script: list[web.Response] = field(default_factory=list)

    def then(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
        self.script.append(web.Response(status=status, text=body, headers=headers))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        rec = Request(
            method=request.method,
            path=request.path,
            raw_path=request.raw_path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=await request.read(),
        )
        self.requests.append(rec)
        if self.script:
            return self.script.pop(0)
        return await self.handler(rec)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Receiver]]]:
    servers: list[TestServer] = []

    async def start(handler: Handler) -> Receiver:
        receiver = Receiver(handler)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", receiver.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        receiver.url = str(server.make_url("")).rstrip("/")
        return receiver

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
def make_item() -> Callable[..., OutboxItem]:
    """`make_item(event, seq, **incident_fields)`: an item in the policy's payload schema."""
    return _make_item


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s
