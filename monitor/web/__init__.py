"""The pages the daemon serves to people: the web view at `/`, the public status page at
`/status`, its Atom feed `/history.atom`, and the Server-Sent Events that keep both live.

* `/` (main listener): per service the last verdict per channel, the live strip of the
  last ten minutes (`/events`, pushed as the store writer stores seconds:
  monitor/web/live.py), the month's availability against the target and the budget
  left, the open incidents, 90 days of daily bars per channel, the maintenance windows
  and a form to add one. `/incidents/{id}`: an incident's timeline, notifications and
  evidence, with buttons to acknowledge, record the vendor's callback, add a note and
  resolve. The buttons and the form call the JSON API (`/api/v1/...`) with the bearer
  token, asked for once and kept in the browser's session storage.
* `/status` (main listener, and `status.listen` if set, which serves only the public
  routes): the Statuspage components and their status (the rule is in
  monitor/statuspage.py), 90-day bars, active and upcoming maintenance, the incident
  history with its public updates; `/status/events` pushes the components' status.
  Nothing from the incident timeline but its public transitions: no evidence, no notes,
  no notification, no name.

Every store read runs in a worker thread. The status events are computed once for all
watchers, every `STATUS_EVERY` seconds, and only while someone watches. Templates are
in monitor/web/templates, the CSS and JavaScript in monitor/web/static (shipped in the
package; nothing is loaded from the network).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from datetime import date, datetime, timedelta
from importlib.resources import files
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

import monitor.seconds
from alerting.model import IncidentState, Severity
from monitor import __version__, statuspage
from monitor.api import (
    DAEMON,
    STATUSPAGE,
    DaemonView,
    healthz,
    incident_id,
    make_app,
    new_app,
    statuspage_json,
)
from monitor.config import Settings
from monitor.intervals import contains
from monitor.reports.compute import daily_history
from monitor.store.base import NotFound, Store, excluded_spans
from monitor.web.feed import atom
from monitor.web.live import KEEP_SECONDS, LiveSeconds

log = logging.getLogger("availmon.web")

#: days of daily bars
DAYS = 90
#: how often the watched pages get the components' status
STATUS_EVERY = 2.0
#: event streams open at once per listener; more are answered 503 (the public page may
#: face the internet: a flood of idle streams must not grow without bound)
MAX_STREAMS = 500
#: an SSE comment this often keeps proxies from closing an idle stream
KEEPALIVE_EVERY = 15.0
STATIC = {
    "app.js": "text/javascript",
    "status.js": "text/javascript",
    "style.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
#: the pages' Content-Security-Policy: only our own scripts and styles, no inline script
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: http:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


class WebView(DaemonView, Protocol):
    """What the pages read of the daemon, beyond the API's view."""

    live: LiveSeconds


def _view(request: web.Request) -> WebView:
    """The main listener's daemon (make_web_app takes a WebView)."""
    return request.app[DAEMON]  # type: ignore[return-value]


_ENV: Environment | None = None


