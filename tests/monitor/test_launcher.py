"""Launcher: real event-loop time in short runs with fake probes (the Probe protocol), and
one long run of the real HTTP probe against a hung aiohttp server."""

from __future__ import annotations

import asyncio
import math
import resource
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from monitor.clock import Clock, SystemClock
from monitor.config import Settings, parse
from monitor.detector import Detector
from monitor.launcher import (
    Launcher,
    auto_phases,
    in_flight_bound,
    raise_open_file_limit,
    slot_offsets,
)
from monitor.verdicts import SecondVerdict, UnknownReason, Verdict
from probes.base import Attempt, Outcome, ProbeContext, Result

# ------------------------------------------------------------------ fake probes


@dataclass
class FakeProbe:
    """Answers `outcome` after `delay`, or TIMEOUT when its deadline comes first."""

    name: str
    channel: str = "api"
    delay: float = 0.01
    outcome: Outcome = Outcome.OK
    clock: Clock = field(default_factory=SystemClock)
    launches: list[tuple[ProbeContext, float]] = field(default_factory=list)
    closed: bool = False

    async def run(self, ctx: ProbeContext) -> Result:
        self.launches.append((ctx, self.clock.wall()))
        try:
            async with asyncio.timeout(ctx.timeout):
                await asyncio.sleep(self.delay)
        except TimeoutError:
            return Result(Outcome.TIMEOUT, {"error": "TimeoutError"})
        return Result(self.outcome)

    async def close(self) -> None:
        self.closed = True


@dataclass
class HangingProbe(FakeProbe):
    """A hung target: nothing comes back before the deadline."""

    delay: float = 3600.0


@dataclass
class StubbornProbe(FakeProbe):
    """A buggy probe that ignores its deadline and cancellation until released."""

    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, ctx: ProbeContext) -> Result:
        self.launches.append((ctx, self.clock.wall()))
        while not self.release.is_set():
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                continue
        return Result(Outcome.OK)


@dataclass
class RaisingProbe(FakeProbe):
    async def run(self, ctx: ProbeContext) -> Result:
        raise RuntimeError("bug in a probe")


@dataclass
class RaisingTimeoutProbe(FakeProbe):
    """A bug that looks like a timeout: it must not count as the target's timeout."""

    async def run(self, ctx: ProbeContext) -> Result:
        raise TimeoutError("the probe's own bug")


@dataclass
class SelfCancellingProbe(FakeProbe):
    """A bug that raises CancelledError though nobody cancelled the attempt."""

    async def run(self, ctx: ProbeContext) -> Result:
        raise asyncio.CancelledError


@dataclass
class OverrunProbe(FakeProbe):
    """Ignores its deadline (but not cancellation): cut off by the launcher's guard."""

    async def run(self, ctx: ProbeContext) -> Result:
        await asyncio.sleep(3600)
        return Result(Outcome.OK)


