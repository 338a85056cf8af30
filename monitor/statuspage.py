"""Statuspage-compatible JSON (`/api/v2/*.json`): availmon's services, incidents and
maintenance windows in the field names and value sets of Atlassian Statuspage's public v2
API, so status aggregators and statuspage exporters read them unchanged.

Everything here is public: no evidence, no internal note, no secret, no person's name.
Built in a worker thread from the store (`snapshot`), rendered per endpoint (`summary`,
`status`, `components`, `incidents`, `unresolved`, `maintenances`).

Components: one group per service (``group: true``) and one per channel in it
(``group_id``). A component's status, from the second-by-second verdicts (every vantage
combined by the service's quorum, as `/api/v1/seconds`) of the last `RECENT_SECONDS`:

* ``under_maintenance`` — a maintenance window of the service is in progress;
* ``major_outage`` — the last measured second was unavailable, or (a service) a Critical
  Issue of it is open or acknowledged;
* ``partial_outage`` — some second of the last five minutes was unavailable;
* ``degraded_performance`` — (a service) a Non-Critical Issue of it is unresolved;
* ``operational`` — otherwise (unknown seconds are not evidence of an outage).

A service's status is the worst of its own rule and its channels'.

Incidents: availmon's state maps to Statuspage's (open → investigating, acknowledged →
identified, recovered → monitoring, resolved → resolved), a Critical Issue has impact
``critical`` and a Non-Critical one ``minor``; its updates are the timeline's public
transitions (opened, acknowledged, recovered, resolved), with fixed wording. The overall
indicator: ``critical`` with an unresolved Critical Issue, else ``major`` with a
component in major outage, else ``minor`` with an unresolved Non-Critical Issue or a
component in partial outage or degraded, else ``none``.

Scheduled maintenances are the maintenance windows: ``scheduled`` before their start,
``in_progress`` during, ``completed`` after.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from alerting.model import IncidentState, Severity
from monitor.config import Settings
from monitor.seconds import seconds as second_rows
from monitor.store.base import Incident, IncidentEvent, MaintenanceWindow, Store

#: the seconds a component's status looks back on
RECENT_SECONDS = 300
#: incidents listed (Statuspage lists its 50 most recent)
INCIDENTS_LISTED = 50
PAGE_ID = "availmon"

STATUS_ORDER = (
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
)
INDICATOR_TEXT = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major Service Outage",
}
INCIDENT_STATUS = {
    IncidentState.OPEN: "investigating",
    IncidentState.ACKNOWLEDGED: "identified",
    IncidentState.RECOVERED: "monitoring",
    IncidentState.RESOLVED: "resolved",
}
#: the public timeline: event kind → (update status, wording)
UPDATES = {
    "opened": ("investigating", "We are investigating failures of {what}."),
    "acknowledged": ("identified", "The issue has been identified and is being worked on."),
    "recovered": ("monitoring", "{what} is answering again; we are monitoring it."),
    "resolved": ("resolved", "This incident has been resolved."),
}
_CHANNEL_NAMES = {"api": "REST API", "smtp": "SMTP injection"}


def channel_name(channel: str) -> str:
    """A channel's component name ("REST API", "SMTP injection")."""
    return _CHANNEL_NAMES.get(channel, channel)


def revision(state: IncidentState | str, events: int) -> str:
    """An incident's mark: its state and its number of timeline events. It changes
    whenever the incident's page would (the web view reloads an open page on it)."""
    return f"{IncidentState(state).value}:{events}"


@dataclass
class Snapshot:
    """What the endpoints show, read from the store at one instant."""

    now: float
    tz: ZoneInfo
    name: str
    url: str
    components: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    maintenances: list[dict[str, Any]]
    unresolved: list[dict[str, Any]] = field(default_factory=list)
    #: the unresolved incidents as stored (the private web view shows their state)
    open_records: list[Incident] = field(default_factory=list)
    #: per incident listed, its `revision`
    revisions: dict[int, str] = field(default_factory=dict)

    def page(self) -> dict[str, Any]:
        return {
            "id": PAGE_ID,
            "name": self.name,
            "url": self.url,
            "time_zone": str(self.tz),
            "updated_at": _time(self.now, self.tz),
        }

    def indicator(self) -> str:
        if any(i["impact"] == "critical" for i in self.unresolved):
            return "critical"
        statuses = {c["status"] for c in self.components}
        if "major_outage" in statuses:
            return "major"
        if self.unresolved or statuses & {"partial_outage", "degraded_performance"}:
            return "minor"
        return "none"


