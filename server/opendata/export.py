"""Open data: sorting quality per street, month (or year) and stream, safe to publish on data.gouv.fr.

Everything comes from the street aggregates, never from raw lifts: no address, bin tag, photo,
truck or time of day exists at that level, whatever the household-level switch says. The sums are
read from their month and year roll-ups (``street_periods`` / ``street_period_errors``, kept by
ingest beside ``street_days``): the export publishes whole periods only, so one roll-up row is a
cell, where summing every collection day of several years took seconds (bench/opendata.py).
Cells (street, period, stream) with fewer than ``k`` lifts are left out entirely, and so are the
streets of fewer than ``households`` known addresses (k-anonymity counts people: a dead end of one
household is 52 lifts a year, each its own), or of none known unless the operator accepts the risk.
The figures are under Licence Ouverte / Etalab 2.0; street names and geometries come from
OpenStreetMap, under ODbL. ``datapackage.json`` (Frictionless Data Package, a Table Schema per
file, ``server.opendata.package``) says so for each file.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from server.ingest.models import ALL_STREAMS, UNMATCHED, StreetPeriod, StreetPeriodError
from server.ingest.rollups import MONTH, YEAR
from server.streets.models import Address, Street
from server.web.csvexport import csv_pieces as rows_csv_pieces
from server.web.reports import wilson

PERIODS = ("month", "year")
MIN_K = 5  # below this no threshold protects anyone: refused whatever the settings say
DEFAULT_K = 10
# Households: the real addresses linked to a street. Under 3, each of two households learns the other's
# sorting by taking away its own (statistical secrecy's frequency rule); 5 by default (docs/opendata.md).
MIN_HOUSEHOLDS = 3
DEFAULT_HOUSEHOLDS = 5
TOP_ERRORS = 3
DECIMALS = 4
CSV_NAME, GEOJSON_NAME, PACKAGE_NAME = "streets.csv", "streets.geojson", "datapackage.json"
GEOJSON_HEAD, GEOJSON_TAIL = '{"type":"FeatureCollection","features":[', "]}\n"
PIECE_ROWS = 1000  # rows per piece of a streamed answer: ~100 kB of CSV, a few hundred kB of GeoJSON
COLUMNS = ("street_id", "street_name", "commune", "code_insee", "period", "stream", "lifts", "contaminated_lifts",
           "rate", "ci_low", "ci_high", *(f"top_error_{i}" for i in range(1, TOP_ERRORS + 1)))


# How a refused query names its fields; the command passes its options instead (``QueryError.named``).
FIELD_NAMES = {"period": "the period", "k": "k", "months_k": "months_k", "since": "since", "until": "until",
               "households": "households"}


class QueryError(ValueError):
    """A refused query; ``str()`` names the fields as the API's parameters are named, ``named()``
    as the caller's (the command's ``--months-k``: its users never typed ``months_k``)."""

    def __init__(self, template: str, **values: object) -> None:
        self.template, self.values = template, values
        super().__init__(self.named(FIELD_NAMES))

    def named(self, names: dict[str, str]) -> str:
        return self.template.format(**{**FIELD_NAMES, **names}, **self.values)


@dataclass(frozen=True, slots=True)
class OpenDataQuery:
    """What to publish: the period length, the threshold ``k`` and the local days covered (inclusive).

    ``months_k`` (years only): the ``k`` of the monthly export published beside this one, when it
    differs (``k`` scaled to the households a period holds); the months it left out must not be
    had as a year minus its published months.
    ``households``: a street of fewer known addresses is left out whatever its lifts; one with none
    known too, unless ``publish_without_addresses`` (the operator's risk, ``household_counts``).
    """

    period: str = "month"
    k: int = DEFAULT_K
    since: date | None = None
    until: date | None = None
    months_k: int | None = None
    households: int = DEFAULT_HOUSEHOLDS
    publish_without_addresses: bool = False

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise QueryError("period: expected one of {periods}, got {value!r}", periods=", ".join(PERIODS),
                             value=self.period)
        if self.k < MIN_K:
            raise QueryError("{k}: cells under {min_k} lifts are never published, got {value}", min_k=MIN_K,
                             value=self.k)
        if self.months_k is not None and self.period != "year":
            raise QueryError("{months_k}: only with {period} year, got {value} with {period} {chosen}",
                             value=self.months_k, chosen=self.period)
        if self.households < MIN_HOUSEHOLDS:
            raise QueryError("{households}: streets of fewer than {floor} known addresses are never published, "
                             "got {value}", floor=MIN_HOUSEHOLDS, value=self.households)
        if self.months_k is not None and self.months_k < MIN_K:
            raise QueryError("{months_k}: cells under {min_k} lifts are never published, got {value}", min_k=MIN_K,
                             value=self.months_k)
        if self.since and self.until and self.until < self.since:
            raise QueryError("{until} {last} is before {since} {first}", last=self.until, first=self.since)
        # Whole periods only: a month cut short beside the same month whole (or the same month a
        # day later) publishes the difference, the few lifts of the days between, under k.
        if self.since is not None and self.since != period_start(self.since, self.period):
            raise QueryError("{since} {day}: the open data publishes whole {length}s only, start on {start}",
                             day=self.since, length=self.period, start=period_start(self.since, self.period))
        if self.until is not None and self.until != period_end(self.until, self.period):
            raise QueryError("{until} {day}: the open data publishes whole {length}s only, end on {end}",
                             day=self.until, length=self.period, end=period_end(self.until, self.period))


def period_start(day: date, period: str) -> date:
    return day.replace(day=1) if period == "month" else day.replace(month=1, day=1)


def period_end(day: date, period: str) -> date:
    """The last day of ``day``'s month or year."""
    if period == "year" or day.month == 12:  # December: no next month to count back from in year 9999
        return day.replace(month=12, day=31)
    following = day.replace(day=28) + timedelta(days=4)  # always in the next month
    return following - timedelta(days=following.day)


def period_key(day: date, period: str) -> str:
    return f"{day:%Y-%m}" if period == "month" else f"{day:%Y}"


def last_complete_day(today: date, period: str) -> date:
    """The eve of the current period: a month still being collected is not published half-counted."""
    return period_start(today, period) - timedelta(days=1)


def default_query(today: date, period: str = "month", k: int = DEFAULT_K, since: date | None = None,
                  until: date | None = None, months_k: int | None = None, households: int = DEFAULT_HOUSEHOLDS,
                  publish_without_addresses: bool = False) -> OpenDataQuery:
    """``until`` defaults to the last complete period before ``today`` (a local day), and may not be
    later: the period still being collected, published today and again tomorrow, would give away
    the lifts of the day between."""
    last = last_complete_day(today, period)
    if since is not None and until is None and since > last:
        # Said as such, not as "until <last> is before since", a range nobody typed.
        raise QueryError("{since} {day}: the {length} is still being collected (today is {today}); the last "
                         "complete one ends on {last}", day=since, length=period, today=today, last=last)
    query = OpenDataQuery(period, k, since, until if until is not None else last, months_k, households,
                          publish_without_addresses)  # checks the period
    if query.until is not None and query.until > last:
        raise QueryError("{until} {day}: the {length} is still being collected (today is {today}); the last "
                         "complete one ends on {last}", day=query.until, length=period, today=today, last=last)
    return query


Cell = tuple[int, str, str]  # street id, period key, stream
# A published cell of a street: period key, stream, lifts, contaminated lifts, its top error categories
# (at most TOP_ERRORS). A tuple, not a row of 14 named values: a métropole's history is ~260,000 of them,
# held from the query to the last byte of each request (docs/opendata.md, bench/opendata_memory.py).
PublishedCell = tuple[str, str, int, int, tuple[str, ...]]


def months_k(q: OpenDataQuery) -> int:
    return q.k if q.months_k is None else q.months_k


def _units(query: Any, table: type[StreetPeriod] | type[StreetPeriodError], span: str, q: OpenDataQuery) -> Any:
    # Whole periods only (OpenDataQuery): a month or year unit lies inside [since, until] exactly
    # when its first day does, so no edge days are ever read from street_days.
    query = query.where(table.span == span, table.stream != ALL_STREAMS, table.street_id != UNMATCHED)
    if q.since is not None:
        query = query.where(table.start >= q.since)
    if q.until is not None:
        query = query.where(table.start <= q.until)
    return query


def _keys(period: str) -> Callable[[date], str]:
    """``period_key`` computed once per first day: formatting a date on each of a million rows
    cost more than reading them (and each cell then shares its period's one string)."""
    cache: dict[date, str] = {}

    def key(day: date) -> str:
        found = cache.get(day)
        if found is None:
            found = cache[day] = period_key(day, period)
        return found

    return key


def _cells(session: Session, q: OpenDataQuery) -> Iterator[tuple[int, str, str, int, int, dict[str, list[int]]]]:
    """Every cell once, from the month or year roll-ups: street id, period key, stream, lifts,
    contaminated lifts and its lifts and items per error category (info excluded).

    One query, each cell's totals joined to its error rows and read in the primary key's order, so
    that a cell's rows come together: only the cell being read has an error count in memory, where
    a dictionary of them per cell of a métropole's history took ~150 MiB per request.
    """
    p, e = StreetPeriod, StreetPeriodError
    span, key = (MONTH if q.period == "month" else YEAR), _keys(q.period)
    same_cell = and_(e.span == p.span, e.stream == p.stream, e.start == p.start, e.street_id == p.street_id,
                     e.severity != "info")
    query = _units(select(p.street_id, p.start, p.stream, p.lifts, p.contaminated, e.category, e.lifts, e.items)
                   .outerjoin(e, same_cell), p, span, q).order_by(p.stream, p.start, p.street_id)
    # Core rows through the session's connection (the ORM's row processing cost seconds a million
    # rows), fetched in batches: PostgreSQL's driver otherwise holds the whole result in memory.
    rows = session.connection().execute(query.execution_options(yield_per=10_000))
    cell: tuple[Any, ...] | None = None
    errors: dict[str, list[int]] = {}
    for sid, start, stream, lifts, contaminated, category, category_lifts, items in rows:
        if cell is None or sid != cell[0] or start != cell[1] or stream != cell[2]:
            if cell is not None:
                yield cell[0], key(cell[1]), cell[2], cell[3], cell[4], errors
            cell, errors = (sid, start, stream, int(lifts), int(contaminated)), {}
        if category is not None:  # a cell without error rows has one row of NULLs from the outer join
            counts = errors.setdefault(category, [0, 0])  # one row per severity: summed
            counts[0] += int(category_lifts)
            counts[1] += int(items)
    if cell is not None:
        yield cell[0], key(cell[1]), cell[2], cell[3], cell[4], errors


def _small_months(session: Session, q: OpenDataQuery) -> dict[Cell, int]:
    """The lifts of each (street, month, stream) under the months' ``k``: the others are never hidden."""
    month = _keys("month")
    small = session.connection().execute(_units(select(StreetPeriod.street_id, StreetPeriod.start,
                                                       StreetPeriod.stream, StreetPeriod.lifts),
                                                StreetPeriod, MONTH, q).where(StreetPeriod.lifts < months_k(q)))
    return {(sid, month(start), stream): int(lifts) for sid, start, stream, lifts in small}


def _differenced(months: dict[Cell, int], q: OpenDataQuery) -> set[Cell]:
    """The years that, beside the monthly export (at ``months_k``, else ``k``), give away the months it left out.

    A year minus its published months is the sum of the months left out, contaminated lifts
    included: 13 lifts in a year, 10 of them in a published October, publish August's 3. A year
    is safe when the lifts of its months left out are none, or as many as a published month (a
    cell like any other, merged over months); otherwise it is held back too (complementary
    suppression).
    """
    hidden: dict[Cell, int] = defaultdict(int)
    for (sid, month, stream), lifts in months.items():
        if lifts < months_k(q):
            hidden[(sid, month[:4], stream)] += lifts
    return {cell for cell, lifts in hidden.items() if 0 < lifts < months_k(q)}


def _top_errors(counts: dict[str, list[int]]) -> tuple[str, ...]:
    """Most lifts first, then most items, then the category's name: the dashboard's order
    (``server.web.reports``), so that a street's month shows the same top errors in both."""
    ranked = sorted((c for c, (lifts, _) in counts.items() if lifts > 0),
                    key=lambda c: (-counts[c][0], -counts[c][1], c))
    return tuple(ranked[:TOP_ERRORS])


@dataclass(frozen=True, slots=True)
class PublishedStreet:
    """A street with published cells, and those cells in the order published (period, then stream)."""

    id: int
    name: str
    commune: str
    code_insee: str | None
    geometry: str  # stored GeoJSON geometry text
    cells: list[PublishedCell]


@dataclass(frozen=True, slots=True)
class Publication:
    """The rows to publish, street by street in the order published, and how many cells were held
    back (said to the operator and in datapackage.json, never which): ``suppressed`` in all, of them
    ``few_households`` on streets of fewer than ``households`` known addresses and ``no_addresses``
    on streets of none known; the rest under ``k`` lifts, or a year giving away its months."""

    streets: list[PublishedStreet]
    suppressed: int
    few_households: int = 0
    no_addresses: int = 0
    # Where the published codes INSEE came from (``code_sources``): what datapackage.json names.
    code_sources: frozenset[str] = frozenset()

    @property
    def under_k(self) -> int:
        """The cells held back for their lifts (or a year's months), on streets of enough households."""
        return self.suppressed - self.few_households - self.no_addresses

    @property
    def count(self) -> int:
        """The rows published."""
        return sum(len(street.cells) for street in self.streets)

    def values(self) -> Iterator[tuple[PublishedStreet, tuple[Any, ...]]]:
        """Each row's street and values in ``COLUMNS`` order, computed as they are written."""
        for street in self.streets:
            for period, stream, lifts, contaminated, top in street.cells:
                low, high = wilson(contaminated, lifts)
                yield street, (street.id, street.name, street.commune, street.code_insee, period, stream, lifts,
                               contaminated, round(contaminated / lifts, DECIMALS), round(low, DECIMALS),
                               round(high, DECIMALS), *top, *(None,) * (TOP_ERRORS - len(top)))

    def records(self) -> Iterator[dict[str, Any]]:
        """Each row as a dictionary of ``COLUMNS``, made one at a time."""
        return (dict(zip(COLUMNS, values, strict=True)) for _, values in self.values())


def publication(session: Session, q: OpenDataQuery) -> Publication:
    """What to publish for ``q``: every row is read and sorted here, before the first byte is written."""
    differenced = _differenced(_small_months(session, q), q) if q.period == "year" else set()
    homes = household_counts(session)  # static: read once, as the roll-ups are
    # Equal strings read from a million rows are as many objects: each cell keeps the first one.
    shared: dict[Any, Any] = {}
    by_street: dict[int, list[PublishedCell]] = defaultdict(list)
    cells = few = unknown = 0
    for sid, key, stream, lifts, contaminated, errors in _cells(session, q):
        cells += 1
        known = homes.get(sid, 0)
        if not known and not q.publish_without_addresses:
            unknown += 1
            continue
        if 0 < known < q.households:  # checked first: the same cells left out of months and years alike
            few += 1
            continue
        if lifts < q.k or (differenced and (sid, key, stream) in differenced):
            continue
        top = _top_errors(errors)
        by_street[sid].append((key, shared.setdefault(stream, stream), lifts, contaminated,
                               shared.setdefault(top, top)))
    found = session.connection().execute(
        select(Street.id, Street.name, Street.commune, Street.code_insee, Street.geometry)
        .where(Street.id.in_(by_street))) if by_street else []
    streets = []  # a street deleted since has nothing to name it by: its cells are held back
    for sid, name, commune, code_insee, geometry in found:
        streets.append(PublishedStreet(sid, name, commune, code_insee, geometry,
                                       sorted(by_street[sid], key=lambda cell: (cell[0], cell[1]))))
    streets.sort(key=lambda street: (street.commune, street.name, street.id))
    return Publication(streets, cells - sum(len(street.cells) for street in streets), few, unknown,
                       code_sources(session, streets))


def household_counts(session: Session) -> dict[int, int]:
    """The real addresses linked to each street (BAN or the local file, ``trivue addresses import``):
    the households the export can vouch for. Not the bin registry (a household has a bin per stream,
    a building one for all) nor the bin tags of lifts (not kept at street level, and gone after
    ``retention_days`` while the roll-ups stay); not the ``synthetic`` addresses of demos, made up
    every 25 m along a street whoever lives there. One grouped query per export."""
    rows = session.connection().execute(
        select(Address.street_id, func.count()).where(Address.street_id.is_not(None), Address.synthetic.is_(False))
        .group_by(Address.street_id))
    return {int(sid): int(count) for sid, count in rows}


def code_sources(session: Session, streets: list[PublishedStreet]) -> frozenset[str]:
    """``ban`` when a street's code is one its linked BAN addresses carry (``refresh_street_codes``),
    ``import`` when another's is not (the OSM commune boundary's ``ref:INSEE``, or ``--insee``)."""
    coded = {street.id for street in streets if street.code_insee is not None}
    backed: set[int] = set()
    ids = sorted(coded)
    for start in range(0, len(ids), 10_000):  # bound the IN list of a national export
        backed.update(session.connection().execute(
            select(Address.street_id).distinct().join(Street, Street.id == Address.street_id)
            .where(Address.street_id.in_(ids[start:start + 10_000]), Address.code_insee == Street.code_insee)
        ).scalars())
    return frozenset({"ban"} if backed else set()) | frozenset({"import"} if coded - backed else set())


def csv_pieces(pub: Publication, rows_per_piece: int = PIECE_ROWS) -> Iterator[str]:
    """The CSV in pieces of ``rows_per_piece`` rows, for a streamed response; names from
    OpenStreetMap never run as spreadsheet formulas (``server.web.csvexport``)."""
    return rows_csv_pieces(COLUMNS, (values for _, values in pub.values()), rows_per_piece)


def to_csv(pub: Publication) -> str:
    return "".join(csv_pieces(pub))


def _feature(street: PublishedStreet, values: tuple[Any, ...]) -> str:
    properties = json.dumps(dict(zip(COLUMNS, values, strict=True)), ensure_ascii=False, allow_nan=False,
                            separators=(",", ":"))
    feature_id = json.dumps(f"{street.id}-{values[4]}-{values[5]}")  # street id, period, stream
    return f'{{"type":"Feature","id":{feature_id},"geometry":{street.geometry or "null"},"properties":{properties}}}'


def geojson_pieces(pub: Publication, rows_per_piece: int = PIECE_ROWS) -> Iterator[str]:
    """One feature per published row, with its street's geometry (ODbL) and the row as properties,
    in pieces of ``rows_per_piece`` features, for a streamed response."""
    yield GEOJSON_HEAD
    features: list[str] = []
    first = True
    for street, values in pub.values():
        features.append(_feature(street, values))
        if len(features) == rows_per_piece:
            yield ("" if first else ",\n") + ",\n".join(features)
            features, first = [], False
    if features:
        yield ("" if first else ",\n") + ",\n".join(features)
    yield GEOJSON_TAIL


def to_geojson(pub: Publication) -> str:
    return "".join(geojson_pieces(pub))
