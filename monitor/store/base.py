"""The store contract: what is kept, and the calls every backend answers.

Shape (ARCHITECTURE.md "Store"): verdict **runs** (a stretch of equal verdicts, not one
record per second); per-minute attempt counts by outcome; full attempt evidence only for
unavailable and degraded seconds; maintenance windows; incidents with their timelines;
the notification outbox; key/value state (the ledger of reports written).

The contract knows no query language and no backend: each backend implements it in its
own module and registers by URL scheme (`monitor.store.BACKENDS`), and every backend runs
the same contract suite (tests/monitor/store/test_contract.py). Business rules (the
vantage quorum, maintenance exclusion, blindness) live above it, never in a backend.

Every method is synchronous and thread-safe; the daemon calls them from worker threads
(the store writer, monitor/writer.py, and `asyncio.to_thread`), never on the event loop.
Times are integer UTC epoch seconds unless named otherwise.

Exception tree::

    StoreError             anything the backend cannot do (bad URL, corrupt file, schema newer
    │                      than this program)
    ├── NotFound           the incident / window asked for does not exist
    └── StaleEpoch         a fenced write of a leader that another has replaced

Leadership (several vantage points on one database): a **lease** row per name, taken or
renewed by `acquire_lease` until a time, with an **epoch** that grows by one whenever the
holder changes — the fencing token. `fenced(name, epoch)` gives a view of the store whose
writes check, inside their own transaction, that the lease's epoch is still `epoch`, and
raise `StaleEpoch` otherwise: a leader that was replaced while it paused cannot write
after its successor. Outbox rows are **claimed** (`claim_due`) by one holder for a while
before they are sent, so two instances never send the same row at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from alerting.model import (
    Incident,
    IncidentEvent,
    IncidentState,
    OutboxItem,
    OutboxState,
    Severity,
)
from monitor.intervals import Interval, union
from monitor.verdicts import Run, SecondVerdict, UnknownReason
from probes.base import Attempt

__all__ = [
    "BlocklistSpell",
    "Incident",
    "IncidentEvent",
    "IncidentState",
    "MaintenanceWindow",
    "MinuteCount",
    "NotFound",
    "OutboxItem",
    "OutboxState",
    "Run",
    "Severity",
    "Store",
    "StoreError",
    "excluded_spans",
]


class StoreError(Exception):
    """The store cannot do what was asked."""


class NotFound(StoreError, KeyError):
    """No such row."""


class StaleEpoch(StoreError):
    """A fenced write whose epoch is no longer the lease's: another holder took over."""


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    epoch: int  # grows by one each time the holder changes
    expires_at: float  # epoch seconds (the store's clock when it has one)


@dataclass(frozen=True, slots=True)
class MinuteCount:
    service: str
    channel: str
    probe: str
    minute: int  # epoch second of the minute's start
    outcome: str
    count: int
    #: the vantage point whose attempts these are ("" in a store from before vantages)
    vantage: str = ""


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    id: int
    service: str  # "*" for every service
    start: int
    end: int  # exclusive
    reason: str = ""
    source: str = "api"  # "config" for windows declared in config.toml

    def applies_to(self, service: str) -> bool:
        return self.service in ("*", service)


@dataclass(frozen=True, slots=True)
class BlocklistSpell:
    """One listing of a target (a sending IP or domain) on one blocklist zone, from the
    check that first saw it to the one that confirmed its delisting (monitor/blocklist.py).
    `zone` is the list's public name (never a DQS query name: it holds a key); `codes`
    the A records of the listing, `txt` the reason the list gave. Times are epoch
    seconds (floats, as incidents keep them)."""

    service: str
    target: str
    zone: str
    started_at: float
    ended_at: float | None = None
    codes: tuple[str, ...] = ()
    txt: str | None = None
    id: int = 0


def excluded_spans(windows: Iterable[MaintenanceWindow], service: str) -> list[Interval]:
    """The seconds that maintenance excludes from `service`'s SLA and incident policies:
    the union of the half-open windows for it or for '*' (the one place this is decided)."""
    return union((w.start, w.end) for w in windows if w.applies_to(service))


