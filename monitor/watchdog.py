"""Event-loop lag watchdog: records when the monitor itself stalled (GC, CPU starvation, a
VM pause), so that a timeout caused by the monitor is not blamed on the platform.

A task sleeps `interval` (25 ms: 40 wakes a second keep its own CPU small; a stall is
measured at most that much short) and measures how late it wakes on `clock.monotonic()`.
Every lag goes to `on_lag` (the `loop_lag_seconds` histogram); a lag of at least
`threshold` is recorded as a stall interval [expected wake, actual wake]. `stalled(start, end)` also
counts a stall *still in progress*: when an attempt's timeout is handled in the same loop
iteration that ends a long block, the watchdog task has not run yet, but the time since
it should have woken is already known to be stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from monitor.clock import Clock

log = logging.getLogger(__name__)


class LoopWatchdog:
    """Records event-loop stalls on the clock's monotonic scale.

    `threshold` defaults to 50 ms, below the default `stall_threshold_ms` (100 ms), so
    that sustained starvation in 50 ms bites still adds up to a stall an attempt
    overlapped, while ordinary scheduler jitter (a few ms) is never recorded.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        interval: float = 0.025,
        threshold: float = 0.05,
        on_lag: Callable[[float], None] | None = None,
        keep: float = 600,
    ) -> None:
        if interval <= 0 or threshold <= 0 or keep <= 0:
            raise ValueError("interval, threshold and keep must be positive")
        self._clock = clock
        self.interval = interval
        self.threshold = threshold
        self._on_lag = on_lag
        self._keep = keep
        #: recorded stalls (start, end), in order, non-overlapping
        self._stalls: deque[tuple[float, float]] = deque()
        #: monotonic instant the sleeping task should wake (None: not sleeping)
        self._expected: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.max_lag = 0.0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="availmon-loop-watchdog")

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._expected = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        clock = self._clock
        while True:
            self._expected = clock.monotonic() + self.interval
            await asyncio.sleep(self.interval)
            woke = clock.monotonic()
            expected, self._expected = self._expected, None
            if expected is None:
                continue
            lag = max(0.0, woke - expected)
            self.max_lag = max(self.max_lag, lag)
            if self._on_lag is not None:
                try:
                    self._on_lag(lag)
                except Exception:
                    log.exception("loop lag callback failed")
            if lag >= self.threshold:
                self.note_stall(expected, woke)

    def note_stall(self, start_mono: float, end_mono: float) -> None:
        """Record a stall [start, end] (merged with an overlapping last one)."""
        if end_mono <= start_mono:
            return
        length = end_mono - start_mono
        if self._stalls and start_mono < self._stalls[-1][0]:
            # Out of order (a stall noted after a later one): rare, so just re-merge all.
            merged: list[tuple[float, float]] = []
            for s, e in sorted([*self._stalls, (start_mono, end_mono)]):
                if merged and s <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], e))
                else:
                    merged.append((s, e))
            self._stalls = deque(merged)
            end_mono = self._stalls[-1][1]
        elif self._stalls and start_mono <= self._stalls[-1][1]:
            last_start, last_end = self._stalls.pop()
            self._stalls.append((last_start, max(last_end, end_mono)))
        else:
            self._stalls.append((start_mono, end_mono))
        horizon = end_mono - self._keep
        while self._stalls and self._stalls[0][1] < horizon:
            self._stalls.popleft()
        if length >= 0.5:
            log.warning("event loop stalled for %.3f s", length)

    def stalled(self, start_mono: float, end_mono: float) -> float:
        """Seconds of stall overlapping [start, end], including one still in progress."""
        total = 0.0
        for s, e in reversed(self._stalls):
            if e <= start_mono:
                break  # stalls are in order: every earlier one ends earlier still
            total += max(0.0, min(e, end_mono) - max(s, start_mono))
        expected = self._expected
        if expected is not None:
            now = self._clock.monotonic()
            if now - expected >= self.threshold:
                total += max(0.0, min(now, end_mono) - max(expected, start_mono))
        return total
