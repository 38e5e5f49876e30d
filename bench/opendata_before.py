"""The open-data export as it was, kept as the reference the export is checked against, byte for byte.

Two steps back at once: the sums of every street day of the range read into Python (before the
month and year roll-ups, ``DAYS``), and the publication built as one dictionary per row and one
dictionary of error counts per cell (before the rows were kept as compact cells read in one pass,
``server.opendata.export``). ``bench/opendata.py`` times it against the export, and
``tests/server/test_opendata_rollups.py`` checks on randomised aggregates that both publish the
same CSV and GeoJSON. One later change is carried into it: the top errors' ties are broken by
items, then name, as the dashboard breaks them (each category's counts are lifts and items).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ingest.models import UNMATCHED, StreetDay, StreetDayError
from server.opendata.export import (
    COLUMNS,
    DECIMALS,
    GEOJSON_HEAD,
    GEOJSON_TAIL,
    TOP_ERRORS,
    OpenDataQuery,
    months_k,
    period_key,
)
from server.streets.models import Street
from server.web.csvexport import rows_csv
from server.web.reports import wilson

Cell = tuple[int, str, str]  # street id, period key, stream
Totals = dict[Cell, list[int]]  # cell -> [lifts, contaminated lifts]


@dataclass(frozen=True, slots=True)
class Figures:
    """``totals(session, q)``: each cell's lifts and contaminated lifts, and every (street, month,
    stream)'s lifts; ``errors(session, q)``: each cell's [lifts, items] per error category, info excluded."""

    totals: Callable[[Session, OpenDataQuery], tuple[Totals, dict[Cell, int]]]
    errors: Callable[[Session, OpenDataQuery], dict[Cell, dict[str, list[int]]]]


def _in_days(query: Any, table: type[StreetDay] | type[StreetDayError], q: OpenDataQuery) -> Any:
    query = query.where(table.street_id != UNMATCHED)
    if q.since is not None:
        query = query.where(table.day >= q.since)
    if q.until is not None:
        query = query.where(table.day <= q.until)
    return query


def _daily_totals(session: Session, q: OpenDataQuery) -> tuple[Totals, dict[Cell, int]]:
    totals: Totals = defaultdict(lambda: [0, 0])
    months: dict[Cell, int] = defaultdict(int)
    rows = session.execute(_in_days(select(StreetDay.street_id, StreetDay.day, StreetDay.stream, StreetDay.lifts,
                                           StreetDay.contaminated), StreetDay, q))
    for sid, day, stream, lifts, contaminated in rows:
        cell = totals[(sid, period_key(day, q.period), stream)]
        cell[0] += int(lifts)
        cell[1] += int(contaminated)
        months[(sid, period_key(day, "month"), stream)] += int(lifts)
    return totals, months if q.period == "year" else {}


def _daily_errors(session: Session, q: OpenDataQuery) -> dict[Cell, dict[str, list[int]]]:
    counts: dict[Cell, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    rows = session.execute(_in_days(select(StreetDayError.street_id, StreetDayError.day, StreetDayError.stream,
                                           StreetDayError.category, StreetDayError.lifts, StreetDayError.items)
                                    .where(StreetDayError.severity != "info"), StreetDayError, q))
    for sid, day, stream, category, lifts, items in rows:
        both = counts[(sid, period_key(day, q.period), stream)][category]
        both[0] += int(lifts)
        both[1] += int(items)
    return counts


DAYS = Figures(_daily_totals, _daily_errors)  # every month to the guard, which keeps those under k


def _differenced(months: dict[Cell, int], q: OpenDataQuery) -> set[Cell]:
    hidden: dict[Cell, int] = defaultdict(int)
    for (sid, month, stream), lifts in months.items():
        if lifts < months_k(q):
            hidden[(sid, month[:4], stream)] += lifts
    return {cell for cell, lifts in hidden.items() if 0 < lifts < months_k(q)}


def _top_errors(counts: dict[Cell, dict[str, list[int]]], cells: set[Cell]) -> dict[Cell, list[str]]:
    return {cell: [c for c, (n, _) in sorted(by.items(), key=lambda item: (-item[1][0], -item[1][1], item[0]))
                   if n > 0][:TOP_ERRORS]
            for cell, by in counts.items() if cell in cells}


@dataclass(frozen=True, slots=True)
class Publication:
    rows: list[dict[str, Any]]
    suppressed: int
    geometries: dict[int, str]  # street id -> stored GeoJSON geometry text


def publication(session: Session, q: OpenDataQuery, figures: Figures = DAYS) -> Publication:
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


def _feature(row: dict[str, Any], geometries: dict[int, str]) -> str:
    properties = json.dumps(row, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    feature_id = json.dumps(f"{row['street_id']}-{row['period']}-{row['stream']}")
    geometry = geometries.get(row["street_id"]) or "null"
    return f'{{"type":"Feature","id":{feature_id},"geometry":{geometry},"properties":{properties}}}'


def to_geojson(pub: Publication) -> str:
    return GEOJSON_HEAD + ",\n".join(_feature(row, pub.geometries) for row in pub.rows) + GEOJSON_TAIL
