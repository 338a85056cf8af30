"""Business Hours: weekends, bank holidays and DST change days in ET, PT and UK."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.calendar import BusinessCalendar


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc, arg-type]


IS_OPEN = [
    # (zone, us_holidays, instant UTC, open?)
    ("ET", "federal_reserve", _utc(2026, 11, 23, 14, 0), True),  # Mon 09:00 EST opens
    ("ET", "federal_reserve", _utc(2026, 11, 23, 13, 59, 59), False),  # 08:59:59 EST
    ("ET", "federal_reserve", _utc(2026, 11, 23, 21, 59, 59), True),  # 16:59:59 EST
    ("ET", "federal_reserve", _utc(2026, 11, 23, 22, 0), False),  # 17:00 closes
    ("ET", "federal_reserve", _utc(2026, 11, 21, 15, 0), False),  # Saturday
    ("ET", "federal_reserve", _utc(2026, 11, 22, 15, 0), False),  # Sunday
    ("ET", "federal_reserve", _utc(2026, 11, 26, 15, 0), False),  # Thanksgiving
    ("ET", "federal_reserve", _utc(2026, 11, 11, 15, 0), False),  # Veterans Day (Fed closed)
    ("ET", "federal", _utc(2026, 11, 11, 15, 0), False),  # Veterans Day (federal)
    ("ET", "federal_reserve", _utc(2026, 7, 3, 15, 0), True),  # Fed keeps Fri open for Sat 4th
    ("ET", "federal", _utc(2026, 7, 3, 15, 0), False),  # federal observes Fri 3 July
    # US DST starts Sun 2026-03-08: Monday 09:00 EDT is 13:00 UTC, no longer 14:00
    ("ET", "federal_reserve", _utc(2026, 3, 9, 13, 0), True),
    ("ET", "federal_reserve", _utc(2026, 3, 9, 12, 59), False),
    ("ET", "federal_reserve", _utc(2026, 3, 6, 13, 30), False),  # Fri before: still EST
    # US DST ends Sun 2026-11-01: Mon 2 Nov 09:00 EST is 14:00 UTC
    ("ET", "federal_reserve", _utc(2026, 11, 2, 13, 30), False),
    ("ET", "federal_reserve", _utc(2026, 10, 30, 13, 30), True),  # Fri before: EDT
    ("PT", "federal_reserve", _utc(2026, 3, 9, 16, 0), True),  # 09:00 PDT
    ("PT", "federal_reserve", _utc(2026, 3, 9, 15, 59), False),
    ("PT", "federal_reserve", _utc(2026, 11, 2, 16, 30), False),  # 08:30 PST
    ("PT", "federal_reserve", _utc(2026, 11, 3, 0, 59), True),  # 16:59 PST
    ("PT", "federal_reserve", _utc(2026, 11, 26, 18, 0), False),  # Thanksgiving
    ("UK", "federal_reserve", _utc(2026, 11, 23, 8, 30), True),  # 08:30 GMT
    ("UK", "federal_reserve", _utc(2026, 11, 23, 16, 30), False),  # 16:30 closes
    ("UK", "federal_reserve", _utc(2026, 11, 26, 10, 0), True),  # Thanksgiving is no UK holiday
    ("UK", "federal_reserve", _utc(2026, 12, 28, 10, 0), False),  # Boxing Day (observed)
    ("UK", "federal_reserve", _utc(2026, 4, 6, 10, 0), False),  # Easter Monday
    ("UK", "federal_reserve", _utc(2026, 4, 3, 10, 0), False),  # Good Friday
    # UK DST starts Sun 2026-03-29: Mon 08:30 BST is 07:30 UTC
    ("UK", "federal_reserve", _utc(2026, 3, 30, 7, 30), True),
    ("UK", "federal_reserve", _utc(2026, 3, 27, 7, 30), False),  # Fri before: 07:30 GMT
    # UK DST ends Sun 2026-10-25: Mon 26 Oct 08:30 GMT is 08:30 UTC
    ("UK", "federal_reserve", _utc(2026, 10, 26, 7, 45), False),
    ("UK", "federal_reserve", _utc(2026, 10, 23, 15, 45), False),  # Fri 16:45 BST
    ("UK", "federal_reserve", _utc(2026, 10, 23, 15, 15), True),  # Fri 16:15 BST
]


@pytest.mark.parametrize(
    ("zone", "us", "t", "expected"),
    IS_OPEN,
    ids=[f"{z}-{us}-{t:%Y%m%dT%H%M%S}Z-{'open' if e else 'closed'}" for z, us, t, e in IS_OPEN],
)
def test_is_open(zone: str, us: str, t: datetime, expected: bool) -> None:
    cal = BusinessCalendar(zone, us)
    assert cal.is_open(t) is expected
    assert cal.is_open(t.timestamp()) is expected


NEXT_OPEN = [
    # (zone, from UTC, next opening UTC)
    ("ET", _utc(2026, 11, 23, 15, 0), _utc(2026, 11, 23, 15, 0)),  # open: now
    ("ET", _utc(2026, 11, 25, 23, 0), _utc(2026, 11, 27, 14, 0)),  # Wed night → Fri (Thanks.)
    ("ET", _utc(2026, 11, 20, 22, 0), _utc(2026, 11, 23, 14, 0)),  # Fri close → Mon
    ("ET", _utc(2026, 3, 7, 12, 0), _utc(2026, 3, 9, 13, 0)),  # over US DST start
    ("ET", _utc(2026, 10, 31, 12, 0), _utc(2026, 11, 2, 14, 0)),  # over US DST end
    ("PT", _utc(2026, 3, 7, 12, 0), _utc(2026, 3, 9, 16, 0)),
    ("PT", _utc(2026, 10, 31, 12, 0), _utc(2026, 11, 2, 17, 0)),
    ("PT", _utc(2026, 11, 24, 6, 0), _utc(2026, 11, 24, 17, 0)),  # 22:00 PST Mon → Tue 09:00
    ("UK", _utc(2026, 3, 28, 12, 0), _utc(2026, 3, 30, 7, 30)),  # over UK DST start
    ("UK", _utc(2026, 10, 24, 12, 0), _utc(2026, 10, 26, 8, 30)),  # over UK DST end
    ("UK", _utc(2026, 12, 24, 17, 0), _utc(2026, 12, 29, 8, 30)),  # Christmas + Boxing Day
    ("UK", _utc(2026, 4, 2, 18, 0), _utc(2026, 4, 7, 7, 30)),  # Easter: Good Fri + Mon
]


@pytest.mark.parametrize(
    ("zone", "t", "expected"),
    NEXT_OPEN,
    ids=[f"{z}-{t:%Y%m%dT%H%M}Z" for z, t, _ in NEXT_OPEN],
)
def test_next_open(zone: str, t: datetime, expected: datetime) -> None:
    got = BusinessCalendar(zone).next_open(t)
    assert got == expected
    assert got.tzinfo is not None and got.utcoffset() is not None


ADD_HOURS = [
    # (zone, from UTC, business hours, due UTC)
    ("ET", _utc(2026, 11, 23, 15, 0), 2, _utc(2026, 11, 23, 17, 0)),  # same day
    ("ET", _utc(2026, 11, 23, 15, 0), 8, _utc(2026, 11, 24, 15, 0)),  # 7 h Mon + 1 h Tue
    ("ET", _utc(2026, 11, 25, 20, 0), 8, _utc(2026, 11, 27, 20, 0)),  # skips Thanksgiving
    ("ET", _utc(2026, 11, 21, 3, 0), 8, _utc(2026, 11, 23, 22, 0)),  # weekend: full Monday
    ("ET", _utc(2026, 11, 23, 20, 0), 2, _utc(2026, 11, 23, 22, 0)),  # ends exactly at close
    ("ET", _utc(2026, 3, 6, 21, 0), 2, _utc(2026, 3, 9, 14, 0)),  # 1 h EST Fri, 1 h EDT Mon
    ("ET", _utc(2026, 10, 30, 20, 0), 2, _utc(2026, 11, 2, 15, 0)),  # EDT Fri → EST Mon
    ("PT", _utc(2026, 3, 6, 23, 0), 4, _utc(2026, 3, 9, 18, 0)),  # 2 h PST + 2 h PDT
    ("PT", _utc(2026, 10, 30, 23, 0), 4, _utc(2026, 11, 2, 20, 0)),  # 1 h PDT + 3 h PST
    ("UK", _utc(2026, 3, 27, 15, 0), 3, _utc(2026, 3, 30, 9, 0)),  # 1.5 h GMT + 1.5 h BST
    ("UK", _utc(2026, 10, 23, 14, 30), 3, _utc(2026, 10, 26, 10, 30)),  # 1 h BST + 2 h GMT
    ("UK", _utc(2026, 4, 2, 14, 30), 4, _utc(2026, 4, 7, 10, 30)),  # 1 h Thu, Easter, 3 h Tue
    ("UK", _utc(2026, 11, 23, 9, 0), 0, _utc(2026, 11, 23, 9, 0)),
]


@pytest.mark.parametrize(
    ("zone", "t", "hours", "expected"),
    ADD_HOURS,
    ids=[f"{z}-{t:%Y%m%dT%H%M}Z-plus{h}h" for z, t, h, _ in ADD_HOURS],
)
def test_add_business_hours(zone: str, t: datetime, hours: float, expected: datetime) -> None:
    assert BusinessCalendar(zone).add_business_hours(t, hours) == expected


def test_long_due_time_spans_weeks() -> None:
    # 80 business hours = 10 business days from a Monday opening, no holidays in between
    cal = BusinessCalendar("UK")
    got = cal.add_business_hours(_utc(2026, 6, 1, 7, 30), 80)
    assert got == _utc(2026, 6, 12, 15, 30)


BAD = [
    (lambda: BusinessCalendar("CET"), "service_time_zone"),
    (lambda: BusinessCalendar("ET", "ecb"), "us_holidays"),
    (lambda: BusinessCalendar("ET").is_open(datetime(2026, 1, 5, 12)), "aware"),
    (lambda: BusinessCalendar("ET").add_business_hours(0.0, -1), "negative"),
]


@pytest.mark.parametrize(
    ("call", "words"), BAD, ids=["zone", "us_holidays", "naive", "negative_hours"]
)
def test_bad_input_is_one_clear_error(call: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        call()  # type: ignore[operator]
