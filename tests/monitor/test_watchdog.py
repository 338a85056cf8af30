"""LoopWatchdog: recorded stalls, overlap arithmetic, a stall still in progress, a real
blocked event loop."""

from __future__ import annotations

import asyncio
import time

import pytest

from monitor.clock import FakeClock, SystemClock
from monitor.watchdog import LoopWatchdog

OVERLAP_CASES = [
    ("inside", (10.0, 10.5), (9.0, 12.0), 0.5),
    ("covers", (10.0, 10.5), (10.1, 10.2), 0.1),
    ("left-edge", (10.0, 10.5), (10.4, 11.0), 0.1),
    ("right-edge", (10.0, 10.5), (9.0, 10.2), 0.2),
    ("before", (10.0, 10.5), (11.0, 12.0), 0.0),
    ("after", (10.0, 10.5), (8.0, 9.0), 0.0),
    ("touching", (10.0, 10.5), (10.5, 11.0), 0.0),
]


@pytest.mark.parametrize(
    "stall,window,expected",
    [c[1:] for c in OVERLAP_CASES],
    ids=[c[0] for c in OVERLAP_CASES],
)
def test_stalled_overlap(
    stall: tuple[float, float], window: tuple[float, float], expected: float
) -> None:
    wd = LoopWatchdog(FakeClock())
    wd.note_stall(*stall)
    assert wd.stalled(*window) == pytest.approx(expected)


def test_several_stalls_add_up_and_overlapping_ones_merge() -> None:
    wd = LoopWatchdog(FakeClock())
    wd.note_stall(1.0, 1.2)
    wd.note_stall(2.0, 2.3)
    wd.note_stall(2.2, 2.5)  # overlaps the previous: merged, not counted twice
    wd.note_stall(0.5, 0.6)  # noted out of order
    assert wd.stalled(0.0, 3.0) == pytest.approx(0.1 + 0.2 + 0.5)
    assert wd.stalled(1.1, 2.1) == pytest.approx(0.1 + 0.1)


def test_old_stalls_are_forgotten_after_keep() -> None:
    wd = LoopWatchdog(FakeClock(), keep=60)
    wd.note_stall(10.0, 11.0)
    wd.note_stall(100.0, 100.5)
    assert wd.stalled(0.0, 200.0) == pytest.approx(0.5)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        LoopWatchdog(FakeClock(), interval=0)


async def test_a_blocked_loop_is_recorded_and_seen_while_in_progress() -> None:
    lags: list[float] = []
    clock = SystemClock()
    wd = LoopWatchdog(clock, interval=0.01, threshold=0.1, on_lag=lags.append)
    await wd.start()
    try:
        await asyncio.sleep(0.05)
        t0 = clock.monotonic()
        time.sleep(0.4)  # noqa: ASYNC251  (blocks the loop, as a GC or VM pause would)
        # The watchdog task has not run yet: the stall is seen as one in progress.
        in_progress = wd.stalled(t0, clock.monotonic())
        await asyncio.sleep(0.05)
        recorded = wd.stalled(t0 - 1, clock.monotonic())
    finally:
        await wd.stop()
    assert in_progress >= 0.3
    assert recorded >= 0.3
    assert max(lags) >= 0.3
    assert wd.max_lag >= 0.3


async def test_start_twice_runs_one_task_and_stop_is_idempotent() -> None:
    def running() -> int:
        return sum(1 for t in asyncio.all_tasks() if t.get_name() == "availmon-loop-watchdog")

    wd = LoopWatchdog(SystemClock())
    await wd.start()
    await wd.start()
    await asyncio.sleep(0.03)
    assert running() == 1
    await wd.stop()
    await wd.stop()
    assert running() == 0
