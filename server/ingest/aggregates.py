"""The write path of lifts: idempotent insert, street matching and incremental street aggregates.

Every batch inserts lifts with ``ON CONFLICT (event_id, started_at) DO NOTHING ... RETURNING
event_id`` and adds only the lifts that were really new to ``street_days`` / ``street_day_errors``
and their day/month/year roll-ups (``server.ingest.rollups``) in the same transaction, so a
re-delivered event changes nothing and the dashboard never scans raw lifts.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NotRequired, Protocol, TypedDict
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Table, bindparam, delete, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from base.bin_tags import canonical_tag
from server.ingest import quality
from server.ingest.bulk import sqlite_executemany, sqlite_insert_returning, unnest_insert
from server.ingest.models import UNMATCHED, Lift, StreetDay, StreetDayError, StreetPeriod, StreetPeriodError
from server.ingest.rollups import ERROR_KEYS, ERRORS, PERIOD_KEYS, TOTALS, drop_emptied, rebuild_rollups, roll_up
from vision.schema import LiftEvent, Severity

log = logging.getLogger(__name__)


class StreetMatch(Protocol):
    """What ingest reads of a match (``server.streets.locator.Match``)."""

    @property
    def street_id(self) -> int: ...
    @property
    def segment_id(self) -> int: ...
    @property
    def distance_m(self) -> float: ...
    @property
    def address_id(self) -> int | None: ...
    @property
    def address_distance_m(self) -> float | None: ...
    @property
    def confidence(self) -> float: ...
    @property
    def street_confidence(self) -> float: ...  # ``confidence`` without the address term


class StreetLocator(Protocol):
    """What ingest needs from ``server.streets.locator.Locator``: a GPS fix -> a street match or None."""

    def locate(self, lat: float, lon: float, heading_deg: float | None = None,
               accuracy_m: float | None = None) -> StreetMatch | None: ...


class BatchLocator(StreetLocator, Protocol):
    """A locator that also matches many fixes in one call (``Locator.locate_many``)."""

    def locate_many(self, lats: Sequence[float], lons: Sequence[float],
                    headings: Sequence[float | None] | None = None,
                    accuracies: Sequence[float | None] | None = None) -> list[StreetMatch | None]: ...


class MatchColumns(TypedDict):
    """The street and address columns of a ``lifts`` row; all None when no street is near."""

    street_id: int | None
    segment_id: int | None
    street_distance_m: float | None
    address_id: int | None
    address_distance_m: float | None
    match_confidence: float | None  # the address's when there is one (reminders), else the street's
    # The street's: from the truck's path (issue 16b, ``server.ingest.tracks``), else from the fix alone.
    street_confidence: float | None
    registry_placed: bool  # the bin registry placed it (``server.ingest.bins``), not its fix


class LiftRow(MatchColumns):
    """A ``lifts`` row on the write path, as ``insert_lifts`` and the aggregates take it."""

    event_id: str
    truck_id: str
    sequence: int
    stream: str
    started_at: datetime
    ended_at: datetime
    day: date
    received_at: datetime
    lat: float | None
    lon: float | None
    accuracy_m: float | None
    heading_deg: float | None
    bin_id: str | None
    contaminated: bool
    has_alert: bool
    score: float
    counts: dict[str, int]
    errors: list[dict[str, Any]]
    model_name: str
    model_version: str
    model_sha256: str | None  # wire 1.2: the model file that judged the lift
    frames: int
    evidence_sha256: str | None
    evidence_reason: str | None
    evidence_detections: list[dict[str, Any]] | None
    match_provisional: bool  # issue 16b (``server.ingest.tracks``): may the truck's path still change it?
    view_unusable: str | None  # wire 1.4: the camera saw nothing usable; counted in no street figure
    overruled_at: NotRequired[datetime | None]  # set by a person only (server.ingest.overrule), never at ingest


def dialect_insert(session: Session, table: Table) -> Any:
    """``INSERT`` of the session's dialect, which carries ``on_conflict_do_*``."""
    return _insert_of(session.get_bind().dialect.name, table)


