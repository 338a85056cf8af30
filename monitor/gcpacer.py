"""Paces Python's cyclic garbage collector so that its passes do not make launches late.

A collection pass stops the whole process for as long as it takes to walk the objects
of the generations it collects. With a hung target at a high rate, thousands of
attempts are in flight (200 attempts/s per channel, a 5 s API and a 10 s SMTP deadline:
3,000 attempts, ~110,000 objects); CPython 3.11 then ran older-generation passes over all
of them of 100-170 ms, and every launch due meanwhile was skipped as late
(`max_launch_lag`, 50 ms). Measured by bench/attempt_cost.py; see the README.

So, once the daemon has started:

* the start-up heap (modules, config, schemas) is frozen out of every pass;
* the interpreter collects only the young generation by itself, and the pacer collects
  it too every `YOUNG_EVERY` seconds, so that a young pass walks at most a fraction of a
  second's survivors (a few ms) however the allocation count moves;
* the older generations are collected by the pacer every `OLDER_EVERY` seconds, but
  only while few attempts are in flight (at most `QUIET_IN_FLIGHT`: a pass of a few ms);
  while many are, it waits for them to drain, for at most `MAX_DEFER` seconds, after
  which it collects anyway; every `FULL_EVERY`-th older pass is a full one.

Postponing older passes postpones only the freeing of reference cycles that outlived a
young pass; the probes leave none (see `probes.base.forget_frames`), so that memory stays
small. Everything else is freed by reference counting, as always.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Callable

from monitor.clock import Clock

log = logging.getLogger(__name__)

#: the interpreter's own young-generation threshold (allocations net of deallocations)
YOUNG_THRESHOLD = 5_000
#: thresholds that the interpreter never reaches: older passes are the pacer's
NEVER = 1 << 30
#: seconds between the pacer's young passes
YOUNG_EVERY = 0.25
#: seconds between older passes
OLDER_EVERY = 10.0
#: attempts in flight up to which an older pass is cheap enough to run
QUIET_IN_FLIGHT = 100
#: the longest an older pass waits for a quiet moment
MAX_DEFER = 300.0
#: every this many older passes, a full one (generation 2)
FULL_EVERY = 6


class GcPacer:
    """Runs the collection schedule above; `busy()` returns the attempts in flight.

    `start()` and `stop()` change process-wide settings (and restore them): only the
    daemon's process calls them. `step()` is one beat of the schedule, called by the
    pacer's own timer or directly (tests, with a fake clock and a recording `collect`).
    """

    def __init__(
        self,
        clock: Clock,
        busy: Callable[[], int],
        *,
        collect: Callable[[int], int] = gc.collect,
    ) -> None:
        self._clock = clock
        self._busy = busy
        self._collect = collect
        self._saved: tuple[int, int, int] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._last_older = clock.monotonic()
        self._deferring = False
        #: counters for tests and bench/: passes by generation, and deferred beats
        self.passes = [0, 0, 0]
        self.deferred = 0

    def start(self) -> None:
        """Freeze the start-up heap, leave older passes to the pacer, start the beat."""
        if self._saved is not None:
            return
        self._saved = gc.get_threshold()
        gc.collect()
        gc.freeze()
        gc.set_threshold(YOUNG_THRESHOLD, NEVER, NEVER)
        self._last_older = self._clock.monotonic()
        self._beat()

    def stop(self) -> None:
        """Stop the beat and give the interpreter its own schedule back."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            gc.unfreeze()
            self._saved = None

    def _beat(self) -> None:
        try:
            self.step()
        except Exception:  # the schedule must go on; the interpreter's young passes do
            log.exception("garbage-collection pacer step failed")
        self._handle = asyncio.get_running_loop().call_later(YOUNG_EVERY, self._beat)

    def step(self) -> int:
        """One beat: a young pass, and an older one when due; the generation collected."""
        self._collect(0)
        self.passes[0] += 1
        now = self._clock.monotonic()
        waited = now - self._last_older
        if waited < OLDER_EVERY:
            return 0
        in_flight = self._busy()
        if in_flight > QUIET_IN_FLIGHT and waited < MAX_DEFER:
            self.deferred += 1
            if not self._deferring:
                self._deferring = True
                log.debug("older GC pass deferred: %d attempts in flight", in_flight)
            return 0
        if in_flight > QUIET_IN_FLIGHT:
            log.info(
                "older GC pass after %.0f s with %d attempts in flight: launches may be late",
                waited,
                in_flight,
            )
        self._deferring = False
        older = sum(self.passes[1:])
        generation = 2 if older % FULL_EVERY == FULL_EVERY - 1 else 1
        self._collect(generation)
        self.passes[generation] += 1
        self._last_older = now
        return generation


#: CPython versions whose collector the pacer was measured on (bench/attempt_cost.py);
#: elsewhere (3.12's and 3.13's collectors differ, 3.14's is incremental) it stays off
MEASURED_ON: frozenset[tuple[int, int]] = frozenset({(3, 11)})


def start_pacer(
    clock: Clock, in_flight: Callable[[], int], version: tuple[int, int] | None = None
) -> GcPacer | None:
    """Start the pacer on a CPython version it was measured on; None (one log line) else."""
    version = version or (sys.version_info[0], sys.version_info[1])
    if version not in MEASURED_ON:
        log.info(
            "gc pacer off: measured on CPython %s only; Python %d.%d keeps the collector's "
            "defaults",
            ", ".join(f"{a}.{b}" for a, b in sorted(MEASURED_ON)),
            *version,
        )
        return None
    pacer = GcPacer(clock, in_flight)
    pacer.start()
    return pacer
