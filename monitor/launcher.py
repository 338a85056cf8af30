"""Launches every probe's k attempts per second on the event loop's own timer and hands each
finished attempt to the detector; a hung target never silences the probe.

Slot j of probe p in UTC second s fires at ``s + (phase_p + j/k) mod 1`` (wall time),
scheduled with `loop.call_at` on monotonic time through an anchor (wall − monotonic)
taken at start. Once a second, a tick (i) declares the previous second's launches
decided, (ii) re-reads the anchor — a slow drift (NTP slewing) is followed, a jump of
more than `STEP_SECONDS` (an NTP step) re-anchors and makes the seconds it skipped or
repeated unknown(clock_step), never labelled twice — (iii) schedules the second after
next and (iv) lets the detector finalise. A service's second whose last slot has fired is
decided for that service at once (`Detector.decided`): it is final as soon as its attempts
end, not at the tick, unless the clock moved since the tick. Every launch is its own task,
whatever is still in flight; a launch later than `max_launch_lag_ms`, or beyond the per-probe
in-flight bound ``k·(timeout+1)+k``, is skipped: counted and reported, never moved to
another second. A reload (monitor/reload.py) `retire`s a launcher: it schedules no further
second, finishes the ones it has and hands over to a new one.

A timeout is the monitor's fault (probe_error, reason monitor_stalled) when the loop
stalled for more than `stall_threshold_ms` between the slot's *scheduled* instant and
the attempt's end: so a stall that made the launch late counts, while lateness alone
does not (the attempt's budget starts at its actual launch).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import math
import resource
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.clock import Clock
from monitor.config import Settings
from monitor.detector import Detector
from monitor.schema import Scrubber
from monitor.verdicts import UnknownReason
from monitor.watchdog import LoopWatchdog
from probes.base import PROBES, Attempt, Outcome, Probe, ProbeBase, ProbeConfigError, ProbeContext

log = logging.getLogger(__name__)

AttemptSink = Callable[[Attempt], None]
SkipSink = Callable[[str, str, str, int], None]

#: a jump of the wall/monotonic offset larger than this is a clock step, not drift
STEP_SECONDS = 0.5
#: how long after its deadline a probe that ignores it is cut off (well inside the
#: detector's default grace of 1 s, so the attempt is not lost)
GUARD_SECONDS = 0.5
#: the per-second tick runs this long after the second's end: after every slot of it
TICK_DELAY = 0.001
#: launch lags kept per probe for bench/ (the most recent ones)
LAG_SAMPLE = 2048


@dataclass(eq=False)
class Plan:
    """One probe's schedule and counters."""

    service: str
    channel: str
    name: str
    probe: Probe
    k: int
    timeout: float
    offsets: tuple[float, ...]  # slot j → fraction of the second, in [0, 1)
    bound: int
    inflight: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
    #: blanks the probe's own secrets out of what the target said (evidence is stored)
    scrub: Scrubber | None = None


def in_flight_bound(k: int, timeout: float) -> int:
    """Attempts of one probe that may be in flight: k·(timeout+1)+k (ARCHITECTURE.md "Attempts")."""
    return math.ceil(k * (timeout + 1)) + k


def slot_offsets(phase: float, k: int) -> tuple[float, ...]:
    """Fractions of the second at which slots 0..k-1 fire: evenly spread after `phase`."""
    return tuple((phase + j / k) % 1.0 for j in range(k))


def service_phase(service: str) -> float:
    """A fraction of a second in [0, 1) fixed by the service's name: services fire at
    different instants, and the same instants after a restart or a reload."""
    return zlib.crc32(service.encode()) / 2**32


def auto_phases(probes: Sequence[ProbeBase], service: str | None = None) -> dict[str, float]:
    """Phase per probe of one service: its own `phase_offset`, else spread among them so
    that the service's probes do not all fire at the same instant — and, given the
    service's name, shifted by its `service_phase`, so that the probes of different
    services do not all fire at the same instants either (250 services at 2 attempts/s
    would otherwise launch 250 attempts in the same millisecond twice a second)."""
    n = len(probes)
    base = service_phase(service) if service is not None else 0.0
    out: dict[str, float] = {}
    for i, p in enumerate(probes):
        if p.phase_offset is not None:
            out[p.name] = p.phase_offset
            continue
        width = 1 / p.attempts_per_second  # the slots repeat every `width`
        out[p.name] = (base * width + (i / n) * width) % width
    return out


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the (soft, hard) in force.

    An unlimited hard limit is not a valid soft one for open files (the kernel caps it
    at fs.nr_open), so then the soft limit goes as high as the kernel accepts.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return soft, hard
    targets = [hard] if hard != resource.RLIM_INFINITY else [1_048_576, 65_536]
    for target in targets:
        if soft != resource.RLIM_INFINITY and target <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target, hard
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %s to %s: %s", soft, target, exc)
    return soft, hard


