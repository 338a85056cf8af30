"""The HTTP listener: /metrics, health, and the JSON API that reads the store.

Reads go through the store in a worker thread. Writes (ack, resolve, notes, maintenance,
and ``POST /-/reload``, which reads the config file again as SIGHUP does) need
`Authorization: Bearer <monitor.api_token>`; with no token configured they are off (403).
Every error is JSON `{"error": "<one line>"}` with a fitting status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import monitor.openapi
import monitor.seconds
from alerting.case import NotCritical, case_view
from alerting.case import render_text as render_case
from alerting.incidents import Incidents, IncidentStateError
from alerting.model import IncidentState, Severity
from monitor import __version__, statuspage
from monitor.clock import Clock
from monitor.config import Settings
from monitor.metrics import Metrics
from monitor.reload import ReloadResult
from monitor.store.base import NotFound, Store
from monitor.verdicts import SecondVerdict


class MalformedRequestLine(logging.Filter):
    """aiohttp logs a request it cannot even parse (a NUL in a header, a request line of
    garbage) at ERROR with a traceback, and answers it 400. It is the client's fault, and
    anyone who can reach the port can send it: one INFO line each, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        # aiohttp's parser errors carry a 4xx `code` and a `message` (their class is not
        # public API: matched by shape, so no private name is imported here)
        code = getattr(exc, "code", None)
        if (
            str(record.msg).startswith("Error handling request")
            and isinstance(code, int)
            and 400 <= code < 500
            and hasattr(exc, "message")
        ):
            if not _SERVER_LOG.isEnabledFor(logging.INFO):
                return False  # the level was checked for ERROR, not for what it becomes
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            text = " ".join(str(getattr(exc, "message", "")).split())[:200]
            # the client wrote it: no control characters (terminal escapes) in our log
            why = text.encode("ascii", "backslashreplace").decode("ascii")
            why = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in why)
            record.msg, record.args = (
                "malformed HTTP request from %s answered 400: %s",
                (
                    peer,
                    why or type(exc).__name__,
                ),
            )
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_SERVER_LOG = logging.getLogger("aiohttp.server")


class DaemonView(Protocol):
    """What the API reads of the running daemon (`monitor.daemon.Daemon` is one): the API
    sits below the daemon in the layers (ARCHITECTURE.md), so it names only this."""

    settings: Settings
    clock: Clock
    store: Store | None
    metrics: Metrics
    vantage: str
    started_at: float
    last_final: dict[str, int]
    stored_verdicts: dict[str, dict[str, SecondVerdict]]
    #: per service, this month's (unavailable seconds, error budget seconds)
    month: dict[str, tuple[int, float]]
    incidents: Incidents | None

    def ready(self) -> tuple[bool, str]: ...

    def stored_through(self, service: str) -> int | None: ...

    async def reload_maintenance(self) -> None: ...

    async def reload(self, why: str = "request") -> ReloadResult: ...


log = logging.getLogger("availmon.api")

#: the longest range GET /api/v1/seconds answers in one request (7 days of rows)
MAX_SECONDS_RANGE = 7 * 86400
DAEMON: web.AppKey[DaemonView] = web.AppKey("daemon")


class BadRequest(ValueError):
    """A request parameter that cannot work; str() names it."""


#: instants outside these years are not a time anyone means (and overflow datetime)
MIN_INSTANT, MAX_INSTANT = 0, 253_402_300_799  # 1970-01-01 .. 9999-12-31T23:59:59Z
#: the largest id a store row can have (SQLite's and PostgreSQL's 64-bit integers)
MAX_ID = 2**63 - 1


