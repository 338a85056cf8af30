"""SQLite seconds half: verdict runs, per-second expansion, counts, evidence, maintenance."""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.seconds import seconds, verdict_counts
from monitor.store.base import MinuteCount, NotFound, Run, StoreError
from monitor.store.sqlite import SQLiteStore
from monitor.verdicts import SecondVerdict, UnknownReason, Verdict
from probes.base import Attempt, Outcome
from tests.monitor.store.backends import SQL_BACKENDS

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
A, U, K = Verdict.AVAILABLE, Verdict.UNAVAILABLE, Verdict.UNKNOWN
PE, MD = UnknownReason.PROBE_ERROR, UnknownReason.MONITOR_DOWN


def _open(path: Path) -> SQLiteStore:
    s = SQLiteStore(str(path))
    s.migrate()
    return s


@pytest.fixture(params=sorted(SQL_BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteStore]:
    """Each SQL backend in turn: the statements are shared (monitor/store/sql.py)."""
    s = SQL_BACKENDS[request.param](tmp_path)
    yield s  # type: ignore[misc]
    s.close()


def _v(
    second: int,
    verdict: Verdict,
    reason: UnknownReason | None = None,
    *,
    channel: str = "api",
    service: str = "sp",
    vantage: str = "v1",
    degraded: bool = False,
    excluded: bool = False,
) -> SecondVerdict:
    return SecondVerdict(
        service, channel, second, verdict, vantage, reason, degraded=degraded, excluded=excluded
    )


def _spans(runs: list[Run]) -> list[tuple[str, str | None, int, int]]:
    return [
        (str(r.verdict), str(r.reason) if r.reason else None, r.first - T0, r.last - T0)
        for r in runs
    ]


# ---------------------------------------------------------------- runs


def test_equal_adjacent_seconds_merge_and_changes_split(store: SQLiteStore) -> None:
    seq = [A, A, A, U, U, A, (K, PE), (K, PE), (K, MD), A]
    for i, item in enumerate(seq):
        verdict, reason = item if isinstance(item, tuple) else (item, None)
        store.write_verdicts([_v(T0 + i, verdict, reason)])
    assert _spans(store.runs("sp", "api", T0, T0 + 100)) == [
        ("available", None, 0, 2),
        ("unavailable", None, 3, 4),
        ("available", None, 5, 5),
        ("unknown", "probe_error", 6, 7),
        ("unknown", "monitor_down", 8, 8),
        ("available", None, 9, 9),
    ]
    assert store.last_second("sp", "api") == T0 + 9


def test_degraded_and_excluded_flags_do_not_split_runs(store: SQLiteStore) -> None:
    store.write_verdicts([_v(T0, A), _v(T0 + 1, A, degraded=True), _v(T0 + 2, A, excluded=True)])
    assert _spans(store.runs("sp", "api", T0, T0 + 10)) == [("available", None, 0, 2)]


def test_a_gap_starts_a_new_run(store: SQLiteStore) -> None:
    store.write_verdicts([_v(T0, A), _v(T0 + 1, A), _v(T0 + 5, A)])
    assert _spans(store.runs("sp", "api", T0, T0 + 10)) == [
        ("available", None, 0, 1),
        ("available", None, 5, 5),
    ]


def test_reason_of_a_non_unknown_verdict_is_not_stored(store: SQLiteStore) -> None:
    store.write_verdicts([_v(T0, A), _v(T0 + 1, A, PE)])
    assert _spans(store.runs("sp", "api", T0, T0 + 10)) == [("available", None, 0, 1)]


def test_duplicate_and_earlier_seconds_are_ignored(store: SQLiteStore) -> None:
    store.write_verdicts([_v(T0 + i, A) for i in range(5)])
    store.write_verdicts([_v(T0 + 2, U), _v(T0 + 4, U), _v(T0 + 4, U)])
    store.write_verdicts([_v(T0 + 5, U), _v(T0 + 3, U), _v(T0 + 5, A)])
    assert _spans(store.runs("sp", "api", T0, T0 + 10)) == [
        ("available", None, 0, 4),
        ("unavailable", None, 5, 5),
    ]


def test_one_batch_of_many_streams_and_seconds(store: SQLiteStore) -> None:
    batch = [
        _v(T0 + i, U if 3 <= i < 6 else A, channel=ch, service=svc)
        for i in range(10)
        for svc in ("a", "b")
        for ch in ("api", "smtp", "service")
    ]
    store.write_verdicts(batch)
    for svc in ("a", "b"):
        for ch in ("api", "smtp", "service"):
            assert _spans(store.runs(svc, ch, T0, T0 + 10)) == [
                ("available", None, 0, 2),
                ("unavailable", None, 3, 5),
                ("available", None, 6, 9),
            ]
    assert store.streams() == [
        (svc, ch, "v1") for svc in ("a", "b") for ch in ("api", "service", "smtp")
    ]


def test_runs_are_clipped_to_the_range(store: SQLiteStore) -> None:
    store.write_verdicts([_v(T0 + i, A if i < 50 else U) for i in range(100)])
    assert _spans(store.runs("sp", "api", T0 + 40, T0 + 60)) == [
        ("available", None, 40, 49),
        ("unavailable", None, 50, 59),
    ]
    assert store.runs("sp", "api", T0 + 100, T0 + 200) == []
    assert store.runs("sp", "api", T0 + 50, T0 + 50) == []  # an empty range, inside a run
    assert store.runs("sp", "smtp", T0, T0 + 100) == []


def test_reopened_store_continues_the_open_run(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    first = _open(path)
    first.write_verdicts([_v(T0 + i, A) for i in range(10)])
    first.close()

    second = _open(path)
    second.write_verdicts([_v(T0 + 9, U)])  # already stored before the restart: ignored
    second.write_verdicts([_v(T0 + i, A) for i in range(10, 20)])
    second.write_verdicts([_v(T0 + 20, U)])
    assert _spans(second.runs("sp", "api", T0, T0 + 100)) == [
        ("available", None, 0, 19),
        ("unavailable", None, 20, 20),
    ]
    rows = second._query("SELECT COUNT(*) FROM runs")
    assert rows[0][0] == 2
    second.close()


def test_a_failed_batch_rolls_back_and_the_next_write_continues(store: SQLiteStore) -> None:
    store.write_verdicts([_v(T0 + i, A) for i in range(3)])
    broken = SecondVerdict(None, "api", T0, A, "v1")  # type: ignore[arg-type]
    with pytest.raises(store._integrity_errors):  # the driver's own constraint error
        store.write_verdicts([_v(T0 + 3, A), _v(T0 + 4, U), broken])
    assert _spans(store.runs("sp", "api", T0, T0 + 10)) == [("available", None, 0, 2)]
    store.write_verdicts([_v(T0 + 3, U)])
    assert _spans(store.runs("sp", "api", T0, T0 + 10)) == [
        ("available", None, 0, 2),
        ("unavailable", None, 3, 3),
    ]


def test_writers_on_several_threads_keep_every_stream_whole(store: SQLiteStore) -> None:
    # the daemon writes from asyncio.to_thread workers; the store's lock must serialise them
    def write(service: str) -> None:
        for i in range(200):
            store.write_verdicts([_v(T0 + i, A, service=service)])
            store.write_minute_counts([MinuteCount(service, "api", "p", T0, "ok", 1)])

    threads = [threading.Thread(target=write, args=(f"s{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for n in range(4):
        assert _spans(store.runs(f"s{n}", "api", T0, T0 + 1000)) == [("available", None, 0, 199)]
        assert store.minute_counts(f"s{n}", T0, T0 + 60)[0].count == 200


# ---------------------------------------------------------------- fill_unknown


def test_fill_unknown_clips_to_after_the_last_stored_second(store: SQLiteStore) -> None:
    store.write_verdicts([_v(T0 + i, A) for i in range(10)])
    store.fill_unknown("sp", "api", "v1", T0 + 5, T0 + 19, MD)
    store.write_verdicts([_v(T0 + 20, A)])
    assert _spans(store.runs("sp", "api", T0, T0 + 100)) == [
        ("available", None, 0, 9),
        ("unknown", "monitor_down", 10, 19),
        ("available", None, 20, 20),
    ]


def test_fill_unknown_of_seconds_already_stored_does_nothing(store: SQLiteStore) -> None:
    store.write_verdicts([_v(T0 + i, A) for i in range(10)])
    store.fill_unknown("sp", "api", "v1", T0 + 2, T0 + 9, MD)
    store.fill_unknown("sp", "api", "v1", T0 + 9, T0 + 3, MD)  # empty range
    assert _spans(store.runs("sp", "api", T0, T0 + 100)) == [("available", None, 0, 9)]


def test_fill_unknown_extends_an_unknown_run_of_the_same_reason(store: SQLiteStore) -> None:
    store.write_verdicts([_v(T0, K, MD)])
    store.fill_unknown("sp", "api", "v1", T0 + 1, T0 + 4, MD)
    store.fill_unknown("sp", "api", "v1", T0 + 5, T0 + 6, PE)
    assert _spans(store.runs("sp", "api", T0, T0 + 100)) == [
        ("unknown", "monitor_down", 0, 4),
        ("unknown", "probe_error", 5, 6),
    ]


def test_fill_unknown_on_an_empty_stream(store: SQLiteStore) -> None:
    store.fill_unknown("sp", "smtp", "v1", T0, T0 + 59, MD)
    assert store.last_second("sp", "smtp") == T0 + 59
    assert verdict_counts(store, "sp", "smtp", T0, T0 + 3600)["unknown"] == 60


# ---------------------------------------------------------------- per-second view

_LABELS = st.sampled_from(
    [(A, None), (U, None), (K, PE), (K, MD), None]  # None: nothing written that second
)


def _runs_of(labels: list[tuple[Verdict, UnknownReason | None] | None]) -> list[tuple]:
    """The maximal runs a per-second label list must be stored as."""
    out: list[list] = []
    for i, label in enumerate(labels):
        if label is None:
            continue
        verdict, reason = str(label[0]), str(label[1]) if label[1] else None
        if out and out[-1][3] == i - 1 and out[-1][0] == verdict and out[-1][1] == reason:
            out[-1][3] = i
        else:
            out.append([verdict, reason, i, i])
    return [tuple(r) for r in out]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(st.tuples(_LABELS, _LABELS, _LABELS), min_size=1, max_size=120),
    cuts=st.sets(st.integers(0, 120), max_size=8),
    reopen_at=st.one_of(st.none(), st.integers(0, 120)),
)
def test_runs_reconstruct_the_per_second_sequence(
    data: list[tuple], cuts: set[int], reopen_at: int | None
) -> None:
    channels = ("service", "api", "smtp")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.db"
        store = _open(path)
        batch: list[SecondVerdict] = []
        for i, row in enumerate(data):
            if i in cuts:
                store.write_verdicts(batch)
                batch = []
            if i == reopen_at:
                store.write_verdicts(batch)
                batch = []
                store.close()
                store = _open(path)
            for channel, label in zip(channels, row, strict=True):
                if label is not None:
                    batch.append(_v(T0 + i, label[0], label[1], channel=channel))
        store.write_verdicts(batch)

        for n, channel in enumerate(channels):
            want = _runs_of([row[n] for row in data])
            assert _spans(store.runs("sp", channel, T0 - 5, T0 + 200)) == want

        written = [i for i, row in enumerate(data) if any(label is not None for label in row)]
        expected = []
        if written:
            for i in range(written[0], written[-1] + 1):
                names = [str(label[0]) if label else "unknown" for label in data[i]]
                expected.append(
                    {"t": T0 + i, "verdict": names[0], "api": names[1], "smtp": names[2]}
                )
        assert seconds(store, "sp", T0 - 5, T0 + 200) == expected

        for n, channel in enumerate(channels):
            counts = verdict_counts(store, "sp", channel, T0 - 5, T0 + 200)
            for verdict in (A, U, K):
                assert counts[str(verdict)] == sum(
                    1 for row in data if row[n] is not None and row[n][0] is verdict
                )
        store.close()


def test_seconds_clips_to_stored_range_and_fills_gaps_with_unknown(store: SQLiteStore) -> None:
    store.write_verdicts([_v(T0 + 10, A, channel="api"), _v(T0 + 10, A, channel="service")])
    store.write_verdicts([_v(T0 + 13, U, channel="smtp"), _v(T0 + 13, U, channel="service")])
    got = seconds(store, "sp", T0, T0 + 100)
    assert [row["t"] - T0 for row in got] == [10, 11, 12, 13]
    assert got[0] == {"t": T0 + 10, "verdict": "available", "api": "available", "smtp": "unknown"}
    assert got[1] == {"t": T0 + 11, "verdict": "unknown", "api": "unknown", "smtp": "unknown"}
    assert got[3] == {
        "t": T0 + 13,
        "verdict": "unavailable",
        "api": "unknown",
        "smtp": "unavailable",
    }
    assert [row["t"] - T0 for row in seconds(store, "sp", T0 + 11, T0 + 13)] == [11, 12]
    assert seconds(store, "sp", T0 + 20, T0 + 30) == []
    assert seconds(store, "nope", T0, T0 + 100) == []


def test_seconds_of_a_day_from_a_handful_of_runs(store: SQLiteStore) -> None:
    store.write_verdicts([_v(T0 + i, A) for i in range(10)])
    store.fill_unknown("sp", "api", "v1", T0 + 10, T0 + 86_389, MD)
    store.write_verdicts([_v(T0 + i, A) for i in range(86_390, 86_400)])
    assert len(store.runs("sp", "api", T0, T0 + 86_400)) == 3
    got = seconds(store, "sp", T0, T0 + 86_400)
    assert len(got) == 86_400
    assert [row["t"] for row in got] == list(range(T0, T0 + 86_400))
    assert got[-1] == {"t": T0 + 86_399, "verdict": K, "api": A, "smtp": K}
    assert sum(row["api"] == "available" for row in got) == 20


# ---------------------------------------------------------------- several vantages

VANTAGE_CASES = [
    # (v1, v2) → combined: unavailable only when every vantage that measured says so
    ((U, U), "unavailable"),
    ((U, A), "available"),
    ((U, K), "unavailable"),
    ((K, K), "unknown"),
    ((A, None), "available"),
]


@pytest.mark.parametrize(
    ("pair", "combined"), VANTAGE_CASES, ids=[f"{a}-{b}" for (a, b), _ in VANTAGE_CASES]
)
def test_vantages_combine_by_default_quorum(
    store: SQLiteStore, pair: tuple[Verdict, Verdict | None], combined: str
) -> None:
    for vantage, verdict in zip(("v1", "v2"), pair, strict=True):
        if verdict is not None:
            store.write_verdicts([_v(T0, verdict, PE if verdict is K else None, vantage=vantage)])
    assert seconds(store, "sp", T0, T0 + 1)[0]["api"] == combined
    assert verdict_counts(store, "sp", "api", T0, T0 + 1)[combined] == 1
    assert seconds(store, "sp", T0, T0 + 1, vantage="v1")[0]["api"] == str(pair[0])
    assert len(store.runs("sp", "api", T0, T0 + 1)) == sum(v is not None for v in pair)


# ---------------------------------------------------------------- verdict counts


def test_verdict_counts_with_maintenance(store: SQLiteStore) -> None:
    store.write_verdicts([_v(T0 + i, U if 10 <= i < 30 else A) for i in range(100)])
    store.add_maintenance("sp", T0 + 20, T0 + 40)
    store.add_maintenance("*", T0 + 35, T0 + 45)
    store.add_maintenance("other", T0, T0 + 100)
    assert verdict_counts(store, "sp", "api", T0, T0 + 200) == {
        "available": 80,
        "unavailable": 20,
        "unknown": 0,
    }
    assert verdict_counts(store, "sp", "api", T0, T0 + 200, maintenance=True) == {
        "available": 65,
        "unavailable": 10,
        "unknown": 0,
        "excluded": 25,
    }
    assert verdict_counts(store, "sp", "api", T0 + 15, T0 + 25)["unavailable"] == 10
    assert verdict_counts(store, "sp", "api", T0 + 5, T0 + 5) == {
        "available": 0,
        "unavailable": 0,
        "unknown": 0,
    }


# ---------------------------------------------------------------- minute counts


def test_minute_counts_upsert_increments(store: SQLiteStore) -> None:
    store.write_minute_counts(
        [
            MinuteCount("sp", "api", "account", T0, "ok", 100),
            MinuteCount("sp", "api", "account", T0, "ok", 10),  # same key in one batch
            MinuteCount("sp", "api", "account", T0, "timeout", 2),
            MinuteCount("sp", "smtp", "inject", T0 + 60, "ok", 120),
            MinuteCount("other", "api", "account", T0, "ok", 120),
        ]
    )
    store.write_minute_counts([MinuteCount("sp", "api", "account", T0, "ok", 5)])
    store.write_minute_counts([])
    assert store.minute_counts("sp", T0, T0 + 120) == [
        MinuteCount("sp", "api", "account", T0, "ok", 115),
        MinuteCount("sp", "api", "account", T0, "timeout", 2),
        MinuteCount("sp", "smtp", "inject", T0 + 60, "ok", 120),
    ]
    assert store.minute_counts("sp", T0 + 60, T0 + 120) == [
        MinuteCount("sp", "smtp", "inject", T0 + 60, "ok", 120)
    ]


def test_minute_count_off_a_minute_start_is_refused(store: SQLiteStore) -> None:
    with pytest.raises(StoreError, match="not the start of a minute"):
        store.write_minute_counts([MinuteCount("sp", "api", "account", T0 + 7, "ok", 1)])


# ---------------------------------------------------------------- evidence


def _attempt(second: int, slot: int = 0, service: str = "sp", **detail: object) -> Attempt:
    return Attempt(
        attempt_id=f"{service}-{second}-{slot}",
        service=service,
        channel="api",
        probe="account",
        second=second,
        slot=slot,
        outcome=Outcome.TIMEOUT if detail else Outcome.OK,
        latency=5.000123456,
        started=second + slot / 2 + 0.001,
        detail=dict(detail),
    )


def test_evidence_round_trips_and_is_queried_by_range(store: SQLiteStore) -> None:
    attempts = [_attempt(T0 + i, slot, error="TimeoutError") for i in range(5) for slot in (0, 1)]
    attempts.append(_attempt(T0 + 2, service="other"))
    store.write_evidence(attempts)
    store.write_evidence([_attempt(T0 + 3, 2)])  # no detail: stored as NULL, read back as {}
    got = store.evidence("sp", T0 + 1, T0 + 4)
    assert [(row["second"] - T0, row["slot"]) for row in got] == [
        (1, 0),
        (1, 1),
        (2, 0),
        (2, 1),
        (3, 0),
        (3, 1),
        (3, 2),
    ]
    want = attempts[2].to_json()
    assert got[0]["started"] == pytest.approx(want.pop("started"), abs=1e-6)
    assert {k: v for k, v in got[0].items() if k != "started"} == want
    assert got[-1]["detail"] == {}
    assert got[-1]["outcome"] == "ok"
    assert len(store.evidence("sp", T0, T0 + 100, limit=3)) == 3
    assert [row["service"] for row in store.evidence("other", T0, T0 + 100)] == ["other"]


def test_evidence_keeps_the_launcher_attempt_id_and_ignores_a_replay(store: SQLiteStore) -> None:
    launched = Attempt(
        f"account:{T0}:1", "sp", "api", "account", T0, 1, Outcome.SERVER_ERROR, 0.0421,
        T0 + 0.5123456, {"status": 503},
    )  # fmt: skip
    store.write_evidence([launched])
    store.write_evidence([launched])  # the daemon re-flushing after a failed write
    got = store.evidence("sp", T0, T0 + 1)
    assert len(got) == 1
    assert got[0]["attempt_id"] == f"account:{T0}:1"
    assert got[0]["latency"] == 0.0421
    assert got[0]["started"] == pytest.approx(T0 + 0.512346, abs=1e-7)
    stored = store._query("SELECT attempt_id FROM evidence")
    assert stored[0][0] is None  # derivable, so not stored


def test_evidence_keeps_an_attempt_id_that_names_its_vantage(store: SQLiteStore) -> None:
    """`probe:second:slot@vantage` (the launcher's since ids are unique per vantage) is
    rebuilt from the row's source; an older id without the vantage stays without it."""
    mine = Attempt(
        f"account:{T0}:0@eu-1", "sp", "api", "account", T0, 0, Outcome.TIMEOUT, 5.0,
        T0 + 0.001, {}, vantage="eu-1",
    )  # fmt: skip
    older = Attempt(
        f"account:{T0}:1", "sp", "api", "account", T0, 1, Outcome.TIMEOUT, 5.0,
        T0 + 0.501, {}, vantage="eu-1",
    )  # fmt: skip
    other = Attempt(
        f"account:{T0}:0@us-1", "sp", "api", "account", T0, 0, Outcome.TIMEOUT, 5.0,
        T0 + 0.001, {}, vantage="us-2",
    )  # fmt: skip
    store.write_evidence([mine, older, other])
    got = {(r["vantage"], r["slot"]): r["attempt_id"] for r in store.evidence("sp", T0, T0 + 1)}
    assert got == {
        ("eu-1", 0): f"account:{T0}:0@eu-1",
        ("eu-1", 1): f"account:{T0}:1",
        ("us-2", 0): f"account:{T0}:0@us-1",  # not the source's own form: kept whole
    }
    stored = [r[0] for r in store._query("SELECT attempt_id FROM evidence")]
    assert sorted(stored, key=str) == sorted([None, "", f"account:{T0}:0@us-1"], key=str)


# ---------------------------------------------------------------- prune


def test_prune_deletes_old_evidence_and_counts_but_keeps_runs(store: SQLiteStore) -> None:
    store.write_verdicts([_v(T0 + i, A) for i in range(180)])
    store.write_evidence([_attempt(T0 + i, error="x") for i in (10, 70, 130)])
    store.write_evidence([_attempt(T0 + i, service="other", error="x") for i in (10, 130)])
    store.write_minute_counts(
        [MinuteCount("sp", "api", "account", T0 + m * 60, "ok", 120) for m in range(3)]
    )
    assert store.prune(T0 + 120) == 5
    assert [row["second"] - T0 for row in store.evidence("other", T0, T0 + 200)] == [130]
    assert [row["second"] - T0 for row in store.evidence("sp", T0, T0 + 200)] == [130]
    assert [c.minute - T0 for c in store.minute_counts("sp", T0, T0 + 200)] == [120]
    assert _spans(store.runs("sp", "api", T0, T0 + 200)) == [("available", None, 0, 179)]
    assert store.prune(T0 + 120) == 0


# ---------------------------------------------------------------- maintenance


def test_maintenance_add_list_remove(store: SQLiteStore) -> None:
    a = store.add_maintenance("sp", T0, T0 + 3600, "db upgrade")
    b = store.add_maintenance("*", T0 + 7200, T0 + 9000, "network", source="config")
    c = store.add_maintenance("other", T0 + 100, T0 + 200)
    assert (a.service, a.start, a.end, a.reason, a.source) == (
        "sp",
        T0,
        T0 + 3600,
        "db upgrade",
        "api",
    )
    assert store.list_maintenance() == [a, c, b]
    assert store.list_maintenance("sp") == [a, b]
    assert store.list_maintenance("sp", start=T0 + 3600) == [b]  # end is exclusive
    assert store.list_maintenance(end=T0 + 100) == [a]
    assert store.list_maintenance(start=T0 + 150, end=T0 + 7201) == [a, c, b]

    store.remove_maintenance(a.id)
    assert store.list_maintenance("sp") == [b]
    with pytest.raises(NotFound):
        store.remove_maintenance(a.id)
    with pytest.raises(KeyError):  # NotFound is also a KeyError
        store.remove_maintenance(999_999)


def test_adding_the_same_window_twice_keeps_one(store: SQLiteStore) -> None:
    a = store.add_maintenance("sp", T0, T0 + 60, "x", source="config")
    b = store.add_maintenance("sp", T0, T0 + 60, "x", source="config")
    assert a == b
    assert len(store.list_maintenance()) == 1


def test_a_window_that_ends_before_it_starts_is_refused(store: SQLiteStore) -> None:
    with pytest.raises(StoreError, match=r"end .* must be after start"):
        store.add_maintenance("sp", T0 + 60, T0 + 60)


# ---------------------------------------------------------------- schema


def test_migrating_twice_changes_nothing(tmp_path: Path) -> None:
    store = _open(tmp_path / "s.db")
    version = store.schema_version()
    store.write_verdicts([_v(T0, A)])
    store.migrate()
    assert store.schema_version() == version >= 2
    assert store.last_second("sp", "api") == T0
    store.close()


def test_a_store_from_a_newer_availmon_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 9999")
    store = SQLiteStore(str(path))
    with pytest.raises(StoreError, match="newer than this availmon knows"):
        store.migrate()
    store.close()


def test_attempt_totals_sum_minute_counts_per_channel(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "t.db"))
    store.migrate()
    store.write_minute_counts(
        [
            MinuteCount("s", "api", "a1", 600, "ok", 100),
            MinuteCount("s", "api", "a2", 600, "server_error", 20),
            MinuteCount("s", "smtp", "m", 660, "ok", 120),
            MinuteCount("s", "smtp", "m", 720, "timeout", 7),  # outside [600, 720)
            MinuteCount("other", "api", "a1", 600, "ok", 5),
        ]
    )
    assert store.attempt_totals("s", 600, 720) == {"api": 120, "smtp": 120}
    assert store.attempt_totals("s", 0, 10_000) == {"api": 120, "smtp": 127}
    assert store.attempt_totals("nobody", 0, 10_000) == {}


def test_migration_5_gives_old_sources_the_vantage_that_measured_them(tmp_path: Path) -> None:
    """A store from before vantages in sources: counts and evidence keep their rows and
    ids and are said to be the vantage's whose verdicts the store holds."""
    import sqlite3 as sqlite

    from monitor.store.sqlite import _migrations

    path = tmp_path / "v4.db"
    db = sqlite.connect(path)
    for number, _, sql in _migrations():
        if number <= 4:
            db.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version={number};\nCOMMIT;")
    db.executescript(
        "INSERT INTO runs (service, channel, vantage, verdict, first_second, last_second)"
        f" VALUES ('sp', 'api', 'host-a', 'available', {T0}, {T0 + 59});"
        "INSERT INTO attempt_sources (id, service, channel, probe) VALUES (7, 'sp', 'api', 'p');"
        f"INSERT INTO minute_counts VALUES (7, {T0}, 'ok', 120);"
        f"INSERT INTO evidence VALUES (7, {T0}, 0, 'timeout', 5000000, 1000, NULL, NULL);"
    )
    db.close()
    store = _open(path)
    try:
        assert store.schema_version() >= 5
        [count] = store.minute_counts("sp", T0, T0 + 60, vantage="host-a")
        assert (count.count, count.vantage) == (120, "host-a")
        assert [r["vantage"] for r in store.evidence("sp", T0, T0 + 1)] == ["host-a"]
        # the same probe from another vantage is a source of its own now
        store.write_minute_counts([MinuteCount("sp", "api", "p", T0, "ok", 1, "host-b")])
        assert store.attempt_totals("sp", T0, T0 + 60) == {"api": 121}
    finally:
        store.close()
