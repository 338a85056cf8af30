"""Who hears of an incident event, and when: tier routing, the ack deadline, periodic updates.

`Herald` is the one writer of incident events: it writes the incident row, then the timeline
event, then one outbox item per (event, notifier) — in that order, so the timeline never
misses what was sent. `Escalation` holds the time-based duties of a Critical Issue: the
acknowledgement deadline (missed → the breach is recorded and the `escalation` tier is
paged) and the periodic update to the `critical` tier while the incident is not resolved.

Routing by tier (`notifiers[].tiers`, restricted by `notifiers[].services`):

=============  ===============================================================
tier           receives
=============  ===============================================================
critical       trigger, update, acknowledge, recover, resolve of Critical Issues
escalation     trigger when the ack deadline is missed; then acknowledge and
               resolve of that incident (acknowledge: so that a late ack also
               quiets the second pager; an addition to the issue's routing)
ticket         trigger, update, resolve of Non-Critical Issues, each held until
               the next Business Hours of the service (outbox next_attempt_at)
=============  ===============================================================

The acknowledgement deadline runs while the incident is ``open`` and unacknowledged: one
that recovers before anyone acknowledges it does not escalate (a second person paged for
an outage that already healed is noise); one that relapses unacknowledged after its
deadline escalates at once. A missed deadline is recorded as ``ack_breached_at`` and a
timeline event ``ack_breached``, then ``escalated`` naming the notifiers paged (none is
fine: the breach is still recorded). Updates go out every ``update_every_minutes`` from the
opening until resolved, recovered or not; after a long stop, one update and the cadence
restarts (no burst of missed ones).

Crash safety: before writing anything, `Herald` stores the event it is about to write in
the incident row (``data["pending"]``); `Herald.replay` (called by the policy's restore)
writes a missing timeline event and re-enqueues its items, which the outbox ignores when
already queued (idempotent per incident, notifier, event and ``seq``).
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from alerting.effects import IncidentWrites
from alerting.model import IncidentState, Severity
from monitor.calendar import BusinessCalendar, calendar_of
from monitor.clock import Clock
from monitor.config import Settings
from monitor.store.base import Incident, IncidentEvent, OutboxItem, Store

#: incident fields carried in every outbox payload, in this order
log = logging.getLogger("availmon.incidents")

INCIDENT_FIELDS: tuple[str, ...] = (
    "id",
    "service",
    "severity",
    "state",
    "kind",
    "dedup_key",
    "opened_at",
    "acknowledged_at",
    "acknowledged_by",
    "recovered_at",
    "resolved_at",
    "resolved_by",
    "first_unavailable",
    "last_unavailable",
    "unavailable_seconds",
    "ack_due_at",
    "ack_breached_at",
    "response_due_at",
    "summary",
)

EVENTS = ("trigger", "update", "acknowledge", "recover", "resolve")
TIERS = ("critical", "escalation", "ticket")
SUMMARY_MAX = 200

# the first word of a summary line, per (event, tier)
_HEADLINE: dict[str, str] = {
    "trigger": "",
    "update": "UPDATE: ",
    "acknowledge": "ACKNOWLEDGED: ",
    "recover": "RECOVERED: ",
    "resolve": "RESOLVED: ",
}


def _log_transition(incident: Incident, kind: str, data: dict[str, Any]) -> None:
    """One INFO line per incident event, whether or not any notifier is configured."""
    label = "Critical Issue" if incident.severity == Severity.CRITICAL else "Non-Critical Issue"
    detail = {
        "opened": incident.summary,
        "acknowledged": f"by {data.get('by', '?')}",
        "resolved": f"by {data.get('by', '?')}"
        + (f" ({data['auto']})" if data.get("auto") else "")
        + (f": {data['note']}" if data.get("note") else ""),
        "recovered": f"available since {iso(data.get('available_since'))}",
        "unavailable_again": f"unavailable again at {iso(data.get('second'))}",
        "superseded": f"by Critical Issue #{data.get('by_incident')}",
        "note": f"by {data.get('by', '?')}: {data.get('text', '')}",
    }.get(kind, "")
    log.info(
        "%s #%d (%s) %s%s",
        label,
        incident.id,
        incident.service,
        kind.replace("_", " "),
        f": {detail}" if detail else "",
        extra={"service": incident.service, "incident": incident.id},
    )


def incident_json(incident: Incident) -> dict[str, Any]:
    return {name: getattr(incident, name) for name in INCIDENT_FIELDS}


def iso(t: float | None) -> str:
    """Epoch seconds → ``2026-11-23T12:00:05Z`` (whole seconds: what people read)."""
    if t is None:
        return "-"
    return datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clip(text: str, limit: int = SUMMARY_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fit(front: str, back: str, limit: int = SUMMARY_MAX) -> str:
    """`front + back` within `limit`, shortening `front` first: the back carries the facts
    (state, seconds), the front a name that may be long."""
    if len(front) + len(back) <= limit:
        return front + back
    room = max(limit - len(back), 12)
    return clip(clip(front, room) + back, limit)


def summary_line(incident: Incident, event: str, tier: str) -> str:
    """One line (≤ 200 chars) for a pager, e.g. ``CRITICAL: sp-us unavailable (api) — 34 s
    unavailable since 12:00:05Z``."""
    head = incident.summary or f"{incident.severity.upper()}: {incident.service}"
    if tier == "escalation" and event == "trigger":
        return clip(f"ESCALATED (not acknowledged in time): {head}")
    if event == "update":
        state = incident.state
        if incident.severity == Severity.CRITICAL:
            since = iso(incident.first_unavailable)[11:]
            return fit(
                f"UPDATE: {incident.service}",
                f" Critical Issue #{incident.id} {state} — {incident.unavailable_seconds} s "
                f"unavailable since {since}",
            )
        return clip(f"UPDATE: {head}")
    if event == "acknowledge":
        return clip(f"ACKNOWLEDGED by {incident.acknowledged_by}: {head}")
    if event == "resolve":
        by = incident.resolved_by or "availmon"
        return clip(f"RESOLVED by {by}: {head}")
    return clip(_HEADLINE[event] + head)


def detail_text(incident: Incident, event: str, tier: str, vantage: str, extra: str = "") -> str:
    """A few lines of detail for notifiers that show a body."""
    lines = [
        f"{incident.severity.replace('_', '-').title()} Issue #{incident.id} on "
        f"{incident.service}: {incident.state} ({incident.kind}); event {event} to the "
        f"{tier} tier",
    ]
    if incident.unavailable_seconds or incident.first_unavailable is not None:
        lines.append(
            f"Unavailable seconds so far: {incident.unavailable_seconds} (first "
            f"{iso(incident.first_unavailable)}, last {iso(incident.last_unavailable)})"
        )
    channels = incident.data.get("channels")
    if channels:
        lines.append(f"Channels unavailable: {', '.join(channels)}")
    detail = incident.data.get("detail")
    if detail:
        lines.append(str(detail))
    when = f"Opened {iso(incident.opened_at)}"
    if incident.ack_due_at is not None:
        when += f"; acknowledgement due {iso(incident.ack_due_at)}"
    if incident.response_due_at is not None:
        when += f"; response due {iso(incident.response_due_at)} (business hours)"
    lines.append(when)
    if incident.acknowledged_at is not None:
        lines.append(
            f"Acknowledged by {incident.acknowledged_by} at {iso(incident.acknowledged_at)}"
        )
    if incident.ack_breached_at is not None:
        lines.append(f"Acknowledgement deadline missed at {iso(incident.ack_breached_at)}")
    if incident.recovered_at is not None:
        lines.append(f"Recovered at {iso(incident.recovered_at)}")
    if incident.resolved_at is not None:
        lines.append(f"Resolved by {incident.resolved_by} at {iso(incident.resolved_at)}")
    if extra:
        lines.append(extra)
    lines.append(f"Dedup key {incident.dedup_key}; vantage {vantage}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification to send: `event` to every notifier of `tier`."""

    event: str
    tier: str

    def __post_init__(self) -> None:
        if self.event not in EVENTS or self.tier not in TIERS:
            raise ValueError(f"bad notice {self.event}/{self.tier}")


