"""A period of days as the fewest roll-up rows: whole years, whole months, edge days, and days to subtract.

``street_periods`` / ``street_period_errors`` hold each street's sums per day, month and year
(``server.ingest.rollups``). Summing a period from them reads at most one range of years, two
ranges of months, two ranges of days to add and two to subtract, whatever the period's length: a
calendar year is one row per street, a quarter three.

A month the period covers only in part (at either edge) is read one of two ways, whichever reads
fewer rows: its days inside the period, day by day, or the whole month minus its days outside the
period, those days' sums selected with a minus sign. A month's rows are not one day's: every street
with a lift in the month has one, and a street is collected on a few days of the month, so reading
a month costs about as many rows as ``MONTH_IN_DAYS`` days (``_whole_month_pays``). The month is
read whole when its days inside the period outnumber those outside by more than that: 22 days of a
30- or 31-day month, 21 of February. The last 90 days from Sep 5 to Dec 3 are the month of
September minus Sep 1-4, October and November, plus Dec 1-3: 7 days read one by one instead of 29.
June 2 to June 29 is June minus June 1 and June 30; June 5 to September 25 is June minus June 1-4,
July, August and September minus September 26-30. A period of half a month or less (June 10-20)
stays day by day, as do edge months not covered well over half (June 10 to August 3: 21 days of
June, 3 of August).

The subtraction is exact, the current month included: ingest adds a lift to its day and its month
rows in one transaction and takes it out of both the same way, and a rebuild sums a month again
from every one of its days (``server.ingest.rollups``), so a month row is always the sum of its day
rows, and the days after today, having no rows, subtract nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

# A month's rows cost about as much to read as this many days' rows. bench/queries.py's city (each
# street collected on one weekday) has 7 days' worth of totals rows and 12 of error rows in a month,
# and the statement's CPU breaks even at 22 days inside a 30-day month (8 outside). A city collected
# more often makes months relatively cheaper: the rule then keeps a few days a month would beat, and
# never reads a month that costs more than the days.
MONTH_IN_DAYS = 12
FIRST = date(1, 1, 1)  # ``since`` left open: from the first year there is
LAST = date(9999, 12, 31)  # ``until`` left open


@dataclass(frozen=True, slots=True)
class Units:
    """Inclusive ranges: of days, of months' first days, of years' first days, and of days whose
    sums are subtracted (days of the months in ``months`` that lie outside the period)."""

    days: list[tuple[date, date]] = field(default_factory=list)
    months: list[tuple[date, date]] = field(default_factory=list)
    years: list[tuple[date, date]] = field(default_factory=list)
    minus_days: list[tuple[date, date]] = field(default_factory=list)


def _month_end(day: date) -> date:
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1) if day < date(9999, 12, 1) else None
    return following - timedelta(days=1) if following else LAST


def _whole_month_pays(first: date, last: date) -> bool:
    """Whether the month of ``[first, last]`` (days of one month) is cheaper read whole, minus its
    other days: when its days inside the range outnumber those outside by more than a month's rows."""
    inside = (last - first).days + 1
    outside = _month_end(first).day - inside
    return outside > 0 and inside - outside > MONTH_IN_DAYS


def split(since: date | None, until: date | None) -> Units:
    """``[since, until]`` (both included, either open) as units whose signed sum is exactly the period."""
    low, high = since or FIRST, until or LAST
    if low > high:
        return Units()
    minus: list[tuple[date, date]] = []
    # Edge months worth reading whole: widen the period to them, and subtract the days added.
    if _whole_month_pays(low, min(high, _month_end(low))):
        if low.day != 1:
            minus.append((low.replace(day=1), low - timedelta(days=1)))
        if high < _month_end(low):  # the period lies inside one month: its end is an edge too
            minus.append((high + timedelta(days=1), _month_end(low)))
            high = _month_end(low)
        low = low.replace(day=1)
    if high != _month_end(high) and _whole_month_pays(max(low, high.replace(day=1)), high):
        minus.append((high + timedelta(days=1), _month_end(high)))
        high = _month_end(high)
    units = Units(minus_days=minus)
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