def _insert_of(name: str, table: Table) -> Any:
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"database dialect {name!r} is not supported (use SQLite or PostgreSQL)")


def upsert(session: Session, table: Table, keys: tuple[str, ...], *, replace: tuple[str, ...] = (),
           add: tuple[str, ...] = ()) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE SET r = excluded.r, a = a + excluded.a``, to run
    with a list of rows. Built once per shape: building an upsert (its ``excluded`` columns) costs
    more than running it, and ingest runs several per batch (bench/ingest.py: 14 ms per batch of a
    20-truck fleet when each truck's upsert was built anew)."""
    return _upsert(session.get_bind().dialect.name, table, keys, replace, add)


@functools.cache
def _upsert(name: str, table: Table, keys: tuple[str, ...], replace: tuple[str, ...], add: tuple[str, ...]) -> Any:
    stmt = _insert_of(name, table)
    updates = {c: stmt.excluded[c] for c in replace} | {c: table.c[c] + stmt.excluded[c] for c in add}
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=updates)


def match_columns(locator: StreetLocator | None, lat: float | None, lon: float | None,
                  heading: float | None = None, accuracy: float | None = None) -> MatchColumns:
    """The lift's street/address columns for a fix; all None when there is no fix or no street near."""
    match = None
    if locator is not None and lat is not None and lon is not None:
        match = locator.locate(lat, lon, heading_deg=heading, accuracy_m=accuracy)
    return street_columns(match)


def street_columns(match: StreetMatch | None) -> MatchColumns:
    """The lift's street/address columns of a match (all None without one)."""
    if match is None:
        return MatchColumns(street_id=None, segment_id=None, street_distance_m=None, address_id=None,
                            address_distance_m=None, match_confidence=None, street_confidence=None,
                            registry_placed=False)
    return {"street_id": match.street_id, "segment_id": match.segment_id,
            "street_distance_m": match.distance_m, "address_id": match.address_id,
            "address_distance_m": match.address_distance_m, "match_confidence": match.confidence,
            "street_confidence": match.street_confidence, "registry_placed": False}


def match_rows(locator: StreetLocator | None, rows: Sequence[LiftRow]) -> None:
    """Set the street/address columns of ``lifts`` rows in place, for a whole batch at once.

    Per lift, ``locate`` costs more than validating and inserting it; a locator with
    ``locate_many`` answers the batch in one vectorised pass (same matches). Rows change only
    once every fix is matched, so a locator that raises leaves them as they were.
    """
    fixed = [row for row in rows if row["lat"] is not None and row["lon"] is not None]
    if locator is None or not fixed:
        return
    many = getattr(locator, "locate_many", None)
    if many is None:
        columns = [match_columns(locator, r["lat"], r["lon"], r["heading_deg"], r["accuracy_m"]) for r in fixed]
    else:
        columns = [street_columns(m) for m in many([r["lat"] for r in fixed], [r["lon"] for r in fixed],
                                             [r["heading_deg"] for r in fixed], [r["accuracy_m"] for r in fixed])]
    for row, values in zip(fixed, columns, strict=True):
        row.update(values)


def evidence_columns(event: LiftEvent) -> tuple[str | None, list[dict[str, Any]] | None]:
    """Why the photo was kept and the model's boxes on it (wire 1.1). A 1.0 truck sends no boxes
    and its reason reads as contaminated, the only photos 1.0 trucks kept."""
    evidence = event.evidence
    if evidence is None or evidence.detections is None:
        return (evidence.reason.value if evidence else None), None
    return evidence.reason.value, [b.model_dump(mode="json", by_alias=True) for b in evidence.detections]