class Store(Protocol):
    #: several daemons (vantage points) may share this store and elect a leader (True:
    #: PostgreSQL); False: one daemon per store (SQLite), which always leads
    shared: bool

    # --- lifecycle
    def migrate(self) -> None: ...
    def close(self) -> None: ...

    # --- seconds (written by the daemon's fan-out, in order)
    def write_verdicts(self, verdicts: Sequence[SecondVerdict]) -> None:
        """Append final verdicts (any mix of services/channels, each stream in order).

        Extends the open run of (service, channel, vantage) when the verdict and reason
        match and the second follows it; otherwise starts a new run. A second at or before
        the last stored one for its stream is ignored (never labelled twice)."""
        ...

    def write_minute_counts(self, counts: Iterable[MinuteCount]) -> None:
        """Add counts (upsert: existing rows are incremented)."""
        ...

    def write_evidence(self, attempts: Iterable[Attempt]) -> None: ...

    def last_second(self, service: str, channel: str, vantage: str | None = None) -> int | None: ...

    def bounds(self, service: str, vantage: str | None = None) -> tuple[int, int] | None:
        """First and last stored second of `service` over all its channels (and vantages,
        unless one is named); None when nothing is stored."""
        ...

    def runs(
        self, service: str, channel: str, start: int, end: int, vantage: str | None = None
    ) -> list[Run]:
        """Runs overlapping [start, end) clipped to it, ordered by first second."""
        ...

    def minute_counts(
        self, service: str, start: int, end: int, vantage: str | None = None
    ) -> list[MinuteCount]:
        """Every vantage's counts, or those of the vantage named."""
        ...

    def attempt_totals(
        self, service: str, start: int, end: int, vantage: str | None = None
    ) -> dict[str, int]:
        """channel → attempts in the minutes starting in [start, end) (every vantage's, or
        the one named)."""
        ...

    def evidence(
        self,
        service: str,
        start: int,
        end: int,
        limit: int = 1000,
        vantage: str | None = None,
    ) -> list[dict[str, Any]]:
        """Attempt evidence rows (Attempt.to_json() shape, with its vantage) with second
        in [start, end), of every vantage or the one named."""
        ...

    def prune(self, before: int) -> int:
        """Delete evidence and minute counts older than `before`; return rows deleted."""
        ...

    def fill_unknown(
        self,
        service: str,
        channel: str,
        vantage: str,
        first: int,
        last: int,
        reason: UnknownReason,
    ) -> None:
        """Store seconds first..last (inclusive) as unknown for `reason` (the gap a restart
        leaves: monitor_down), clipped to after the stream's last stored second."""
        ...

    def write_recent(self, verdicts: Sequence[SecondVerdict]) -> None:
        """Keep these verdicts in full for a while (a shared store's leader combines them
        across vantages, monitor/combiner.py); a verdict already kept is left alone."""
        ...

    def recent(self, service: str, first: int, last: int) -> list[SecondVerdict]:
        """The kept verdicts of `service`'s seconds first..last (inclusive), every
        vantage's and channel's, by second, vantage, channel."""
        ...

    def recent_progress(self, service: str, since: int) -> dict[str, int]:
        """vantage → the last second of `service` it has kept, for the vantages that
        kept one after `since`."""
        ...

    def prune_recent(self, before: int) -> int:
        """Forget the kept verdicts of seconds before `before`; return how many."""
        ...

    def streams(self) -> list[tuple[str, str, str]]:
        """Every (service, channel, vantage) with stored seconds."""
        ...

    # --- maintenance
    def add_maintenance(
        self, service: str, start: int, end: int, reason: str = "", source: str = "api"
    ) -> MaintenanceWindow: ...
    def list_maintenance(
        self, service: str | None = None, start: int | None = None, end: int | None = None
    ) -> list[MaintenanceWindow]: ...
    def remove_maintenance(self, window_id: int) -> None: ...

    # --- incidents
    def create_incident(self, incident: Incident) -> Incident:
        """Insert and return it with its id and dedup key set (`alerting.model.dedup_key`).

        With ``incident.id == 0`` the store picks the id; with an id (the policy's
        `EffectLog` allocates them) that id is used, and an incident that already has it
        is left as stored (a retried write)."""
        ...

    def max_incident_id(self) -> int:
        """The highest incident id stored, 0 when there is none."""
        ...

    def update_incident(self, incident: Incident) -> None: ...
    def get_incident(self, incident_id: int) -> Incident: ...
    def list_incidents(
        self,
        service: str | None = None,
        state: str | None = None,
        severity: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[Incident]: ...
    def add_event(self, event: IncidentEvent) -> IncidentEvent: ...
    def events(self, incident_id: int) -> list[IncidentEvent]: ...

    # --- outbox
    def enqueue(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        """Insert new items (ids ignored); idempotent per (incident_id, notifier, event,
        payload['seq']) so a restart that replays an event never queues it twice."""
        ...

    def due(self, now: float, limit: int = 100) -> list[OutboxItem]: ...
    def update_outbox(self, item: OutboxItem) -> None: ...
    def outbox(self, incident_id: int | None = None) -> list[OutboxItem]: ...
    def prune_outbox(self, before: float) -> int:
        """Delete sent or failed items of incidents resolved before `before`; return how
        many (pending items and those of unresolved incidents stay)."""
        ...

    def claim_due(
        self, now: float, holder: str, claim_seconds: float, limit: int = 100
    ) -> list[OutboxItem]:
        """The items `due` would return that no other holder has claimed (or whose claim
        has run out), claimed for `holder` until ``now + claim_seconds``: two instances
        calling it at once get disjoint items. Recording the outcome (`update_outbox`)
        ends the claim."""
        ...

    # --- leadership
    def acquire_lease(
        self, name: str, holder: str, ttl: float, now: float | None = None
    ) -> Lease | None:
        """Take the lease `name` for `holder` (free, expired, or already its own) until
        ``now + ttl``; return it, or None while another holder's lease runs. `now` None:
        the store's own clock (PostgreSQL's, shared by every host)."""
        ...

    def release_lease(self, name: str, holder: str) -> None:
        """End `holder`'s lease now (a clean stop), so a successor need not wait."""
        ...

    def current_lease(self, name: str) -> Lease | None: ...

    def fenced(self, name: str, epoch: int) -> Store:
        """This store, with every write checking that lease `name` is at `epoch`."""
        ...

    # --- blocklist listings (migration 0008)
    def open_spell(self, spell: BlocklistSpell) -> None:
        """Store a listing that began; a pair (service, target, zone) with a spell still
        open keeps that one (a retried or replayed write changes nothing)."""
        ...

    def close_spell(self, service: str, target: str, zone: str, ended_at: float) -> None:
        """End the open spell of the pair, if there is one."""
        ...

    def spells(
        self,
        service: str | None = None,
        start: float | None = None,
        end: float | None = None,
        open_only: bool = False,
    ) -> list[BlocklistSpell]:
        """Spells overlapping [start, end) (an open one reaches to now), oldest first."""
        ...

    # --- key/value state (policy windows, watermarks, report ledger)
    def get_state(self, key: str) -> Any | None: ...
    def set_state(self, key: str, value: Any) -> None: ...
