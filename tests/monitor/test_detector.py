"""Detector: the verdict rule per channel and service, control probes, finalisation order,
the hard deadline, forced unknown ranges; and a property test against a brute-force oracle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from monitor.clock import FakeClock
from monitor.config import ServiceConfig
from monitor.detector import Detector
from monitor.verdicts import SecondVerdict, UnknownReason, Verdict
from probes.base import Attempt, Outcome

T0 = 1_700_000_000
OK, TO, SE, CE, PE = (
    Outcome.OK,
    Outcome.TIMEOUT,
    Outcome.SERVER_ERROR,
    Outcome.CLIENT_ERROR,
    Outcome.PROBE_ERROR,
)
STALLED = "stalled"  # a probe_error with detail reason monitor_stalled
LOST = "lost"  # launched, never completed
SKIP = "skip"  # launch skipped


def service(
    name: str = "sp",
    *,
    api: int = 1,
    smtp: int = 0,
    control: int = 0,
    combine: str = "any",
    timeout: float = 5.0,
) -> ServiceConfig:
    probes: list[dict[str, Any]] = []
    for i in range(api):
        probes.append(
            {"type": "http", "name": f"api{i}", "url": "http://x/", "timeout_seconds": timeout}
        )
    for i in range(smtp):
        probes.append({"type": "smtp", "name": f"smtp{i}", "host": "x", "timeout_seconds": timeout})
    for i in range(control):
        probes.append(
            {
                "type": "http",
                "name": f"ctl{i}",
                "channel": "control",
                "url": "http://ctl/",
                "timeout_seconds": timeout,
            }
        )
    return ServiceConfig.model_validate({"name": name, "combine": combine, "probes": probes})


@dataclass
class Sink:
    seconds: list[int] = field(default_factory=list)
    verdicts: dict[tuple[str, str, int], SecondVerdict] = field(default_factory=dict)
    evidence: dict[int, list[Attempt]] = field(default_factory=dict)

    def __call__(self, second: int, verdicts: list[SecondVerdict], ev: list[Attempt]) -> None:
        # one call per (service, second): `seconds` lists each second once, as first seen
        if second not in self.seconds:
            self.seconds.append(second)
        self.evidence.setdefault(second, []).extend(ev)
        for v in verdicts:
            key = (v.service, v.channel, v.second)
            assert key not in self.verdicts, f"{key} emitted twice"
            assert v.second == second
            self.verdicts[key] = v

    def get(self, second: int, channel: str = "api", svc: str = "sp") -> SecondVerdict:
        return self.verdicts[(svc, channel, second)]


def attempt(
    outcome: Outcome,
    second: int = T0,
    *,
    service: str = "sp",
    channel: str = "api",
    probe: str = "api0",
    slot: int = 0,
    reason: str | None = None,
) -> Attempt:
    detail: dict[str, Any] = {"reason": reason} if reason else {}
    return Attempt(
        attempt_id=f"{probe}:{second}:{slot}",
        service=service,
        channel=channel,
        probe=probe,
        second=second,
        slot=slot,
        outcome=outcome,
        latency=0.1,
        started=second + 0.1,
        detail=detail,
    )


def feed(det: Detector, events: Sequence[Any], second: int = T0, **kw: Any) -> None:
    """Feed a list of outcomes / STALLED / LOST / SKIP as the attempts of one cell."""
    svc = kw.get("service", "sp")
    ch = kw.get("channel", "api")
    probe = kw.get("probe", "api0")
    for slot, ev in enumerate(events):
        if ev == SKIP:
            det.skipped(svc, ch, probe, second)
            continue
        det.launched(svc, ch, probe, second)
        if ev == LOST:
            continue
        if ev == STALLED:
            det.completed(attempt(PE, second, slot=slot, reason="monitor_stalled", **kw))
        else:
            det.completed(attempt(ev, second, slot=slot, **kw))


def make(*services: ServiceConfig, start: int = T0, grace: float = 1.0) -> tuple[Detector, Sink]:
    sink = Sink()
    det = Detector(services or [service()], "vp1", sink, start_second=start, grace=grace)
    return det, sink


CHANNEL_CASES = [
    ("nothing", [], Verdict.UNKNOWN, UnknownReason.NOT_LAUNCHED, False),
    ("all-skipped", [SKIP, SKIP], Verdict.UNKNOWN, UnknownReason.NOT_LAUNCHED, False),
    ("ok", [OK, OK], Verdict.AVAILABLE, None, False),
    ("timeout", [TO, TO], Verdict.UNAVAILABLE, None, False),
    ("one-timeout-one-skip", [TO, SKIP], Verdict.UNAVAILABLE, None, False),
    ("server-error-and-timeout", [SE, TO], Verdict.UNAVAILABLE, None, False),
    ("ok-and-timeout-degraded", [OK, TO], Verdict.AVAILABLE, None, True),
    ("client-error", [CE, CE], Verdict.AVAILABLE, None, False),
    ("client-and-server-error", [CE, SE], Verdict.AVAILABLE, None, True),
    ("probe-error-only", [PE, PE], Verdict.UNKNOWN, UnknownReason.PROBE_ERROR, False),
    ("probe-error-and-timeout", [PE, TO], Verdict.UNAVAILABLE, None, False),
    ("probe-error-and-ok", [PE, OK], Verdict.AVAILABLE, None, False),
    ("stalled-only", [STALLED], Verdict.UNKNOWN, UnknownReason.MONITOR_STALLED, False),
    (
        "probe-error-and-stalled",
        [PE, STALLED],
        Verdict.UNKNOWN,
        UnknownReason.MONITOR_STALLED,
        False,
    ),
    ("stalled-and-timeout", [STALLED, TO], Verdict.UNAVAILABLE, None, False),
    ("stalled-and-ok", [STALLED, OK], Verdict.AVAILABLE, None, False),
    ("lost-only", [LOST], Verdict.UNKNOWN, UnknownReason.PROBE_ERROR, False),
    ("lost-and-timeout", [LOST, TO], Verdict.UNAVAILABLE, None, False),
    ("lost-and-ok", [OK, LOST], Verdict.AVAILABLE, None, False),
]


@pytest.mark.parametrize(
    "events,verdict,reason,degraded",
    [c[1:] for c in CHANNEL_CASES],
    ids=[c[0] for c in CHANNEL_CASES],
)
def test_channel_verdict_rule(
    events: list[Any], verdict: Verdict, reason: UnknownReason | None, degraded: bool
) -> None:
    clock = FakeClock(T0)
    det, sink = make()
    feed(det, events)
    clock.advance(1 + 5 + 1)  # past the hard deadline: lost attempts count as probe_error
    det.advance(clock.wall())
    v = sink.get(T0)
    assert (v.verdict, v.reason, v.degraded) == (verdict, reason, degraded)
    assert v.vantage == "vp1"
    launched = [e for e in events if e != SKIP]
    assert sum(v.counts.values()) == len(launched)
    if LOST in events:
        assert v.counts["probe_error"] >= events.count(LOST)


def test_counts_by_outcome_and_evidence_only_when_unavailable_or_degraded() -> None:
    det, sink = make()
    feed(det, [OK, TO, CE], second=T0)
    feed(det, [OK, OK], second=T0 + 1)
    feed(det, [SE, SE], second=T0 + 2)
    det.advance(T0 + 3)
    assert dict(sink.get(T0).counts) == {"ok": 1, "timeout": 1, "client_error": 1}
    assert [a.attempt_id for a in sink.evidence[T0]] == [
        f"api0:{T0}:0",
        f"api0:{T0}:1",
        f"api0:{T0}:2",
    ]
    assert sink.evidence[T0 + 1] == []
    assert [a.outcome for a in sink.evidence[T0 + 2]] == [SE, SE]
    assert sink.get(T0, "service").counts == {}


COMBINE_CASES = [
    ("any-api-down", "any", [TO], [OK], Verdict.UNAVAILABLE, None, False),
    ("any-smtp-down", "any", [OK], [SE], Verdict.UNAVAILABLE, None, False),
    ("any-both-up", "any", [OK], [OK], Verdict.AVAILABLE, None, False),
    ("any-one-degraded", "any", [OK, TO], [OK], Verdict.AVAILABLE, None, True),
    ("any-down-and-unknown", "any", [TO], [], Verdict.UNAVAILABLE, None, False),
    ("any-up-and-unknown", "any", [OK], [PE], Verdict.AVAILABLE, None, False),
    ("any-both-unknown", "any", [], [PE], Verdict.UNKNOWN, UnknownReason.PROBE_ERROR, False),
    ("all-one-down", "all", [TO], [OK], Verdict.AVAILABLE, None, True),
    ("all-both-down", "all", [TO], [SE], Verdict.UNAVAILABLE, None, False),
    ("all-down-and-unknown", "all", [TO], [], Verdict.UNKNOWN, UnknownReason.NOT_LAUNCHED, False),
    ("all-both-up", "all", [OK], [OK], Verdict.AVAILABLE, None, False),
    (
        "all-stalled-and-nothing",
        "all",
        [STALLED],
        [],
        Verdict.UNKNOWN,
        UnknownReason.MONITOR_STALLED,
        False,
    ),
]


@pytest.mark.parametrize(
    "combine,api,smtp,verdict,reason,degraded",
    [c[1:] for c in COMBINE_CASES],
    ids=[c[0] for c in COMBINE_CASES],
)
def test_service_combine(
    combine: str,
    api: list[Any],
    smtp: list[Any],
    verdict: Verdict,
    reason: UnknownReason | None,
    degraded: bool,
) -> None:
    det, sink = make(service(api=1, smtp=1, combine=combine))
    feed(det, api)
    feed(det, smtp, channel="smtp", probe="smtp0")
    det.advance(T0 + 1)
    v = sink.get(T0, "service")
    assert (v.verdict, v.reason, v.degraded) == (verdict, reason, degraded)
    assert [x.channel for x in sink.verdicts.values()] == ["api", "smtp", "service"]


CONTROL_CASES = [
    ("control-timeout-hides-outage", [TO, TO], [TO], Verdict.UNKNOWN, UnknownReason.CONTROL_FAILED),
    (
        "control-probe-error-hides-outage",
        [PE, SE],
        [SE],
        Verdict.UNKNOWN,
        UnknownReason.CONTROL_FAILED,
    ),
    ("control-ok-keeps-outage", [OK, TO], [TO], Verdict.UNAVAILABLE, None),
    ("control-client-error-keeps-outage", [CE], [TO], Verdict.UNAVAILABLE, None),
    ("no-control-attempt-keeps-outage", [SKIP], [TO], Verdict.UNAVAILABLE, None),
    ("control-down-api-up-stays-up", [TO], [OK], Verdict.AVAILABLE, None),
    (
        "control-down-api-unknown-keeps-reason",
        [TO],
        [PE],
        Verdict.UNKNOWN,
        UnknownReason.PROBE_ERROR,
    ),
]


@pytest.mark.parametrize(
    "control,api,verdict,reason",
    [c[1:] for c in CONTROL_CASES],
    ids=[c[0] for c in CONTROL_CASES],
)
def test_control_probes(
    control: list[Any], api: list[Any], verdict: Verdict, reason: UnknownReason | None
) -> None:
    det, sink = make(service(api=1, control=1))
    feed(det, control, channel="control", probe="ctl0")
    feed(det, api)
    det.advance(T0 + 1)
    v = sink.get(T0)
    assert (v.verdict, v.reason) == (verdict, reason)
    assert ("sp", "control", T0) not in sink.verdicts
    service_v = sink.get(T0, "service")
    assert service_v.verdict is verdict
    if reason is UnknownReason.CONTROL_FAILED:
        # the evidence explains the unknown: the channel's and the control's attempts
        assert {a.channel for a in sink.evidence[T0]} == {"api", "control"}


def test_all_probes_of_a_channel_count_together() -> None:
    det, sink = make(service(api=2))
    feed(det, [TO, TO], probe="api0")
    feed(det, [OK], probe="api1")
    feed(det, [TO], probe="api0", second=T0 + 1)
    feed(det, [SE], probe="api1", second=T0 + 1)
    det.advance(T0 + 2)
    assert sink.get(T0).verdict is Verdict.AVAILABLE and sink.get(T0).degraded
    assert sink.get(T0 + 1).verdict is Verdict.UNAVAILABLE


def test_in_order_never_twice_and_late_completions_dropped() -> None:
    det, sink = make()
    det.launched("sp", "api", "api0", T0)  # in flight: holds T0 and everything after
    feed(det, [OK], second=T0 + 1)
    feed(det, [TO], second=T0 + 2)
    det.advance(T0 + 3)
    assert sink.seconds == []
    assert det.next_second == T0
    det.completed(attempt(TO, T0))  # the completion itself finalises, at the last `now`
    assert sink.seconds == [T0, T0 + 1, T0 + 2]
    det.advance(T0 + 3)
    det.advance(T0 + 2)  # time going backwards changes nothing
    assert sink.seconds == [T0, T0 + 1, T0 + 2]
    det.completed(attempt(OK, T0))  # too late: T0 was emitted
    det.launched("sp", "api", "api0", T0 + 1)
    assert det.late == 2
    det.advance(T0 + 4)
    assert sink.seconds == [T0, T0 + 1, T0 + 2, T0 + 3]
    assert sink.get(T0).verdict is Verdict.UNAVAILABLE
    assert sink.get(T0 + 3).reason is UnknownReason.NOT_LAUNCHED


def test_completion_finalises_without_a_new_advance() -> None:
    det, sink = make()
    det.launched("sp", "api", "api0", T0)
    det.advance(T0 + 1.5)
    assert sink.seconds == []
    det.completed(attempt(OK, T0))
    assert sink.seconds == [T0]


def test_hard_deadline_counts_lost_attempts_as_probe_error() -> None:
    clock = FakeClock(T0)
    det, sink = make(service(timeout=2.0), grace=0.5)
    feed(det, [LOST, LOST])
    feed(det, [OK], second=T0 + 1)
    clock.advance(1 + 2.0 + 0.5 - 0.01)
    det.advance(clock.wall())
    assert sink.seconds == []
    clock.advance(0.02)
    det.advance(clock.wall())
    assert sink.seconds == [T0, T0 + 1, T0 + 2]
    v = sink.get(T0)
    assert (v.verdict, v.reason) == (Verdict.UNKNOWN, UnknownReason.PROBE_ERROR)
    assert dict(v.counts) == {"probe_error": 2}
    assert det.pending() == 0


def test_each_service_has_its_own_hard_deadline() -> None:
    det, sink = make(service("a", timeout=1.0), service("b", timeout=4.0))
    assert det.hard_deadline_after == 5.0
    feed(det, [LOST], service="a")
    det.advance(T0 + 1 + 1.9)
    assert ("a", "api", T0) not in sink.verdicts
    assert sink.get(T0, svc="b").reason is UnknownReason.NOT_LAUNCHED
    det.advance(T0 + 1 + 2.0)  # a's own deadline: its 1 s timeout + 1 s grace
    assert sink.get(T0, svc="a").reason is UnknownReason.PROBE_ERROR


def test_a_hung_service_never_delays_another() -> None:
    det, sink = make(service("a", timeout=4.0), service("b", timeout=4.0))
    feed(det, [LOST], service="a")  # a's attempt hangs
    feed(det, [OK], service="b")
    feed(det, [OK], second=T0 + 1, service="b")
    det.advance(T0 + 2.01)
    # b's seconds are final at once; a's first second waits for its attempt
    assert sink.get(T0, svc="b").verdict is Verdict.AVAILABLE
    assert sink.get(T0 + 1, svc="b").verdict is Verdict.AVAILABLE
    assert ("a", "service", T0) not in sink.verdicts
    assert det.next_second == T0  # the slowest service holds the common watermark
    det.completed(attempt(TO, service="a"))
    assert sink.get(T0, svc="a").verdict is Verdict.UNAVAILABLE
    assert sink.get(T0 + 1, svc="a").reason is UnknownReason.NOT_LAUNCHED
    assert det.next_second == T0 + 2


def test_a_decided_second_is_final_when_its_attempts_end_not_at_its_end() -> None:
    det, sink = make()
    det.advance(T0 + 0.2)
    det.launched("sp", "api", "api0", T0)
    det.decided("sp", T0)  # the service's last slot of T0 has fired
    assert sink.seconds == []  # its attempt is still in flight
    det.completed(attempt(SE, T0))
    assert sink.seconds == [T0]  # at once: the clock still reads T0 + 0.2
    assert sink.get(T0, "service").verdict is Verdict.UNAVAILABLE
    det.completed(attempt(OK, T0))  # nothing of T0 may come later
    assert det.late == 1


def test_decided_seconds_still_finalise_in_order_and_never_when_forced() -> None:
    det, sink = make()
    det.launched("sp", "api", "api0", T0)  # T0 waits on this attempt
    det.advance(T0 + 1.5)
    feed(det, [OK], second=T0 + 1)
    det.decided("sp", T0 + 1)
    assert sink.seconds == []  # T0 + 1 is done, but T0 comes first
    det.completed(attempt(OK, T0))
    assert sink.seconds == [T0, T0 + 1]
    feed(det, [OK], second=T0 + 2)
    det.mark_unknown(T0 + 2, T0 + 2, UnknownReason.CLOCK_STEP)
    det.decided("sp", T0 + 2)
    assert sink.seconds == [T0, T0 + 1]  # a forced second waits for its end
    det.decided("sp", T0)  # already final: ignored
    det.advance(T0 + 3)
    assert sink.get(T0 + 2).reason is UnknownReason.CLOCK_STEP
    assert sink.seconds == [T0, T0 + 1, T0 + 2]


def test_mark_unknown_forces_seconds_and_does_not_wait_for_attempts() -> None:
    det, sink = make()
    feed(det, [OK], second=T0)
    det.advance(T0 + 1)
    feed(det, [TO], second=T0 + 1)
    det.launched("sp", "api", "api0", T0 + 2)  # in flight, but the second is forced
    det.mark_unknown(T0 - 5, T0 + 2, UnknownReason.CLOCK_STEP)  # T0 already emitted
    det.advance(T0 + 4)
    assert sink.seconds == [T0, T0 + 1, T0 + 2, T0 + 3]
    assert sink.get(T0).verdict is Verdict.AVAILABLE
    for s in (T0 + 1, T0 + 2):
        for ch in ("api", "service"):
            assert (sink.get(s, ch).verdict, sink.get(s, ch).reason) == (
                Verdict.UNKNOWN,
                UnknownReason.CLOCK_STEP,
            )
    assert dict(sink.get(T0 + 1).counts) == {"timeout": 1}
    assert sink.evidence[T0 + 1] == []
    assert sink.get(T0 + 3).reason is UnknownReason.NOT_LAUNCHED
    det.completed(attempt(OK, T0 + 2))  # dropped, the second was emitted
    assert det.late == 1


def test_seconds_before_start_and_unknown_channels_are_ignored() -> None:
    det, sink = make(start=T0 + 10)
    feed(det, [TO], second=T0 + 5)
    det.completed(attempt(TO, T0 + 10, service="other"))
    det.advance(T0 + 11)
    assert sink.seconds == [T0 + 10]
    assert sink.get(T0 + 10).reason is UnknownReason.NOT_LAUNCHED
    assert det.late == 2 and det.unexpected == 1


def test_a_failing_sink_does_not_stop_the_watermark() -> None:
    seen: list[int] = []

    def sink(second: int, verdicts: list[SecondVerdict], ev: list[Attempt]) -> None:
        seen.append(second)
        if second == T0:
            raise RuntimeError("consumer bug")

    det = Detector([service()], "vp1", sink, start_second=T0)
    det.advance(T0 + 3)
    assert seen == [T0, T0 + 1, T0 + 2]
    assert det.next_second == T0 + 3


def test_disabled_probes_make_no_channel() -> None:
    cfg = ServiceConfig.model_validate(
        {
            "name": "sp",
            "probes": [
                {"type": "http", "name": "a", "url": "http://x/"},
                {"type": "smtp", "name": "s", "host": "x", "enabled": False},
            ],
        }
    )
    det, sink = make(cfg)
    det.advance(T0 + 1)
    assert [v.channel for v in sink.verdicts.values()] == ["api", "service"]


# ------------------------------------------------------------------ property test

EVENT = st.sampled_from([OK, TO, SE, CE, PE, STALLED, LOST, SKIP])


def oracle(
    cfg: list[ServiceConfig],
    plan: dict[tuple[str, str, int], list[Any]],
    seconds: range,
    forced: dict[int, UnknownReason],
) -> dict[tuple[str, str, int], tuple[Verdict, UnknownReason | None, bool]]:
    """The ARCHITECTURE.md "Verdicts" rule applied by brute force to the raw events."""
    out: dict[tuple[str, str, int], tuple[Verdict, UnknownReason | None, bool]] = {}
    for s in seconds:
        for svc in cfg:
            channels = svc.channels
            ctl = [
                e
                for p in svc.probes
                if p.channel == "control"
                for e in plan.get((svc.name, p.name, s), [])
                if e != SKIP
            ]
            ctl_failed = bool(ctl) and all(e in (TO, SE, PE, STALLED, LOST) for e in ctl)
            per: dict[str, tuple[Verdict, UnknownReason | None, bool]] = {}
            for ch in channels:
                evs = [
                    e
                    for p in svc.probes
                    if p.channel == ch
                    for e in plan.get((svc.name, p.name, s), [])
                    if e != SKIP
                ]
                conclusive = [e for e in evs if e in (OK, TO, SE, CE)]
                qual = [e for e in evs if e in (TO, SE)]
                if s in forced:
                    r: tuple[Verdict, UnknownReason | None, bool] = (
                        Verdict.UNKNOWN,
                        forced[s],
                        False,
                    )
                elif not conclusive:
                    if not evs:
                        reason = UnknownReason.NOT_LAUNCHED
                    elif STALLED in evs:
                        reason = UnknownReason.MONITOR_STALLED
                    else:
                        reason = UnknownReason.PROBE_ERROR
                    r = (Verdict.UNKNOWN, reason, False)
                elif len(qual) == len(conclusive):
                    r = (
                        (Verdict.UNKNOWN, UnknownReason.CONTROL_FAILED, False)
                        if ctl_failed
                        else (Verdict.UNAVAILABLE, None, False)
                    )
                else:
                    r = (Verdict.AVAILABLE, None, bool(qual))
                per[ch] = r
                out[(svc.name, ch, s)] = r
            down = [v[0] is Verdict.UNAVAILABLE for v in per.values()]
            if any(down) if svc.combine == "any" else all(down):
                out[(svc.name, "service", s)] = (Verdict.UNAVAILABLE, None, False)
            elif any(v[0] is Verdict.AVAILABLE for v in per.values()):
                failed = any(v[2] or v[0] is Verdict.UNAVAILABLE for v in per.values())
                out[(svc.name, "service", s)] = (Verdict.AVAILABLE, None, failed)
            else:
                out[(svc.name, "service", s)] = (Verdict.UNKNOWN, None, False)  # any reason
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[ServiceConfig], dict[Any, list[Any]], Any, Any]:
    cfg = [
        service(
            f"s{i}",
            api=draw(st.integers(1, 2)),
            smtp=draw(st.integers(0, 2)),
            control=draw(st.integers(0, 1)),
            combine=draw(st.sampled_from(["any", "all"])),
            timeout=1.0,
        )
        for i in range(draw(st.integers(1, 2)))
    ]
    n = draw(st.integers(1, 6))
    plan: dict[tuple[str, str, int], list[Any]] = {}
    for s in range(T0, T0 + n):
        for svc in cfg:
            for p in svc.probes:
                plan[(svc.name, p.name, s)] = draw(st.lists(EVENT, max_size=3))
    forced: dict[int, UnknownReason] = {}
    if draw(st.booleans()):
        a = draw(st.integers(T0, T0 + n - 1))
        b = draw(st.integers(a, T0 + n - 1))
        forced = dict.fromkeys(range(a, b + 1), UnknownReason.CLOCK_STEP)
    order = draw(st.permutations(sorted(plan)))
    return cfg, plan, order, forced


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_detector_matches_brute_force_oracle(scenario: Any) -> None:
    cfg, plan, order, forced = scenario
    det, sink = make(*cfg)
    channel_of = {(svc.name, p.name): p.channel for svc in cfg for p in svc.probes}
    for key in order:  # cells arrive in any order, completions interleaved across seconds
        svc_name, probe, s = key
        feed(
            det,
            plan[key],
            second=s,
            service=svc_name,
            channel=channel_of[svc_name, probe],
            probe=probe,
        )
    if forced:
        det.mark_unknown(min(forced), max(forced), UnknownReason.CLOCK_STEP)
    n = len({k[2] for k in plan})
    det.advance(T0 + n + 1 + 1.0 + 1.0)  # past every hard deadline
    expected = oracle(cfg, plan, range(T0, T0 + n), forced)
    assert sink.seconds[:n] == list(range(T0, T0 + n))
    got = {k: (v.verdict, v.reason, v.degraded) for k, v in sink.verdicts.items() if k[2] < T0 + n}
    for key, want in expected.items():
        if key[1] == "service" and want[0] is Verdict.UNKNOWN:
            assert got[key][0] is Verdict.UNKNOWN and got[key][1] is not None, key
        else:
            assert got[key] == want, key
    assert set(got) == set(expected)


@st.composite
def timelines(draw: st.DrawFn) -> tuple[list[ServiceConfig], list[tuple[Any, ...]], Any]:
    """Attempts with a completion step each (None: never completes)."""
    cfg = [
        service(
            f"s{i}",
            api=draw(st.integers(1, 2)),
            smtp=draw(st.integers(0, 1)),
            control=draw(st.integers(0, 1)),
            combine=draw(st.sampled_from(["any", "all"])),
            timeout=1.0,
        )
        for i in range(draw(st.integers(1, 2)))
    ]
    attempts: list[tuple[Any, ...]] = []
    for s in range(T0, T0 + draw(st.integers(1, 6))):
        for svc in cfg:
            for p in svc.probes:
                for ev in draw(
                    st.lists(st.sampled_from([OK, TO, SE, CE, PE, STALLED, SKIP]), max_size=3)
                ):
                    delay = draw(st.one_of(st.none(), st.integers(0, 4)))
                    done = None if delay is None or ev == SKIP else s + 1 + delay
                    attempts.append((svc.name, p.name, p.channel, s, ev, done))
    return cfg, attempts, draw(st.randoms(use_true_random=False))


@settings(max_examples=200, deadline=None)
@given(timelines())
def test_interleaved_completions_finalise_in_order_at_the_right_step(scenario: Any) -> None:
    """Launches at their second, completions spread over later steps in random order,
    advance once per step: each second is emitted at the step the rule says (all its
    attempts ended, or its hard deadline), and attempts ending later count as lost."""
    cfg, attempts, rnd = scenario
    step = [0]
    emitted_at: dict[int, int] = {}
    sink = Sink()

    def timed_sink(second: int, verdicts: list[SecondVerdict], ev: list[Attempt]) -> None:
        emitted_at[second] = step[0]
        sink(second, verdicts, ev)

    det = Detector(cfg, "vp1", timed_sink, start_second=T0, grace=1.0)  # hard: s + 3
    seconds = sorted({a[3] for a in attempts}) or [T0]
    last = max(seconds)
    for t in range(T0 + 1, last + 8):
        step[0] = t
        for svc, probe, ch, s, ev, _ in attempts:
            if s == t - 1:
                if ev == SKIP:
                    det.skipped(svc, ch, probe, s)
                else:
                    det.launched(svc, ch, probe, s)
        due = [a for a in attempts if a[5] == t]
        rnd.shuffle(due)
        for slot, (svc, probe, ch, s, ev, _) in enumerate(due):
            if ev == STALLED:
                a = attempt(
                    PE, s, service=svc, channel=ch, probe=probe, slot=slot, reason="monitor_stalled"
                )
            else:
                a = attempt(ev, s, service=svc, channel=ch, probe=probe, slot=slot)
            det.completed(a)
        det.advance(t)

    # the oracle: when each second is final, which attempts made it in time
    fin: dict[int, int] = {}
    prev = T0
    for s in range(T0, last + 1):
        launched = [a for a in attempts if a[3] == s and a[4] != SKIP]
        t0 = max(prev, s + 1)
        if launched:
            ends = [a[5] if a[5] is not None else 10**12 for a in launched]
            fin[s] = max(t0, min(max(ends), s + 3))
        else:
            fin[s] = t0
        prev = fin[s]
    plan: dict[tuple[str, str, int], list[Any]] = {}
    for svc, probe, _, s, ev, done in attempts:
        effective = ev if ev == SKIP or (done is not None and done <= fin[s]) else LOST
        plan.setdefault((svc, probe, s), []).append(effective)
    event("some attempt ended too late" if LOST in str(plan) else "all in time")
    for s in range(T0, last + 1):
        assert emitted_at[s] == fin[s], s
    expected = oracle(cfg, plan, range(T0, last + 1), {})
    got = {k: (v.verdict, v.reason, v.degraded) for k, v in sink.verdicts.items() if k[2] <= last}
    for key, want in expected.items():
        if key[1] == "service" and want[0] is Verdict.UNKNOWN:
            assert got[key][0] is Verdict.UNKNOWN, key
        else:
            assert got[key] == want, key
    assert det.pending() == 0