def recipients(settings: Settings, service: str, tier: str) -> list[str]:
    """Names of the notifiers of `tier` that take incidents of `service`, in config order."""
    return [
        n.name
        for n in settings.notifiers
        if tier in n.tiers and (n.services is None or service in n.services)
    ]


class Herald:
    """Writes incident events: incident row, then timeline event, then outbox items."""

    def __init__(
        self,
        settings: Settings,
        writes: IncidentWrites,
        clock: Clock,
        *,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self._settings = settings
        #: the store itself, or the daemon's EffectLog (alerting/effects.py)
        self._writes = writes
        self._clock = clock
        self._on_outbox = on_outbox
        self._calendars: dict[str, BusinessCalendar] = {}
        self.reconfigure(settings)
        # times at which items held for business hours become due: the dispatcher is woken
        self._releases: list[float] = []

    def reconfigure(self, settings: Settings) -> None:
        """A reload's config (monitor/reload.py): recipients and business calendars."""
        self._settings = settings
        self._calendars = {
            s.name: calendar_of(s.service_time_zone, s.us_holidays) for s in settings.services
        }

    def calendar(self, service: str) -> BusinessCalendar:
        return self._calendars[service]

    def record(
        self,
        incident: Incident,
        kind: str,
        data: dict[str, Any] | None = None,
        notices: Sequence[Notice] = (),
        *,
        at: float | None = None,
        extra: str = "",
    ) -> tuple[Incident, IncidentEvent]:
        """Persist `incident` as it stands and append the event `kind`; queue `notices`.

        An incident with id 0 is created first (its id and dedup key come back set)."""
        at = self._clock.wall() if at is None else at
        event_data: dict[str, Any] = dict(data or {})
        if notices:
            seq = int(incident.data.get("seq", 0)) + 1
            incident.data["seq"] = seq
            event_data["seq"] = seq
            event_data["notify"] = [[n.event, n.tier] for n in notices]
            if extra:
                event_data["extra"] = extra
            # write-ahead: a crash after this write and before the outbox is repaired by replay
            incident.data["pending"] = {"seq": seq, "kind": kind, "at": at, "data": event_data}
        if incident.id == 0:
            incident = self._writes.create_incident(incident)
        else:
            self._writes.update_incident(incident)
        event = self._writes.add_event(IncidentEvent(incident.id, at, kind, event_data))
        if notices:
            self._enqueue(incident, event_data, at)
        _log_transition(incident, kind, event_data)
        return incident, event

    def replay(self, incident: Incident, store: Store) -> bool:
        """Finish the last event whose writing a crash interrupted; True when it did so.

        Runs at restore, off the event loop, on the store itself."""
        pending = incident.data.get("pending")
        if not pending:
            return False
        seq = pending["seq"]
        events = store.events(incident.id)
        wrote = False
        if not any(e.data.get("seq") == seq for e in events):
            store.add_event(
                IncidentEvent(incident.id, pending["at"], pending["kind"], pending["data"])
            )
            wrote = True
        queued = {
            (o.notifier, o.event) for o in store.outbox(incident.id) if o.payload.get("seq") == seq
        }
        wanted = self._items(incident, pending["data"], pending["at"])
        missing = [i for i in wanted if (i.notifier, i.event) not in queued]
        if missing:
            store.enqueue(missing)
            self._wake(missing)
            wrote = True
        return wrote

    def _items(self, incident: Incident, event_data: dict[str, Any], at: float) -> list[OutboxItem]:
        vantage = self._settings.monitor.vantage
        items: list[OutboxItem] = []
        seen: set[tuple[str, str]] = set()
        for event, tier in event_data["notify"]:
            due = at
            if tier == "ticket":
                due = self._calendars[incident.service].next_open(at).timestamp()
            payload = {
                "seq": event_data["seq"],
                "event": event,
                "tier": tier,
                "incident": incident_json(incident),
                "summary": summary_line(incident, event, tier),
                "text": detail_text(incident, event, tier, vantage, event_data.get("extra", "")),
                "at": at,
                "vantage": vantage,
            }
            for name in recipients(self._settings, incident.service, tier):
                # one item per (event, notifier): a notifier in two tiers hears it once
                if (event, name) in seen:
                    continue
                seen.add((event, name))
                items.append(
                    OutboxItem(
                        id=0,
                        incident_id=incident.id,
                        notifier=name,
                        event=event,
                        payload=payload,
                        created_at=at,
                        next_attempt_at=due,
                    )
                )
        return items

    def _enqueue(self, incident: Incident, event_data: dict[str, Any], at: float) -> None:
        items = self._items(incident, event_data, at)
        if items:
            self._writes.enqueue(items)
            self._wake(items)

    def _wake(self, items: Sequence[OutboxItem]) -> None:
        now = self._clock.wall()
        for item in items:
            if item.next_attempt_at > now:
                heapq.heappush(self._releases, item.next_attempt_at)
        if self._on_outbox is not None:
            self._on_outbox()

    def release(self, now: float) -> None:
        """Wake the dispatcher when items held for business hours have become due."""
        woke = False
        while self._releases and self._releases[0] <= now:
            heapq.heappop(self._releases)
            woke = True
        if woke and self._on_outbox is not None:
            self._on_outbox()


class Escalation:
    """The time-based duties of Critical Issues: the ack deadline and periodic updates."""

    def __init__(self, settings: Settings, herald: Herald) -> None:
        self._settings = settings
        self._herald = herald

    def reconfigure(self, settings: Settings) -> None:
        """A reload's config: ack deadlines and update intervals as they are now."""
        self._settings = settings

    def run(self, incident: Incident, now: float) -> Incident:
        """Do what is due at `now` for `incident`; returns it (persisted when changed)."""
        if incident.severity != Severity.CRITICAL or incident.state == IncidentState.RESOLVED:
            return incident
        cfg = self._settings.service(incident.service).critical
        if (
            incident.state == IncidentState.OPEN
            and incident.acknowledged_at is None
            and incident.ack_breached_at is None
            and incident.ack_due_at is not None
            and now >= incident.ack_due_at
        ):
            incident = self._escalate(incident, now, cfg.ack_within_minutes)
        if incident.next_update_at is not None and now >= incident.next_update_at:
            step = cfg.update_every_minutes * 60
            following = incident.next_update_at + step
            # after a long stop, one update now and the cadence from here, not a burst
            incident.next_update_at = following if following > now else now + step
            incident, _ = self._herald.record(
                incident,
                "update_sent",
                {"state": incident.state},
                [Notice("update", "critical")],
                at=now,
            )
        return incident

    def _escalate(self, incident: Incident, now: float, minutes: float) -> Incident:
        incident.ack_breached_at = now
        incident, _ = self._herald.record(
            incident, "ack_breached", {"due_at": incident.ack_due_at}, at=now
        )
        names = recipients(self._settings, incident.service, "escalation")
        incident.data["escalated"] = True
        extra = f"Not acknowledged within {minutes:g} min of opening: escalated."
        incident, _ = self._herald.record(
            incident,
            "escalated",
            {"notifiers": names},
            [Notice("trigger", "escalation")],
            at=now,
            extra=extra,
        )
        return incident
