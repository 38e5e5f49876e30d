"""Open data: sorting quality per street, month (or year) and stream, safe to publish on data.gouv.fr.

Everything comes from the street aggregates, never from raw lifts: no address, bin tag, photo,
truck or time of day exists at that level, whatever the household-level switch says. The sums are
read from their month and year roll-ups (``street_periods`` / ``street_period_errors``, kept by
ingest beside ``street_days``): the export publishes whole periods only, so one roll-up row is a
cell, where summing every collection day of several years took seconds (bench/opendata.py).
Cells (street, period, stream) with fewer than ``k`` lifts are left out entirely (k-anonymity
threshold: a street with a handful of bins points at households).
The figures are under Licence Ouverte / Etalab 2.0; street names and geometries come from
OpenStreetMap, under ODbL. ``datapackage.json`` (Frictionless Data Package, a Table Schema per
file) says so for each file.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ingest.models import ALL_STREAMS, UNMATCHED, StreetPeriod, StreetPeriodError
from server.ingest.rollups import MONTH, YEAR
from server.streets.models import Street
from server.web.csvexport import csv_pieces as rows_csv_pieces
from server.web.csvexport import rows_csv
from server.web.reports import wilson
from vision.schema import Stream

PERIODS = ("month", "year")
MIN_K = 5  # below this no threshold protects anyone: refused whatever the settings say
DEFAULT_K = 10
TOP_ERRORS = 3
DECIMALS = 4
CSV_NAME, GEOJSON_NAME, PACKAGE_NAME = "streets.csv", "streets.geojson", "datapackage.json"
GEOJSON_HEAD, GEOJSON_TAIL = '{"type":"FeatureCollection","features":[', "]}\n"
PIECE_ROWS = 1000  # rows per piece of a streamed answer: ~100 kB of CSV, a few hundred kB of GeoJSON
COLUMNS = ("street_id", "street_name", "commune", "code_insee", "period", "stream", "lifts", "contaminated_lifts",
           "rate", "ci_low", "ci_high", *(f"top_error_{i}" for i in range(1, TOP_ERRORS + 1)))

ETALAB = {"name": "etalab-2.0", "title": "Licence Ouverte / Open Licence version 2.0 (figures)",
          "path": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"}
ODBL = {"name": "ODbL-1.0", "title": "Open Database License 1.0 (street names and geometries, OpenStreetMap)",
        "path": "https://opendatacommons.org/licenses/odbl/1-0/"}
OSM_SOURCE = {"title": "© les contributeurs d'OpenStreetMap", "path": "https://www.openstreetmap.org/copyright"}
# code_insee comes from the BAN addresses linked to each street (else the street import: docs/streets.md).
BAN_SOURCE = {"title": "Base Adresse Nationale (codes INSEE des communes)", "path": "https://adresse.data.gouv.fr"}
CODE_INSEE_PATTERN = r"^(?:[0-9]{2}|2[AB])[0-9]{3}$"  # as server.streets.insee checks it


@dataclass(frozen=True, slots=True)
class OpenDataQuery:
    """What to publish: the period length, the threshold ``k`` and the local days covered (inclusive).

    ``months_k`` (years only): the ``k`` of the monthly export published beside this one, when it
    differs (``k`` scaled to the households a period holds); the months it left out must not be
    had as a year minus its published months.
    """

    period: str = "month"
    k: int = DEFAULT_K
    since: date | None = None
    until: date | None = None
    months_k: int | None = None

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise ValueError(f"period: expected one of {', '.join(PERIODS)}, got {self.period!r}")
        if self.k < MIN_K:
            raise ValueError(f"k: cells under {MIN_K} lifts are never published, got {self.k}")
        if self.months_k is not None and self.period != "year":
            raise ValueError(f"months_k: only with the period year, got {self.months_k} with {self.period}")
        if self.months_k is not None and self.months_k < MIN_K:
            raise ValueError(f"months_k: cells under {MIN_K} lifts are never published, got {self.months_k}")
        if self.since and self.until and self.until < self.since:
            raise ValueError(f"until {self.until} is before since {self.since}")
        # Whole periods only: a month cut short beside the same month whole (or the same month a
        # day later) publishes the difference, the few lifts of the days between, under k.
        if self.since is not None and self.since != period_start(self.since, self.period):
            raise ValueError(f"since {self.since}: the open data publishes whole {self.period}s only, start on "
                             f"{period_start(self.since, self.period)}")
        if self.until is not None and self.until != period_end(self.until, self.period):
            raise ValueError(f"until {self.until}: the open data publishes whole {self.period}s only, end on "
                             f"{period_end(self.until, self.period)}")


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
                  until: date | None = None, months_k: int | None = None) -> OpenDataQuery:
    """``until`` defaults to the last complete period before ``today`` (a local day), and may not be
    later: the period still being collected, published today and again tomorrow, would give away
    the lifts of the day between."""
    last = last_complete_day(today, period)
    if since is not None and until is None and since > last:
        # Said as such, not as "until <last> is before since", a range nobody typed.
        raise ValueError(f"since {since}: the {period} is still being collected (today is {today}); the last "
                         f"complete one ends on {last}")
    query = OpenDataQuery(period, k, since, until if until is not None else last, months_k)  # checks the period
    if query.until is not None and query.until > last:
        raise ValueError(f"until {query.until}: the {period} is still being collected "
                         f"(today is {today}); the last complete one ends on {last}")
    return query


Cell = tuple[int, str, str]  # street id, period key, stream
Totals = dict[Cell, list[int]]  # cell -> [lifts, contaminated lifts]


@dataclass(frozen=True, slots=True)
class Figures:
    """Where a publication's sums come from; what is published from them (thresholds, the
    differencing guard, the top errors) does not depend on it.

    ``totals(session, q)`` gives each cell's lifts and contaminated lifts and, with years, the
    lifts of each (street, month, stream) with fewer than the months' ``k`` (the others are never
    hidden, so they may be left out). ``errors(session, q)`` gives each cell's lifts per error
    category, info excluded.
    """

    totals: Callable[[Session, OpenDataQuery], tuple[Totals, dict[Cell, int]]]
    errors: Callable[[Session, OpenDataQuery], dict[Cell, dict[str, int]]]


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
    cost more than reading them."""
    cache: dict[date, str] = {}

    def key(day: date) -> str:
        found = cache.get(day)
        if found is None:
            found = cache[day] = period_key(day, period)
        return found

    return key


