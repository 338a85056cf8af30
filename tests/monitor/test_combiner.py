"""The leader's combined verdict stream (monitor/combiner.py) over a real store and a fake
clock: it waits for every live vantage, combines late at its bound and says who was late,
applies the service's quorum, and lets a vantage that did not measure sit out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.clock import FakeClock
from monitor.combiner import LAG_SLACK, Combiner, stopped_key
from monitor.config import Settings, parse
from monitor.store import Store, open_store
from monitor.verdicts import SERVICE_CHANNEL, SecondVerdict, UnknownReason, Verdict

T0 = 1_767_225_600
A, U, K = Verdict.AVAILABLE, Verdict.UNAVAILABLE, Verdict.UNKNOWN


def _settings(quorum: Any = "all") -> Settings:
    probe = {"type": "http", "name": "p", "url": "http://x/", "timeout_seconds": 2}
    return parse({"services": [{"name": "sp", "quorum": quorum, "probes": [probe]}]})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path}/c.db")
    yield s
    s.close()


def _keep(store: Store, vantage: str, second: int, verdict: Verdict) -> None:
    reason = UnknownReason.CONTROL_FAILED if verdict is K else None
    store.write_recent(
        [
            SecondVerdict("sp", "api", second, verdict, vantage, reason),
            SecondVerdict("sp", SERVICE_CHANNEL, second, verdict, vantage, reason),
        ]
    )


def _service(out: list[Any]) -> list[tuple[int, Verdict, tuple[str, ...]]]:
    return [(c.second - T0, c.verdicts[-1].verdict, c.late) for _, c in out]


def test_waits_for_every_live_vantage_then_combines_by_quorum(store: Store) -> None:
    clock = FakeClock(T0 + 1.2)
    c = Combiner(_settings("all"), store, clock, {"sp": T0})
    _keep(store, "east", T0, U)
    _keep(store, "west", T0, U)
    _keep(store, "east", T0 + 1, U)
    assert _service(c.step()) == [(0, U, ())]  # west has not kept T0+1 yet: it waits
    _keep(store, "west", T0 + 1, A)
    clock.set_wall(T0 + 2.2)
    got = c.step()
    assert _service(got) == [(1, A, ())]  # quorum all: west saw it available
    assert [v.channel for v in got[0][1].verdicts] == ["api", SERVICE_CHANNEL]
    assert got[0][1].verdicts[0].vantage == "combined"
    assert c.step() == []  # never twice


def test_a_late_vantage_is_left_out_at_the_bound_and_named(store: Store) -> None:
    clock = FakeClock(T0 + 1.5)
    c = Combiner(_settings("all"), store, clock, {"sp": T0})
    _keep(store, "east", T0 - 5, A)  # west is live: it kept a second a moment ago
    _keep(store, "west", T0 - 5, A)
    _keep(store, "east", T0, U)
    assert c.step() == []  # west may still come
    clock.set_wall(T0 + 1 + 2 + LAG_SLACK + 1)  # the service's timeout (2 s) + the slack
    assert _service(c.step()) == [(0, U, ("west",))]


def test_majority_and_a_vantage_that_did_not_measure(store: Store) -> None:
    clock = FakeClock(T0 + 3.5)
    c = Combiner(_settings("majority"), store, clock, {"sp": T0})
    for vantage, verdicts in {"a": (U, U), "b": (U, K), "c": (A, K)}.items():
        for i, verdict in enumerate(verdicts):
            _keep(store, vantage, T0 + i, verdict)
    # T0: 2 of 3 unavailable, a majority; T0+1: b and c did not measure: a alone decides
    assert _service(c.step()) == [(0, U, ()), (1, U, ())]
    strict = Combiner(_settings("all"), store, clock, {"sp": T0})
    assert _service(strict.step())[0][1] is A  # quorum all: c saw it available


def test_a_vantage_that_stopped_cleanly_is_not_waited_for(store: Store) -> None:
    """West stopped after keeping T0 (its daemon's stop says so): east's later seconds are
    combined at once, west not named late; once west keeps a newer second it is waited
    for again."""
    clock = FakeClock(T0 + 3.2)
    c = Combiner(_settings("all"), store, clock, {"sp": T0})
    for vantage in ("east", "west"):
        _keep(store, vantage, T0, A)
    for t in (T0 + 1, T0 + 2):
        _keep(store, "east", t, U)
    assert _service(c.step()) == [(0, A, ())]  # west is live: it may still come
    store.set_state(stopped_key("west"), T0 + 0.9)
    assert _service(c.step()) == [(1, U, ()), (2, U, ())]
    # west is back: it keeps a newer second, and is waited for again
    _keep(store, "west", T0 + 3, A)
    clock.set_wall(T0 + 4.2)
    _keep(store, "east", T0 + 3, U)
    _keep(store, "east", T0 + 4, U)
    assert _service(c.step()) == [(3, A, ())]
