"""The garbage-collection pacer: young passes every beat, older passes only when few attempts
are in flight (or after the longest deferral), process settings restored on stop."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys

import pytest

from monitor import gcpacer
from monitor.clock import FakeClock
from monitor.gcpacer import GcPacer


class Recorder:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, generation: int) -> int:
        self.calls.append(generation)
        return 0


def _pacer(busy: list[int]) -> tuple[GcPacer, FakeClock, Recorder]:
    clock, collect = FakeClock(), Recorder()
    return GcPacer(clock, lambda: busy[0], collect=collect), clock, collect


def _beats(pacer: GcPacer, clock: FakeClock, seconds: float) -> list[int]:
    """Run the beat for `seconds` of fake time; the older generations collected."""
    older = []
    for _ in range(round(seconds / gcpacer.YOUNG_EVERY)):
        clock.advance(gcpacer.YOUNG_EVERY)
        if generation := pacer.step():
            older.append(generation)
    return older


def test_quiet_daemon_collects_young_every_beat_and_older_every_interval() -> None:
    pacer, clock, collect = _pacer([3])
    older = _beats(pacer, clock, 60)
    assert collect.calls.count(0) == round(60 / gcpacer.YOUNG_EVERY)
    assert len(older) == 60 // gcpacer.OLDER_EVERY
    # every FULL_EVERY-th older pass is a full one
    assert older == [1] * (gcpacer.FULL_EVERY - 1) + [2]
    assert pacer.deferred == 0


def test_older_pass_waits_while_many_attempts_are_in_flight() -> None:
    busy = [gcpacer.QUIET_IN_FLIGHT + 1]
    pacer, clock, collect = _pacer(busy)
    assert _beats(pacer, clock, 60) == []  # a hang at a high rate: only young passes
    assert set(collect.calls) == {0}
    assert pacer.deferred > 0
    busy[0] = gcpacer.QUIET_IN_FLIGHT  # the attempts drained
    assert pacer.step() == 1
    assert collect.calls[-1] == 1


def test_older_pass_runs_anyway_after_the_longest_deferral() -> None:
    pacer, clock, collect = _pacer([10_000])
    older = _beats(pacer, clock, gcpacer.MAX_DEFER + 1)
    assert older == [1]
    assert collect.calls.count(1) == 1


async def test_start_leaves_older_generations_to_the_pacer_and_stop_restores() -> None:
    before = gc.get_threshold()
    pacer = GcPacer(FakeClock(), lambda: 0)
    pacer.start()
    try:
        assert gc.get_threshold() == (gcpacer.YOUNG_THRESHOLD, gcpacer.NEVER, gcpacer.NEVER)
        assert gc.get_freeze_count() > 0  # the start-up heap is out of every pass
        young = pacer.passes[0]
        await asyncio.sleep(gcpacer.YOUNG_EVERY * 2.5)
        assert pacer.passes[0] > young  # the beat runs on the loop's timer
    finally:
        pacer.stop()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


async def test_the_pacer_starts_only_on_the_python_it_was_measured_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = gc.get_threshold()
    with caplog.at_level("INFO", logger="monitor.gcpacer"):
        assert gcpacer.start_pacer(FakeClock(), lambda: 0, version=(3, 13)) is None
    assert gc.get_threshold() == before
    assert "gc pacer off: measured on CPython 3.11 only; Python 3.13" in caplog.text
    pacer = gcpacer.start_pacer(FakeClock(), lambda: 0, version=(3, 11))
    assert pacer is not None
    try:
        assert gc.get_threshold() == (gcpacer.YOUNG_THRESHOLD, gcpacer.NEVER, gcpacer.NEVER)
    finally:
        pacer.stop()
    assert gc.get_threshold() == before


def test_importing_the_packages_patches_nothing() -> None:
    """`import probes` (and the config that imports it) leaves asyncio as it was; only
    `availmon run` installs the backport."""
    code = (
        "import asyncio.selector_events as s, monitor.config, probes, alerting.notifiers;"
        "print(getattr(s._SelectorSocketTransport, '_availmon_cycle_fix', False))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"
