"""The simulator's HTTP side: a SparkPost-like REST API that misbehaves on command, and the
control API under `/_sim/` (state, faults, log, ground truth).

Control endpoints (never faulted, never logged as attempts)::

    GET  /_sim/state                      faults per channel, counters, ports
    POST /_sim/fault   {"channel": "api", "fault": "5xx", "status": 503}
                       (parameters flat or in "params"; fraction's inner fault as "inner")
    GET  /_sim/log?since=SEQ&limit=N      records with seq > SEQ, oldest first; "next" = last seq
    GET  /_sim/truth?start=&end=          unavailable seconds per channel in [start, end)
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from monitor.simulator.faults import API_STAGE, PASS, Act, Action, http_outcome
from monitor.simulator.host import Host
from monitor.simulator.wire import abort_with_rst, wait_forever
from probes.base import Outcome

ATTEMPT_HEADER = "X-Availmon-Attempt"
VANTAGE_HEADER = "X-Availmon-Vantage"
CONTROL_PREFIX = "/_sim/"
_JSON = "application/json"
_MAX_LOG_PAGE = 100_000

_ACCOUNT = json.dumps(
    {
        "results": {
            "company_name": "availmon simulator",
            "country_code": "US",
            "customer_id": 123456,
            "status": "active",
            "subscription": {"code": "enterprise", "name": "Enterprise", "type": "default"},
            "options": {"smtp_tracking_default": False},
        }
    }
).encode()


def errors_body(message: str, **extra: Any) -> bytes:
    """SparkPost's error shape: {"errors": [{"message": ...}]}."""
    return json.dumps({"errors": [{"message": message, **extra}]}).encode()


def _json(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type=_JSON)


Route = Callable[[web.Request], Awaitable[web.Response]]


