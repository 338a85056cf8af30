"""The incident state machine, and the human actions on it (CLI and HTTP API).

States: ``open → acknowledged → recovered → resolved``; acknowledgement may be skipped
(``open → recovered``), an incident may be acknowledged while recovered (it stays
recovered), and unavailability returning to a recovered incident within
``reopen_within_seconds`` takes it back to ``acknowledged`` (if it was) or ``open``. A
person may resolve from any state but ``resolved``; so may the policy (auto-resolve, or a
Non-Critical Issue superseded by a Critical one). Non-Critical Issues use ``open →
acknowledged → resolved``: "condition absent" is tracked by the policy, not as a state.

Every action writes the incident row and its timeline event first, then the outbox items
(see `alerting.escalation.Herald`).

Exception tree::

    IncidentStateError   the action does not fit the incident's state (ack of a resolved
                         incident, ...): one line, CLI exit 2, API 409
    ValueError           bad argument (empty name or note, unknown state filter)
    monitor.store.base.NotFound   no such incident (API 404)
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any

from alerting.case import CALLBACK_EVENT, callback_of
from alerting.escalation import Herald, Notice, incident_json, iso
from alerting.model import IncidentState, Severity
from monitor.clock import Clock
from monitor.config import Settings
from monitor.store.base import Incident, IncidentEvent, Store

STATES: tuple[str, ...] = tuple(IncidentState)
SEVERITIES: tuple[str, ...] = tuple(Severity)


class IncidentStateError(Exception):
    """The action does not fit the incident's current state; `str()` is one line."""


def _who(by: str) -> str:
    by = (by or "").strip()
    if not by:
        raise ValueError("say who acts: 'by' must name a person")
    if len(by) > 200:
        raise ValueError("'by' is longer than 200 characters")
    return by


def incident_view(incident: Incident) -> dict[str, Any]:
    """The incident as JSON for `incidents show/list` and the API: the payload fields plus
    the next update time and the policy's detail."""
    view = incident_json(incident)
    view["next_update_at"] = incident.next_update_at
    view["channels"] = list(incident.data.get("channels", []))
    view["kinds"] = list(incident.data.get("kinds", [incident.kind]))
    view["detail"] = incident.data.get("detail", "")
    if "superseded_by" in incident.data:
        view["superseded_by"] = incident.data["superseded_by"]
    return view