def make_probe(cfg: Any, clock: Clock) -> Probe:
    """The probe `cfg` configures (raises `ProbeConfigError`)."""
    kind = cfg.type
    if kind not in PROBES:
        # Implementations register themselves on import (probes/<type>.py).
        with contextlib.suppress(ImportError):
            importlib.import_module(f"probes.{kind}")
    if kind not in PROBES:
        raise ProbeConfigError(f"probe {cfg.name!r}: no implementation for type {kind!r}")
    return PROBES[kind](cfg, clock)


def plan_probes(
    settings: Settings,
    clock: Clock,
    given: Mapping[tuple[str, str], Probe] | None = None,
    pause: Callable[[], None] | None = None,
) -> list[Plan]:
    """Every enabled probe of `settings` with its schedule, counters and scrubber (those of
    `given`, by (service, probe), instead of building them). A reload calls it in a worker
    thread (`Launcher(plans=)`): building a probe reads CA and secret files, and a
    scrubber costs ~0.2 ms, so 500 probes would hold the loop for a tenth of a second. A
    probe that cannot be built raises `ProbeConfigError` naming it. `pause` is called
    between services (`monitor.clock.ThreadShare`)."""
    plans: list[Plan] = []
    for svc in settings.services:
        if pause is not None:
            pause()
        enabled = [p for p in svc.probes if p.enabled]
        phases = auto_phases(enabled, svc.name)
        for cfg in enabled:
            probe = given.get((svc.name, cfg.name)) if given is not None else None
            if probe is None:
                try:
                    probe = make_probe(cfg, clock)
                except Exception as exc:  # ProbeConfigError, or a bug: it cannot run either way
                    why = f"service {svc.name!r}: probe {cfg.name!r}: {exc}"
                    raise ProbeConfigError(why) from None
            stats: dict[str, Any] = {
                "launched": 0,
                "skipped": 0,
                "skipped_late": 0,
                "skipped_bound": 0,
                "max_in_flight": 0,
                "in_flight_bound": in_flight_bound(cfg.attempts_per_second, cfg.timeout_seconds),
                "lags": deque(maxlen=LAG_SAMPLE),
            }
            plans.append(
                Plan(
                    service=svc.name,
                    channel=cfg.channel,
                    name=cfg.name,
                    probe=probe,
                    k=cfg.attempts_per_second,
                    timeout=cfg.timeout_seconds,
                    offsets=slot_offsets(phases[cfg.name], cfg.attempts_per_second),
                    bound=stats["in_flight_bound"],
                    stats=stats,
                    scrub=Scrubber.for_config(cfg),
                )
            )
    return plans