def parse_instant(value: str, name: str, *, need_offset: bool = False) -> int:
    """Epoch seconds (int or float) or ISO-8601 → epoch second. A zone-less time is UTC,
    unless `need_offset` (a maintenance window: an hour off is an hour of SLA excluded
    wrongly), when it is refused."""
    value = value.strip()
    shown = value if len(value) <= 40 else value[:40] + "…"
    if re.fullmatch(r"-?[0-9]{1,20}(\.[0-9]{1,9})?", value, re.ASCII):
        t = int(float(value))
    else:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except (ValueError, OverflowError):
            raise BadRequest(f"{name}: not an epoch second or ISO-8601 time: {shown!r}") from None
        if dt.tzinfo is None:
            if need_offset:
                raise BadRequest(
                    f"{name}: give the time with its UTC offset (Z or +hh:mm): {shown!r}"
                )
            dt = dt.replace(tzinfo=UTC)
        try:
            t = int(dt.timestamp())
        except (ValueError, OverflowError):
            raise BadRequest(f"{name}: out of range: {shown!r}") from None
    if not MIN_INSTANT <= t <= MAX_INSTANT:
        raise BadRequest(f"{name}: out of range (1970 to 9999): {shown!r}")
    return t


def overlap_warnings(existing: Any, service: str, start: int, end: int) -> list[str]:
    """One line per window of the same service (or of every service) that [start, end)
    overlaps: allowed (the exclusion is their union), but likely a mistake."""
    out = []
    for w in existing:
        same_scope = w.service == service or "*" in (service, w.service)
        if same_scope and w.start < end and start < w.end:
            a = datetime.fromtimestamp(w.start, UTC).isoformat()
            b = datetime.fromtimestamp(w.end, UTC).isoformat()
            out.append(f"overlaps maintenance window {w.id} ({w.service}, {a} .. {b})")
    return out


def parse_id(raw: str, what: str) -> int:
    """A row id from a path: 1 to 2^63 - 1, ASCII digits only (not "²")."""
    if not re.fullmatch(r"[0-9]{1,19}", raw, re.ASCII) or not 1 <= int(raw) <= MAX_ID:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise BadRequest(f"id: not {what}: {shown!r}")
    return int(raw)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=str, separators=(",", ":")),
        status=status,
        content_type="application/json",
    )


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as exc:
        return _error(400, str(exc))
    except NotFound as exc:
        return _error(404, str(exc).strip("'\""))
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return _error(exc.status, exc.reason)
        raise
    except Exception:
        # a bug of ours: logged with its traceback, answered as JSON like every error
        log.exception("API: %s %s failed", request.method, request.path)
        return _error(500, "internal error (logged)")


def _daemon(request: web.Request) -> DaemonView:
    return request.app[DAEMON]


def _incidents(request: web.Request) -> Incidents:
    incidents = request.app[DAEMON].incidents
    if incidents is None:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "starting: incidents are not loaded yet"}),
            content_type="application/json",
        )
    return incidents


def _require_token(request: web.Request) -> None:
    token = _daemon(request).settings.monitor.api_token
    if token is None:
        raise web.HTTPForbidden(
            text=json.dumps({"error": "write endpoints are off: set monitor.api_token"}),
            content_type="application/json",
        )
    given = request.headers.get("Authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    # surrogateescape: a header that is not UTF-8 is a wrong token, not an error
    if not hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    ):
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "missing or wrong bearer token"}),
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="availmon"'},
        )


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("body: not valid JSON") from None
    except RecursionError:
        raise BadRequest("body: JSON nested too deep") from None
    if not isinstance(data, dict):
        raise BadRequest("body: expected a JSON object")
    return data


def _service(request: web.Request, required: bool = True) -> str | None:
    name = request.query.get("service")
    services = [s.name for s in _daemon(request).settings.services]
    if not name:
        if not required:
            return None
        if len(services) == 1:
            return services[0]
        raise BadRequest(f"service: required, one of {', '.join(services)}")
    if name not in services:
        raise BadRequest(f"service: unknown service {name!r}")
    return name


def incident_id(request: web.Request) -> int:
    return parse_id(request.match_info["id"], "an incident id")


# --------------------------------------------------------------------------- handlers


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(_daemon(request).metrics.registry)
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok", "version": __version__})


async def readyz(request: web.Request) -> web.Response:
    ok, why = _daemon(request).ready()
    return _json({"ready": ok, "reason": why}, 200 if ok else 503)