class SteppableClock:
    """Real clocks, with a wall-clock offset a test can step (an NTP step)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def wall(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic()


# ------------------------------------------------------------------ harness


def settings(
    probes: list[dict[str, Any]],
    *,
    max_launch_lag_ms: float = 50,
    stall_threshold_ms: float = 100,
    **svc: Any,
) -> Settings:
    return parse(
        {
            "monitor": {
                "vantage": "test",
                "max_launch_lag_ms": max_launch_lag_ms,
                "stall_threshold_ms": stall_threshold_ms,
            },
            "services": [{"name": "sp", "probes": probes, **svc}],
        }
    )


def api(name: str = "p", **kw: Any) -> dict[str, Any]:
    return {"type": "http", "name": name, "url": "http://127.0.0.1:9/", **kw}


@dataclass
class Run:
    verdicts: dict[tuple[str, int], SecondVerdict] = field(default_factory=dict)
    seconds: list[int] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    skips: list[tuple[str, str, str, int]] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    launcher: Launcher | None = None
    detector: Detector | None = None
    first: int = 0
    #: called with each second as it is emitted (a test's hook)
    on_second: Callable[[int], None] | None = None

    def sink(self, second: int, verdicts: list[SecondVerdict], ev: list[Attempt]) -> None:
        if self.on_second is not None:
            self.on_second(second)
        self.seconds.append(second)
        for v in verdicts:
            key = (v.channel, v.second)
            assert key not in self.verdicts, f"second {key} emitted twice"
            self.verdicts[key] = v
        self.order.append(f"second:{second}")

    def on_attempt(self, a: Attempt) -> None:
        self.attempts.append(a)
        self.order.append(f"attempt:{a.attempt_id}")

    def channel(self, channel: str = "api") -> list[SecondVerdict]:
        return [v for (ch, _), v in sorted(self.verdicts.items()) if ch == channel]


async def run_launcher(
    cfg: Settings,
    probes: dict[tuple[str, str], Any],
    duration: float,
    *,
    clock: Clock | None = None,
    grace: float = 1.0,
    during: Callable[[Run], Any] | None = None,
    settle: float = 8.0,
) -> Run:
    """Run a launcher for `duration` s of real time, then until the seconds it launched
    in are final (bounded by `settle` s), then stop it."""
    clock = clock or SystemClock()
    run = Run()
    run.first = int(clock.wall()) + 1
    det = Detector(cfg.services, "test", run.sink, start_second=run.first, grace=grace)
    launcher = Launcher(
        cfg,
        clock,
        det,
        on_attempt=run.on_attempt,
        on_skip=lambda *a: run.skips.append(a),
        probes=probes,
    )
    run.launcher, run.detector = launcher, det
    await launcher.start()
    try:
        if during is not None:
            await during(run)
        await asyncio.sleep(duration)
        last_launched = int(clock.wall())  # the second the run ends in
        waited = 0.0
        while det.next_second <= last_launched and waited < settle:
            await asyncio.sleep(0.05)
            waited += 0.05
    finally:
        await launcher.stop()
    return run


# ------------------------------------------------------------------ pure parts

OFFSET_CASES = [
    ("k1", 0.0, 1, (0.0,)),
    ("k2", 0.0, 2, (0.0, 0.5)),
    ("k4-phase", 0.1, 4, (0.1, 0.35, 0.6, 0.85)),
    ("k2-wraps", 0.75, 2, (0.75, 0.25)),
]


@pytest.mark.parametrize(
    "phase,k,expected", [c[1:] for c in OFFSET_CASES], ids=[c[0] for c in OFFSET_CASES]
)
def test_slot_offsets(phase: float, k: int, expected: tuple[float, ...]) -> None:
    assert slot_offsets(phase, k) == pytest.approx(expected)


def test_in_flight_bound_follows_design() -> None:
    assert in_flight_bound(2, 5.0) == 2 * 6 + 2
    assert in_flight_bound(3, 0.5) == math.ceil(3 * 1.5) + 3


def test_auto_phases_spread_a_services_probes() -> None:
    cfg = settings([api("a"), api("b"), api("c", phase_offset=0.9)])
    phases = auto_phases(cfg.services[0].probes)
    assert phases == pytest.approx({"a": 0.0, "b": (1 / 3) / 2, "c": 0.9})


def test_services_fire_at_different_instants_stable_across_restarts() -> None:
    probes = settings([api("a"), api("b")]).services[0].probes
    names = [f"svc-{i}" for i in range(250)]
    phases = {n: auto_phases(probes, n) for n in names}
    assert phases == {n: auto_phases(probes, n) for n in names}  # the same every time
    firsts = sorted(p["a"] for p in phases.values())
    assert all(0 <= f < 0.5 for f in firsts)  # inside the first slot (k = 2)
    assert len({round(f, 4) for f in firsts}) > 240  # not all at one instant
    # the 250 services' launches spread over the slot: no 10 ms holds more than a few
    per_bucket = Counter(int(f * 100) for f in firsts)
    assert max(per_bucket.values()) <= 15
    # within a service, its probes keep half a slot apart
    for p in phases.values():
        assert (p["b"] - p["a"]) % 0.5 == pytest.approx(0.25)


def test_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 512:
        pytest.skip("needs a finite hard open-file limit of at least 512")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        assert raise_open_file_limit() == (hard, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 256), hard))


# ------------------------------------------------------------------ real time, short


async def test_k_slots_spread_evenly_with_attempt_ids_and_on_attempt_first() -> None:
    cfg = settings([api("p", attempts_per_second=4, phase_offset=0.1, timeout_seconds=1)])
    probe = FakeProbe("p")
    run = await run_launcher(cfg, {("sp", "p"): probe}, 2.5)
    by_second: dict[int, list[tuple[ProbeContext, float]]] = {}
    for ctx, wall in probe.launches:
        by_second.setdefault(ctx.second, []).append((ctx, wall))
    assert len(by_second) >= 2
    lag = cfg.monitor.max_launch_lag_ms / 1000
    for second, launches in by_second.items():
        for ctx, wall in launches:
            assert ctx.attempt_id == f"p:{second}:{ctx.slot}@{cfg.monitor.vantage}"
            assert ctx.timeout == 1.0
            # a slot never fires early, and is skipped when later than max_launch_lag
            scheduled = second + (0.1 + ctx.slot / 4)
            assert scheduled - 0.005 <= wall <= scheduled + lag + 0.005, (ctx, wall)
    full = [s for s, ls in by_second.items() if s != run.first]
    assert any(sorted(c.slot for c, _ in by_second[s]) == [0, 1, 2, 3] for s in full)
    assert all(v.verdict is Verdict.AVAILABLE for v in run.channel())
    assert run.seconds == list(range(run.first, run.first + len(run.seconds)))
    # every attempt reached on_attempt before its second was emitted
    for a in run.attempts:
        if f"second:{a.second}" in run.order:
            assert run.order.index(f"attempt:{a.attempt_id}") < run.order.index(
                f"second:{a.second}"
            )
    assert probe.closed
    assert run.launcher is not None
    stats = run.launcher.stats[("sp", "p")]
    assert stats["launched"] == len(probe.launches)
    assert len(stats["lags"]) == stats["launched"]


async def test_hung_target_keeps_launching_and_every_second_is_unavailable() -> None:
    # Generous lag and stall limits: this test is about hung targets, not a loaded CI box.
    cfg = settings(
        [api("p", attempts_per_second=4, timeout_seconds=1.0)],
        max_launch_lag_ms=500,
        stall_threshold_ms=5000,
    )
    probe = HangingProbe("p")
    run = await run_launcher(cfg, {("sp", "p"): probe}, 2.5, grace=2.0)
    assert run.launcher is not None
    stats = run.launcher.stats[("sp", "p")]
    # launches went on while earlier attempts hung
    assert stats["max_in_flight"] >= 3
    assert stats["skipped"] == 0
    verdicts = run.channel()
    assert len(verdicts) >= 2
    assert [v.verdict for v in verdicts] == [Verdict.UNAVAILABLE] * len(verdicts)
    assert all(v.verdict is Verdict.UNAVAILABLE for v in run.channel("service"))
    assert {a.outcome for a in run.attempts} == {Outcome.TIMEOUT}


async def test_own_network_down_makes_seconds_unknown_not_unavailable() -> None:
    # Both the platform and the control host time out: the monitor cannot tell.
    cfg = settings(
        [
            api("p", attempts_per_second=2, timeout_seconds=0.5),
            api("ctl", channel="control", attempts_per_second=2, timeout_seconds=0.5),
        ],
        max_launch_lag_ms=500,
        stall_threshold_ms=5000,
    )
    probes = {("sp", "p"): HangingProbe("p"), ("sp", "ctl"): HangingProbe("ctl", "control")}
    run = await run_launcher(cfg, probes, 2.2, grace=2.0)
    verdicts = run.channel()
    assert verdicts
    assert {(v.verdict, v.reason) for v in verdicts} == {
        (Verdict.UNKNOWN, UnknownReason.CONTROL_FAILED)
    }
    assert not run.channel("control")  # control is evidence, never a channel of its own
    assert {a.channel for a in run.attempts} == {"api", "control"}


async def test_in_flight_bound_skips_are_counted_never_relabelled() -> None:
    cfg = settings([api("p", attempts_per_second=2, timeout_seconds=0.2)])
    probe = StubbornProbe("p")
    bound = in_flight_bound(2, 0.2)
    before_release: dict[str, Any] = {}

    async def release_later(run: Run) -> None:
        async def later() -> None:
            await asyncio.sleep(4.6)
            assert run.launcher is not None
            before_release.update(run.launcher.stats[("sp", "p")], skips=list(run.skips))
            before_release["wall"] = time.time()
            probe.release.set()

        asyncio.get_running_loop().create_task(later())

    run = await run_launcher(cfg, {("sp", "p"): probe}, 5.0, during=release_later, grace=0.8)
    assert before_release["launched"] == bound
    assert before_release["skipped_bound"] >= 2
    assert before_release["skipped"] == len(before_release["skips"])
    assert all(s[:3] == ("sp", "api", "p") for s in run.skips)
    stuck = probe.launches[:bound]
    launched_seconds = {c.second for c, _ in stuck}
    skipped_seconds = {s[3] for s in before_release["skips"]}
    only_skipped = sorted(skipped_seconds - launched_seconds)
    assert only_skipped, "some second had every launch skipped"
    for s in only_skipped[:-1]:  # the last one may have launched again after release
        v = run.verdicts[("api", s)]
        assert (v.verdict, v.reason) == (Verdict.UNKNOWN, UnknownReason.NOT_LAUNCHED)
    # the stuck attempts were lost at their seconds' hard deadline: probe_error
    # the second's end + the timeout + the detector's grace, seen at the next tick
    hard = math.ceil(1 + 0.2 + 0.8) + 0.1
    lost = [s for s in sorted(launched_seconds) if s + hard < before_release["wall"]]
    assert len(lost) >= 2
    for s in lost:
        v = run.verdicts[("api", s)]
        assert (v.verdict, v.reason) == (Verdict.UNKNOWN, UnknownReason.PROBE_ERROR)
        assert v.counts["probe_error"] >= 1


async def test_probe_bugs_are_probe_errors_and_channels_combine() -> None:
    cfg = parse(
        {
            # a loaded host's loop stall of a few hundred ms would rightly make an overrun
            # the monitor's fault (test_event_loop_stall_* below): not what this is about
            "monitor": {"vantage": "t", "stall_threshold_ms": 1000},
            "services": [
                {
                    "name": "sp",
                    "probes": [
                        api("a"),
                        api("bug"),
                        api("bug2"),
                        api("bug3"),
                        api("overrun", timeout_seconds=0.5),
                        {"type": "smtp", "name": "s", "host": "127.0.0.1"},
                    ],
                }
            ],
        }
    )
    probes = {
        ("sp", "a"): FakeProbe("a"),
        ("sp", "bug"): RaisingProbe("bug"),
        ("sp", "bug2"): RaisingTimeoutProbe("bug2"),
        ("sp", "bug3"): SelfCancellingProbe("bug3"),
        ("sp", "overrun"): OverrunProbe("overrun"),
        ("sp", "s"): FakeProbe("s", "smtp", 0.01, Outcome.TIMEOUT),
    }
    run = await run_launcher(cfg, probes, 2.2)
    bugs = [a for a in run.attempts if a.probe == "bug"]
    assert len(bugs) >= 3
    assert {a.outcome for a in bugs} == {Outcome.PROBE_ERROR}
    assert {a.detail["error"] for a in bugs} == {"RuntimeError"}
    for name in ("bug2", "bug3"):
        other = [a for a in run.attempts if a.probe == name]
        assert other and {a.outcome for a in other} == {Outcome.PROBE_ERROR}
    overruns = [a for a in run.attempts if a.probe == "overrun"]
    assert overruns and {a.outcome for a in overruns} == {Outcome.TIMEOUT}
    assert {a.detail["error"] for a in overruns} == {"DeadlineOverrun"}
    api_seconds = run.channel("api")
    assert api_seconds and all(v.verdict is Verdict.AVAILABLE for v in api_seconds)
    assert all(v.degraded for v in api_seconds)  # the overruns are qualifying failures
    assert all(v.counts.get("probe_error", 0) >= 3 for v in api_seconds[1:])
    assert all(v.verdict is Verdict.UNAVAILABLE for v in run.channel("smtp"))
    assert all(v.verdict is Verdict.UNAVAILABLE for v in run.channel("service"))  # combine any


async def test_event_loop_stall_never_makes_a_healthy_target_unavailable() -> None:
    cfg = settings([api("p", attempts_per_second=4, phase_offset=0.0, timeout_seconds=0.45)])
    probe = FakeProbe("p", delay=0.2)
    blocked: list[float] = []

    async def block_soon(run: Run) -> None:
        # Block the loop at .30 of a second, while the attempt launched at .25 is in
        # flight: its deadline (.70) passes during the 500 ms block.
        loop = asyncio.get_running_loop()
        target = run.first + 1 + 0.30
        delay = target - time.time()

        def block() -> None:
            blocked.append(time.time())
            time.sleep(0.5)

        loop.call_at(loop.time() + delay, block)

    run = await run_launcher(cfg, {("sp", "p"): probe}, 3.5, during=block_soon)
    assert blocked
    stalled = [a for a in run.attempts if a.detail.get("reason") == "monitor_stalled"]
    assert stalled, "the attempt in flight during the block was blamed on the monitor"
    assert all(a.outcome is Outcome.PROBE_ERROR for a in stalled)
    assert all(a.detail["observed"] == "timeout" for a in stalled)
    assert run.launcher is not None and run.launcher.stats[("sp", "p")]["skipped_late"] >= 1
    verdicts = run.channel() + run.channel("service")
    assert verdicts
    assert not [v for v in verdicts if v.verdict is Verdict.UNAVAILABLE]


async def test_forward_clock_step_marks_skipped_seconds_unknown_once() -> None:
    clock = SteppableClock()
    cfg = settings([api("p", attempts_per_second=2, timeout_seconds=0.5)])
    probe = FakeProbe("p", clock=clock)

    async def step(run: Run) -> None:
        async def later() -> None:
            await asyncio.sleep(2.2)
            clock.offset += 10.0

        asyncio.get_running_loop().create_task(later())

    run = await run_launcher(cfg, {("sp", "p"): probe}, 5.0, clock=clock, during=step)
    assert run.launcher is not None and run.launcher.clock_steps == 1
    seconds = run.seconds
    assert seconds == list(range(run.first, run.first + len(seconds)))  # no gap, no repeat
    reasons = [(v.verdict, v.reason) for v in run.channel()]
    stepped = [i for i, r in enumerate(reasons) if r[1] is UnknownReason.CLOCK_STEP]
    assert len(stepped) >= 10  # the ~10 s jumped over, and the second it happened in
    assert stepped == list(range(stepped[0], stepped[-1] + 1))
    before = reasons[: stepped[0]]
    after = reasons[stepped[-1] + 1 :]
    assert before and all(r == (Verdict.AVAILABLE, None) for r in before)
    assert after and all(r == (Verdict.AVAILABLE, None) for r in after)
    # launches after the step carry the new frame's seconds
    assert max(c.second for c, _ in probe.launches) >= run.first + 10


async def test_a_forward_step_launches_nothing_for_a_second_already_final() -> None:
    # A step whose fraction puts the new frame's tick before the old frame's remaining
    # slots: those slots belong to seconds forced unknown and emitted at that tick, so
    # they must not fire afterwards.
    clock = SteppableClock()
    cfg = settings([api("p", attempts_per_second=2, phase_offset=0.0, timeout_seconds=0.5)])
    probe = FakeProbe("p", clock=clock)

    async def step(run: Run) -> None:
        async def later() -> None:
            await asyncio.sleep(1.5)
            now = clock.wall()
            await asyncio.sleep(math.floor(now) + 1 + 0.2 - now)
            clock.offset += 10.6

        asyncio.get_running_loop().create_task(later())

    run = await run_launcher(cfg, {("sp", "p"): probe}, 5.0, clock=clock, during=step)
    assert run.launcher is not None and run.launcher.clock_steps == 1
    assert run.detector is not None and run.detector.late == 0
    seconds = run.seconds
    assert seconds == list(range(run.first, run.first + len(seconds)))
    assert [v.reason for v in run.channel()].count(UnknownReason.CLOCK_STEP) >= 10


@dataclass
class SteppingProbe(FakeProbe):
    """Steps its clock's wall time by `delta` 0.1 s into slot 0 of second `at_second`
    (after the tick of the second before, well before slot 1 at .5)."""

    at_second: int = 0
    delta: float = 0.0

    async def run(self, ctx: ProbeContext) -> Result:
        result = await super().run(ctx)
        if (
            ctx.second == self.at_second
            and ctx.slot == 0
            and isinstance(self.clock, SteppableClock)
        ):
            await asyncio.sleep(0.1)
            self.clock.offset += self.delta
        return result


@pytest.mark.parametrize(
    ("when", "in_doubt"),
    [
        # during the second, before its last slot: that second is in doubt too
        ("before-last-slot", 2),
        # once the second is final (early: every attempt of it ended), only the next one
        ("after-final", 1),
    ],
)
async def test_backward_clock_step_never_labels_a_second_twice(when: str, in_doubt: int) -> None:
    clock = SteppableClock()
    cfg = settings([api("p", attempts_per_second=2, phase_offset=0.0, timeout_seconds=0.5)])
    probe = SteppingProbe("p", clock=clock, delay=0.01)

    async def step(run: Run) -> None:
        target = run.first + 3
        if when == "before-last-slot":
            probe.at_second, probe.delta = target, -1.3
        else:
            loop = asyncio.get_running_loop()

            def after(second: int) -> None:
                if second == target:  # emitted at ~.51, the tick is at 1.001
                    loop.call_soon(lambda: setattr(clock, "offset", clock.offset - 1.3))

            run.on_second = after

        async def slew() -> None:
            await asyncio.sleep(1.0)
            clock.offset += 0.3  # slewing-sized: followed, not a step

        asyncio.get_running_loop().create_task(slew())

    run = await run_launcher(cfg, {("sp", "p"): probe}, 8.0, clock=clock, during=step)
    assert run.launcher is not None and run.launcher.clock_steps == 1
    ids = [c.attempt_id for c, _ in probe.launches]
    assert len(ids) == len(set(ids)), "an attempt id (probe, second, slot) was reused"
    seconds = run.seconds
    assert seconds == list(range(run.first, run.first + len(seconds)))
    reasons = [v.reason for v in run.channel()]
    assert reasons.count(UnknownReason.CLOCK_STEP) == in_doubt, reasons
    assert reasons[-1] is None  # measuring again after the repeated stretch


# ------------------------------------------------------------------ the real HTTP probe


@pytest.mark.slow
async def test_http_server_hung_for_30s_yields_one_unavailable_verdict_per_second(
    aiohttp_server: Any,
) -> None:
    import probes.http  # noqa: F401  (registers PROBES["http"])

    release = asyncio.Event()
    hits: Counter[str] = Counter()

    async def hang(request: web.Request) -> web.Response:
        hits["requests"] += 1
        try:
            await asyncio.wait_for(release.wait(), timeout=60)
        except TimeoutError:
            pass
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/api/v1/account", hang)
    server = await aiohttp_server(app)
    cfg = settings(
        [
            {
                "type": "http",
                "name": "api",
                "url": f"http://127.0.0.1:{server.port}/api/v1/account",
                "attempts_per_second": 2,
                "timeout_seconds": 1,
            }
        ],
        # the CI box is shared: don't let its load turn this outage into skips or stalls
        max_launch_lag_ms=500,
        stall_threshold_ms=5000,
    )
    try:
        run = await run_launcher(cfg, {}, 30.0, grace=2.0)
    finally:
        release.set()
    verdicts = run.channel()
    assert len(verdicts) >= 28
    assert [v.second for v in verdicts] == list(range(run.first, run.first + len(verdicts)))
    assert [v.verdict for v in verdicts] == [Verdict.UNAVAILABLE] * len(verdicts)
    assert all(v.verdict is Verdict.UNAVAILABLE for v in run.channel("service"))
    assert {a.outcome for a in run.attempts} == {Outcome.TIMEOUT}
    assert hits["requests"] >= 2 * 28