def _rolled_totals(session: Session, q: OpenDataQuery) -> tuple[Totals, dict[Cell, int]]:
    """From the month or year roll-ups: one row per cell instead of every collection day of it."""
    span, key = (MONTH if q.period == "month" else YEAR), _keys(q.period)
    # Core rows, through the session's connection: the ORM's row processing cost seconds a million rows.
    connection = session.connection()
    rows = connection.execute(_units(select(StreetPeriod.street_id, StreetPeriod.start, StreetPeriod.stream,
                                            StreetPeriod.lifts, StreetPeriod.contaminated), StreetPeriod, span, q))
    totals = {(sid, key(start), stream): [int(lifts), int(contaminated)]
              for sid, start, stream, lifts, contaminated in rows}
    if q.period == "month":
        return totals, {}
    month = _keys("month")
    small = connection.execute(_units(select(StreetPeriod.street_id, StreetPeriod.start, StreetPeriod.stream,
                                             StreetPeriod.lifts), StreetPeriod, MONTH, q)
                               .where(StreetPeriod.lifts < months_k(q)))
    return totals, {(sid, month(start), stream): int(lifts) for sid, start, stream, lifts in small}


def _rolled_errors(session: Session, q: OpenDataQuery) -> dict[Cell, dict[str, int]]:
    span, key = (MONTH if q.period == "month" else YEAR), _keys(q.period)
    counts: dict[Cell, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows = session.connection().execute(_units(select(StreetPeriodError.street_id, StreetPeriodError.start,
                                                      StreetPeriodError.stream, StreetPeriodError.category,
                                                      StreetPeriodError.lifts), StreetPeriodError, span, q)
                                        .where(StreetPeriodError.severity != "info"))
    for sid, start, stream, category, lifts in rows:
        counts[(sid, key(start), stream)][category] += int(lifts)
    return counts


ROLL_UPS = Figures(_rolled_totals, _rolled_errors)


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


def _top_errors(counts: dict[Cell, dict[str, int]], cells: set[Cell]) -> dict[Cell, list[str]]:
    return {cell: [c for c, _ in sorted(by.items(), key=lambda item: (-item[1], item[0]))[:TOP_ERRORS]]
            for cell, by in counts.items() if cell in cells}


@dataclass(frozen=True, slots=True)
class Publication:
    """The rows to publish and how many cells the threshold held back (said to the operator, not published)."""

    rows: list[dict[str, Any]]
    suppressed: int
    geometries: dict[int, str]  # street id -> stored GeoJSON geometry text


def publication(session: Session, q: OpenDataQuery, figures: Figures = ROLL_UPS) -> Publication:
    totals, months = figures.totals(session, q)
    differenced = _differenced(months, q) if q.period == "year" else set()
    kept = {cell for cell, (lifts, _) in totals.items() if lifts >= q.k and cell not in differenced}
    streets = {row.id: row for row in session.execute(
        select(Street.id, Street.name, Street.commune, Street.code_insee, Street.geometry)
        .where(Street.id.in_({sid for sid, _, _ in kept})))} if kept else {}
    kept = {cell for cell in kept if cell[0] in streets}  # a street deleted since: nothing to name it by
    errors = _top_errors(figures.errors(session, q), kept) if kept else {}
    rows = []
    for cell in kept:
        sid, key, stream = cell
        lifts, contaminated = totals[cell]
        low, high = wilson(contaminated, lifts)
        top = errors.get(cell, [])
        rows.append({"street_id": sid, "street_name": streets[sid].name, "commune": streets[sid].commune,
                     "code_insee": streets[sid].code_insee, "period": key, "stream": stream, "lifts": lifts,
                     "contaminated_lifts": contaminated,
                     "rate": round(contaminated / lifts, DECIMALS), "ci_low": round(low, DECIMALS),
                     "ci_high": round(high, DECIMALS),
                     **{f"top_error_{i + 1}": top[i] if i < len(top) else None for i in range(TOP_ERRORS)}})
    rows.sort(key=lambda r: (r["commune"], r["street_name"], r["street_id"], r["period"], r["stream"]))
    return Publication(rows, len(totals) - len(kept), {sid: row.geometry for sid, row in streets.items()})


def to_csv(pub: Publication) -> str:
    return rows_csv(COLUMNS, pub.rows)


def csv_pieces(pub: Publication, rows_per_piece: int = PIECE_ROWS) -> Iterator[str]:
    """``to_csv`` in pieces, for a streamed response: the same text once joined."""
    return rows_csv_pieces(COLUMNS, pub.rows, rows_per_piece)


def _feature(row: dict[str, Any], geometries: dict[int, str]) -> str:
    properties = json.dumps(row, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    feature_id = json.dumps(f"{row['street_id']}-{row['period']}-{row['stream']}")
    geometry = geometries.get(row["street_id"]) or "null"
    return f'{{"type":"Feature","id":{feature_id},"geometry":{geometry},"properties":{properties}}}'


def to_geojson(pub: Publication) -> str:
    """One feature per published row, with its street's geometry (ODbL) and the row as properties."""
    parts = [_feature(row, pub.geometries) for row in pub.rows]
    return GEOJSON_HEAD + ",\n".join(parts) + GEOJSON_TAIL


def geojson_pieces(pub: Publication, rows_per_piece: int = PIECE_ROWS) -> Iterator[str]:
    """``to_geojson`` in pieces of ``rows_per_piece`` features, for a streamed response."""
    yield GEOJSON_HEAD
    rows = pub.rows
    for first in range(0, len(rows), rows_per_piece):
        features = ",\n".join(_feature(row, pub.geometries) for row in rows[first:first + rows_per_piece])
        yield features if first == 0 else ",\n" + features
    yield GEOJSON_TAIL


# The interval counts every lift as independent; a bin lifted at each round is not: said to re-users.
WILSON = ("Intervalle de Wilson à 95 % qui compte chaque levée comme indépendante ; les levées d'un même bac "
          "ne le sont pas tout à fait : l'incertitude réelle est un peu plus grande, surtout pour les petites "
          "cases.")


def _fields(q: OpenDataQuery) -> list[dict[str, Any]]:
    share = {"type": "number", "constraints": {"required": True, "minimum": 0, "maximum": 1}}
    pattern = r"^\d{4}-\d{2}$" if q.period == "month" else r"^\d{4}$"
    return [
        {"name": "street_id", "type": "integer", "title": "Identifiant Trivue de la rue",
         "constraints": {"required": True, "minimum": 1}},
        {"name": "street_name", "type": "string", "title": "Nom de la rue (OpenStreetMap)"},
        {"name": "commune", "type": "string", "title": "Commune"},
        {"name": "code_insee", "type": "string", "title": "Code INSEE de la commune (code officiel géographique)",
         "description": "Celui des adresses de la Base Adresse Nationale rattachées à la rue (le plus fréquent), "
                        "sinon celui donné à l'import des rues ; vide quand aucune donnée ne le dit.",
         "constraints": {"pattern": CODE_INSEE_PATTERN}},
        {"name": "period", "type": "string", "title": f"Période ({'mois AAAA-MM' if q.period == 'month' else 'année'}"
         ", jours de collecte en heure locale)", "constraints": {"required": True, "pattern": pattern}},
        {"name": "stream", "type": "string", "title": "Flux collecté",
         "constraints": {"required": True, "enum": [s.value for s in Stream]}},
        {"name": "lifts", "type": "integer", "title": "Levées de bacs",
         "constraints": {"required": True, "minimum": q.k}},
        {"name": "contaminated_lifts", "type": "integer", "title": "Levées avec erreur de tri",
         "description": "Levées où au moins un objet n'avait pas sa place dans ce flux (erreur ou alerte, "
                        "hors simple information)", "constraints": {"required": True, "minimum": 0}},
        {"name": "rate", "title": "Part des levées avec erreur de tri",
         "description": "contaminated_lifts / lifts", **share},
        {"name": "ci_low", "title": "Borne basse de l'intervalle de Wilson à 95 % de rate", "description": WILSON,
         **share},
        {"name": "ci_high", "title": "Borne haute de l'intervalle de Wilson à 95 % de rate", "description": WILSON,
         **share},
        *({"name": f"top_error_{i}", "type": "string", "title": f"Erreur de tri n° {i} (catégorie)"}
          for i in range(1, TOP_ERRORS + 1)),
    ]


def datapackage(q: OpenDataQuery, created: datetime) -> dict[str, Any]:
    """The Frictionless Data Package describing ``streets.csv`` and ``streets.geojson``."""
    fields = _fields(q)
    covered = f"du {q.since or 'début'} au {q.until or 'dernier jour collecté'}"
    return {
        "name": f"trivue-qualite-du-tri-par-rue-{q.period}",
        "title": "Qualité du tri des déchets ménagers par rue",
        "description": (f"Levées de bacs et part des levées avec erreur de tri, par rue, "
                        f"{'mois' if q.period == 'month' else 'année'} et flux, {covered}, mesurées par les "
                        f"caméras des camions de collecte (Trivue). Les cases de moins de {q.k} levées ne sont "
                        "pas publiées. Aucune adresse, aucun bac, aucune photo, aucun camion ni aucune heure."),
        "created": created.isoformat(timespec="seconds"),
        "licenses": [ETALAB, ODBL],
        "sources": [{"title": "Caméras Trivue des camions de collecte"}, OSM_SOURCE, BAN_SOURCE],
        "keywords": ["déchets", "tri", "collecte", "qualité du tri"],
        "resources": [
            {"name": "streets", "path": CSV_NAME, "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
             "title": "Qualité du tri par rue (tableau)", "licenses": [ETALAB, ODBL],
             "schema": {"fields": fields, "primaryKey": ["street_id", "period", "stream"]}},
            {"name": "streets-geojson", "type": "table", "path": GEOJSON_NAME, "format": "json",
             "mediatype": "application/geo+json", "encoding": "utf-8",
             "title": "Qualité du tri par rue (carte, GeoJSON)", "licenses": [ODBL, ETALAB],
             # Frictionless reads the features as rows: each has a type, an id, a geometry and properties.
             "dialect": {"json": {"property": "features", "keyed": True}},
             "schema": {"fields": [
                 {"name": "type", "type": "string", "constraints": {"required": True, "enum": ["Feature"]}},
                 {"name": "id", "type": "string", "constraints": {"required": True, "unique": True}},
                 {"name": "geometry", "type": "geojson", "title": "Géométrie de la rue (OpenStreetMap, ODbL)"},
                 {"name": "properties", "type": "object",
                  "description": "Les colonnes de streets.csv: " + ", ".join(COLUMNS)},
             ]}},
        ],
    }