class Incidents:
    """Human actions (ack, resolve, note, show, list) and the transitions the policy drives."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        *,
        on_outbox: Callable[[], None] | None = None,
        herald: Herald | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock
        self._own_herald = herald is None
        self.herald = herald or Herald(settings, store, clock, on_outbox=on_outbox)

    def reconfigure(self, settings: Settings) -> None:
        """A reload's config (and its herald's, when it is this object's own)."""
        self._settings = settings
        if self._own_herald:
            self.herald.reconfigure(settings)

    # ------------------------------------------------------------------ human actions

    def ack(self, incident_id: int, by: str) -> Incident:
        by = _who(by)
        incident = self._store.get_incident(incident_id)
        if incident.state == IncidentState.RESOLVED:
            raise IncidentStateError(
                f"incident {incident_id} is resolved; there is nothing to acknowledge"
            )
        if incident.acknowledged_at is not None:
            raise IncidentStateError(
                f"incident {incident_id} is already acknowledged by {incident.acknowledged_by} "
                f"at {iso(incident.acknowledged_at)}"
            )
        now = self._clock.wall()
        incident.acknowledged_at = now
        incident.acknowledged_by = by
        if incident.state == IncidentState.OPEN:
            incident.state = IncidentState.ACKNOWLEDGED
        notices: list[Notice] = []
        if incident.severity == Severity.CRITICAL:
            notices.append(Notice("acknowledge", "critical"))
            if incident.data.get("escalated"):
                notices.append(Notice("acknowledge", "escalation"))
        late = incident.ack_due_at is not None and now > incident.ack_due_at
        incident, _ = self.herald.record(
            incident, "acknowledged", {"by": by, "late": late}, notices, at=now
        )
        return incident

    def resolve(self, incident_id: int, by: str, note: str = "") -> Incident:
        by = _who(by)
        incident = self._store.get_incident(incident_id)
        if incident.state == IncidentState.RESOLVED:
            raise IncidentStateError(
                f"incident {incident_id} is already resolved by {incident.resolved_by} "
                f"at {iso(incident.resolved_at)}"
            )
        return self._resolve(incident, by, {"by": by, "note": note.strip()}, note.strip())

    def note(self, incident_id: int, by: str, text: str) -> IncidentEvent:
        by = _who(by)
        text = (text or "").strip()
        if not text:
            raise ValueError("a note needs text")
        incident = self._store.get_incident(incident_id)
        _, event = self.herald.record(incident, "note", {"by": by, "text": text})
        return event

    def callback(
        self, incident_id: int, by: str, at: float | None = None, note: str = ""
    ) -> IncidentEvent:
        """Record the vendor's callback on a Critical Issue (`by`: who called, their
        name): distinct from the on-call acknowledgement, measured against the vendor's
        promise (`[sev1] callback_minutes`) in the case sheet and the report. Once."""
        by = _who(by)
        incident = self._store.get_incident(incident_id)
        if incident.severity != Severity.CRITICAL:
            raise IncidentStateError(
                f"incident {incident_id} is Non-Critical: the vendor calls back on Critical Issues"
            )
        done = callback_of(incident, self._store.events(incident_id))
        if done is not None:
            raise IncidentStateError(
                f"incident {incident_id}: the vendor's callback is already recorded "
                f"({done['by']} at {iso(done['at'])})"
            )
        now = self._clock.wall()
        at = now if at is None else at
        if at < incident.opened_at or at > now + 60:
            raise ValueError(
                f"the callback time {iso(at)} is not between the opening "
                f"({iso(incident.opened_at)}) and now"
            )
        minutes = (at - incident.opened_at) / 60
        within = minutes <= self._settings.sev1.callback_minutes
        _, event = self.herald.record(
            incident,
            CALLBACK_EVENT,
            {"by": by, "at": at, "within": within, "note": note.strip()},
            at=now,
        )
        return event

    def show(self, incident_id: int) -> dict[str, Any]:
        incident = self._store.get_incident(incident_id)
        timeline = [
            {"id": e.id, "at": e.at, "kind": e.kind, "data": e.data}
            for e in self._store.events(incident_id)
        ]
        notifications = [
            {
                "id": o.id,
                "notifier": o.notifier,
                "event": o.event,
                "tier": o.payload.get("tier"),
                "seq": o.payload.get("seq"),
                "state": o.state,
                "tries": o.tries,
                "created_at": o.created_at,
                "next_attempt_at": o.next_attempt_at,
                "sent_at": o.sent_at,
                "last_error": o.last_error,
            }
            for o in self._store.outbox(incident_id)
        ]
        return {
            "incident": incident_view(incident),
            "timeline": timeline,
            "notifications": notifications,
        }

    def list(
        self,
        service: str | None = None,
        state: str | None = None,
        severity: str | None = None,
        limit: int = 100,
    ) -> builtins.list[dict[str, Any]]:
        if state is not None and state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {state!r}")
        if severity is not None and severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
        if limit < 1:
            raise ValueError("limit must be at least 1")
        found = self._store.list_incidents(
            service=service, state=state, severity=severity, limit=limit
        )
        return [incident_view(i) for i in found]

    # ------------------------------------------------------------------ policy transitions

    def open(
        self,
        template: Incident,
        data: dict[str, Any] | None = None,
        *,
        at: float,
    ) -> Incident:
        """Create the incident described by `template` (id 0) and page its first tier."""
        if template.severity == Severity.CRITICAL:
            cfg = self._settings.service(template.service).critical
            template.ack_due_at = at + cfg.ack_within_minutes * 60
            template.next_update_at = at + cfg.update_every_minutes * 60
            notices = [Notice("trigger", "critical")]
        else:
            ncfg = self._settings.service(template.service).non_critical
            due = self.herald.calendar(template.service).add_business_hours(
                at, ncfg.respond_within_business_hours
            )
            template.response_due_at = due.timestamp()
            notices = [Notice("trigger", "ticket")]
        incident, _ = self.herald.record(template, "opened", data, notices, at=at)
        return incident

    def relapse(self, incident: Incident, second: int, *, at: float) -> Incident:
        """Unavailability is back within reopen_within_seconds: the same incident goes on,
        without a new page."""
        if incident.state != IncidentState.RECOVERED:
            raise IncidentStateError(f"incident {incident.id} is {incident.state}, not recovered")
        acked = incident.acknowledged_at is not None
        incident.state = IncidentState.ACKNOWLEDGED if acked else IncidentState.OPEN
        recovered_second = incident.data.pop("recovered_second", None)
        incident.recovered_at = None
        incident.unavailable_seconds += 1
        incident.last_unavailable = second
        incident, _ = self.herald.record(
            incident,
            "unavailable_again",
            {"second": second, "recovered_second": recovered_second},
            at=at,
        )
        return incident

    def recover(
        self, incident: Incident, second: int, available_since: int, *, at: float
    ) -> Incident:
        if not incident.state.ongoing:
            raise IncidentStateError(f"incident {incident.id} is {incident.state}; cannot recover")
        incident.state = IncidentState.RECOVERED
        incident.recovered_at = at
        incident.data["recovered_second"] = second
        notices = [Notice("recover", "critical")] if incident.severity == Severity.CRITICAL else []
        incident, _ = self.herald.record(
            incident,
            "recovered",
            {"second": second, "available_since": available_since},
            notices,
            at=at,
        )
        return incident

    def auto_resolve(self, incident: Incident, reason: str, *, at: float) -> Incident:
        return self._resolve(incident, "availmon", {"by": "availmon", "auto": reason}, reason, at)

    def supersede(self, incident: Incident, critical: Incident, *, at: float) -> Incident:
        """A Critical Issue opened while this Non-Critical one was open: the Critical one
        carries the matter now, so this one is closed (with a note) rather than left to
        page the ticket queue about the same outage."""
        incident.data["superseded_by"] = critical.id
        incident, _ = self.herald.record(
            incident,
            "superseded",
            {"by_incident": critical.id, "dedup_key": critical.dedup_key},
            at=at,
        )
        return self._resolve(
            incident,
            "availmon",
            {"by": "availmon", "superseded_by": critical.id},
            f"Superseded by Critical Issue #{critical.id} ({critical.dedup_key}).",
            at,
        )

    def _resolve(
        self,
        incident: Incident,
        by: str,
        data: dict[str, Any],
        extra: str,
        at: float | None = None,
    ) -> Incident:
        at = self._clock.wall() if at is None else at
        incident.state = IncidentState.RESOLVED
        incident.resolved_at = at
        incident.resolved_by = by
        incident.next_update_at = None
        notices: Sequence[Notice]
        if incident.severity == Severity.CRITICAL:
            notices = [Notice("resolve", "critical")]
            if incident.data.get("escalated"):
                notices = [*notices, Notice("resolve", "escalation")]
        else:
            notices = [Notice("resolve", "ticket")]
        incident, _ = self.herald.record(incident, "resolved", data, notices, at=at, extra=extra)
        return incident
