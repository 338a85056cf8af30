"""Time, injected: wall time labels seconds, monotonic time measures deadlines.

`SystemClock` reads the real clocks; `FakeClock` is moved by tests so that a month of
seconds runs in milliseconds. Both keep wall and monotonic time separate, because a wall
clock can step (NTP) while the monotonic clock cannot.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def wall(self) -> float:
        """Seconds since the Unix epoch, UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never steps; comparable with `loop.time()` for SystemClock."""
        ...


class SystemClock:
    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to. `step_wall` simulates an NTP step."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall = float(start)
        self._mono = 1000.0

    def wall(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds

    def set_wall(self, when: float) -> None:
        """Move both clocks forward so that wall time is `when` (never backwards)."""
        if when < self._wall:
            raise ValueError("FakeClock.set_wall cannot go backwards; use step_wall")
        self.advance(when - self._wall)

    def step_wall(self, delta: float) -> None:
        self._wall += delta


class ThreadShare:
    """Keeps a worker thread's share of the GIL small: call it between units of work
    (a service's probes, a service's series); after every `slice` seconds of the thread's
    own CPU it sleeps long enough that the thread takes at most `share` of the time. Work a
    reload does in a thread (building hundreds of probes) would otherwise take half the
    interpreter from a loop that is busy launching attempts, and launches would be late."""

    def __init__(self, share: float = 0.2, slice: float = 0.002) -> None:
        self._slice = slice
        self._nap = slice * (1 - share) / share
        self._since: float | None = None  # the CPU clock of the thread that calls it

    def __call__(self) -> None:
        now = time.thread_time()
        if self._since is None:
            self._since = now
        elif now - self._since >= self._slice:
            time.sleep(self._nap)
            self._since = time.thread_time()
