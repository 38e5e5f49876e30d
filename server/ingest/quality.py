"""Street-matching quality per day and stream (``match_quality_days``): what the data-quality
page shows (lifts, matched, without a fix, the histogram of the confidence in the lifts' STREETS),
added up by ingest in the same transaction as the street aggregates, so any period reads a few
rows per day.

The histogram bins a lift's street confidence (``street_confidence``): the posterior of its street
given its truck's path, 1.0 for a registered bin, the one-point street confidence of the locator
for a lift matched from its own fix alone; the "uncertain street" list is the judged lifts under 0.8
of that same column, so a lift there is under 0.8 here (a lift whose camera view was unusable is
binned here, as a street match, and never listed there: it counts in no street). Until 2026-12 it
binned ``match_confidence``, the ADDRESS confidence (the street's divided by the number of the
street's addresses within the fix's error: two houses facing each other halve it), and showed most
streets as half sure; the address confidence is the reminders' business, not the street match's.
A lift stored before its street confidence was (ingest before migration 0006) counts by its match
confidence, a lower bound of its street's; ``trivue streets rematch`` gives it one.

The street confidence changes without the street when a provisional lift is confirmed where it is
(its truck's later lifts settle its path): ``server.ingest.tracks`` writes it guarded by the value
it read and moves the lift from its old tenth to its new one in the same transaction
(``aggregates.move_confidence``); a lift moved to another street goes through
``add_to_aggregates`` out and in again, with its old and new confidence.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, bindparam, delete, func, select, text
from sqlalchemy.orm import Session

from server.ingest.models import MatchQualityDay
from server.localtime import local_day

BINS = 10
BIN_COLUMNS = tuple(f"conf_{i}" for i in range(BINS))
MEASURES = ("lifts", "matched", "no_gps", *BIN_COLUMNS, "view_unusable")
KEYS = ("day", "stream")
TABLE = MatchQualityDay.__table__


def street_confidence(row: Mapping[str, Any]) -> float | None:
    """The confidence binned for a lifts row: its street's, else (a lift older than the column) its match's."""
    confidence = row["street_confidence"]
    return row["match_confidence"] if confidence is None else confidence


def confidence_bin(confidence: float) -> int:
    """The tenth a street confidence falls in, 1.0 in the last: what SQLite's CAST and PostgreSQL's
    FLOOR compute in ``rebuild_quality`` (the same IEEE products)."""
    return min(int(confidence * BINS), BINS - 1)


def tally_quality(rows: Iterable[Mapping[str, Any]]) -> Counter[tuple[date, str, str]]:
    """(day, stream, measure) -> count, for lifts rows as ingest writes them."""
    totals: Counter[tuple[date, str, str]] = Counter()
    for row in rows:
        key = (row["day"], row["stream"])
        totals[(*key, "lifts")] += 1
        totals[(*key, "view_unusable")] += row.get("view_unusable") is not None  # not judged (wire 1.4)
        if row["street_id"] is not None:
            totals[(*key, "matched")] += 1
            if (confidence := street_confidence(row)) is not None:
                totals[(*key, BIN_COLUMNS[confidence_bin(confidence)])] += 1
        elif row["lat"] is None:
            totals[(*key, "no_gps")] += 1
    return totals


def drop_empty_quality(session: Session, days: Iterable[date]) -> None:
    """Delete the rows a removal left at zero lifts."""
    session.execute(delete(MatchQualityDay).where(MatchQualityDay.lifts == 0,
                                                  MatchQualityDay.day.in_(sorted(set(days)))))


def rebuild_quality(session: Session, since: date | None = None) -> None:
    """Recompute the rows of days >= ``since`` (all when None) from the raw lifts, in the database."""
    query = delete(MatchQualityDay)
    session.execute(query.where(MatchQualityDay.day >= since) if since is not None else query)
    confidence = "COALESCE(l.street_confidence, l.match_confidence)"  # ``street_confidence(row)``
    # ``confidence_bin``: SQLite's CAST truncates (a confidence is >= 0: the floor), PostgreSQL's rounds, hence FLOOR.
    tenth = (f"MIN(CAST({confidence} * 10 AS INTEGER), 9)" if session.get_bind().dialect.name == "sqlite"
             else f"LEAST(CAST(FLOOR({confidence} * 10) AS INTEGER), 9)")
    bins = ", ".join(f"SUM(CASE WHEN l.street_id IS NOT NULL AND {tenth} = {i} THEN 1 ELSE 0 END)"
                     for i in range(BINS))
    where = "WHERE l.day >= :since" if since is not None else ""
    statement = text(f"""INSERT INTO match_quality_days (day, stream, {', '.join(MEASURES)})
        SELECT l.day, l.stream, COUNT(*), SUM(CASE WHEN l.street_id IS NOT NULL THEN 1 ELSE 0 END),
               SUM(CASE WHEN l.street_id IS NULL AND l.lat IS NULL THEN 1 ELSE 0 END), {bins},
               SUM(CASE WHEN l.view_unusable IS NOT NULL THEN 1 ELSE 0 END)
        FROM lifts l {where} GROUP BY l.day, l.stream ORDER BY l.day, l.stream""")
    if since is not None:
        statement = statement.bindparams(bindparam("since", since, type_=Date))
    session.execute(statement)


def quality_totals(session: Session, since: date | None, until: date | None,
                   stream: str | None = None) -> dict[str, int]:
    """Each measure summed over the period's days (and one stream when given)."""
    query = select(*(func.coalesce(func.sum(getattr(MatchQualityDay, m)), 0) for m in MEASURES))
    if since is not None:
        query = query.where(MatchQualityDay.day >= since)
    if until is not None:
        query = query.where(MatchQualityDay.day <= until)
    if stream is not None:
        query = query.where(MatchQualityDay.stream == stream)
    return dict(zip(MEASURES, (int(v) for v in session.execute(query).one()), strict=True))


def first_whole_day(now: datetime, kept_days: int, zone: ZoneInfo) -> date:
    """The first local day none of whose rows a retention of ``kept_days`` has deleted.

    The purge deletes what is older than an instant (``now - kept_days``), not whole days: that
    instant's day has lost its first rows, and only the days after it are whole. The roll-up of
    this module is kept for ever, the raw lifts are not: a figure read from the lifts covers these
    days only, and so must any figure it is set beside.
    """
    return local_day(now - timedelta(days=kept_days), zone) + timedelta(days=1)