def lift_row(event: LiftEvent, received_at: datetime, zone: ZoneInfo,
             locator: StreetLocator | None) -> LiftRow:
    """A ``lifts`` row for a validated event, matched to a street."""
    gps = event.gps
    reason, boxes = evidence_columns(event)
    row: LiftRow = {
        "event_id": str(event.event_id), "truck_id": event.truck_id, "sequence": event.sequence,
        "stream": event.stream.value, "started_at": event.started_at, "ended_at": event.ended_at,
        "day": event.started_at.astimezone(zone).date(), "received_at": received_at,
        "lat": gps.lat if gps else None, "lon": gps.lon if gps else None, "contaminated": event.contaminated,
        "accuracy_m": gps.accuracy_m if gps else None, "heading_deg": gps.heading_deg if gps else None,
        "bin_id": event.bin_id and canonical_tag(event.bin_id), "has_alert": event.has_alert,  # base.bin_tags
        "score": event.score, "counts": dict(event.counts), "errors": [e.to_wire() for e in event.errors],
        "model_name": event.model.name, "model_version": event.model.version,
        "model_sha256": event.model.sha256, "frames": event.frames,
        "evidence_sha256": event.evidence.sha256 if event.evidence else None,
        "evidence_reason": reason, "evidence_detections": boxes,
        "match_provisional": False,  # issue 16b: set by server.ingest.tracks
        "view_unusable": event.view_unusable.value if event.view_unusable else None,
        **match_columns(None, None, None),
    }
    row.update(match_columns(locator, row["lat"], row["lon"], row["heading_deg"], row["accuracy_m"]))
    return row


def insert_lifts(session: Session, rows: Sequence[LiftRow]) -> list[LiftRow]:
    """Insert rows whose event is new; return exactly those rows (aggregates count them once).

    An event is known by ``(event_id, started_at)`` (``uq_lifts_event_started``): a re-delivery
    carries both unchanged, and PostgreSQL's month partitions need the partition key in the key.
    """
    first: dict[str, LiftRow] = {}
    for row in rows:  # the first copy in a batch wins, as the stored one does over later batches
        first.setdefault(row["event_id"], row)
    unique = list(first.values())
    if not unique:
        return []
    if session.get_bind().dialect.name == "postgresql":
        inserted = set(unnest_insert(session, Lift.__table__, unique,
                                     "ON CONFLICT (event_id, started_at) DO NOTHING RETURNING event_id").scalars())
    else:
        inserted = {row[0] for row in sqlite_insert_returning(
            session, Lift.__table__, unique, "ON CONFLICT (event_id, started_at) DO NOTHING RETURNING event_id")}
    new_rows = [row for row in unique if row["event_id"] in inserted]
    add_to_aggregates(session, new_rows)
    return new_rows


def counts_lift(kind: tuple[str, str], kinds: Container[tuple[str, str]]) -> int:
    """1 when a lift with errors of these (category, severity) ``kinds`` counts in the ``lifts`` of
    ``kind``. Served figures add a category's lifts over its error and alert rows (top errors, error
    rates, open data): a lift with items of one category at both severities (rules where a
    category's classes differ, e.g. medicines an error and needles an alert) counts once, under
    alert. Info rows count every lift with such items: they are never added to the others."""
    category, severity = kind
    return int(severity != Severity.error.value or (category, Severity.alert.value) not in kinds)


@dataclass(slots=True)
class _Totals:
    days: Counter[tuple[int, date, str, str]]  # (street, day, stream, measure) -> value
    errors: Counter[tuple[Any, ...]]  # (street, day, stream, category, severity, measure)


