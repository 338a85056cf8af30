"""The overload watch: sustained skipping turns readiness off, one blip does not."""

from __future__ import annotations

import pytest

from monitor.overload import OverloadWatch


def _feed(watch: OverloadWatch, seconds: int, per_second: int, skipped_per_second: int,
          totals: list[int]) -> str | None:  # fmt: skip
    reason = None
    for _ in range(seconds):
        totals[0] += per_second - skipped_per_second
        totals[1] += skipped_per_second
        reason = watch.sample(totals[0], totals[1])
    return reason


def test_sustained_skipping_is_overload_and_ends(caplog: pytest.LogCaptureFixture) -> None:
    watch = OverloadWatch()
    totals = [0, 0]
    assert _feed(watch, 60, 100, 0, totals) is None
    with caplog.at_level("INFO", logger="monitor.overload"):
        reason = _feed(watch, 30, 100, 20, totals)  # 20 % for half the window: 10 % overall
        assert reason is not None and reason.startswith("overload: 10% of launches skipped")
        assert _feed(watch, 90, 100, 0, totals) is None
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1  # one line when it starts, not one a second
    assert any("keep up again" in r.getMessage() for r in caplog.records)


def test_a_blip_is_not_overload() -> None:
    watch = OverloadWatch()
    totals = [0, 0]
    _feed(watch, 60, 100, 0, totals)
    assert _feed(watch, 1, 100, 100, totals) is None  # one second all late: 1.7 % of 60 s
    assert _feed(watch, 60, 100, 0, totals) is None


def test_too_few_launches_to_judge() -> None:
    watch = OverloadWatch()
    totals = [0, 0]
    assert _feed(watch, 60, 1, 1, totals) is None  # 60 due, all skipped: below min_due
