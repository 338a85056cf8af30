"""Reloading the config of a running daemon (SIGHUP, ``POST /-/reload``) without losing a
decided second or an open incident.

A reload reads the config file again (and the environment, which wins over it), checks
it the way a start does, and then either applies all of it or none of it:

* **Refused** — the file does not parse, a secret cannot be resolved, a probe or a
  notifier cannot be built, or a field that only a restart can change differs
  (`RESTART_FIELDS`: the listener, the vantage name, the store). One ERROR line says
  why, ``availmon_config_last_reload_successful`` turns 0, and the config in force stays
  in force, measuring on as if nothing had happened.
* **Applied** — measurement is handed over at a second *S*, the first one the running
  launcher has not scheduled yet (about two seconds ahead). The old launcher schedules
  nothing from *S* on and finishes its seconds before *S* as usual (attempts still in
  flight get their full timeout); a new launcher, with new probes built from the new
  config (so a rotated secret file is read again), measures from *S*. `Handover` keeps
  each service's seconds in order: the new detector's seconds of a service wait until the
  old detector has emitted that service's second *S − 1*. Every second is therefore
  final exactly once, by the rules of the config that scheduled it. The incident policy,
  the notifiers, the maintenance windows from the config, the report schedule and the
  metrics' series take the new config at once. A service the new config lacks stops at
  *S*; its unresolved incidents stay in the store, one WARNING each. A service it adds
  starts at *S*, continuing the windows and incidents it had if an earlier config
  knew it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.config import Settings
from monitor.detector import SecondSink
from monitor.verdicts import SecondVerdict
from probes.base import Attempt

log = logging.getLogger(__name__)

#: fields a running daemon cannot change: the reload is refused while they differ
RESTART_FIELDS: tuple[tuple[str, Callable[[Settings], object]], ...] = (
    ("monitor.listen", lambda s: s.monitor.listen),
    ("status.listen", lambda s: s.status.listen),
    ("monitor.vantage", lambda s: s.monitor.vantage),
    ("store.url", lambda s: s.store.url),
    ("monitor.log_format", lambda s: s.monitor.log_format),
)


def restart_needed(old: Settings, new: Settings) -> list[str]:
    """One phrase per field of `RESTART_FIELDS` that differs (the store URL may hold a
    password: it is never shown)."""
    out = []
    for name, get in RESTART_FIELDS:
        before, after = get(old), get(new)
        if before != after:
            shown = "" if name == "store.url" else f" from {before!r} to {after!r}"
            out.append(f"{name} changed{shown}: that takes a restart")
    return out


@dataclass(frozen=True)
class Changes:
    """What a reload changes, for its log line and the API's answer."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    notifiers: bool = False
    other: tuple[str, ...] = ()

    def summary(self) -> str:
        parts = [
            f"{label} {', '.join(names)}"
            for label, names in (
                ("services added:", self.added),
                ("removed:", self.removed),
                ("changed:", self.changed),
            )
            if names
        ]
        if self.notifiers:
            parts.append("notifiers changed")
        if self.other:
            parts.append(f"also changed: {', '.join(self.other)}")
        return "; ".join(parts) or "no change (probes and notifiers rebuilt)"

    def as_dict(self) -> dict[str, object]:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
            "notifiers_changed": self.notifiers,
            "other": list(self.other),
        }


def compare(old: Settings, new: Settings) -> Changes:
    """Services added, removed and changed, and the other sections that differ. (Secret
    references compare by what they resolve to: call it off the event loop.)"""
    before = {s.name: s for s in old.services}
    after = {s.name: s for s in new.services}
    other = tuple(
        section
        for section in ("monitor", "store", "report", "maintenance")
        if getattr(old, section) != getattr(new, section)
    )
    return Changes(
        added=tuple(n for n in after if n not in before),
        removed=tuple(n for n in before if n not in after),
        changed=tuple(n for n in after if n in before and before[n] != after[n]),
        notifiers=old.notifiers != new.notifiers,
        other=other,
    )


@dataclass(frozen=True)
class ReloadResult:
    """The outcome of one reload: applied or refused, one line saying so."""

    applied: bool
    message: str
    changes: Changes | None = None
    #: the first second measured by the new config (applied only)
    boundary: int | None = None


Emitted = tuple[int, list[SecondVerdict], list[Attempt]]


@dataclass
class Handover:
    """Orders each service's seconds across one reload: `from_old` takes the retiring
    detector's seconds (all before `boundary`), `from_new` the new detector's (from
    `boundary` on). A new second of a service in `waiting` is held until the old detector
    has emitted that service's `boundary − 1`."""

    boundary: int
    sink: SecondSink
    waiting: set[str]
    held: dict[str, list[Emitted]] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return not self.waiting

    def from_old(self, second: int, verdicts: list[SecondVerdict], evidence: list[Attempt]) -> None:
        self.sink(second, verdicts, evidence)
        if second >= self.boundary - 1 and verdicts:
            self._release(verdicts[0].service)

    def from_new(self, second: int, verdicts: list[SecondVerdict], evidence: list[Attempt]) -> None:
        service = verdicts[0].service if verdicts else ""
        if service in self.waiting:
            self.held.setdefault(service, []).append((second, verdicts, evidence))
            return
        self.sink(second, verdicts, evidence)

    def _release(self, service: str) -> None:
        self.waiting.discard(service)
        for second, verdicts, evidence in self.held.pop(service, []):
            try:
                self.sink(second, verdicts, evidence)
            except Exception:  # as the detector does: a consumer's bug stops no second
                log.exception("verdict sink failed for second %d", second)