def _tally(rows: Iterable[LiftRow]) -> _Totals:
    totals = _Totals(Counter(), Counter())
    for row in rows:
        # Not judged: no lift of the street's rates (data quality counts it). A row built before wire
        # 1.4, or by a simulation writing lifts itself (trivue.sim.reminder_effect), has no such key.
        if row.get("view_unusable") is not None:
            continue
        key = (row["street_id"] or UNMATCHED, row["day"], row["stream"])
        judged = row.get("overruled_at") is None  # an overruled lift counts clean: no error, no alert, score 0
        totals.days[(*key, "lifts")] += 1
        totals.days[(*key, "contaminated")] += int(judged and row["contaminated"])
        totals.days[(*key, "alerts")] += int(judged and row["has_alert"])
        totals.days[(*key, "score")] += row["score"] if judged else 0
        items: Counter[tuple[str, str]] = Counter()
        for error in row["errors"] if judged else ():
            items[(error["category"], error["severity"])] += error["count"]
        for kind, count in items.items():
            totals.errors[(*key, *kind, "lifts")] += counts_lift(kind, items)
            totals.errors[(*key, *kind, "items")] += count
    return totals


def _pivot(counter: Counter[Any], measures: tuple[str, ...], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for (*key, measure), value in counter.items():
        row = rows.setdefault(tuple(key), {**dict(zip(keys, key, strict=True)), **dict.fromkeys(measures, 0)})
        row[measure] = value
    # A fixed order keeps concurrent server processes from deadlocking on PostgreSQL.
    return [rows[key] for key in sorted(rows)]


def upsert_sums(session: Session, table: Table, keys: tuple[str, ...], measures: tuple[str, ...],
                values: list[dict[str, Any]]) -> None:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE SET m = m + excluded.m`` for every measure."""
    if not values:
        return
    updates = ", ".join(f"{m} = {table.name}.{m} + excluded.{m}" for m in measures)
    tail = f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    if session.get_bind().dialect.name == "postgresql":
        unnest_insert(session, table, values, tail)
    else:
        sqlite_executemany(session, table, values, tail)


def add_to_aggregates(session: Session, rows: Iterable[LiftRow], *, sign: int = 1) -> None:
    """Add lifts to the street aggregates and their roll-ups; ``sign=-1`` takes them out again
    (rows left at zero are deleted), e.g. when a lift moves to another street."""
    rows = list(rows)
    totals = _tally(rows)
    matching = quality.tally_quality(rows)
    if sign != 1:
        totals = _Totals(Counter({k: sign * v for k, v in totals.days.items()}),
                         Counter({k: sign * v for k, v in totals.errors.items()}))
        matching = Counter({k: sign * v for k, v in matching.items()})
    periods, period_errors = roll_up(totals.days, totals.errors)
    for table, counter, keys, measures in (
        (StreetDay.__table__, totals.days, ("street_id", "day", "stream"), TOTALS),
        (StreetDayError.__table__, totals.errors, ("street_id", "day", "stream", "category", "severity"), ERRORS),
        (StreetPeriod.__table__, periods, PERIOD_KEYS, TOTALS),
        (StreetPeriodError.__table__, period_errors, ERROR_KEYS, ERRORS),
        (quality.TABLE, matching, quality.KEYS, quality.MEASURES),
    ):
        upsert_sums(session, table, keys, measures, _pivot(counter, measures, keys))
    if sign < 0:
        days = {key[1] for key in totals.days}
        for table, empty in ((StreetDay, StreetDay.lifts == 0),
                             (StreetDayError, (StreetDayError.lifts == 0) & (StreetDayError.items == 0))):
            session.execute(delete(table).where(empty, table.day.in_(sorted(days))))
        drop_emptied(session, {key[2] for key in periods})
        quality.drop_empty_quality(session, days)


def move_confidence(session: Session, before: Iterable[LiftRow], after: Iterable[LiftRow]) -> None:
    """Move lifts whose street confidence alone changed (``before`` -> ``after``, the same lifts)
    between the data-quality tenths; every other count stays."""
    moves = quality.tally_quality(after)
    moves.subtract(quality.tally_quality(before))
    moves = Counter({key: n for key, n in moves.items() if n})
    upsert_sums(session, quality.TABLE, quality.KEYS, quality.MEASURES, _pivot(moves, quality.MEASURES, quality.KEYS))


def rebuild_aggregates(session: Session, since: date | None = None) -> int:
    """Recompute aggregates from raw lifts for days >= ``since`` (all when None), then their
    roll-ups; returns lifts read.

    Days older than the raw-lift retention keep their aggregates: the raw rows are gone, and
    street-level totals are exactly what retention is meant to keep.

    Two ``INSERT ... SELECT ... GROUP BY`` run inside the database (errors unpacked with
    ``json_each`` / ``json_array_elements``): the same totals as adding every lift through
    ``add_to_aggregates``, but a year of 10 million lifts is rebuilt in a minute or so instead of
    streaming every row through Python.
    """
    for table in (StreetDay, StreetDayError):
        query = delete(table)
        session.execute(query.where(table.day >= since) if since is not None else query)
    sqlite_db = session.get_bind().dialect.name == "sqlite"
    where = "WHERE l.day >= :since" if since is not None else ""

    def run(sql: str) -> Any:
        statement = text(sql)
        if since is not None:  # typed, so SQLite gets the same 'YYYY-MM-DD' text the ORM stores
            statement = statement.bindparams(bindparam("since", since, type_=Date))
        return session.execute(statement)

    street = f"COALESCE(l.street_id, {UNMATCHED})"
    judged = "l.overruled_at IS NULL"  # an overruled lift counts clean, as in _tally
    seen = "l.view_unusable IS NULL"  # a lift whose view was unusable counts nowhere here, as in _tally
    where_seen = f"{where} AND {seen}" if where else f"WHERE {seen}"
    run(f"""INSERT INTO street_days (street_id, day, stream, lifts, contaminated, alerts, score)
            SELECT {street}, l.day, l.stream, COUNT(*), SUM(CASE WHEN l.contaminated AND {judged} THEN 1 ELSE 0 END),
                   SUM(CASE WHEN l.has_alert AND {judged} THEN 1 ELSE 0 END),
                   SUM(CASE WHEN {judged} THEN l.score ELSE 0 END)
            FROM lifts l {where_seen} GROUP BY {street}, l.day, l.stream
            ORDER BY l.day, {street}, l.stream""")
    if sqlite_db:
        expand = "json_each(l.errors) AS e"
        category, severity = "json_extract(e.value, '$.category')", "json_extract(e.value, '$.severity')"
        count = "json_extract(e.value, '$.count')"
    else:
        expand = "json_array_elements(l.errors) AS e(value)"
        category, severity = "(e.value ->> 'category')", "(e.value ->> 'severity')"
        count = "CAST(e.value ->> 'count' AS INTEGER)"
    # Per lift first: a lift with two classes of one category counts once in ``lifts``, and once
    # over its category's error and alert rows (as _tally, ``counts_lift``).
    # Rows are written day by day, as ingest writes them: a period query then reads a few adjacent
    # pages (street by street, a month of PostgreSQL street_day_errors touched every page).
    error, alert = Severity.error.value, Severity.alert.value
    run(f"""INSERT INTO street_day_errors (street_id, day, stream, category, severity, lifts, items)
            SELECT street_id, day, stream, category, severity,
                   SUM(CASE WHEN severity = '{error}' AND alerted = 1 THEN 0 ELSE 1 END), SUM(items) FROM (
                SELECT l.id, {street} AS street_id, l.day, l.stream, {category} AS category,
                       {severity} AS severity, SUM({count}) AS items,
                       MAX(CASE WHEN {severity} = '{alert}' THEN 1 ELSE 0 END)
                           OVER (PARTITION BY l.id, {category}) AS alerted
                FROM lifts l, {expand} WHERE {judged} AND {seen} {where.replace("WHERE", "AND")}
                GROUP BY l.id, {street}, l.day, l.stream, {category}, {severity}) AS per_lift
            GROUP BY street_id, day, stream, category, severity
            ORDER BY day, street_id, stream, category, severity""")
    rebuild_rollups(session, since)
    quality.rebuild_quality(session, since)
    return int(run(f"SELECT COUNT(*) FROM lifts l {where}").scalar_one())
