"""The vocabulary of incidents and notifications: states, severities, and the records the
store keeps of them (incident, timeline event, outbox item).

It sits at the bottom of the layers (ARCHITECTURE.md): the store contract, the notifiers
and the policy all speak it, and it imports nothing of theirs. The enums are `StrEnum`s,
so they are written to the store, JSON and the API as the same words as before.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    NON_CRITICAL = "non_critical"


class IncidentState(enum.StrEnum):
    """``open → acknowledged → recovered → resolved`` (see alerting/incidents.py)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RECOVERED = "recovered"
    RESOLVED = "resolved"

    @property
    def active(self) -> bool:
        """Not resolved: the policy still watches it."""
        return self is not IncidentState.RESOLVED

    @property
    def ongoing(self) -> bool:
        """Open or acknowledged: the outage is going on (not recovered, not resolved)."""
        return self in (IncidentState.OPEN, IncidentState.ACKNOWLEDGED)


#: the unresolved states, in lifecycle order
ACTIVE_STATES: tuple[IncidentState, ...] = tuple(s for s in IncidentState if s.active)


def dedup_key(service: str, incident_id: int) -> str:
    """The key notifiers deduplicate an incident's events on (PagerDuty dedup_key,
    Opsgenie alias, Alertmanager labels)."""
    return f"availmon/{service}/{incident_id}"


class OutboxState(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # permanently: the receiver refused it, or max_tries ran out


@dataclass(slots=True)
class IncidentEvent:
    """One line of an incident's timeline (opened, acknowledged, notified, note, ...)."""

    incident_id: int
    at: float
    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(slots=True)
class Incident:
    id: int
    service: str
    severity: Severity
    state: IncidentState
    kind: str  # what opened it: "unavailable", "failure_ratio", "blind"
    dedup_key: str
    opened_at: float
    first_unavailable: int | None = None
    last_unavailable: int | None = None
    unavailable_seconds: int = 0
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    recovered_at: float | None = None
    resolved_at: float | None = None
    resolved_by: str | None = None
    ack_due_at: float | None = None
    ack_breached_at: float | None = None
    next_update_at: float | None = None
    response_due_at: float | None = None  # Non-Critical: due time in business hours
    summary: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # rows and JSON carry the words; the enums check them
        self.severity = Severity(self.severity)
        self.state = IncidentState(self.state)


@dataclass(slots=True)
class OutboxItem:
    """A notification waiting to be (re)sent: one event to one notifier."""

    id: int
    incident_id: int
    notifier: str
    event: str  # trigger | update | escalate | acknowledge | recover | resolve | ...
    payload: dict[str, Any]
    created_at: float
    next_attempt_at: float
    tries: int = 0
    state: OutboxState = OutboxState.PENDING
    last_error: str | None = None
    sent_at: float | None = None

    def __post_init__(self) -> None:
        self.state = OutboxState(self.state)