async def status(request: web.Request) -> web.Response:
    d = _daemon(request)
    services = []
    for svc in d.settings.services:
        verdicts = {}
        month = d.month.get(svc.name)
        stored = d.stored_verdicts.get(svc.name, {})
        for channel in [*svc.channels, "service"]:
            # the last one stored: never one a crash could take back
            v = stored.get(channel)
            verdicts[channel] = (
                None
                if v is None
                else {
                    "second": v.second,
                    "verdict": v.verdict.value,
                    "reason": v.reason.value if v.reason else None,
                    "degraded": v.degraded,
                    "excluded": v.excluded,
                }
            )
        services.append(
            {
                "name": svc.name,
                "last_final_second": d.last_final.get(svc.name),
                # what of it is in the store: behind by the writer's queue when it refuses
                "stored_through": d.stored_through(svc.name),
                "verdicts": verdicts,
                "month_unavailable_seconds": month[0] if month else None,
                "month_error_budget_seconds": month[1] if month else None,
                "slo_target_percent": svc.slo_target_percent,
            }
        )
    ok, why = d.ready()
    return _json(
        {
            "vantage": d.vantage,
            "version": __version__,
            "started_at": d.started_at,
            "now": d.clock.wall(),
            "ready": ok,
            "ready_reason": why,
            "services": services,
        }
    )


async def seconds(request: web.Request) -> web.Response:
    d = _daemon(request)
    service = _service(request)
    assert service is not None
    now = int(d.clock.wall())
    start = parse_instant(request.query.get("from", str(now - 3600)), "from")
    end = parse_instant(request.query.get("to", str(now)), "to")
    if end <= start:
        raise BadRequest("to: must be after from")
    if end - start > MAX_SECONDS_RANGE:
        raise BadRequest(f"from/to: range longer than {MAX_SECONDS_RANGE} s; split the request")
    vantage = request.query.get("vantage") or None
    quorum = d.settings.service(service).quorum
    assert d.store is not None
    rows = await asyncio.to_thread(
        monitor.seconds.seconds, d.store, service, start, end, quorum=quorum, vantage=vantage
    )
    body: dict[str, Any] = {"service": service, "from": start, "to": end, "seconds": rows}
    if vantage is not None:
        body["vantage"] = vantage
    return _json(body)


async def incidents(request: web.Request) -> web.Response:
    _daemon(request)
    q = request.query
    severity = q.get("severity")
    if severity is not None and severity not in tuple(Severity):
        raise BadRequest("severity: one of critical, non_critical")
    state = q.get("state")
    if state is not None and state not in tuple(IncidentState):
        raise BadRequest("state: one of open, acknowledged, recovered, resolved")
    raw_limit = q.get("limit", "100")
    if not re.fullmatch(r"[0-9]{1,4}", raw_limit, re.ASCII) or not 1 <= int(raw_limit) <= 1000:
        raise BadRequest("limit: not a number from 1 to 1000")
    limit = int(raw_limit)
    rows = await asyncio.to_thread(
        _incidents(request).list,
        _service(request, required=False),
        state,
        severity,
        limit,
    )
    return _json({"incidents": rows})


async def incident(request: web.Request) -> web.Response:
    _daemon(request)
    return _json(await asyncio.to_thread(_incidents(request).show, incident_id(request)))