def _env() -> Environment:
    global _ENV
    if _ENV is None:
        _ENV = Environment(
            loader=PackageLoader("monitor.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    return _ENV


#: the page templates (the others are the partials they include)
PAGES = ("index.html.j2", "incident.html.j2", "status.html.j2", "starting.html.j2",
         "missing.html.j2")  # fmt: skip


def check_assets() -> int:
    """Load every template and static file as the package holds them (.ci/package runs
    this from the installed wheel); return how many there are."""
    for name in PAGES:
        _env().get_template(name)
    for name in STATIC:
        (files("monitor.web") / "static" / name).read_bytes()
    return len(PAGES) + len(STATIC)


def _render(template: str, context: dict[str, Any]) -> str:
    """Worker thread: a template loaded (from the package, the first time) and rendered."""
    return _env().get_template(template).render(version=__version__, **context)


async def _page(template: str, status: int = 200, **context: Any) -> web.Response:
    body = await asyncio.to_thread(_render, template, context)
    resp = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Cache-Control"] = "no-store"
    return resp


# --------------------------------------------------------------------------- the model


def _day_class(day: dict[str, Any], target: float) -> str:
    counted = day["seconds"] - day["excluded_seconds"]
    if counted <= 0:
        return "maintenance"
    if day["unknown"] >= counted:
        return "nodata"
    pct = day["availability"]
    if pct >= target:
        return "ok"
    if pct >= 99.0:
        return "minor"
    if pct >= 95.0:
        return "partial"
    return "major"


def _bars(history: list[dict[str, Any]], channel: str, target: float) -> list[dict[str, Any]]:
    out = []
    for row in history:
        c = row["channels"].get(channel)
        if c is None:
            continue
        counted = row["seconds"] - row["excluded_seconds"]
        unav, unknown = c["unavailable_seconds"], c["unknown_seconds"]
        pct = None if counted <= 0 else 100.0 - 100.0 * unav / counted
        day = {
            "date": row["date"],
            "seconds": row["seconds"],
            "excluded_seconds": row["excluded_seconds"],
            "unavailable": unav,
            "unknown": unknown,
            "availability": pct,
        }
        day["class"] = _day_class(day, target)
        out.append(day)
    return out


def _pct_text(pct: float | None) -> str:
    if pct is None:
        return "—"
    # never rounded up to 100 %: 99.9999 % is not a perfect day
    return f"{math.floor(pct * 1000) / 1000:.3f} %"


def _budget(
    history: list[dict[str, Any]], month_first: date, budget_s: float | None
) -> dict[str, Any]:
    rows = [r for r in history if r["date"] >= month_first.isoformat()]
    counted = sum(r["seconds"] - r["excluded_seconds"] for r in rows)
    unav = sum(r["channels"]["service"]["unavailable_seconds"] for r in rows)
    unknown = sum(r["channels"]["service"]["unknown_seconds"] for r in rows)
    pct = None if counted <= 0 else 100.0 - 100.0 * unav / counted
    left = None if budget_s is None else budget_s - unav
    return {
        "availability": pct,
        "availability_text": _pct_text(pct),
        "unavailable_seconds": unav,
        "unknown_seconds": unknown,
        "budget_seconds": budget_s,
        "budget_left_seconds": left,
        "budget_left_percent": None
        if not budget_s
        else max(-999.0, 100.0 * (left or 0.0) / budget_s),
    }


def _when(t: float | None, tz: ZoneInfo) -> str:
    if t is None:
        return "—"
    return datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M:%S %Z")


#: a day's bar is kept once the day has been over this long (late seconds of another
#: vantage, a writer catching up after a store outage, have landed by then)
SETTLED_AFTER = 3600


class DayCache:
    """The daily bars of settled days, so a page load computes only today's (and the
    days not kept yet). A settled day's seconds are final and never revised; a maintenance
    window added or removed afterwards changes the key and the days are computed again.
    Thread-safe enough for the worker threads: a dict swapped per service."""

    def __init__(self) -> None:
        self._days: dict[tuple[str, Any], dict[str, dict[str, Any]]] = {}

    def history(
        self, store: Store, settings: Settings, service: str, now: float, tz: ZoneInfo
    ) -> list[dict[str, Any]]:
        today = datetime.fromtimestamp(now, tz).date()
        first = today - timedelta(days=DAYS - 1)
        windows = tuple(sorted((w.id, w.start, w.end) for w in store.list_maintenance(service)))
        key = (service, (str(tz), windows, settings.service(service).model_dump_json()))
        kept = self._days.get(key, {})
        missing = first
        while missing.isoformat() in kept and missing < today:
            missing += timedelta(days=1)
        fresh = daily_history(store, settings, service, missing, today, now)
        settled = {
            row["date"]: row for row in fresh if _day_end(row["date"], tz) + SETTLED_AFTER <= now
        }
        keep = {d: r for d, r in kept.items() if d >= first.isoformat()} | settled
        self._days = {k: v for k, v in self._days.items() if k[0] != service} | {key: keep}
        older = [r for d, r in sorted(kept.items()) if first.isoformat() <= d < missing.isoformat()]
        return [*older, *fresh]


def _day_end(day: str, tz: ZoneInfo) -> float:
    d = date.fromisoformat(day) + timedelta(days=1)
    return datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()


def _read(d: DaemonView) -> tuple[Settings, Store, float, ZoneInfo, statuspage.Snapshot]:
    """Worker thread: what every page starts from, read at one instant."""
    settings, store = d.settings, d.store
    assert store is not None
    now = d.clock.wall()
    return (settings, store, now, ZoneInfo(settings.report.timezone),
            statuspage.snapshot(settings, store, now))  # fmt: skip


def overview(d: WebView, days: DayCache) -> dict[str, Any]:
    """Worker thread: everything `/` shows."""
    settings, store, now, tz, snap = _read(d)
    status_of = {c["id"]: c["status"] for c in snap.components}
    month_first = datetime.fromtimestamp(now, tz).date().replace(day=1)
    open_incidents = snap.open_records
    windows = [w for w in store.list_maintenance() if w.end > now]
    services = []
    for svc in settings.services:
        history = days.history(store, settings, svc.name, now, tz)
        stored = d.stored_verdicts.get(svc.name, {})
        channels = []
        for ch in [*svc.channels, "service"]:
            v = stored.get(ch)
            component = svc.name if ch == "service" else f"{svc.name}.{ch}"
            channels.append(
                {
                    "name": ch,
                    "label": "service" if ch == "service" else statuspage.channel_name(ch),
                    "component": component,
                    "status": status_of.get(component),
                    "verdict": None
                    if v is None
                    else ("excluded" if v.excluded else v.verdict.value),
                    "reason": None if v is None or v.reason is None else v.reason.value,
                    "bars": _bars(history, ch, svc.slo_target_percent),
                }
            )
        month = d.month.get(svc.name)
        services.append(
            {
                "name": svc.name,
                "description": svc.description or "",
                "target": svc.slo_target_percent,
                "status": status_of.get(svc.name, "operational"),
                "channels": channels,
                "month": _budget(history, month_first, None if month is None else month[1]),
                "incidents": [
                    {
                        "id": i.id,
                        "severity": str(i.severity),
                        "state": str(i.state),
                        "opened": _when(i.opened_at, tz),
                    }
                    for i in sorted(open_incidents, key=lambda i: -i.opened_at)
                    if i.service == svc.name
                ],
                "last_final": d.last_final.get(svc.name),
                "stored_through": d.stored_through(svc.name),
            }
        )
    return {
        "now": now,
        "tz": str(tz),
        "vantage": d.vantage,
        "title": settings.status.title,
        "indicator": snap.indicator(),
        "indicator_text": statuspage.INDICATOR_TEXT[snap.indicator()],
        "services": services,
        "maintenance": [
            {
                "id": w.id,
                "service": w.service,
                "start": _when(w.start, tz),
                "end": _when(w.end, tz),
                "reason": w.reason,
                "active": w.start <= now,
            }
            for w in sorted(windows, key=lambda w: w.start)
        ],
        "service_names": [s.name for s in settings.services],
        "writes": settings.monitor.api_token is not None,
        "month_name": month_first.strftime("%B %Y"),
    }


def public(d: DaemonView, days: DayCache) -> dict[str, Any]:
    """Worker thread: everything `/status` shows (public: see the module docstring)."""
    settings, store, now, tz, snap = _read(d)
    by_id = {c["id"]: c for c in snap.components}
    services = []
    for svc in settings.services:
        history = days.history(store, settings, svc.name, now, tz)
        group = by_id[svc.name]
        services.append(
            {
                "component": group,
                "bars": _bars(history, "service", svc.slo_target_percent),
                "uptime": _pct_text(_uptime(history)),
                "channels": [
                    {
                        "component": by_id[cid],
                        "bars": _bars(history, cid.rsplit(".", 1)[1], svc.slo_target_percent),
                    }
                    for cid in group.get("components", [])
                ],
            }
        )
    return {
        "page": settings.status,
        "title": settings.status.title,
        "indicator": snap.indicator(),
        "indicator_text": statuspage.INDICATOR_TEXT[snap.indicator()],
        "updated": _when(now, tz),
        "services": services,
        "active": [m for m in snap.maintenances if m["status"] == "in_progress"],
        "upcoming": [m for m in snap.maintenances if m["status"] == "scheduled"],
        "incidents": snap.incidents,
        "days": DAYS,
    }


def _uptime(history: list[dict[str, Any]]) -> float | None:
    counted = sum(r["seconds"] - r["excluded_seconds"] for r in history)
    unav = sum(r["channels"]["service"]["unavailable_seconds"] for r in history)
    return None if counted <= 0 else 100.0 - 100.0 * unav / counted


def incident_page(d: WebView, ident: int) -> dict[str, Any]:
    """Worker thread: one incident, its timeline, notifications and evidence."""
    assert d.incidents is not None and d.store is not None
    shown_at = d.clock.wall()  # before the read: a status event from later is fresher
    shown = d.incidents.show(ident)
    tz = ZoneInfo(d.settings.report.timezone)
    inc = shown["incident"]
    timeline = [
        {
            **e,
            "when": _when(e["at"], tz),
            "text": _event_text(e),
            "data_json": json.dumps(e["data"], indent=2, sort_keys=True, default=str)
            if e["data"]
            else "",
        }
        for e in shown["timeline"]
    ]
    notifications = [
        {**n, "created": _when(n["created_at"], tz), "sent": _when(n["sent_at"], tz)}
        for n in shown["notifications"]
    ]
    evidence: list[dict[str, Any]] = []
    first = inc.get("first_unavailable")
    if first is not None:
        rows = d.store.evidence(inc["service"], int(first), int(first) + 5, limit=50)
        evidence = [
            {
                **r,
                "when": datetime.fromtimestamp(r["second"], tz).strftime("%H:%M:%S"),
                "latency_ms": round(1000 * float(r.get("latency") or 0)),
                "detail_text": _detail_text(r.get("detail") or {}),
            }
            for r in rows
        ]
    state = inc["state"]
    details = [(label, value) for label, value in (
        ("summary", inc.get("summary") or ""),
        ("kind", ", ".join(inc.get("kinds") or [inc.get("kind") or ""])),
        ("channels", ", ".join(inc.get("channels") or [])),
        ("first unavailable second", _when(inc.get("first_unavailable"), tz)),
        ("last unavailable second", _when(inc.get("last_unavailable"), tz)),
        ("unavailable seconds", inc.get("unavailable_seconds")),
        ("acknowledgement due", _when(inc.get("ack_due_at"), tz)),
        ("acknowledged", _when(inc.get("acknowledged_at"), tz)),
        ("acknowledged by", inc.get("acknowledged_by")),
        ("vendor response due", _when(inc.get("response_due_at"), tz)),
        ("recovered", _when(inc.get("recovered_at"), tz)),
        ("resolved", _when(inc.get("resolved_at"), tz)),
        ("resolved by", inc.get("resolved_by")),
        ("detail", inc.get("detail") or ""),
    ) if value not in (None, "", "—")]  # fmt: skip
    return {
        "details": details,
        "incident": inc,
        "title": d.settings.status.title,
        "opened": _when(inc.get("opened_at"), tz),
        "timeline": timeline,
        "notifications": notifications,
        "evidence": evidence,
        "can_ack": state == IncidentState.OPEN,
        "can_resolve": state != IncidentState.RESOLVED,
        "can_callback": inc["severity"] == Severity.CRITICAL and state != IncidentState.RESOLVED,
        "writes": d.settings.monitor.api_token is not None,
        "revision": statuspage.revision(state, len(timeline)),
        "shown_at": shown_at,
    }


#: the detail fields an attempt's evidence row shows first (the rest follow as key=value)
_DETAIL_FIRST = ("status", "code", "enhanced", "stage", "message", "error", "reason")


def _detail_text(detail: dict[str, Any]) -> str:
    keys = [k for k in _DETAIL_FIRST if k in detail]
    keys += sorted(k for k in detail if k not in _DETAIL_FIRST and k != "phases")
    return "; ".join(f"{k}={detail[k]}" for k in keys)


def _event_text(e: dict[str, Any]) -> str:
    data = e.get("data") or {}
    for key in ("text", "note", "by", "reason", "summary"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value if key != "by" else f"by {value}"
    return ""


# ----------------------------------------------------------------------------- handlers


async def index(request: web.Request) -> web.Response:
    d = _view(request)
    if d.store is None:
        return await _page("starting.html.j2", 503, title=d.settings.status.title)
    model = await asyncio.to_thread(overview, d, request.app[DAY_CACHE])
    return await _page("index.html.j2", **model)


async def incident(request: web.Request) -> web.Response:
    d = _view(request)
    ident = incident_id(request)
    if d.store is None or d.incidents is None:
        return await _page("starting.html.j2", 503, title=d.settings.status.title)
    try:
        model = await asyncio.to_thread(incident_page, d, ident)
    except NotFound:
        return await _page("missing.html.j2", 404, title=d.settings.status.title,
                     what=f"incident {ident}")  # fmt: skip
    return await _page("incident.html.j2", **model)


async def status_page(request: web.Request) -> web.Response:
    d = request.app[DAEMON]
    if d.store is None:
        return await _page("starting.html.j2", 503, title=d.settings.status.title)
    model = await asyncio.to_thread(public, d, request.app[DAY_CACHE])
    return await _page("status.html.j2", **model)


async def history_atom(request: web.Request) -> web.Response:
    d = request.app[DAEMON]
    if d.store is None:
        raise web.HTTPServiceUnavailable(text="starting: the store is not open yet")
    base = (d.settings.status.url or f"{request.scheme}://{request.host}").rstrip("/")

    def build() -> bytes:
        return atom(_read(d)[4], base, d.settings.status.title)

    body = await asyncio.to_thread(build)
    return web.Response(
        body=body, content_type="application/atom+xml", charset="utf-8",
        headers={"Cache-Control": "no-cache"},
    )  # fmt: skip


_STATIC_BODIES: dict[str, bytes] = {}


def _static_body(name: str) -> bytes:
    """Worker thread: a static file's bytes, read from the package once."""
    body = _STATIC_BODIES.get(name)
    if body is None:
        body = _STATIC_BODIES[name] = (files("monitor.web") / "static" / name).read_bytes()
    return body


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    kind = STATIC.get(name)
    if kind is None:
        raise web.HTTPNotFound()
    body = _STATIC_BODIES.get(name) or await asyncio.to_thread(_static_body, name)
    return web.Response(
        body=body, content_type=kind, charset=None if kind.startswith("image/") else "utf-8",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )  # fmt: skip


# ----------------------------------------------------------------------------- the events


class StatusFeed:
    """The components' status for the watched pages: one snapshot every `STATUS_EVERY`
    seconds for all of them, computed only while one is connected."""

    def __init__(self) -> None:
        self._watchers: set[asyncio.Queue[tuple[str, str] | None]] = set()
        self._task: asyncio.Task[None] | None = None
        #: the last status event: (for the web view, for the public page)
        self.last: tuple[str, str] | None = None

    def watch(self, d: DaemonView) -> asyncio.Queue[tuple[str, str] | None]:
        queue: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue(maxsize=4)
        self._watchers.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(d), name="web-status")
        return queue

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def leave(self, queue: asyncio.Queue[tuple[str, str] | None]) -> None:
        self._watchers.discard(queue)

    async def _run(self, d: DaemonView) -> None:
        while self._watchers:
            try:
                if d.store is not None:
                    snap = await asyncio.to_thread(
                        statuspage.snapshot, d.settings, d.store, d.clock.wall()
                    )
                    public = _status_event(snap)
                    private = {**public, **_internal_status(snap, d)}
                    self.last = (
                        json.dumps(private, separators=(",", ":")),
                        json.dumps(public, separators=(",", ":")),
                    )
                    for q in list(self._watchers):
                        if q.full():
                            with contextlib.suppress(asyncio.QueueEmpty):
                                q.get_nowait()  # only the newest status matters
                        q.put_nowait(self.last)
            except Exception as exc:  # a store that refuses reads: try again later
                log.debug("status for the pages failed: %r", exc)
            await asyncio.sleep(STATUS_EVERY)
        self._task = None

    async def stop(self) -> None:
        """The listener is shutting down: every stream ends (its browser reconnects to
        whatever answers next)."""
        for q in list(self._watchers):
            while not q.empty():
                q.get_nowait()
            q.put_nowait(None)
        self._watchers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _status_event(snap: statuspage.Snapshot) -> dict[str, Any]:
    """A ``status`` event as the public page gets it: nothing internal."""
    indicator = snap.indicator()
    return {
        "indicator": indicator,
        "description": statuspage.INDICATOR_TEXT[indicator],
        "components": {c["id"]: c["status"] for c in snap.components},
        "incidents": [
            {"id": i["id"], "name": i["name"], "status": i["status"], "impact": i["impact"]}
            for i in snap.unresolved
        ],
    }


def _internal_status(snap: statuspage.Snapshot, d: DaemonView) -> dict[str, Any]:
    """What the web view's ``status`` events carry beside the public ones."""
    return {
        "store_behind": {
            svc.name: max(0, (d.last_final.get(svc.name) or 0) - (d.stored_through(svc.name) or 0))
            for svc in d.settings.services
        },
        # an open incident page reloads when its incident's mark changes after it was shown
        "at": snap.now,
        "revisions": {str(k): v for k, v in snap.revisions.items()},
    }


STATUS_FEED: web.AppKey[StatusFeed] = web.AppKey("status_feed")
DAY_CACHE: web.AppKey[DayCache] = web.AppKey("day_cache")


def _sse_headers() -> dict[str, str]:
    return {
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
    }


async def events(request: web.Request) -> web.StreamResponse:
    """The web view's stream: ``second`` events (one per stored service-second, after a
    ``backfill`` of the last ten minutes per service) and ``status`` events;
    ``?seconds=0``: the ``status`` events alone (an incident page)."""
    return await _stream(request, seconds=request.query.get("seconds") != "0", private=True)


async def status_events(request: web.Request) -> web.StreamResponse:
    """The public page's stream: ``status`` events only."""
    return await _stream(request, seconds=False, private=False)


async def _stream(request: web.Request, *, seconds: bool, private: bool) -> web.StreamResponse:
    d = request.app[DAEMON]
    feed = request.app[STATUS_FEED]
    if feed.watchers >= MAX_STREAMS:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": f"too many event streams open ({MAX_STREAMS})"}),
            content_type="application/json",
            headers={"Retry-After": "30"},
        )
    resp = web.StreamResponse(headers=_sse_headers())
    await resp.prepare(request)
    statuses = feed.watch(d)
    live: LiveSeconds | None = getattr(d, "live", None) if seconds else None
    rows = live.subscribe() if live is not None else None
    getters: dict[str, asyncio.Future[Any]] = {}
    try:
        await resp.write(b"retry: 2000\n\n")
        which = 0 if private else 1
        if feed.last is not None:
            await resp.write(_sse("status", feed.last[which]))
        if live is not None and d.store is not None:
            backfill = await asyncio.to_thread(_backfill, d, live)
            await resp.write(_sse("backfill", json.dumps(backfill, separators=(",", ":"))))
        while True:
            if "status" not in getters:
                getters["status"] = asyncio.ensure_future(statuses.get())
            if rows is not None and "row" not in getters:
                getters["row"] = asyncio.ensure_future(rows.get())
            done, _ = await asyncio.wait(
                getters.values(), timeout=KEEPALIVE_EVERY, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                await resp.write(b": keepalive\n\n")
                continue
            out: list[bytes] = []
            for name in [n for n, t in getters.items() if t in done]:
                value = getters.pop(name).result()
                if name == "status":
                    if value is None:  # shutting down
                        await resp.write(b"".join(out))
                        return resp
                    out.append(_sse("status", value[which]))
                elif value is None:  # fell behind: the browser reconnects
                    return resp
                else:
                    batch = [value]
                    while rows is not None and not rows.empty():
                        more = rows.get_nowait()
                        if more is None:
                            return resp
                        batch.append(more)
                    out.append(_sse("seconds", json.dumps(batch, separators=(",", ":"))))
            await resp.write(b"".join(out))
    except (ConnectionResetError, asyncio.CancelledError):
        return resp
    finally:
        for pending in getters.values():
            pending.cancel()
        feed.leave(statuses)
        if live is not None and rows is not None:
            live.unsubscribe(rows)


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


def _backfill(d: DaemonView, live: LiveSeconds) -> dict[str, list[dict[str, Any]]]:
    """Worker thread: per service the last ten minutes, the ring's seconds and before them
    this vantage's stored ones."""
    assert d.store is not None
    out: dict[str, list[dict[str, Any]]] = {}
    for svc in d.settings.services:
        ring = live.recent(svc.name)
        last = ring[-1]["t"] if ring else int(d.clock.wall())
        first = ring[0]["t"] if ring else last + 1
        start = last - KEEP_SECONDS + 1
        older = []
        if first > start:
            older = monitor.seconds.seconds(d.store, svc.name, start, first, vantage=d.vantage)
            spans = excluded_spans(d.store.list_maintenance(svc.name, start, first), svc.name)
            for row in older:  # as the ring shows them: a maintenance second is excluded
                if contains(spans, row["t"]):
                    row.update(dict.fromkeys(("verdict", *svc.channels), "excluded"))
        out[svc.name] = [*older, *ring][-KEEP_SECONDS:]
    return out


# ------------------------------------------------------------------------------- the apps


def _add_public(app: web.Application) -> None:
    app[STATUS_FEED] = StatusFeed()
    app[DAY_CACHE] = DayCache()
    app.router.add_get("/status", status_page)
    app.router.add_get("/status/events", status_events)
    app.router.add_get("/history.atom", history_atom)
    app.router.add_get("/static/{name}", static)
    app.on_shutdown.append(_stop_feed)


async def _stop_feed(app: web.Application) -> None:
    await app[STATUS_FEED].stop()


def make_web_app(daemon: WebView) -> web.Application:
    """The main listener: the JSON API (monitor/api.py) and every page."""
    app = make_app(daemon)
    _add_public(app)
    app.router.add_get("/", index)
    app.router.add_get("/incidents/{id}", incident)
    app.router.add_get("/events", events)
    return app


def make_public_app(daemon: DaemonView) -> web.Application:
    """`status.listen`: only what is public (the status page, its feed and events, the
    Statuspage JSON, /healthz); `/` is the status page."""
    app = new_app(daemon, client_max_size=4 * 1024)
    _add_public(app)
    app.router.add_get("/", status_page)
    app.router.add_get("/healthz", healthz)
    for name in STATUSPAGE:
        app.router.add_get(f"/api/v2/{name}", statuspage_json)
    return app