class Launcher:
    """Schedules every enabled probe of every service and reports attempts.

    `stats[(service, probe)]` holds `launched`, `skipped`, `skipped_late`,
    `skipped_bound`, `max_in_flight`, `in_flight_bound` and `lags` (a bounded sample of
    launch lags, seconds after the scheduled instant) for bench/.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        detector: Detector,
        *,
        on_attempt: AttemptSink | None = None,
        on_skip: SkipSink | None = None,
        watchdog: LoopWatchdog | None = None,
        probes: Mapping[tuple[str, str], Probe] | None = None,
        plans: list[Plan] | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._detector = detector
        self._on_attempt = on_attempt
        self._on_skip = on_skip
        stall = settings.monitor.stall_threshold_ms / 1000
        self._own_watchdog = watchdog is None
        self.watchdog = watchdog or LoopWatchdog(clock, threshold=min(0.05, stall / 2))
        self._stall_threshold = stall
        self._max_lag = settings.monitor.max_launch_lag_ms / 1000
        self._given = probes
        self._vantage = settings.monitor.vantage
        self._prepared = plans
        self._plans: list[Plan] = []
        self.stats: dict[tuple[str, str], dict[str, Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._handles: dict[int, list[asyncio.TimerHandle]] = {}
        #: (service, second) → its slots scheduled and not yet fired or skipped
        self._unfired: dict[tuple[str, int], int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_offset = 0.0  # loop.time() − clock.monotonic()
        self._anchor = 0.0  # wall − monotonic, the frame seconds are labelled in
        self._decided = 0  # every slot of every second before this has fired or skipped
        self._progress = float("-inf")  # the `now` last given to the detector
        self._running = False
        #: the latest second whose slots have been scheduled
        self._scheduled: int | None = None
        #: `retire()`: the first second this launcher no longer measures
        self._until: int | None = None
        self._retired = asyncio.Event()
        self.clock_steps = 0

    @property
    def in_flight(self) -> int:
        """Attempts launched and not yet ended, over every probe."""
        return sum(p.inflight for p in self._plans)

    # ------------------------------------------------------------------ lifecycle

    def _build_probes(self) -> None:
        plans = self._prepared
        if plans is None:
            plans = plan_probes(self._settings, self._clock, self._given)
        self._plans = plans
        self.stats = {(p.service, p.name): p.stats for p in plans}

    def _make_probe(self, cfg: Any) -> Probe:
        return make_probe(cfg, self._clock)

    async def start(self) -> None:
        """Raise the open-file limit, build the probes and schedule the first seconds."""
        if self._running:
            return
        soft, _ = raise_open_file_limit()
        self._build_probes()
        need = sum(p.bound for p in self._plans) * 2  # a socket, and a TLS/DNS spare
        if soft != resource.RLIM_INFINITY and need > soft:
            log.warning("open-file limit %d is below the %d the in-flight bounds need", soft, need)
        hard = self._detector.hard_deadline_after
        longest = max((p.timeout for p in self._plans), default=0.0)
        if hard < longest + self._max_lag + GUARD_SECONDS:
            log.warning("detector grace too short: attempts may end after their second is final")
        await self.watchdog.start()
        loop = self._loop = asyncio.get_running_loop()
        clock = self._clock
        self._loop_offset = loop.time() - clock.monotonic()
        self._anchor = clock.wall() - clock.monotonic()
        now = clock.monotonic() + self._anchor
        # The current second is measured from its remaining slots; the detector may have
        # been told to start later.
        first = max(self._detector.next_second, math.floor(now))
        self._decided = first
        self._running = True
        self._schedule_second(first, only_ahead=True)
        self._schedule_tick(first - 1)
        self._advance()

    def retire(self) -> int:
        """Schedule no further second; return the first second not scheduled, from
        which a new launcher takes over (a reload, monitor/reload.py). The seconds already
        scheduled are launched and finalised as usual: the tick goes on advancing the
        detector (up to the hard deadline of attempts still in flight) until all of them
        are final, then `wait_retired()` returns; `stop()` then closes the probes."""
        if self._until is None:
            self._until = (self._scheduled + 1) if self._scheduled is not None else self._decided
            self._detector.retire(self._until)
            self._check_retired()
        return self._until

    async def wait_retired(self) -> None:
        """After `retire()`: every second before the hand-over is final."""
        await self._retired.wait()

    def _check_retired(self) -> None:
        if self._until is not None and self._detector.retired:
            self._retired.set()

    async def stop(self) -> None:
        """Stop launching, cancel in-flight attempts, close the probes."""
        self._running = False
        for handles in self._handles.values():
            for h in handles:
                h.cancel()
        self._handles.clear()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=2.0)
            if stuck:
                log.warning("%d attempts did not stop when cancelled", len(stuck))
        for plan in self._plans:
            try:
                await asyncio.wait_for(plan.probe.close(), timeout=5.0)
            except Exception:
                log.exception("closing probe %s failed", plan.name)
        if self._own_watchdog:
            await self.watchdog.stop()

    # ------------------------------------------------------------------ scheduling

    def _call_at(self, second: int, wall_at: float, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        mono = wall_at - self._anchor
        h = self._loop.call_at(mono + self._loop_offset, fn, *(*args, mono))
        self._handles.setdefault(second, []).append(h)

    def _schedule_second(self, second: int, *, only_ahead: bool = False) -> None:
        """Schedule every slot of `second`. A slot already past (the tick ran late: the
        loop stalled) still fires at once and is skipped as late, so it is counted;
        `only_ahead` leaves out the past slots of the second the launcher starts in."""
        now = self._clock.monotonic() + self._anchor
        unfired = self._unfired
        for plan in self._plans:
            for j, off in enumerate(plan.offsets):
                at = second + off
                if not only_ahead or at >= now:
                    self._call_at(second, at, self._fire, plan, second, j)
                    key = (plan.service, second)
                    unfired[key] = unfired.get(key, 0) + 1
        if self._scheduled is None or second > self._scheduled:
            self._scheduled = second

    def _schedule_tick(self, second: int) -> None:
        self._call_at(second, second + 1 + TICK_DELAY, self._tick, second)

    def _tick(self, second: int, _mono: float) -> None:
        """After every slot of `second`: decide it, re-check the clock, plan ahead."""
        if not self._running:
            return
        self._decided = max(self._decided, second + 1)
        for s in [s for s in self._handles if s <= second]:
            del self._handles[s]
        for key in [k for k in self._unfired if k[1] <= second]:
            del self._unfired[key]
        nxt = self._check_clock(second)
        if self._until is not None:
            # retired: nothing more to schedule; tick on until the detector is done
            self._advance()
            if not self._retired.is_set():
                self._schedule_tick(second + 1)
            return
        if nxt is None:
            self._schedule_second(second + 2)
            self._schedule_tick(second + 1)
        else:
            self._schedule_second(nxt)
            self._schedule_tick(nxt - 1)
        self._advance()

    def _check_clock(self, second: int) -> int | None:
        """Follow drift; on a step re-anchor, mark the seconds in doubt, return the next
        second to schedule (None: carry on with second + 2)."""
        clock = self._clock
        offset = clock.wall() - clock.monotonic()
        delta = offset - self._anchor
        if abs(delta) <= STEP_SECONDS:
            self._anchor = offset
            return None
        self.clock_steps += 1
        self._anchor = offset
        now = clock.monotonic() + offset
        # Seconds up to second+1 are labelled in the old frame; under the new one, the
        # next second whose slots are all still ahead is floor(now)+1. The step happened
        # during `second`, so it and everything up to the new start are in doubt (after a
        # forward step: skipped; after a backward one: the frame repeats seconds already
        # labelled, which are simply not scheduled again).
        nxt = max(second + 2, math.floor(now) + 1)
        # Slots already scheduled for the seconds in doubt would fire in the old frame,
        # after those seconds are final (forced seconds do not wait for attempts): drop
        # them, so that no attempt is ever launched for a second already emitted.
        for s in [s for s in self._handles if s > second]:
            for h in self._handles.pop(s):
                h.cancel()
        for key in [k for k in self._unfired if k[1] > second]:
            del self._unfired[key]
        forced = self._detector.mark_unknown(second, nxt - 1, UnknownReason.CLOCK_STEP)
        if forced is None:
            log.warning("wall clock stepped by %+.3f s: every second was final already", delta)
        else:
            log.warning(
                "wall clock stepped by %+.3f s: seconds %d..%d are unknown (clock_step)",
                delta,
                *forced,
            )
        return nxt

    def _advance(self, service: str | None = None) -> None:
        # The detector may finalise a second only once its launches are decided; `now`
        # is in the frame the seconds are labelled in, and never goes back. (So a hard
        # deadline is seen at the tick after it: at most a second later.) An attempt's
        # end advances only its own service; the tick advances them all.
        now = min(self._clock.monotonic() + self._anchor, float(self._decided))
        if now > self._progress:
            self._progress = now
        try:
            self._detector.advance(self._progress, service)
        except Exception:
            log.exception("detector.advance failed")
        if self._until is not None:
            self._check_retired()

    # ------------------------------------------------------------------ attempts

    def _skip(self, plan: Plan, second: int, why: str) -> None:
        plan.stats["skipped"] += 1
        plan.stats[why] += 1
        self._detector.skipped(plan.service, plan.channel, plan.name, second)
        if self._on_skip is not None:
            try:
                self._on_skip(plan.service, plan.channel, plan.name, second)
            except Exception:
                log.exception("on_skip callback failed")

    def _fire(self, plan: Plan, second: int, slot: int, scheduled: float) -> None:
        if not self._running:
            return
        self._launch(plan, second, slot, scheduled)
        key = (plan.service, second)
        left = self._unfired.get(key, 0) - 1
        if left > 0:
            self._unfired[key] = left
        elif left == 0:
            del self._unfired[key]
            # The service's last slot of `second` is decided before the second's end:
            # the detector may finalise it as soon as its attempts end. Not while the
            # clock has stepped since the last tick (the tick sorts that second out).
            clock = self._clock
            if abs(clock.wall() - clock.monotonic() - self._anchor) <= STEP_SECONDS:
                try:
                    self._detector.decided(plan.service, second)
                except Exception:
                    log.exception("detector.decided failed")

    def _launch(self, plan: Plan, second: int, slot: int, scheduled: float) -> None:
        assert self._loop is not None
        clock = self._clock
        now = clock.monotonic()
        lag = now - scheduled
        if lag > self._max_lag:
            self._skip(plan, second, "skipped_late")
            return
        if plan.inflight >= plan.bound:
            self._skip(plan, second, "skipped_bound")
            return
        plan.inflight += 1
        stats = plan.stats
        stats["launched"] += 1
        stats["lags"].append(lag)
        if plan.inflight > stats["max_in_flight"]:
            stats["max_in_flight"] = plan.inflight
        self._detector.launched(plan.service, plan.channel, plan.name, second)
        ctx = ProbeContext(
            attempt_id=f"{plan.name}:{second}:{slot}@{self._vantage}",
            second=second,
            slot=slot,
            deadline=now + plan.timeout,
            timeout=plan.timeout,
        )
        task = self._loop.create_task(self._attempt(plan, ctx, scheduled, now, clock.wall()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attempt(
        self, plan: Plan, ctx: ProbeContext, scheduled: float, launched: float, wall: float
    ) -> None:
        detail: dict[str, Any]
        # A probe must end by its deadline; one that does not is cut off a little later
        # and counted as the timeout it is.
        guard = asyncio.timeout(plan.timeout + GUARD_SECONDS)
        try:
            async with guard:
                result = await plan.probe.run(ctx)
            outcome, detail = Outcome(result.outcome), dict(result.detail)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._running or (task is not None and task.cancelling()):
                plan.inflight -= 1
                raise  # stop(): the attempt is abandoned with the launcher
            # Nobody cancelled this task: the probe raised CancelledError itself (a bug).
            log.error("probe %s raised CancelledError without being cancelled", plan.name)
            outcome, detail = Outcome.PROBE_ERROR, {"error": "CancelledError", "reason": "bug"}
        except Exception as exc:
            if isinstance(exc, TimeoutError) and guard.expired():
                outcome, detail = Outcome.TIMEOUT, {"error": "DeadlineOverrun"}
            else:  # a bug in the probe (even a TimeoutError of its own): still reported
                log.exception("probe %s raised", plan.name)
                outcome = Outcome.PROBE_ERROR
                detail = {"error": type(exc).__name__, "reason": "bug"}
        end = self._clock.monotonic()
        plan.inflight -= 1
        if outcome is Outcome.TIMEOUT:
            # From the scheduled instant: a late launch caused by a stall counts too.
            stalled = self.watchdog.stalled(scheduled, end)
            if stalled > self._stall_threshold:
                detail = {
                    **detail,
                    "reason": "monitor_stalled",
                    "observed": str(outcome),
                    "stalled_seconds": round(stalled, 3),
                }
                outcome = Outcome.PROBE_ERROR
        if outcome is not Outcome.OK and plan.scrub is not None and detail:
            # a reason phrase or a 535 reply may quote a key back: never keep it
            detail = plan.scrub.detail(detail)
        attempt = Attempt(
            attempt_id=ctx.attempt_id,
            service=plan.service,
            channel=plan.channel,
            probe=plan.name,
            second=ctx.second,
            slot=ctx.slot,
            outcome=outcome,
            latency=end - launched,
            started=wall,
            detail=detail,
            vantage=self._vantage,
        )
        if self._on_attempt is not None:
            try:
                self._on_attempt(attempt)
            except Exception:
                log.exception("on_attempt callback failed")
        try:
            self._detector.completed(attempt)
        except Exception:
            log.exception("detector.completed failed")
        self._advance(plan.service)