def _time(t: float | None, tz: ZoneInfo) -> str | None:
    """Statuspage's timestamps: ISO 8601, milliseconds, the page's offset."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz).isoformat(timespec="milliseconds")


def _worst(statuses: Sequence[str]) -> str:
    return max(statuses, key=STATUS_ORDER.index, default="operational")


def _channel_status(rows: Sequence[Mapping[str, Any]], column: str) -> str:
    measured = [r[column] for r in rows if r[column] != "unknown"]
    if measured and measured[-1] == "unavailable":
        return "major_outage"
    if "unavailable" in measured:
        return "partial_outage"
    return "operational"


def snapshot(settings: Settings, store: Store, now: float) -> Snapshot:
    """Worker thread: read what every endpoint shows."""
    tz = ZoneInfo(settings.report.timezone)
    at = int(now)
    windows = store.list_maintenance()
    names = {svc.name for svc in settings.services}
    known = [i for i in store.list_incidents(limit=10_000) if i.service in names]
    newest = sorted(known, key=lambda i: (-i.opened_at, -i.id))
    # the most recent ones, and every unresolved one however old
    incidents_by_id = {i.id: i for i in newest[:INCIDENTS_LISTED]}
    incidents_by_id |= {i.id: i for i in known if i.state != IncidentState.RESOLVED}
    components: list[dict[str, Any]] = []
    service_component: dict[str, dict[str, Any]] = {}
    for position, svc in enumerate(settings.services, start=1):
        rows = second_rows(store, svc.name, at - RECENT_SECONDS, at, quorum=svc.quorum)
        in_maintenance = any(w.applies_to(svc.name) and w.start <= now < w.end for w in windows)
        mine = [i for i in incidents_by_id.values() if i.service == svc.name]
        rules = []
        if any(i.severity == Severity.CRITICAL and i.state.ongoing for i in mine):
            rules.append("major_outage")
        if any(
            i.severity == Severity.NON_CRITICAL and i.state != IncidentState.RESOLVED for i in mine
        ):
            rules.append("degraded_performance")
        group_id = f"{svc.name}"
        children = []
        for n, channel in enumerate(svc.channels, start=1):
            status = "under_maintenance" if in_maintenance else _channel_status(rows, channel)
            children.append(
                _component(
                    f"{svc.name}.{channel}",
                    channel_name(channel),
                    status,
                    position * 100 + n,
                    group_id,
                    now,
                    tz,
                )
            )
        status = (
            "under_maintenance"
            if in_maintenance
            else _worst([*rules, *(c["status"] for c in children)])
        )
        group = _component(svc.name, svc.description or svc.name, status, position * 100, None,
                           now, tz, group=True, children=[c["id"] for c in children])  # fmt: skip
        service_component[svc.name] = group
        components += [group, *children]
    incidents, revisions = [], {}
    for i in sorted(incidents_by_id.values(), key=lambda i: (-i.opened_at, -i.id)):
        events = store.events(i.id)
        incidents.append(_incident(i, events, service_component.get(i.service), settings, tz))
        revisions[i.id] = revision(i.state, len(events))
    maintenances = [
        _maintenance(w, settings, service_component, now, tz)
        for w in sorted(windows, key=lambda w: (-w.start, -w.id))
    ]
    page = settings.status
    snap = Snapshot(now, tz, page.title, page.url, components, incidents, maintenances)
    snap.unresolved = [i for i in incidents if i["status"] != "resolved"]
    snap.open_records = [i for i in known if i.state != IncidentState.RESOLVED]
    snap.revisions = revisions
    return snap


def _component(
    ident: str,
    name: str,
    status: str,
    position: int,
    group_id: str | None,
    now: float,
    tz: ZoneInfo,
    *,
    group: bool = False,
    children: list[str] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": ident,
        "name": name,
        "status": status,
        "created_at": None,
        "updated_at": _time(now, tz),
        "position": position,
        "description": None,
        "showcase": group,
        "start_date": None,
        "group_id": group_id,
        "page_id": PAGE_ID,
        "group": group,
        "only_show_if_degraded": False,
    }
    if children is not None:
        out["components"] = children
    return out


def _incident(
    inc: Incident,
    events: Sequence[IncidentEvent],
    component: Mapping[str, Any] | None,
    settings: Settings,
    tz: ZoneInfo,
) -> dict[str, Any]:
    what = inc.service
    svc = next((s for s in settings.services if s.name == inc.service), None)
    if svc is not None and svc.description:
        what = f"{svc.description} ({svc.name})"
    critical = inc.severity == Severity.CRITICAL
    label = "Unavailable" if critical else "Degraded"
    affected = [] if component is None else [_public_component(component)]
    # The first update comes from the incident's row, not its "opened" event: the store
    # writer applies the row and the event as two writes (monitor/writer.py), and a read
    # between them must not show an incident that has no update yet.
    public: list[tuple[int | None, float, str]] = [(0, inc.opened_at, "opened")]
    public += [(e.id, e.at, e.kind) for e in events if e.kind in UPDATES.keys() - {"opened"}]
    updates = []
    for event_id, at, kind in public:  # notes, notifications, evidence: not public
        status, text = UPDATES[kind]
        updates.append(
            {
                "id": f"{inc.id}-{event_id}",
                "status": status,
                "body": text.format(what=what),
                "incident_id": str(inc.id),
                "created_at": _time(at, tz),
                "updated_at": _time(at, tz),
                "display_at": _time(at, tz),
                "affected_components": None,
                "deliver_notifications": True,
                "custom_tweet": None,
                "tweet_id": None,
            }
        )
    updates.reverse()  # newest first, as Statuspage lists them
    last = max((e.at for e in events if e.kind in UPDATES), default=inc.opened_at)
    return {
        "id": str(inc.id),
        "name": f"{label}: {what}",
        "status": INCIDENT_STATUS[inc.state],
        "created_at": _time(inc.opened_at, tz),
        "updated_at": _time(last, tz),
        "monitoring_at": _time(inc.recovered_at, tz),
        "resolved_at": _time(inc.resolved_at, tz),
        "impact": "critical" if critical else "minor",
        "shortlink": "",
        "started_at": _time(
            inc.first_unavailable if inc.first_unavailable is not None else inc.opened_at, tz
        ),
        "page_id": PAGE_ID,
        "incident_updates": updates,
        "components": affected,
    }


def _public_component(c: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in c.items() if k != "components"}


def _maintenance(
    w: MaintenanceWindow,
    settings: Settings,
    components: Mapping[str, Mapping[str, Any]],
    now: float,
    tz: ZoneInfo,
) -> dict[str, Any]:
    status = "scheduled" if now < w.start else "in_progress" if now < w.end else "completed"
    affected = [_public_component(c) for name, c in components.items() if w.applies_to(name)]
    scope = "every service" if w.service == "*" else w.service
    return {
        "id": f"m{w.id}",
        "name": f"Scheduled maintenance of {scope}",
        "status": status,
        "created_at": _time(w.start, tz),
        "updated_at": _time(min(now, w.end), tz),
        "monitoring_at": None,
        "resolved_at": _time(w.end, tz) if status == "completed" else None,
        "impact": "maintenance",
        "shortlink": "",
        "started_at": _time(w.start, tz),
        "page_id": PAGE_ID,
        "incident_updates": [],
        "components": affected,
        "scheduled_for": _time(w.start, tz),
        "scheduled_until": _time(w.end, tz),
    }


# ---------------------------------------------------------------------------- endpoints


def status(s: Snapshot) -> dict[str, Any]:
    indicator = s.indicator()
    return {"page": s.page(), "status": {"indicator": indicator,
                                         "description": INDICATOR_TEXT[indicator]}}  # fmt: skip


def components(s: Snapshot) -> dict[str, Any]:
    return {"page": s.page(), "components": s.components}


def incidents(s: Snapshot) -> dict[str, Any]:
    return {"page": s.page(), "incidents": s.incidents}


def unresolved(s: Snapshot) -> dict[str, Any]:
    return {"page": s.page(), "incidents": s.unresolved}


def maintenances(s: Snapshot, which: str = "all") -> dict[str, Any]:
    chosen = {
        "all": s.maintenances,
        "upcoming": [m for m in s.maintenances if m["status"] == "scheduled"],
        "active": [m for m in s.maintenances if m["status"] == "in_progress"],
    }[which]
    return {"page": s.page(), "scheduled_maintenances": chosen}


def summary(s: Snapshot) -> dict[str, Any]:
    return {
        **status(s),
        "components": s.components,
        "incidents": s.unresolved,
        "scheduled_maintenances": [
            m for m in s.maintenances if m["status"] in ("scheduled", "in_progress")
        ],
    }
