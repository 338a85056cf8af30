"""Turns attempts into one final verdict per (service, channel, second), in order, once.

The detector holds only the seconds not yet final (a dict keyed by second, one per
service), so each attempt costs a few dict operations; a service's second is final when
every attempt of that service started in it has ended, or at its hard deadline
`s + 1 + max_timeout + grace` (the service's own longest timeout; attempts still in flight
then count as `probe_error`, reason "lost"). Services finalise independently, so a hung
target of one service never delays another service's verdicts, incidents or pages. The
rule, from ARCHITECTURE.md "Verdicts":

* ``unknown``     — no attempt of the channel ended ok / timeout / server_error /
  client_error (reason: not_launched, probe_error, monitor_stalled, control_failed or
  clock_step);
* ``unavailable`` — at least one conclusive attempt and every conclusive attempt is a
  qualifying failure (timeout / server_error);
* ``available``   — otherwise.

A channel is *degraded* when it is available yet held a qualifying failure. (An unknown
second is never degraded: the failures of a control_failed or clock_step second are not
attributable to the platform.) The service's own verdict combines its channels with
`combine` = any | all. Control probes (channel ``control``) are never emitted: when every
control attempt of a second failed (qualifying failure or probe_error), the monitor's own
network was down, so channels that would be unavailable become unknown(control_failed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from monitor.config import ServiceConfig
from monitor.verdicts import SERVICE_CHANNEL, SecondVerdict, UnknownReason, Verdict
from probes.base import CONCLUSIVE, QUALIFYING, Attempt, Outcome

log = logging.getLogger(__name__)

CONTROL_CHANNEL = "control"

#: called once per finalised (service, second) with every verdict of that service's second
#: (its channels, then its "service" verdict) and the evidence: the attempts of the
#: channels that are unavailable or degraded (and, for control_failed, the channel's and
#: the control probes' attempts, which explain why the second is unknown). Each service's
#: seconds come in order; different services' seconds may interleave.
SecondSink = Callable[[int, list[SecondVerdict], list[Attempt]], None]

# When channels of a service are unknown for different reasons, the service verdict takes
# the most specific one: a cause the monitor knows beats "nothing was launched".
_REASON_RANK = {
    UnknownReason.CLOCK_STEP: 0,
    UnknownReason.CONTROL_FAILED: 1,
    UnknownReason.MONITOR_STALLED: 2,
    UnknownReason.MONITOR_DOWN: 3,
    UnknownReason.PROBE_ERROR: 4,
    UnknownReason.NOT_LAUNCHED: 5,
}


@dataclass(slots=True)
class _Cell:
    """What one (service, channel) saw in one second."""

    counts: dict[Outcome, int] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    inflight: int = 0
    skipped: int = 0
    stalled: bool = False  # some probe_error carries reason monitor_stalled


@dataclass(slots=True)
class _Second:
    cells: dict[tuple[str, str], _Cell] = field(default_factory=dict)
    inflight: int = 0

    def cell(self, key: tuple[str, str]) -> _Cell:
        c = self.cells.get(key)
        if c is None:
            c = self.cells[key] = _Cell()
        return c


@dataclass(frozen=True, slots=True)
class _Service:
    name: str
    channels: tuple[str, ...]
    combine: str
    has_control: bool
    hard: float  # seconds after a second's end at which it is final regardless


def _channel_verdict(cell: _Cell | None) -> tuple[Verdict, UnknownReason | None, bool]:
    """(verdict, reason, degraded) of one channel, before control (ARCHITECTURE.md "Verdicts")."""
    if cell is None:
        return Verdict.UNKNOWN, UnknownReason.NOT_LAUNCHED, False
    counts = cell.counts
    qualifying = sum(counts.get(o, 0) for o in QUALIFYING)
    conclusive = sum(counts.get(o, 0) for o in CONCLUSIVE)
    if conclusive == 0:
        if counts.get(Outcome.PROBE_ERROR, 0) + cell.inflight == 0:
            return Verdict.UNKNOWN, UnknownReason.NOT_LAUNCHED, False
        if cell.stalled:
            return Verdict.UNKNOWN, UnknownReason.MONITOR_STALLED, False
        return Verdict.UNKNOWN, UnknownReason.PROBE_ERROR, False
    if qualifying == conclusive:
        return Verdict.UNAVAILABLE, None, False
    return Verdict.AVAILABLE, None, qualifying > 0


def _control_failed(cell: _Cell | None) -> bool:
    """Every control attempt of the second failed: the monitor's own network was down."""
    if cell is None:
        return False  # no control attempt ended: no evidence either way
    counts = cell.counts
    ended = sum(counts.values()) + cell.inflight
    if ended == 0:
        return False
    failed = (
        counts.get(Outcome.TIMEOUT, 0)
        + counts.get(Outcome.SERVER_ERROR, 0)
        + counts.get(Outcome.PROBE_ERROR, 0)
        + cell.inflight
    )
    return failed == ended


