"""Rules that open, continue and recover incidents, driven by the verdict stream.

The policy sees every final second once (`Policy.on_second`) and keeps, per service, only
counters and short queues, so each verdict costs O(1) (amortised): no scan of a window.

Critical Issue (``[services.critical]``)
    Opens at the final second in which at least ``min_unavailable_seconds`` of the last
    ``window_seconds`` seconds of the service's combined verdict (channel ``service``) are
    unavailable. The window is a span of time: seconds that never arrive (the monitor was
    down) and excluded seconds are simply not unavailable. While the incident is open or
    acknowledged, every unavailable second adds to ``unavailable_seconds``. It recovers after
    ``recover_after_seconds`` *consecutive* available seconds; an ``unknown`` second, or a
    gap of seconds never seen (the monitor was down), breaks the streak (no evidence of
    service is not evidence of recovery). Unavailability that comes back while it is
    recovered and within ``reopen_within_seconds`` of the recovery second continues it
    (state back to ``open``/``acknowledged``, event ``unavailable_again``, no new page);
    later, the rule must be met again and opens a new incident. A person's resolve of an
    incident clears the Critical window, so a new incident needs fresh evidence.

Maintenance
    Seconds with ``excluded=True`` count toward no rule: not unavailable, not available for
    the recovery streak (an excluded second neither extends nor breaks it), not in the
    failure ratio, not toward blindness. A maintenance window therefore never opens an
    incident, and an incident open when one starts simply waits it out.

Non-Critical Issue (``[services.non_critical]``), at most one unresolved per service
    * ``unavailable``: at least ``min_unavailable_seconds`` unavailable seconds in its
      ``window_seconds`` that are *short of a Critical Issue*: a second counts once it has
      left the Critical window without a Critical Issue opening, so an outage that becomes
      Critical does not also file a ticket a minute earlier; and a second a Critical Issue
      counted never counts, also after a person resolves it mid-outage and after a
      restart (`_rebuild` reads the resolved Critical Issues' last counted second).
    * ``failure_ratio``: qualifying failures (timeout + server_error) are at least
      ``failure_ratio`` of conclusive attempts (every outcome but probe_error) of the
      channels' ``counts`` over ``window_seconds``; judged only once the policy has watched
      a whole window (after start, or after a Critical recovery), so a handful of early
      attempts cannot file a ticket.
    * ``blind``: a channel had no ok and no qualifying attempt (only client_error,
      probe_error or nothing) for ``blind_after_seconds`` seconds (a revoked key, a quota).
    * ``blocklisted``: a sending IP or domain of the service is listed on a blocklist zone
      (`Policy.on_blocklist`, the rules of a listing and a delisting in
      monitor/blocklist.py); the incident's ``data["listings"]`` names each zone, target,
      return code and TXT. Each new listing while one is open is a ``condition_added``.
    * ``blocklist_blind``: a zone's every query errored for ``blind_after_checks`` checks
      (SERVFAIL, REFUSED, a timeout, an error code such as Spamhaus's public-resolver
      answer): the blocklist watch is blind there, as a channel can be (kept apart from
      ``blind``, which is about the per-second probes).
    Kinds found while one is open are added to it (``update`` to the ticket tier). It is
    resolved automatically once no condition has held for ``auto_resolve_after_minutes``
    (counted in verdict seconds) — except that an issue of blocklist conditions only
    whose listings were all delisted (two clean checks in a row each) is resolved at
    once: the two checks are the wait. After a person resolves it, no new one opens until the
    conditions have cleared once (else closing a ticket would reopen it the next second).

Critical while Non-Critical (decision)
    A Critical Issue opening (or continuing after a recovery) while a Non-Critical one is
    open *supersedes* it: the Non-Critical Issue gets a ``superseded`` event naming the
    Critical one and is resolved by ``availmon`` (the ticket tier hears ``resolve`` with the
    reason), and the Critical ``opened`` event records ``supersedes``. While a Critical
    Issue is open or acknowledged, no Non-Critical Issue opens for the service; its windows
    restart when the Critical Issue recovers.

Restart (`Policy.restore`)
    Unresolved incidents are reloaded (a crash between timeline and outbox is repaired by
    `Herald.replay`); the Critical and Non-Critical unavailability windows and the recovery
    streak are rebuilt from the stored verdict runs and maintenance windows, so a restart
    mid-incident continues it without a second page. Failure ratio and blindness restart
    empty (runs do not keep attempt counts).

Reload (`Policy.prepare` off the loop, then `Policy.reconfigure`)
    A changed service keeps its windows, streak and incidents and is judged by the new
    rules from the next second on; an added service starts with the windows and
    unresolved incidents the store holds for it; a removed service's unresolved incidents
    are left in the store, unwatched (one WARNING each).

Human actions (`alerting.incidents.Incidents`) may run in another object or process on the
same store: the policy re-reads its unresolved incidents before acting on them.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from alerting.effects import EffectLog, IncidentWrites
from alerting.escalation import Escalation, Herald, Notice, clip, fit, iso
from alerting.incidents import Incidents
from alerting.model import ACTIVE_STATES, IncidentState, Severity
from monitor.blocklist import Findings, watched
from monitor.clock import Clock
from monitor.config import ServiceConfig, Settings
from monitor.intervals import contains
from monitor.quorum import combined as combined_stretches
from monitor.store.base import BlocklistSpell, Incident, NotFound, Run, Store, excluded_spans
from monitor.verdicts import COMBINED, SERVICE_CHANNEL, SecondVerdict, Verdict
from probes.base import CONCLUSIVE, QUALIFYING, SEEING

log = logging.getLogger(__name__)

#: during an outage the running count of unavailable seconds is written at least this often
#: (in seconds of verdicts), at the end of each unavailable run and with every event, rather
#: than every second: one SQLite commit per second per service would cost the event loop
#: ~0.3 ms each. A crash loses at most this many seconds of the count (reports recount
#: from the stored verdict runs, not from incidents).
FLUSH_EVERY = 10
#: the Non-Critical kinds of the blocklist checks
BLOCKLIST_KINDS = frozenset({"blocklisted", "blocklist_blind"})


def _listing(spell: BlocklistSpell) -> str:
    codes = ",".join(spell.codes) or "listed"
    why = f": {spell.txt}" if spell.txt else ""
    return f"{spell.target} listed on {spell.zone} ({codes}{why})"


def _tally(v: SecondVerdict) -> tuple[int, int, bool]:
    """(qualifying, conclusive, seeing) of one channel verdict, from its outcome counts."""
    if v.verdict is Verdict.UNKNOWN:
        # an unknown second says nothing of the platform, even when its counts hold
        # timeouts (control_failed: the monitor's own network was down; clock_step)
        return 0, 0, False
    if not v.counts:
        # no counts: the verdict itself says the channel saw the platform
        return 0, 0, True
    qualifying = sum(v.counts.get(o, 0) for o in QUALIFYING)
    conclusive = sum(n for o, n in v.counts.items() if o in CONCLUSIVE)
    seeing = any(v.counts.get(o, 0) > 0 for o in SEEING)
    return qualifying, conclusive, seeing


@dataclass
class _Watch:
    """What the policy remembers of one service between seconds."""

    cfg: ServiceConfig
    last: int | None = None
    #: unavailable, not excluded seconds inside the Critical window
    crit: deque[int] = field(default_factory=deque)
    #: consecutive available seconds (excluded seconds skipped)
    streak: int = 0
    #: unavailable seconds that left the Critical window, inside the Non-Critical window
    nc_unav: deque[int] = field(default_factory=deque)
    #: (second, qualifying, conclusive) inside the Non-Critical window, and their sums
    ratio: deque[tuple[int, int, int]] = field(default_factory=deque)
    qualifying: int = 0
    conclusive: int = 0
    #: first second of the span the failure ratio has watched
    ratio_since: int | None = None
    #: channel → non-excluded seconds since the channel last saw the platform
    blind: dict[str, int] = field(default_factory=dict)
    blind_outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    critical_id: int | None = None
    nc_id: int | None = None
    #: a person resolved the Non-Critical Issue: wait for the conditions to clear
    nc_hold: bool = False
    #: unavailable seconds up to this one belong to a Critical Issue, never to a Non-Critical
    nc_floor: int | None = None
    #: the blocklist checks: pairs (target, zone) listed now, zones blind now, and whether
    #: the listings are known (a check was made, or the open spells were read)
    bl_listed: dict[tuple[str, str], BlocklistSpell] = field(default_factory=dict)
    bl_blind: dict[str, str] = field(default_factory=dict)
    bl_known: bool = False

    def reset_non_critical(self, second: int) -> None:
        self.nc_floor = second
        self.nc_unav.clear()
        self.ratio.clear()
        self.qualifying = self.conclusive = 0
        self.ratio_since = second + 1


@dataclass
class Prepared:
    """What `Policy.prepare` read for a reload: new services' watches and incidents."""

    watches: dict[str, _Watch] = field(default_factory=dict)
    incidents: dict[int, Incident] = field(default_factory=dict)