class ApiSide:
    """The aiohttp application of one simulator."""

    def __init__(self, sim: Host) -> None:
        self._sim = sim
        self._ids = itertools.count(84_000_000_000_000_000)
        #: transports of requests in progress, aborted by `abort_all` so stop() never waits
        self.inflight: set[asyncio.BaseTransport] = set()
        self._routes: dict[tuple[str, str], Route] = {
            ("GET", "/api/v1/account"): self._account,
            ("POST", "/api/v1/transmissions"): self._transmissions,
        }
        self._control: dict[tuple[str, str], Route] = {
            ("GET", "/_sim/state"): self._state,
            ("POST", "/_sim/fault"): self._set_fault,
            ("GET", "/_sim/log"): self._log,
            ("GET", "/_sim/truth"): self._truth,
            ("POST", "/_sim/dnsbl"): self._dnsbl,
        }
        self._terminal: dict[Act, Callable[[web.Request, Action], Awaitable[web.Response]]] = {
            Act.REPLY: self._reply,
            Act.HANG: self._hang,
            Act.RESET: self._reset,
            Act.DROP: self._drop,
        }

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    def abort_all(self) -> None:
        for transport in list(self.inflight):
            transport.abort() if isinstance(transport, asyncio.Transport) else transport.close()
        self.inflight.clear()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self._sim.control and request.path.startswith(CONTROL_PREFIX):
            return await self._control_request(request)
        transport = request.transport
        if transport is None:  # the client is already gone
            raise web.HTTPBadRequest()
        self.inflight.add(transport)
        try:
            return await self._attempt(request)
        finally:
            self.inflight.discard(transport)

    # -- the platform ------------------------------------------------------------------

    async def _attempt(self, request: web.Request) -> web.StreamResponse:
        sim = self._sim
        active = sim.faults["api"]
        action = active.decide(API_STAGE) or PASS
        attempt_id = request.headers.get(ATTEMPT_HEADER)
        vantage = request.headers.get(VANTAGE_HEADER)
        if action.act is Act.PASS or action.act is Act.SLOW:
            response = await self._answer(request)
            expected = http_outcome(response.status)
            if action.expected is Outcome.TIMEOUT:
                expected = Outcome.TIMEOUT
            reply = action.reply if action.act is Act.SLOW else str(response.status)
            sim.record("api", attempt_id, vantage, active.name, reply, expected)
            if action.act is Act.SLOW:
                await asyncio.sleep(action.delay)
            return response
        if action.act is Act.DROP:
            await request.read()
        sim.record("api", attempt_id, vantage, active.name, action.reply, action.expected)
        perform = self._terminal.get(action.act)
        if perform is None:
            # a fault the API side cannot perform (parse_fault rejects these) answers 500
            return _json(500, errors_body(f"simulator cannot perform {action.act} on the API"))
        return await perform(request, action)

    async def _answer(self, request: web.Request) -> web.Response:
        route = self._routes.get((request.method, request.path))
        if route is None:
            if any(path == request.path for _m, path in self._routes):
                return _json(405, errors_body("method not allowed", code="1300"))
            return _json(
                404,
                errors_body(
                    "resource not found",
                    description=f"Resource not found:{request.path}",
                    code="1600",
                ),
            )
        key = self._sim.api_key
        if key is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), key.encode()):
                return _json(401, errors_body("Unauthorized."))
        return await route(request)

    async def _account(self, _request: web.Request) -> web.Response:
        return _json(200, _ACCOUNT)

    async def _transmissions(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return _json(400, errors_body("invalid data format/type", code="1300"))
        if not isinstance(body, dict):
            return _json(400, errors_body("invalid data format/type", code="1300"))
        recipients = body.get("recipients")
        accepted = len(recipients) if isinstance(recipients, list) and recipients else 1
        results = {
            "total_rejected_recipients": 0,
            "total_accepted_recipients": accepted,
            "id": str(next(self._ids)),
        }
        return _json(200, json.dumps({"results": results}).encode())

    async def _reply(self, _request: web.Request, action: Action) -> web.Response:
        return _json(action.status, errors_body(action.text))

    async def _hang(self, _request: web.Request, _action: Action) -> web.Response:
        await wait_forever()

    async def _reset(self, request: web.Request, _action: Action) -> web.Response:
        abort_with_rst(request.transport)
        await wait_forever()

    async def _drop(self, request: web.Request, _action: Action) -> web.Response:
        if request.transport is not None:
            request.transport.close()
        await wait_forever()

    # -- control -----------------------------------------------------------------------

    async def _control_request(self, request: web.Request) -> web.StreamResponse:
        route = self._control.get((request.method, request.path))
        if route is None:
            return _json(404, errors_body(f"no control endpoint {request.method} {request.path}"))
        try:
            return await route(request)
        except ValueError as e:
            return _json(400, errors_body(str(e)))

    async def _state(self, _request: web.Request) -> web.Response:
        return web.json_response(self._sim.state())

    async def _set_fault(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read() or b"null")
        except (ValueError, UnicodeDecodeError):
            raise ValueError("body is not JSON") from None
        if not isinstance(body, dict):
            raise ValueError('body must be a JSON object like {"channel": "api", "fault": "5xx"}')
        channel, fault = body.pop("channel", None), body.pop("fault", None)
        if not isinstance(channel, str) or not isinstance(fault, str):
            raise ValueError('"channel" and "fault" are required strings')
        nested = body.pop("params", {})
        if not isinstance(nested, dict):
            raise ValueError('"params" must be a JSON object')
        self._sim.set_fault(channel, fault, **(body | nested))
        return web.json_response({"faults": self._sim.state()["faults"]})

    async def _dnsbl(self, request: web.Request) -> web.Response:
        """The DNSBL zone's listings and faults (monitor/simulator/dnsbl.py)."""
        try:
            body = json.loads(await request.read() or b"null")
        except (ValueError, UnicodeDecodeError):
            raise ValueError("body is not JSON") from None
        if not isinstance(body, dict):
            raise ValueError('body must be a JSON object like {"action": "list", ...}')
        return web.json_response(self._sim.dnsbl.control(body))

    async def _log(self, request: web.Request) -> web.Response:
        since = _int_query(request, "since", 0)
        limit = _int_query(request, "limit", 10_000)
        if not 1 <= limit <= _MAX_LOG_PAGE:
            raise ValueError(f"limit must be 1..{_MAX_LOG_PAGE}")
        records = self._sim.ledger.since(since, limit)
        nxt = records[-1].seq if records else max(since, 0)
        return web.json_response({"records": [r.to_json() for r in records], "next": nxt})

    async def _truth(self, request: web.Request) -> web.Response:
        start = _int_query(request, "start", None)
        end = _int_query(request, "end", None)
        truth = self._sim.ground_truth(start, end)
        return web.json_response({ch: sorted(seconds) for ch, seconds in truth.items()})


def _int_query(request: web.Request, name: str, default: int | None) -> Any:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
