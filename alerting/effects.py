"""Effects: the incident writes the policy decides on, as data.

The policy runs on the event loop, which must never wait on the store (ARCHITECTURE.md
"Invariants"). So in the daemon its `Herald` writes into an `EffectLog` instead of the
store: each write becomes an effect (a snapshot, so later changes of the incident in
memory do not leak into it), and the daemon hands the effects, in order, to the store
writer (monitor/writer.py), which applies them off the loop with `apply` and retries what
the store refuses. Incident ids are allocated here, not by the store, so a Critical Issue
has its id and dedup key (``availmon/{service}/{id}``) even while the store refuses
writes, and can be paged from memory with the same key it is stored under later.

Without an `EffectLog` (tests, the CLI) the same code writes to a `Store` directly: both
implement `IncidentWrites`.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from alerting.model import Incident, IncidentEvent, OutboxItem, dedup_key
from monitor.store.base import BlocklistSpell, Store


class IncidentWrites(Protocol):
    """The writes of incident events (a `Store` is one, an `EffectLog` another)."""

    def create_incident(self, incident: Incident) -> Incident: ...

    def update_incident(self, incident: Incident) -> None: ...

    def add_event(self, event: IncidentEvent) -> IncidentEvent: ...

    def enqueue(self, items: Sequence[OutboxItem]) -> list[OutboxItem]: ...

    def open_spell(self, spell: BlocklistSpell) -> None: ...

    def close_spell(self, service: str, target: str, zone: str, ended_at: float) -> None: ...


@dataclass(frozen=True, slots=True)
class CreateIncident:
    incident: Incident


@dataclass(frozen=True, slots=True)
class UpdateIncident:
    incident: Incident


@dataclass(frozen=True, slots=True)
class AddEvent:
    event: IncidentEvent


@dataclass(frozen=True, slots=True)
class Enqueue:
    items: tuple[OutboxItem, ...]


@dataclass(frozen=True, slots=True)
class OpenSpell:
    spell: BlocklistSpell


@dataclass(frozen=True, slots=True)
class CloseSpell:
    service: str
    target: str
    zone: str
    ended_at: float


Effect = CreateIncident | UpdateIncident | AddEvent | Enqueue | OpenSpell | CloseSpell


def snapshot(incident: Incident) -> Incident:
    """A copy that shares nothing mutable with `incident`."""
    return dataclasses.replace(incident, data=copy.deepcopy(incident.data))


class EffectLog:
    """Records incident writes as effects; `take` hands them over in order.

    Incident ids continue from `reserve(last_id)` (the store's highest at start): the
    policy of one daemon (one leader) is the only creator of incidents."""

    def __init__(self) -> None:
        self._effects: list[Effect] = []
        self._next_id = 1
        self._lock = threading.Lock()

    def reserve(self, last_id: int) -> None:
        """Ids from `last_id + 1` on (never moves backwards)."""
        with self._lock:
            self._next_id = max(self._next_id, last_id + 1)

    def create_incident(self, incident: Incident) -> Incident:
        with self._lock:
            new_id = self._next_id
            self._next_id += 1
        created = dataclasses.replace(
            incident, id=new_id, dedup_key=dedup_key(incident.service, new_id)
        )
        self._effects.append(CreateIncident(snapshot(created)))
        return created

    def update_incident(self, incident: Incident) -> None:
        self._effects.append(UpdateIncident(snapshot(incident)))

    def add_event(self, event: IncidentEvent) -> IncidentEvent:
        self._effects.append(AddEvent(dataclasses.replace(event, data=copy.deepcopy(event.data))))
        return event

    def enqueue(self, items: Sequence[OutboxItem]) -> list[OutboxItem]:
        self._effects.append(
            Enqueue(tuple(dataclasses.replace(i, payload=copy.deepcopy(i.payload)) for i in items))
        )
        return list(items)

    def open_spell(self, spell: BlocklistSpell) -> None:
        self._effects.append(OpenSpell(spell))

    def close_spell(self, service: str, target: str, zone: str, ended_at: float) -> None:
        self._effects.append(CloseSpell(service, target, zone, ended_at))

    def take(self) -> list[Effect]:
        """The effects recorded since the last call, oldest first."""
        taken, self._effects = self._effects, []
        return taken


def apply(store: Store, effect: Effect) -> list[OutboxItem]:
    """Write one effect; returns the outbox items it stored (with their ids), if any.

    Applying an effect again after a failure is safe: a created incident that exists is
    rewritten, an event is added once per try that failed before it was written, and the
    outbox is idempotent per (incident, notifier, event, seq), a spell opens once per pair
    and closes only an open one."""
    if isinstance(effect, CreateIncident):
        store.create_incident(effect.incident)
    elif isinstance(effect, UpdateIncident):
        store.update_incident(effect.incident)
    elif isinstance(effect, AddEvent):
        store.add_event(effect.event)
    elif isinstance(effect, OpenSpell):
        store.open_spell(effect.spell)
    elif isinstance(effect, CloseSpell):
        store.close_spell(effect.service, effect.target, effect.zone, effect.ended_at)
    else:
        return store.enqueue(effect.items)
    return []