class Policy:
    """Turns final seconds into incident events; see the module docstring for the rules."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        *,
        on_outbox: Callable[[], None] | None = None,
        effects: EffectLog | None = None,
        combined: bool = False,
    ) -> None:
        """Without `effects` the policy reads and writes `store` itself, synchronously
        (tests, tools). With them (the daemon) it never touches the store after `restore`:
        its writes become effects the caller applies off the event loop, and what people
        did to its incidents reaches it through `absorb`."""
        self._settings = settings
        self._store = store
        #: it judges the vantages' seconds combined by quorum (monitor/combiner.py): its
        #: windows are rebuilt from every vantage's runs, combined the same way
        self._combined = combined
        self._effects = effects
        self._writes: IncidentWrites = store if effects is None else effects
        self._clock = clock
        self.herald = Herald(settings, self._writes, clock, on_outbox=on_outbox)
        self.incidents = Incidents(settings, store, clock, herald=self.herald)
        self._escalation = Escalation(settings, self.herald)
        self._watch = {s.name: _Watch(s) for s in settings.services}
        self._active: dict[int, Incident] = {}
        #: incidents whose unavailable-second count is ahead of the store → first such second
        self._dirty: dict[int, int] = {}

    # ------------------------------------------------------------------ public

    def restore(self) -> None:
        """Reload unresolved incidents and rebuild the windows from the store (off the
        event loop: it reads the store)."""
        if self._effects is not None:
            self._effects.reserve(self._store.max_incident_id())
        self._active.clear()
        for w in self._watch.values():
            w.critical_id = w.nc_id = None
        for state in ACTIVE_STATES:
            for incident in self._store.list_incidents(state=state, limit=1_000_000):
                if incident.service not in self._watch:
                    log.warning(
                        "incident %d is for service %r, which is no longer configured",
                        incident.id,
                        incident.service,
                    )
                    continue
                if self.herald.replay(incident, self._store):
                    log.warning("incident %d: finished an event interrupted by a stop", incident.id)
                self._active[incident.id] = incident
        for incident in sorted(self._active.values(), key=lambda i: i.id):
            w = self._watch[incident.service]
            if incident.severity == Severity.CRITICAL:
                w.critical_id = incident.id
            else:
                w.nc_id = incident.id
        for w in self._watch.values():
            self._rebuild(w)
            self._restore_listings(w)

    def _restore_listings(self, w: _Watch) -> None:
        """The listings still open in the store (off the loop): until the next check, an
        issue of them is not taken for delisted."""
        asked = watched(w.cfg.blocklists)
        w.bl_listed = {
            (x.target, x.zone): x
            for x in self._store.spells(w.cfg.name, open_only=True)
            if (x.target, x.zone) in asked
        }
        w.bl_known = True

    def prepare(self, settings: Settings) -> Prepared:
        """What a reload's config needs from the store (off the event loop): for each
        service it adds, its unresolved incidents and its windows rebuilt from the stored
        runs (a service removed by an earlier reload and added again continues where it
        was)."""
        prepared = Prepared()
        for cfg in settings.services:
            if cfg.name in self._watch:
                continue
            w = _Watch(cfg)
            for state in ACTIVE_STATES:
                for incident in self._store.list_incidents(cfg.name, state=state, limit=1_000_000):
                    prepared.incidents[incident.id] = incident
            for incident in sorted(prepared.incidents.values(), key=lambda i: i.id):
                if incident.service != cfg.name:
                    continue
                if incident.severity == Severity.CRITICAL:
                    w.critical_id = incident.id
                else:
                    w.nc_id = incident.id
            self._rebuild(w, prepared.incidents)
            self._restore_listings(w)
            prepared.watches[cfg.name] = w
        return prepared

    def reconfigure(self, settings: Settings, prepared: Prepared) -> None:
        """Apply a reload's config (on the loop, between two seconds): services added
        (from `prepare`), changed (their windows and open incidents carry on under the new
        rules) and removed (their unresolved incidents stay so in the store, said in one
        WARNING each: nothing watches them any more)."""
        names = {s.name for s in settings.services}
        for incident in list(self._active.values()):
            if incident.service not in names:
                log.warning(
                    "incident %d (%s) of service %r stays unresolved: the service is no longer"
                    " configured; resolve it with `availmon incidents resolve %d`",
                    incident.id,
                    incident.severity,
                    incident.service,
                    incident.id,
                )
                self._drop(incident.id)
        for name in [n for n in self._watch if n not in names]:
            del self._watch[name]
        for cfg in settings.services:
            w = self._watch.get(cfg.name)
            if w is None:
                w = self._watch[cfg.name] = prepared.watches.get(cfg.name) or _Watch(cfg)
                for incident in prepared.incidents.values():
                    if incident.service == cfg.name:
                        self._active.setdefault(incident.id, incident)
                continue
            w.cfg = cfg
            # listings no check asks about any more are not known to be delisted: the
            # issue they opened waits out auto_resolve_after_minutes instead
            asked = watched(cfg.blocklists)
            if any(k not in asked for k in w.bl_listed):
                w.bl_listed = {k: x for k, x in w.bl_listed.items() if k in asked}
                w.bl_known = False
            if not asked:
                w.bl_blind.clear()
            kept = set(cfg.channels)
            for channel in [c for c in w.blind if c not in kept]:
                del w.blind[channel]
                w.blind_outcomes.pop(channel, None)
        self._settings = settings
        self.herald.reconfigure(settings)
        self.incidents.reconfigure(settings)
        self._escalation.reconfigure(settings)

    def on_second(self, second: int, verdicts: Sequence[SecondVerdict]) -> None:
        """All verdicts of one final second (every service; channels and ``service``)."""
        groups: dict[str, tuple[list[SecondVerdict], list[SecondVerdict]]] = {}
        for v in verdicts:
            if v.service not in self._watch:
                continue
            service_v, channel_v = groups.setdefault(v.service, ([], []))
            (service_v if v.channel == SERVICE_CHANNEL else channel_v).append(v)
        now = self._clock.wall()
        for name, (service_v, channel_v) in groups.items():
            w = self._watch[name]
            if w.last is not None and second <= w.last:
                continue  # never judge a second twice
            if self._effects is None:
                self._refresh(w)
            self._observe(w, second, service_v[0] if service_v else None, channel_v, now)
        if self._effects is None:
            self._refresh_orphans()
        self._duties(now)

    def on_blocklist(self, findings: Findings) -> None:
        """One blocklist check of a service (monitor/blocklist.py): its spells are written
        (in order with the incident's events), and the Non-Critical Issue opened, extended
        or resolved at once, not at the next second."""
        w = self._watch.get(findings.service)
        if w is None:
            return
        for spell in findings.opened:
            self._writes.open_spell(spell)
        for target, zone in findings.closed:
            self._writes.close_spell(findings.service, target, zone, findings.at)
        nc = self._get(w.nc_id)
        if findings.closed and nc is not None and nc.data.get("seen"):
            # a delisted pair listed again while the issue is open is news again
            gone = {f"{t} on {z}" for t, z in findings.closed}
            nc.data["seen"] = [x for x in nc.data["seen"] if x not in gone]
        w.bl_listed = dict(findings.listed)
        w.bl_blind = dict(findings.blind)
        w.bl_known = True
        if self._effects is None:
            self._refresh(w)
        if w.last is not None:
            self._non_critical(w, w.last, self._clock.wall())
        self._duties(self._clock.wall())

    def tick(self, now: float) -> None:
        """Time-based duties: ack deadline, updates, auto-resolve, business-hours release."""
        if self._effects is None:
            for w in self._watch.values():
                self._refresh(w)
            self._refresh_orphans()
        self._duties(now)

    def last_second(self, service: str) -> int | None:
        """The last second of `service` the policy has judged (or rebuilt from the store)."""
        w = self._watch.get(service)
        return None if w is None else w.last

    def tracked(self) -> list[int]:
        """Ids of the unresolved incidents the policy acts on: what `absorb` wants fresh."""
        return sorted(self._active)

    def absorb(self, fresh: dict[int, Incident | None]) -> None:
        """What the store holds of tracked incidents, read off the loop: a person may have
        acknowledged or resolved one (API, CLI, another process). None means the store
        does not have it *yet* (its creation is still queued behind a refusing store),
        never that it is gone: incidents are not deleted."""
        for incident_id, incident in fresh.items():
            if incident_id in self._active and incident is not None:
                self._absorb(incident_id, incident)

    def active(self) -> list[Incident]:
        """Unresolved incidents the policy is watching (oldest first)."""
        return sorted(self._active.values(), key=lambda i: i.id)

    # ------------------------------------------------------------------ per second

    def _observe(
        self,
        w: _Watch,
        s: int,
        service_v: SecondVerdict | None,
        channel_v: Sequence[SecondVerdict],
        now: float,
    ) -> None:
        cc = w.cfg.critical
        ncc = w.cfg.non_critical
        if w.last is not None and s > w.last + 1:
            w.streak = 0  # seconds never seen (a restart) are no evidence of availability
        w.last = s
        if w.ratio_since is None:
            w.ratio_since = s
        unavailable_channels: list[str] = []
        for v in channel_v:
            if v.excluded:
                continue
            qualifying, conclusive, seeing = _tally(v)
            if conclusive:
                w.ratio.append((s, qualifying, conclusive))
                w.qualifying += qualifying
                w.conclusive += conclusive
            if v.verdict is Verdict.UNAVAILABLE:
                unavailable_channels.append(v.channel)
            if seeing:
                w.blind[v.channel] = 0
                w.blind_outcomes.pop(v.channel, None)
            else:
                w.blind[v.channel] = w.blind.get(v.channel, 0) + 1
                seen = w.blind_outcomes.setdefault(v.channel, Counter())
                seen.update(dict(v.counts) if v.counts else {str(v.reason or v.verdict): 1})
        nc_horizon = s - ncc.window_seconds
        while w.ratio and w.ratio[0][0] <= nc_horizon:
            _, qualifying, conclusive = w.ratio.popleft()
            w.qualifying -= qualifying
            w.conclusive -= conclusive
        crit_horizon = s - cc.window_seconds
        while w.crit and w.crit[0] <= crit_horizon:
            old = w.crit.popleft()
            if w.nc_floor is None or old > w.nc_floor:
                w.nc_unav.append(old)
        while w.nc_unav and w.nc_unav[0] <= nc_horizon:
            w.nc_unav.popleft()

        if w.critical_id in self._dirty and (
            service_v is None or service_v.verdict is not Verdict.UNAVAILABLE
        ):
            self._flush(w.critical_id)  # the run of unavailable seconds ended: persist it
        if service_v is not None and not service_v.excluded:
            if service_v.verdict is Verdict.UNAVAILABLE:
                w.crit.append(s)
                w.streak = 0
                self._unavailable(w, s, unavailable_channels, now)
            elif service_v.verdict is Verdict.AVAILABLE:
                w.streak += 1
                self._available(w, s, now)
            else:
                w.streak = 0
        self._non_critical(w, s, now)

    def _unavailable(self, w: _Watch, s: int, channels: list[str], now: float) -> None:
        cc = w.cfg.critical
        inc = self._get(w.critical_id)
        if inc is not None and inc.state.ongoing:
            inc.unavailable_seconds += 1
            inc.last_unavailable = s
            w.nc_floor = s  # counted by the Critical Issue: never by a Non-Critical one
            _merge_channels(inc, channels)
            since = self._dirty.setdefault(inc.id, s)
            if s - since + 1 >= FLUSH_EVERY:
                self._flush(inc.id)
            return
        if inc is not None and inc.state == IncidentState.RECOVERED:
            recovered = int(inc.data.get("recovered_second", s))
            if s - recovered <= cc.reopen_within_seconds:
                _merge_channels(inc, channels)
                inc = self.incidents.relapse(inc, s, at=now)
                self._active[inc.id] = inc
                w.nc_floor = s
                self._supersede(w, inc, s, now)
                return
        if len(w.crit) < cc.min_unavailable_seconds:
            return
        first = w.crit[0]
        where = f" ({', '.join(channels)})" if channels else ""
        summary = fit(
            f"CRITICAL: {w.cfg.name}",
            f" unavailable{where} — {len(w.crit)} s unavailable since {iso(first)[11:]}",
        )
        template = Incident(
            id=0,
            service=w.cfg.name,
            severity=Severity.CRITICAL,
            state=IncidentState.OPEN,
            kind="unavailable",
            dedup_key="",
            opened_at=now,
            first_unavailable=first,
            last_unavailable=s,
            unavailable_seconds=len(w.crit),
            summary=summary,
            data={
                "channels": sorted(channels),
                "detail": (
                    f"{len(w.crit)} of the last {cc.window_seconds} s unavailable (rule: "
                    f"{cc.min_unavailable_seconds} of {cc.window_seconds} s)"
                ),
            },
        )
        opened: dict[str, object] = {"second": s, "window_unavailable": len(w.crit)}
        if w.nc_id is not None:
            opened["supersedes"] = w.nc_id
        inc = self.incidents.open(template, opened, at=now)
        self._active[inc.id] = inc
        w.critical_id = inc.id
        self._supersede(w, inc, s, now)

    def _available(self, w: _Watch, s: int, now: float) -> None:
        inc = self._get(w.critical_id)
        if (
            inc is not None
            and inc.state.ongoing
            and w.streak >= w.cfg.critical.recover_after_seconds
        ):
            inc = self.incidents.recover(inc, s, s - w.streak + 1, at=now)
            self._active[inc.id] = inc
            w.reset_non_critical(s)

    def _supersede(self, w: _Watch, critical: Incident, s: int, now: float) -> None:
        """A Critical Issue is active: close the Non-Critical one, restart its windows."""
        nc = self._get(w.nc_id)
        if nc is not None:
            self.incidents.supersede(nc, critical, at=now)
            self._drop(nc.id)
        w.reset_non_critical(s)

    def _non_critical(self, w: _Watch, s: int, now: float) -> None:
        ncc = w.cfg.non_critical
        crit = self._get(w.critical_id)
        if crit is not None and crit.state.ongoing:
            return
        found: dict[str, str] = {}
        if len(w.nc_unav) >= ncc.min_unavailable_seconds:
            found["unavailable"] = (
                f"{len(w.nc_unav)} unavailable s in the last {ncc.window_seconds} s, short of "
                f"a Critical Issue"
            )
        if (
            w.ratio_since is not None
            and w.ratio_since <= s - ncc.window_seconds + 1
            and w.conclusive > 0
            and w.qualifying >= ncc.failure_ratio * w.conclusive
        ):
            found["failure_ratio"] = (
                f"qualifying failures in {w.qualifying / w.conclusive:.1%} of {w.conclusive} "
                f"conclusive attempts over {ncc.window_seconds} s (threshold "
                f"{ncc.failure_ratio:.1%})"
            )
        blind = sorted(ch for ch, n in w.blind.items() if n >= ncc.blind_after_seconds)
        if blind:
            found["blind"] = "; ".join(
                f"monitor blind on {ch}: no ok or qualifying attempt for {w.blind[ch]} s ("
                + ", ".join(f"{o} {n}" for o, n in w.blind_outcomes[ch].most_common(3))
                + ")"
                for ch in blind
            )
        if w.bl_listed:
            found["blocklisted"] = "; ".join(_listing(x) for _, x in sorted(w.bl_listed.items()))
        if w.bl_blind:
            found["blocklist_blind"] = "; ".join(w.bl_blind.values())
        nc = self._get(w.nc_id)
        if nc is not None and self._listings_changed(nc, w):
            nc.data["listings"] = _listings(w)
            nc.data["listed"] = sorted(f"{t} on {z}" for t, z in w.bl_listed)
            self._writes.update_incident(nc)
        if not found:
            w.nc_hold = False
            if nc is None:
                return
            kinds = set(nc.data.get("kinds", []))
            if w.bl_known and "blocklisted" in kinds and kinds <= BLOCKLIST_KINDS:
                self.incidents.auto_resolve(
                    nc,
                    "Delisted everywhere (two clean checks in a row): resolved automatically.",
                    at=now,
                )
                self._drop(nc.id)
                return
            if nc.data.get("absent_since") is None:
                nc.data["absent_since"] = s
                self._writes.update_incident(nc)
            minutes = ncc.auto_resolve_after_minutes
            if minutes is not None and s - int(nc.data["absent_since"]) >= minutes * 60:
                self.incidents.auto_resolve(
                    nc, f"Conditions absent for {minutes:g} min: resolved automatically.", at=now
                )
                self._drop(nc.id)
            return
        if nc is None:
            if ncc.enabled and not w.nc_hold:
                self._open_non_critical(w, s, found, now)
            return
        changed = nc.data.get("absent_since") is not None
        nc.data["absent_since"] = None
        new = [k for k in found if k not in nc.data.get("kinds", [])]
        fresh = [
            x
            for k, x in sorted(w.bl_listed.items())
            if f"{k[0]} on {k[1]}" not in nc.data.get("seen", [])
        ]
        if fresh:
            nc.data["seen"] = [
                *nc.data.get("seen", []),
                *(f"{x.target} on {x.zone}" for x in fresh),
            ]
        if fresh and "blocklisted" not in new:
            text = "Now also listed: " + "; ".join(_listing(x) for x in fresh)
            self.herald.record(
                nc,
                "condition_added",
                {"kinds": ["blocklisted"], "listed": [f"{x.target} on {x.zone}" for x in fresh]},
                [Notice("update", "ticket")],
                at=now,
                extra=text,
            )
        if new:
            nc.data["kinds"] = [*nc.data.get("kinds", []), *new]
            nc.data["detail"] = "; ".join(found.values())
            text = "Now also: " + "; ".join(found[k] for k in new)
            self.herald.record(
                nc,
                "condition_added",
                {"kinds": new},
                [Notice("update", "ticket")],
                at=now,
                extra=text,
            )
        elif changed:
            self._writes.update_incident(nc)

    def _open_non_critical(self, w: _Watch, s: int, found: dict[str, str], now: float) -> None:
        kind = next(iter(found))
        unavailable = kind == "unavailable"
        template = Incident(
            id=0,
            service=w.cfg.name,
            severity=Severity.NON_CRITICAL,
            state=IncidentState.OPEN,
            kind=kind,
            dedup_key="",
            opened_at=now,
            first_unavailable=w.nc_unav[0] if unavailable else None,
            last_unavailable=w.nc_unav[-1] if unavailable else None,
            unavailable_seconds=len(w.nc_unav) if unavailable else 0,
            summary=clip(f"NON-CRITICAL: {w.cfg.name} {found[kind]}"),
            data={"kinds": list(found), "detail": "; ".join(found.values())},
        )
        if w.bl_listed:
            template.data["listings"] = _listings(w)
            template.data["listed"] = sorted(f"{t} on {z}" for t, z in w.bl_listed)
            template.data["seen"] = list(template.data["listed"])
        inc = self.incidents.open(template, {"second": s, "kinds": list(found)}, at=now)
        self._active[inc.id] = inc
        w.nc_id = inc.id

    @staticmethod
    def _listings_changed(nc: Incident, w: _Watch) -> bool:
        listed = sorted(f"{t} on {z}" for t, z in w.bl_listed)
        return listed != nc.data.get("listed", []) and (bool(listed) or "listed" in nc.data)

    # ------------------------------------------------------------------ time duties

    def _duties(self, now: float) -> None:
        for inc in list(self._active.values()):
            inc = self._escalation.run(inc, now)
            self._active[inc.id] = inc
            minutes = self._settings.service(inc.service).critical.auto_resolve_after_minutes
            if (
                inc.severity == Severity.CRITICAL
                and inc.state == IncidentState.RECOVERED
                and minutes is not None
                and inc.recovered_at is not None
                and now - inc.recovered_at >= minutes * 60
            ):
                self.incidents.auto_resolve(
                    inc, f"Recovered for {minutes:g} min: resolved automatically.", at=now
                )
                self._drop(inc.id)
        self.herald.release(now)

    # ------------------------------------------------------------------ bookkeeping

    def _get(self, incident_id: int | None) -> Incident | None:
        return None if incident_id is None else self._active.get(incident_id)

    def _flush(self, incident_id: int | None) -> None:
        self._dirty.pop(incident_id, None)  # type: ignore[arg-type]
        inc = self._get(incident_id)
        if inc is not None:
            self._writes.update_incident(inc)

    def _drop(self, incident_id: int) -> None:
        self._active.pop(incident_id, None)
        self._dirty.pop(incident_id, None)
        for w in self._watch.values():
            if w.critical_id == incident_id:
                w.critical_id = None
            if w.nc_id == incident_id:
                w.nc_id = None

    def _refresh(self, w: _Watch) -> None:
        """Re-read this service's tracked incidents: a person may have acted on them."""
        for incident_id in (w.critical_id, w.nc_id):
            if incident_id is None:
                continue
            self._reload(incident_id)

    def _refresh_orphans(self) -> None:
        """Older unresolved incidents (a recovered Critical Issue outlived by a new one)."""
        current = {i for w in self._watch.values() for i in (w.critical_id, w.nc_id)}
        for incident_id in [i for i in self._active if i not in current]:
            self._reload(incident_id)

    def _reload(self, incident_id: int) -> None:
        try:
            fresh: Incident | None = self._store.get_incident(incident_id)
        except NotFound:
            fresh = None
        self._absorb(incident_id, fresh)

    def _absorb(self, incident_id: int, fresh: Incident | None) -> None:
        """Take a person's acknowledgement or resolution from the stored copy.

        Only the fields people change are taken: the stored copy may be older than the
        policy's own (its writes may still be queued), and the policy owns the rest
        (state transitions of the rules, counters, timers)."""
        mine = self._active.get(incident_id)
        if mine is None:
            return
        if fresh is None:
            self._drop(incident_id)
            return
        seq = max(int(mine.data.get("seq", 0)), int(fresh.data.get("seq", 0)))
        if seq:
            mine.data["seq"] = seq
        if fresh.acknowledged_at is not None and mine.acknowledged_at is None:
            mine.acknowledged_at = fresh.acknowledged_at
            mine.acknowledged_by = fresh.acknowledged_by
            if mine.state == IncidentState.OPEN:
                mine.state = IncidentState.ACKNOWLEDGED
        if fresh.state != IncidentState.RESOLVED:
            return
        mine.state = IncidentState.RESOLVED
        mine.resolved_at = fresh.resolved_at
        mine.resolved_by = fresh.resolved_by
        mine.next_update_at = None
        if incident_id in self._dirty:
            self._flush(incident_id)  # the unflushed count of unavailable seconds
        w = self._watch[mine.service]
        if w.critical_id == incident_id:
            w.crit.clear()  # resolved by a person: a new incident needs fresh evidence
        if w.nc_id == incident_id:
            w.nc_hold = True
        self._drop(incident_id)

    def _rebuild(self, w: _Watch, active: Mapping[int, Incident] | None = None) -> None:
        """Critical and Non-Critical unavailability windows and the streak, from runs
        (`active`: the unresolved incidents to read instead of the policy's own)."""
        name = w.cfg.name
        vantage = None if self._combined else self._settings.monitor.vantage
        last = self._store.last_second(name, SERVICE_CHANNEL, vantage)
        if last is None:
            return
        cc = w.cfg.critical
        ncc = w.cfg.non_critical
        span = max(cc.window_seconds, ncc.window_seconds, cc.recover_after_seconds)
        start = last - span + 1
        windows = excluded_spans(self._store.list_maintenance(name, start, last + 1), name)

        def excluded(second: int) -> bool:
            return contains(windows, second)

        crit = self._get(w.critical_id) if active is None else active.get(w.critical_id or 0)
        floor = start - 1  # Non-Critical seconds must be later than this
        if crit is not None and crit.state.ongoing:
            floor = last
        elif crit is not None:
            floor = max(floor, int(crit.data.get("recovered_second", floor)))
        # A Critical Issue resolved before the restart still owns the seconds it counted:
        # they open neither a Non-Critical Issue nor, after a person's resolve (which
        # clears the Critical window), a new Critical one.
        owned = start - 1
        for done in self._store.list_incidents(name, severity=Severity.CRITICAL, limit=5):
            if done.state == IncidentState.RESOLVED and done.last_unavailable is not None:
                owned = max(owned, done.last_unavailable)
        floor = max(floor, owned)
        w.nc_floor = floor
        runs = self._store.runs(name, SERVICE_CHANNEL, start, last + 1, vantage)
        if self._combined:
            runs = [
                Run(name, SERVICE_CHANNEL, COMBINED, verdict, None, a, b - 1)
                for a, b, verdict in combined_stretches(runs, start, last + 1, w.cfg.quorum)
            ]
        w.crit.clear()
        w.nc_unav.clear()
        for run in runs:
            if run.verdict is not Verdict.UNAVAILABLE:
                continue
            for second in range(run.first, run.last + 1):
                if excluded(second):
                    continue
                if second > last - cc.window_seconds:
                    if second > owned:
                        w.crit.append(second)  # leaves for nc_unav later only if > nc_floor
                elif second > last - ncc.window_seconds and second > floor:
                    w.nc_unav.append(second)
        w.streak = _trailing_available(runs, last, excluded)
        w.last = last
        w.ratio_since = None


def _trailing_available(runs: Sequence[Run], last: int, excluded: Callable[[int], bool]) -> int:
    """Consecutive available seconds ending at `last` (excluded seconds skipped; a gap in
    the stored seconds or any other verdict ends the count)."""
    streak = 0
    expect = last
    for run in reversed(runs):
        if run.last != expect:
            return streak
        for second in range(run.last, run.first - 1, -1):
            if excluded(second):
                continue
            if run.verdict is not Verdict.AVAILABLE:
                return streak
            streak += 1
        expect = run.first - 1
    return streak


def _listings(w: _Watch) -> list[dict[str, object]]:
    """The incident's record of what is listed: zone, target, return codes, TXT, since."""
    return [
        {
            "zone": x.zone,
            "target": x.target,
            "codes": list(x.codes),
            "txt": x.txt,
            "since": x.started_at,
        }
        for _, x in sorted(w.bl_listed.items())
    ]


def _merge_channels(incident: Incident, channels: list[str]) -> None:
    known = incident.data.get("channels", [])
    if any(c not in known for c in channels):
        incident.data["channels"] = sorted({*known, *channels})
