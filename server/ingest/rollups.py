"""Day, month and year roll-ups of the street aggregates (``street_periods``, ``street_period_errors``).

Ingest adds every new lift to ``street_days`` / ``street_day_errors`` (``server.ingest.aggregates``)
and, in the same transaction, to the roll-ups here: the lift's month and year for its stream and
for every stream (``*``), and its day for every stream. A period query then sums a handful of
roll-up units instead of every day of the period (``server.web.periods``). Everything is derived
from the daily aggregates, never from raw lifts, so a rebuild keeps the days whose raw lifts
retention has already deleted.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from sqlalchemy import Date, bindparam, delete, or_, text
from sqlalchemy.orm import Session

from server.ingest.models import ALL_STREAMS, StreetPeriod, StreetPeriodError

DAY, MONTH, YEAR = "d", "m", "y"
TOTALS = ("lifts", "contaminated", "alerts", "score")
ERRORS = ("lifts", "items")


def month_start(day: date) -> date:
    return day.replace(day=1)


def year_start(day: date) -> date:
    return day.replace(month=1, day=1)


def units(day: date, stream: str) -> tuple[tuple[str, str, date], ...]:
    """The roll-up rows one lift of ``day`` and ``stream`` counts in: (span, stream, start)."""
    month, year = month_start(day), year_start(day)
    return ((DAY, ALL_STREAMS, day), (MONTH, stream, month), (MONTH, ALL_STREAMS, month),
            (YEAR, stream, year), (YEAR, ALL_STREAMS, year))


def roll_up(days: Counter[tuple[Any, ...]], errors: Counter[tuple[Any, ...]]) -> tuple[Counter[tuple[Any, ...]],
                                                                                          Counter[tuple[Any, ...]]]:
    """Daily tallies -> roll-up tallies.

    ``days`` is keyed (street, day, stream, measure) and ``errors`` (street, day, stream,
    category, severity, measure), as ``aggregates._tally`` counts a batch; the results are keyed
    (span, stream, start, street, measure) and (span, stream, start, street, category, severity,
    measure), the roll-up tables' primary keys. Working from the batch's daily tallies rather
    than from its lifts costs a few hundred additions per batch, not five per lift.
    """
    periods: Counter[tuple[Any, ...]] = Counter()
    for (street, day, stream, measure), value in days.items():
        for unit in units(day, stream):
            periods[(*unit, street, measure)] += value
    period_errors: Counter[tuple[Any, ...]] = Counter()
    for (street, day, stream, category, severity, measure), value in errors.items():
        for unit in units(day, stream):
            period_errors[(*unit, street, category, severity, measure)] += value
    return periods, period_errors


PERIOD_KEYS = ("span", "stream", "start", "street_id")
ERROR_KEYS = (*PERIOD_KEYS, "category", "severity")


def drop_emptied(session: Session, starts: set[date]) -> None:
    """After lifts were taken out (``sign=-1``): delete the roll-up rows left at zero, so that a
    street with no lift left in a period disappears from it instead of showing 0 lifts."""
    if not starts:
        return
    for table, empty in ((StreetPeriod, StreetPeriod.lifts == 0),
                         (StreetPeriodError, (StreetPeriodError.lifts == 0) & (StreetPeriodError.items == 0))):
        session.execute(delete(table).where(empty, or_(*(table.start == s for s in sorted(starts)))))


def _truncate(dialect: str, span: str) -> str:
    if span == DAY:
        return "day"
    unit = "month" if span == MONTH else "year"
    if dialect == "sqlite":
        return f"date(day, 'start of {unit}')"
    return f"CAST(date_trunc('{unit}', day) AS DATE)"


def rebuild_rollups(session: Session, since: date | None = None) -> None:
    """Recompute the roll-ups from ``street_days`` / ``street_day_errors`` for every unit that
    holds a day >= ``since`` (all when None): the whole month and year of ``since`` are summed
    again from their days, including days older than ``since``."""
    dialect = session.get_bind().dialect.name
    bounds = {DAY: since, MONTH: since and month_start(since), YEAR: since and year_start(since)}
    for table in (StreetPeriod, StreetPeriodError):
        query = delete(table)
        if since is not None:
            query = query.where(or_(*((table.span == span) & (table.start >= start)
                                      for span, start in bounds.items())))
        session.execute(query)
    for span, start in bounds.items():
        where = "WHERE day >= :start" if start is not None else ""
        truncated = _truncate(dialect, span)
        # (stream column, its GROUP BY term): '*' is a constant, which PostgreSQL refuses to group by.
        streams = [("stream", "stream, "), (f"'{ALL_STREAMS}'", "")]
        for stream, grouped in streams if span != DAY else streams[1:]:
            for sql in (
                f"""INSERT INTO street_periods (span, stream, start, street_id, lifts, contaminated, alerts, score)
                    SELECT '{span}', {stream}, {truncated}, street_id, SUM(lifts), SUM(contaminated),
                           SUM(alerts), SUM(score)
                    FROM street_days {where} GROUP BY {grouped}{truncated}, street_id""",
                f"""INSERT INTO street_period_errors (span, stream, start, street_id, category, severity,
                                                     lifts, items)
                    SELECT '{span}', {stream}, {truncated}, street_id, category, severity, SUM(lifts), SUM(items)
                    FROM street_day_errors {where} GROUP BY {grouped}{truncated}, street_id, category, severity""",
            ):
                statement = text(sql)
                if start is not None:  # typed: SQLite compares the same 'YYYY-MM-DD' text the ORM stores
                    statement = statement.bindparams(bindparam("start", start, type_=Date))
                session.execute(statement)
