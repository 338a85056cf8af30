"""Business Hours of a Service Time Zone: when Non-Critical Issues are handled, and due times.

The SLA's Business Hours are 09:00-17:00 US Eastern, 09:00-17:00 US Pacific or 08:30-16:30 UK,
Monday to Friday, excluding that zone's bank holidays. US bank holidays are the Federal
Reserve calendar (``holidays.financial_holidays("XFED")``) by default, or the federal
holidays (``holidays.country_holidays("US")``); UK means England's bank holidays
(``holidays.country_holidays("GB", subdiv="ENG")``).

Wall-clock hours are built in the zone with `zoneinfo` and all arithmetic is done in UTC,
so DST change days are right: the opening hours never straddle a change (changes happen at
01:00-02:00 local), but Python subtracts two datetimes sharing one tzinfo naively, which
UTC arithmetic avoids.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

Zone = Literal["ET", "PT", "UK"]
UsHolidays = Literal["federal_reserve", "federal"]


@dataclass(frozen=True, slots=True)
class _Hours:
    tz: str
    opens: time
    closes: time


# a registry, not an if-chain: zone → its time zone and opening hours
ZONES: dict[str, _Hours] = {
    "ET": _Hours("America/New_York", time(9, 0), time(17, 0)),
    "PT": _Hours("America/Los_Angeles", time(9, 0), time(17, 0)),
    "UK": _Hours("Europe/London", time(8, 30), time(16, 30)),
}

# a year has at most ~15 bank holidays and 104 weekend days: a search for the next open
# day that has not found one in this many days has a broken calendar, not a long holiday
_MAX_CLOSED_DAYS = 30


def _holiday_calendar(zone: str, us_holidays: str) -> holidays.HolidayBase:
    if zone == "UK":
        return holidays.country_holidays("GB", subdiv="ENG")
    if us_holidays == "federal_reserve":
        return holidays.financial_holidays("XFED")
    if us_holidays == "federal":
        return holidays.country_holidays("US")
    raise ValueError(f"us_holidays must be 'federal_reserve' or 'federal', not {us_holidays!r}")


class BusinessCalendar:
    """Opening hours of one Service Time Zone. Accepts aware datetimes or epoch floats."""

    def __init__(self, zone: Zone | str, us_holidays: UsHolidays | str = "federal_reserve") -> None:
        if zone not in ZONES:
            raise ValueError(f"service_time_zone must be one of {sorted(ZONES)}, not {zone!r}")
        self.zone = zone
        self._hours = ZONES[zone]
        self.tz = ZoneInfo(self._hours.tz)
        self._holidays = _holiday_calendar(zone, us_holidays)

    # --- days

    def is_business_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self._holidays

    def holiday_name(self, day: date) -> str | None:
        name = self._holidays.get(day)
        return str(name) if name is not None else None

    def _window(self, day: date) -> tuple[datetime, datetime]:
        """Opening and closing instants of `day` (a business day), in UTC."""
        opens = datetime.combine(day, self._hours.opens, tzinfo=self.tz).astimezone(UTC)
        closes = datetime.combine(day, self._hours.closes, tzinfo=self.tz).astimezone(UTC)
        return opens, closes

    # --- instants

    def _utc(self, t: datetime | float) -> datetime:
        if isinstance(t, datetime):
            if t.tzinfo is None:
                raise ValueError("BusinessCalendar needs an aware datetime (or epoch seconds)")
            return t.astimezone(UTC)
        return datetime.fromtimestamp(float(t), UTC)

    def is_open(self, t: datetime | float) -> bool:
        u = self._utc(t)
        day = u.astimezone(self.tz).date()
        if not self.is_business_day(day):
            return False
        opens, closes = self._window(day)
        return opens <= u < closes

    def next_open(self, t: datetime | float) -> datetime:
        """`t` itself when open, else the next opening instant (aware, in the zone)."""
        u = self._utc(t)
        day = u.astimezone(self.tz).date()
        for _ in range(_MAX_CLOSED_DAYS):
            if self.is_business_day(day):
                opens, closes = self._window(day)
                if u < closes:
                    return max(u, opens).astimezone(self.tz)
            day += timedelta(days=1)
        raise ValueError(f"no business day within {_MAX_CLOSED_DAYS} days of {u.isoformat()}")

    def add_business_hours(self, t: datetime | float, hours: float) -> datetime:
        """The instant `hours` business hours after `t` (a due time), aware, in the zone.

        Time outside Business Hours does not count; a due time that falls exactly on a
        closing instant is that closing instant, not the next day's opening."""
        if hours < 0:
            raise ValueError("hours must not be negative")
        left = timedelta(hours=hours)
        u = self.next_open(t).astimezone(UTC)
        # each turn consumes one business day (of at least 8 hours), so this bound is ample
        for _ in range(int(hours // 8) + 3):
            _, closes = self._window(u.astimezone(self.tz).date())
            if u + left <= closes:
                return (u + left).astimezone(self.tz)
            left -= closes - u
            u = self.next_open(closes).astimezone(UTC)
        raise ValueError(f"cannot add {hours} business hours to {self._utc(t).isoformat()}")


@functools.lru_cache(maxsize=64)
def calendar_of(
    zone: Zone | str, us_holidays: UsHolidays | str = "federal_reserve"
) -> BusinessCalendar:
    """One shared `BusinessCalendar` per (zone, holiday calendar): building one costs
    ~0.8 ms (the holiday tables), and 250 services share a handful."""
    return BusinessCalendar(zone, us_holidays)