def _counts(cell: _Cell | None) -> dict[str, int]:
    if cell is None:
        return {}
    out = {str(o): n for o, n in cell.counts.items() if n}
    if cell.inflight:  # lost at the hard deadline
        out[str(Outcome.PROBE_ERROR)] = out.get(str(Outcome.PROBE_ERROR), 0) + cell.inflight
    return out


class Detector:
    """Finalises seconds at its watermark and hands each second's verdicts to `sink`.

    Seconds before `start_second` are never emitted; attempts for a second already
    emitted (a completion after the hard deadline) are dropped and counted in `late`.
    """

    def __init__(
        self,
        services: Sequence[ServiceConfig],
        vantage: str,
        sink: SecondSink,
        *,
        start_second: int,
        grace: float = 1.0,
    ) -> None:
        self._services = [
            _Service(
                name=s.name,
                channels=tuple(s.channels),
                combine=s.combine,
                has_control=any(p.enabled and p.channel == CONTROL_CHANNEL for p in s.probes),
                hard=s.max_timeout + grace,
            )
            for s in services
        ]
        self._by_name = {s.name: s for s in self._services}
        self._known = {
            (s.name, ch)
            for s in self._services
            for ch in (*s.channels, *((CONTROL_CHANNEL,) if s.has_control else ()))
        }
        self._vantage = vantage
        self._sink = sink
        self._start = int(start_second)
        #: per service: the next second to finalise
        self._next = {s.name: self._start for s in self._services}
        self._hard = max((s.hard for s in self._services), default=grace)
        #: per service: its seconds not yet final
        self._seconds: dict[str, dict[int, _Second]] = {s.name: {} for s in self._services}
        #: inclusive (first, last, reason) ranges forced unknown, e.g. a clock step
        self._forced: list[tuple[int, int, UnknownReason]] = []
        #: per service: seconds whose every slot has launched or been skipped before the
        #: second ended (`decided`), final as soon as nothing of them is in flight
        self._early: dict[str, set[int]] = {s.name: set() for s in self._services}
        self._now = float("-inf")
        #: a reload handed the seconds from this one on to a new detector (`retire`)
        self._until: int | None = None
        #: attempts that arrived for a second already emitted (or an unknown channel)
        self.late = 0
        self.unexpected = 0

    @property
    def next_second(self) -> int:
        """The next second to finalise: every second before it has been emitted for every
        service."""
        return min(self._next.values(), default=self._start)

    @property
    def hard_deadline_after(self) -> float:
        """Seconds after a second's end at which it is final even with attempts in flight
        (the longest over the services)."""
        return self._hard

    def next_for(self, service: str) -> int:
        """The next second of `service` to finalise."""
        return self._next[service]

    def retire(self, until: int) -> None:
        """Emit no second at or after `until`: a reload hands those to a new detector
        (monitor/reload.py). The seconds before it are finalised as usual."""
        self._until = until if self._until is None else min(self._until, until)

    @property
    def retired(self) -> bool:
        """Retired, and every second before the hand-over has been emitted."""
        return self._until is not None and self.next_second >= self._until

    def pending(self) -> int:
        """Seconds held (started but not final); bounded by about max_timeout + 2."""
        return sum(len(held) for held in self._seconds.values())

    # ------------------------------------------------------------------ hot path

    def _slot(self, service: str, channel: str, second: int) -> _Cell | None:
        if (service, channel) not in self._known:
            self.unexpected += 1
            return None
        if second < self._next[service]:
            self.late += 1
            return None
        held = self._seconds[service]
        sec = held.get(second)
        if sec is None:
            sec = held[second] = _Second()
        return sec.cell((service, channel))

    def launched(self, service: str, channel: str, probe: str, second: int) -> None:
        cell = self._slot(service, channel, second)
        if cell is not None:
            cell.inflight += 1
            self._seconds[service][second].inflight += 1

    def skipped(self, service: str, channel: str, probe: str, second: int) -> None:
        cell = self._slot(service, channel, second)
        if cell is not None:
            cell.skipped += 1

    def completed(self, attempt: Attempt) -> None:
        cell = self._slot(attempt.service, attempt.channel, attempt.second)
        if cell is None:
            return
        # An attempt reported without `launched` (hand-fed tests, replays) is recorded
        # without touching the in-flight count.
        if cell.inflight > 0:
            cell.inflight -= 1
            self._seconds[attempt.service][attempt.second].inflight -= 1
        outcome = attempt.outcome
        cell.counts[outcome] = cell.counts.get(outcome, 0) + 1
        cell.attempts.append(attempt)
        if outcome is Outcome.PROBE_ERROR and attempt.detail.get("reason") == "monitor_stalled":
            cell.stalled = True
        self.advance(self._now, attempt.service)

    def mark_unknown(self, first: int, last: int, reason: UnknownReason) -> tuple[int, int] | None:
        """Force the seconds first..last (inclusive) unknown(reason), if not yet emitted;
        return the range forced (None: every one of them was final already).

        Forced seconds do not wait for their attempts: they finalise as soon as their
        second has ended.
        """
        first = max(first, self.next_second)
        if last < first:
            return None
        self._forced.append((first, last, reason))
        return first, last

    def decided(self, service: str, second: int) -> None:
        """Every slot of `service` in `second` has launched or been skipped (the launcher
        says so before the second ends): the second is final once its attempts have
        ended, without waiting for its end. A 5xx second is then known ~10 ms after its
        last slot instead of at the next tick."""
        early = self._early.get(service)
        if early is None or second < self._next[service]:
            return
        early.add(second)
        self.advance(self._now, service)

    def advance(self, now_wall: float, service: str | None = None) -> None:
        """Finalise, in order, every second that is final at `now_wall` — of every
        service, or of `service` only (an attempt's end concerns its own service: the cost
        of an attempt must not grow with the number of services)."""
        if now_wall > self._now:
            self._now = now_wall
        now = self._now
        until = self._until
        for svc in self._services if service is None else (self._by_name[service],):
            held = self._seconds[svc.name]
            early = self._early[svc.name]
            while True:
                s = self._next[svc.name]
                if until is not None and s >= until:
                    break
                sec = held.get(s)
                forced = self._forced_reason(s) if self._forced else None
                if s + 1 > now:
                    # not ended: final early only when decided and nothing is in flight
                    if s not in early or forced is not None or (sec and sec.inflight):
                        break
                elif (
                    forced is None
                    and sec is not None
                    and sec.inflight > 0
                    and now < s + 1 + svc.hard
                ):
                    break
                self._next[svc.name] = s + 1
                held.pop(s, None)
                early.discard(s)
                self._emit(svc, s, sec, forced)
        if self._forced:
            # Drop ranges wholly behind every service's watermark, so the list stays short.
            done = self.next_second
            self._forced = [r for r in self._forced if r[1] >= done]

    # ------------------------------------------------------------------ finalisation

    def _forced_reason(self, second: int) -> UnknownReason | None:
        for first, last, reason in self._forced:
            if first <= second <= last:
                return reason
        return None

    def _emit(
        self, svc: _Service, second: int, sec: _Second | None, forced: UnknownReason | None
    ) -> None:
        verdicts: list[SecondVerdict] = []
        evidence: list[Attempt] = []
        cells = sec.cells if sec is not None else {}
        if sec is not None and sec.inflight and forced is None:
            log.warning(
                "%s second %d final with %d attempts still in flight (lost)",
                svc.name,
                second,
                sec.inflight,
            )
        control = svc.has_control and _control_failed(cells.get((svc.name, CONTROL_CHANNEL)))
        per_channel: list[SecondVerdict] = []
        for ch in svc.channels:
            cell = cells.get((svc.name, ch))
            verdict, reason, degraded = _channel_verdict(cell)
            explain = False
            if forced is not None:
                verdict, reason, degraded = Verdict.UNKNOWN, forced, False
            elif control and verdict is Verdict.UNAVAILABLE:
                verdict, reason, degraded = Verdict.UNKNOWN, UnknownReason.CONTROL_FAILED, False
                explain = True
            if cell is not None and (verdict is Verdict.UNAVAILABLE or degraded or explain):
                evidence.extend(cell.attempts)
            per_channel.append(
                SecondVerdict(
                    service=svc.name,
                    channel=ch,
                    second=second,
                    verdict=verdict,
                    vantage=self._vantage,
                    reason=reason,
                    degraded=degraded,
                    counts=_counts(cell),
                )
            )
        if (
            control
            and forced is None
            and any(v.reason is UnknownReason.CONTROL_FAILED for v in per_channel)
        ):
            ctl = cells.get((svc.name, CONTROL_CHANNEL))
            if ctl is not None:
                evidence.extend(ctl.attempts)
        verdicts.extend(per_channel)
        verdicts.append(self._service_verdict(svc, second, per_channel))
        try:
            self._sink(second, verdicts, evidence)
        except Exception:
            # A consumer's bug must not stop the watermark: the second stays emitted once.
            log.exception("verdict sink failed for second %d", second)

    def _service_verdict(
        self,
        svc: _Service,
        second: int,
        channels: list[SecondVerdict],
    ) -> SecondVerdict:
        unavailable = [v.unavailable for v in channels]
        down = any(unavailable) if svc.combine == "any" else bool(channels) and all(unavailable)
        reason: UnknownReason | None = None
        degraded = False
        if down:
            verdict = Verdict.UNAVAILABLE
        elif any(v.verdict is Verdict.AVAILABLE for v in channels):
            verdict = Verdict.AVAILABLE
            # Not down, yet some channel saw a qualifying failure (with combine=all an
            # unavailable channel beside an available one counts too).
            degraded = any(v.degraded or v.unavailable for v in channels)
        else:
            verdict = Verdict.UNKNOWN
            reasons = [v.reason for v in channels if v.reason is not None]
            reason = (
                min(reasons, key=_REASON_RANK.__getitem__)
                if reasons
                else UnknownReason.NOT_LAUNCHED
            )
        return SecondVerdict(
            service=svc.name,
            channel=SERVICE_CHANNEL,
            second=second,
            verdict=verdict,
            vantage=self._vantage,
            reason=reason,
            degraded=degraded,
        )