async def _act(request: web.Request, action: str) -> web.Response:
    _require_token(request)
    _daemon(request)
    body = await _body(request)
    who = str(body.get("by") or "api")
    ident = incident_id(request)
    try:
        if action == "ack":
            result: Any = await asyncio.to_thread(_incidents(request).ack, ident, who)
        elif action == "resolve":
            result = await asyncio.to_thread(
                _incidents(request).resolve, ident, who, str(body.get("note", ""))
            )
        elif action == "callback":
            if not str(body.get("by") or "").strip():
                raise BadRequest("by: name who called back from the vendor")
            when = body.get("at")
            at = (
                None
                if when in (None, "")
                else float(parse_instant(str(when), "at", need_offset=True))
            )
            result = await asyncio.to_thread(
                _incidents(request).callback, ident, who, at, str(body.get("note", ""))
            )
        else:
            text = str(body.get("text") or body.get("note") or "").strip()
            if not text:
                raise BadRequest("text: a note needs text")
            result = await asyncio.to_thread(_incidents(request).note, ident, who, text)
    except IncidentStateError as exc:
        return _error(409, str(exc))
    except BadRequest:
        raise
    except ValueError as exc:  # the action's own argument check ('by' too long, ...)
        raise BadRequest(str(exc)) from None
    del result
    return _json(await asyncio.to_thread(_incidents(request).show, ident))


async def ack(request: web.Request) -> web.Response:
    return await _act(request, "ack")


async def resolve(request: web.Request) -> web.Response:
    return await _act(request, "resolve")


async def notes(request: web.Request) -> web.Response:
    return await _act(request, "note")


async def callback(request: web.Request) -> web.Response:
    return await _act(request, "callback")


#: the Statuspage-compatible public endpoints (monitor/statuspage.py)
STATUSPAGE = {
    "summary.json": statuspage.summary,
    "status.json": statuspage.status,
    "components.json": statuspage.components,
    "incidents.json": statuspage.incidents,
    "incidents/unresolved.json": statuspage.unresolved,
    "scheduled-maintenances.json": statuspage.maintenances,
    "scheduled-maintenances/upcoming.json": lambda s: statuspage.maintenances(s, "upcoming"),
    "scheduled-maintenances/active.json": lambda s: statuspage.maintenances(s, "active"),
}


async def statuspage_json(request: web.Request) -> web.Response:
    """Public, read-only, in Statuspage's v2 shape: no token, nothing internal."""
    d = _daemon(request)
    if d.store is None:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "starting: the store is not open yet"}),
            content_type="application/json",
        )
    name = request.path.removeprefix("/api/v2/")
    snap = await asyncio.to_thread(statuspage.snapshot, d.settings, d.store, d.clock.wall())
    return _json(STATUSPAGE[name](snap))


async def incident_case(request: web.Request) -> web.Response:
    """The Sev-1 case sheet of a Critical Issue (alerting/case.py): JSON, or the text to
    read out (`?format=text`); 409 for a Non-Critical Issue."""
    d = _daemon(request)
    ident = incident_id(request)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "text"):
        raise BadRequest(f"format: expected json or text, got {fmt[:20]!r}")
    if d.store is None:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "starting: the store is not open yet"}),
            content_type="application/json",
        )
    try:
        case = await asyncio.to_thread(case_view, d.settings, d.store, ident, d.clock.wall())
    except NotCritical as exc:
        return _error(409, str(exc))
    if fmt == "text":
        return web.Response(text=render_case(case) + "\n", content_type="text/plain")
    return _json(case)


async def reload(request: web.Request) -> web.Response:
    """Read the config file again (as SIGHUP does): 200 when applied, 409 when refused
    (the config in force is kept; the answer says why in one line)."""
    _require_token(request)
    # shielded: a client that hangs up must not cut a reload in half
    result = await asyncio.shield(_daemon(request).reload("POST /-/reload"))
    if not result.applied:
        return web.json_response({"error": result.message}, status=409)
    assert result.changes is not None
    return web.json_response(
        {
            "status": "applied",
            "message": result.message,
            "changes": result.changes.as_dict(),
            "measured_from": result.boundary,
        }
    )


