"""A period of days as the fewest roll-up units: whole years, then whole months, then edge days.

``street_periods`` / ``street_period_errors`` hold each street's sums per day, month and year
(``server.ingest.rollups``). Summing a period from them reads at most one range of years, two
ranges of months and two ranges of days, whatever the period's length: a calendar year is one
row per street, a quarter three, June 10 to September 20 the 21 days of June, two months and the
20 days of September.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

FIRST = date(1, 1, 1)  # ``since`` left open: from the first year there is
LAST = date(9999, 12, 31)  # ``until`` left open


@dataclass(frozen=True, slots=True)
class Units:
    """Inclusive ranges: of days, of months' first days, of years' first days."""

    days: list[tuple[date, date]] = field(default_factory=list)
    months: list[tuple[date, date]] = field(default_factory=list)
    years: list[tuple[date, date]] = field(default_factory=list)


def _month_end(day: date) -> date:
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1) if day < date(9999, 12, 1) else None
    return following - timedelta(days=1) if following else LAST


def split(since: date | None, until: date | None) -> Units:
    """``[since, until]`` (both included, either open) as units whose sum is exactly the period."""
    units = Units()
    low, high = since or FIRST, until or LAST
    if low > high:
        return units
    if low.day != 1:  # leading days, up to the end of their month
        end = min(high, _month_end(low))
        units.days.append((low, end))
        if end == high:
            return units
        low = end + timedelta(days=1)
    if high != _month_end(high):  # trailing days, from the first of their month
        start = max(low, high.replace(day=1))
        units.days.append((start, high))
        if start == low:
            return units
        high = start - timedelta(days=1)
    # [low, high] is now whole months.
    if low.month != 1:  # leading months, up to December
        end = min(high, date(low.year, 12, 31))
        units.months.append((low, end.replace(day=1)))
        if end == high:
            return units
        low = end + timedelta(days=1)
    if high.month != 12:  # trailing months, from January
        start = max(low, date(high.year, 1, 1))
        units.months.append((start, high.replace(day=1)))
        if start == low:
            return units
        high = start - timedelta(days=1)
    units.years.append((low, high.replace(month=1, day=1)))
    return units