async def report(request: web.Request) -> web.Response:
    from monitor.reports import build_report, render

    d = _daemon(request)
    month = request.match_info["month"]
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise BadRequest(f"month: expected YYYY-MM, got {month!r}")
    fmt = request.query.get("format", "json")
    types = {
        "json": "application/json",
        "csv": "text/csv",
        "md": "text/markdown",
        "html": "text/html",
    }
    if fmt not in types:
        raise BadRequest("format: one of json, csv, md, html")
    names = (
        [_service(request)]
        if request.query.get("service") or len(d.settings.services) == 1
        else [s.name for s in d.settings.services]
    )
    assert d.store is not None
    store = d.store

    def build() -> str:
        try:
            reports = [
                build_report(store, d.settings, n, month, vantage=d.vantage) for n in names if n
            ]
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return render(reports if len(reports) > 1 else reports[:1], fmt)

    text = await asyncio.to_thread(build)
    return web.Response(text=text, content_type=types[fmt], charset="utf-8")


async def maintenance_list(request: web.Request) -> web.Response:
    d = _daemon(request)
    assert d.store is not None
    rows = await asyncio.to_thread(d.store.list_maintenance, _service(request, required=False))
    return _json({"maintenance": [dataclasses.asdict(w) for w in rows]})


async def maintenance_add(request: web.Request) -> web.Response:
    _require_token(request)
    d = _daemon(request)
    body = await _body(request)
    service = str(body.get("service", "*"))
    if service != "*" and service not in [s.name for s in d.settings.services]:
        raise BadRequest(f"service: unknown service {service!r}")
    if "start" not in body or "end" not in body:
        raise BadRequest("start/end: both are required")
    start = parse_instant(str(body["start"]), "start", need_offset=True)
    end = parse_instant(str(body["end"]), "end", need_offset=True)
    if end <= start:
        raise BadRequest("end: must be after start")
    assert d.store is not None
    store = d.store

    def add() -> tuple[Any, list[str]]:
        warnings = overlap_warnings(store.list_maintenance(None, start, end), service, start, end)
        return store.add_maintenance(service, start, end, str(body.get("reason", ""))), warnings

    w, warnings = await asyncio.to_thread(add)
    await d.reload_maintenance()
    return _json({**dataclasses.asdict(w), "warnings": warnings}, 201)


async def maintenance_remove(request: web.Request) -> web.Response:
    _require_token(request)
    d = _daemon(request)
    raw = str(parse_id(request.match_info["id"], "a window id"))
    assert d.store is not None
    await asyncio.to_thread(d.store.remove_maintenance, int(raw))
    await d.reload_maintenance()
    return _json({"removed": int(raw)})


async def openapi(request: web.Request) -> web.Response:
    return _json(monitor.openapi.spec())


def new_app(daemon: DaemonView, client_max_size: int = 64 * 1024) -> web.Application:
    """An application of `daemon`'s with no route yet: errors as JSON lines, garbage
    requests logged in one line (the main listener's and the public one's, monitor/web)."""
    if not any(isinstance(f, MalformedRequestLine) for f in _SERVER_LOG.filters):
        _SERVER_LOG.addFilter(MalformedRequestLine())
    app = web.Application(middlewares=[_errors], client_max_size=client_max_size)
    app[DAEMON] = daemon
    return app


def make_app(daemon: DaemonView) -> web.Application:
    app = new_app(daemon)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/-/reload", reload)
    app.router.add_get("/api/v1/openapi.json", openapi)
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/seconds", seconds)
    app.router.add_get("/api/v1/incidents", incidents)
    app.router.add_get("/api/v1/incidents/{id}", incident)
    app.router.add_post("/api/v1/incidents/{id}/ack", ack)
    app.router.add_post("/api/v1/incidents/{id}/resolve", resolve)
    app.router.add_post("/api/v1/incidents/{id}/notes", notes)
    app.router.add_post("/api/v1/incidents/{id}/callback", callback)
    app.router.add_get("/api/v1/incidents/{id}/case", incident_case)
    for name in STATUSPAGE:
        app.router.add_get(f"/api/v2/{name}", statuspage_json)
    app.router.add_get("/api/v1/reports/{month}", report)
    app.router.add_get("/api/v1/maintenance", maintenance_list)
    app.router.add_post("/api/v1/maintenance", maintenance_add)
    app.router.add_delete("/api/v1/maintenance/{id}", maintenance_remove)
    return app
