"""Street-level statistics read from the aggregates: rates with Wilson intervals, trends, error mix.

Nothing here scans raw lifts. The list of streets for a period (``street_rows``) is one SQL
statement over the day/month/year roll-ups (``street_periods``, ``street_period_errors``): the
period is split into whole years, whole months and edge days (``server.web.periods``), summed per
street, and each street's top error categories ranked by a window function, so a year costs
about what a month does. One street's detail reads ``street_days`` / ``street_day_errors``.
Street names and geometries come from ``server.streets``, pre-encoded once per process
(``StreetCatalogue``): the routes write JSON text around them instead of validating and encoding
thousands of dictionaries per request.
"""

from __future__ import annotations

import json
import math
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import BindParameter, Date, Engine, Select, bindparam, func, select, text
from sqlalchemy.orm import Session

from server.ingest.models import ALL_STREAMS, UNMATCHED, StreetDay, StreetDayError
from server.streets.insee import code_insee
from server.streets.models import Segment, Street, StreetNetwork
from server.web.periods import split
from vision.schema import Severity

Z_95 = 1.959964  # two-sided 95 %
TOP_ERRORS = 3


def wilson(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion: honest for 3 lifts as for 300, never outside [0, 1]."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # At 0 % and 100 % the bound is exactly 0 or 1; rounding left 0.9999999999999999 in the JSON.
    low = 0.0 if successes == 0 else max(0.0, centre - margin)
    high = 1.0 if successes == trials else min(1.0, centre + margin)
    return low, high


@dataclass(frozen=True, slots=True)
class StreetFilter:
    since: date | None = None
    until: date | None = None
    stream: str | None = None
    commune: str | None = None
    min_lifts: int = 1
    category: str | None = None  # only streets where lifts had this error (not info) in the period
    communes: tuple[str, ...] | None = None  # a scoped account's codes INSEE (server.web.commune_scope)

    def apply(self, query: Select[Any], table: type[StreetDay] | type[StreetDayError]) -> Select[Any]:
        if self.since is not None:
            query = query.where(table.day >= self.since)
        if self.until is not None:
            query = query.where(table.day <= self.until)
        if self.stream is not None:
            query = query.where(table.stream == self.stream)
        return query


def _street_info(session: Session, street_ids: list[int], commune: str | None,
                 extra: tuple[str, ...] = ()) -> dict[int, Any]:
    """id -> row with ``name`` and ``commune`` (and the ``extra`` columns, e.g. length) of the streets."""
    street = Street
    columns = [street.id, street.name, street.commune, *(getattr(street, name) for name in extra)]
    query = select(*columns).where(street.id.in_(street_ids))
    if commune is not None:
        query = query.where(street.commune == commune)
    return {row.id: row for row in session.execute(query)}


def rate_fields(lifts: int, contaminated: int) -> dict[str, Any]:
    low, high = wilson(contaminated, lifts)
    return {"lifts": lifts, "contaminated": contaminated,
            "rate": contaminated / lifts if lifts else None, "ci_low": low, "ci_high": high}


# --- The period's sums per street: one statement -------------------------------------------------

def rollup_branches(flt: StreetFilter, columns: tuple[str, ...], errors: bool, params: dict[str, Any]) -> list[str]:
    """``SELECT street_id, <columns>`` of every roll-up unit of the period, to be put under UNION ALL:
    the days to subtract (``Units.minus_days``) select their measures negated."""
    units = split(flt.since, flt.until)
    periods = "street_period_errors" if errors else "street_periods"
    where = ["(street_id = 0 OR street_id IN (SELECT id FROM streets WHERE commune = :commune))"
             if flt.commune is not None else "", "severity <> :info" if errors else "", _scope_sql(flt.communes)]
    extra = "".join(f" AND {w}" for w in where if w)
    added = ", ".join(columns)
    # Named as the added ones: the first branch (never a subtraction) names the union's columns anyway.
    subtracted = ", ".join(c if c == "category" else f"-{c} AS {c}" for c in columns)
    branches = []
    for span, ranges in (("y", units.years), ("m", units.months), ("d", units.days), ("n", units.minus_days)):
        days = span in ("d", "n")
        stored = "d" if days else span  # the days to subtract are day rows too
        for i, (first, last) in enumerate(ranges):
            low, high = f"{span}{i}_low", f"{span}{i}_high"
            params[low] = first
            if first != last:
                params[high] = last
            # One unit (a month, a year, a day): an equality, so that rows come in key order (street,
            # category) and the GROUP BY needs no sort when the period is that one unit.
            column = "day" if days and flt.stream is not None else "start"
            within = f"{column} = :{low}" if first == last else f"{column} BETWEEN :{low} AND :{high}"
            selected = subtracted if span == "n" else added
            if days and flt.stream is not None:  # one stream's days: the daily aggregates themselves
                table = "street_day_errors" if errors else "street_days"
                branches.append(f"SELECT street_id, {selected} FROM {table} WHERE stream = :stream "
                                f"AND {within}{extra}")
            else:
                branches.append(f"SELECT street_id, {selected} FROM {periods} WHERE span = '{stored}' "
                                f"AND stream = :stream AND {within}{extra}")
    return branches or [f"SELECT street_id, {added} FROM {periods} WHERE 1 = 0"]


def _scope_sql(communes: tuple[str, ...] | None) -> str:
    """A scoped account's streets (not the unmatched lifts: the territory's), its codes written into
    the statement: checked as codes INSEE here, so no call site binds a list. None of them: nothing."""
    if communes is None:
        return ""
    if any(code_insee(code) != code for code in communes):
        raise ValueError(f"not codes INSEE: {communes!r}")
    listed = ", ".join(f"'{code}'" for code in communes) or "NULL"
    return f"street_id IN (SELECT id FROM streets WHERE code_insee IN ({listed}))"


def period_params(flt: StreetFilter, category: str | None) -> dict[str, Any]:
    """The bound values every roll-up read takes; ``rollup_branches`` adds the period's day bounds."""
    return {"stream": flt.stream or ALL_STREAMS, "info": Severity.info.value, "min_lifts": flt.min_lifts,
            "commune": flt.commune, "category": category}


def day_binds(params: dict[str, Any]) -> list[BindParameter[Any]]:
    """The day bounds ``rollup_branches`` put in ``params``, typed as dates for both databases."""
    return [bindparam(k, type_=Date) for k in params if k.endswith(("_low", "_high"))]


def _period_sql(flt: StreetFilter, dialect: str) -> tuple[str, dict[str, Any]]:
    params = period_params(flt, flt.category)
    totals = " UNION ALL ".join(rollup_branches(flt, ("lifts", "contaminated", "alerts"), False, params))
    errors = " UNION ALL ".join(rollup_branches(flt, ("category", "lifts", "items"), True, params))
    # Ties are broken by category in code-point order on both databases (PostgreSQL's default
    # collation would sort them by locale): the same ranking as before the roll-ups.
    collate = ' COLLATE "C"' if dialect == "postgresql" else ""
    # Streets' totals (position 0), then their top errors (1 to 3, in order within a street) in one
    # result: a join of the two would be a nested loop over thousands of rows on SQLite, and an
    # ORDER BY one more sort; the errors find their street by id.
    having = (" AND street_id IN (SELECT street_id FROM errors WHERE category = :category)"
              if flt.category is not None else "")
    sql = f"""WITH totals AS (
            SELECT street_id, SUM(lifts) AS lifts, SUM(contaminated) AS contaminated, SUM(alerts) AS alerts
            FROM ({totals}) AS u GROUP BY street_id HAVING SUM(lifts) > 0),
        errors AS (
            SELECT street_id, category, SUM(lifts) AS lifts, SUM(items) AS items
            FROM ({errors}) AS u GROUP BY street_id, category HAVING SUM(lifts) > 0),
        ranked AS (
            SELECT street_id, category, lifts, items, ROW_NUMBER() OVER (
                PARTITION BY street_id ORDER BY lifts DESC, items DESC, category{collate}) AS position
            FROM errors)
        SELECT street_id, 0 AS position, lifts, contaminated, alerts, NULL AS category FROM totals
        WHERE street_id = {UNMATCHED} OR (lifts >= :min_lifts{having})
        UNION ALL
        SELECT street_id, position, lifts, items, 0, category FROM ranked WHERE position <= {TOP_ERRORS}"""
    return sql, params


@dataclass(slots=True)
class StreetRow:
    """One street's figures for the period (``top_errors``: (category, lifts, items), worst first)."""

    street_id: int
    lifts: int
    contaminated: int
    alerts: int
    top_errors: list[tuple[str, int, int]]

    @property
    def rate(self) -> float | None:
        return self.contaminated / self.lifts if self.lifts else None


@dataclass(slots=True)
class PeriodRows:
    streets: list[StreetRow]  # worst rate first; only streets that exist in ``streets``
    unmatched: tuple[int, int]  # lifts, contaminated of lifts matched to no street


def street_rows(session: Session, flt: StreetFilter, streets_known: StreetCatalogue | None = None) -> PeriodRows:
    """Every street's lifts, contaminated lifts, alerts and top errors over the period, from SQL."""
    sql, params = _period_sql(flt, session.get_bind().dialect.name)
    statement = text(sql).bindparams(*day_binds(params))
    known = (streets_known or catalogue(session)).entries
    streets: dict[int, StreetRow] = {}
    unmatched = (0, 0)
    # Sums of integer columns come back as Python ints from both databases.
    for street_id, position, lifts, contaminated, alerts, category in session.execute(statement, params).all():
        if position:  # a top error (lifts, items), unless its street was left out
            if (street := streets.get(street_id)) is not None:
                street.top_errors.append((category, lifts, contaminated))
        elif street_id == UNMATCHED:
            unmatched = (lifts, contaminated)
        elif street_id in known:  # not: aggregates of a street deleted by a later import
            streets[street_id] = StreetRow(street_id, lifts, contaminated, alerts, [])
    ordered = sorted(streets.values(), key=lambda s: (-(s.rate or 0.0), -s.lifts, s.street_id))
    return PeriodRows(ordered, unmatched)


# --- Streets' static parts, encoded once per process ---------------------------------------------

@dataclass(frozen=True, slots=True)
class StreetEntry:
    name: str
    commune: str
    json_head: str  # '"street_id":1,"name":"...","commune":"..."' as JSONResponse would write it


def _encode(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


_categories: dict[str, str] = {}  # a few dozen error categories, encoded once


def _category(name: str) -> str:
    found = _categories.get(name)
    if found is None:
        found = _categories[name] = _encode(name)
    return found


class StreetCatalogue:
    """Names, communes and (once the GeoJSON route asks) geometries of every street, with their
    JSON already written. Rebuilt when the streets change (another process may import them):
    checked per request by the network's revision, which every import bumps, and the counts and
    highest ids of streets and segments."""

    def __init__(self, signature: tuple[Any, ...], entries: dict[int, StreetEntry]) -> None:
        self.signature = signature
        self.entries = entries
        self.geometry: dict[int, str] | None = None
        self.lock = threading.Lock()

    def feature_heads(self, session: Session) -> dict[int, str]:
        """id -> '{"type":"Feature","id":1,"geometry":{...},"properties":{"street_id":1,...' (no closing)."""
        with self.lock:
            if self.geometry is None:
                stored = dict(session.execute(select(Street.id, Street.geometry)).all())
                # A street deleted since the names were read (an import meanwhile) has no geometry: null.
                self.geometry = {sid: f'{{"type":"Feature","id":{sid},"geometry":{stored.get(sid) or "null"},'
                                      f'"properties":{{{entry.json_head}' for sid, entry in self.entries.items()}
            return self.geometry


_catalogues: weakref.WeakKeyDictionary[Engine, StreetCatalogue] = weakref.WeakKeyDictionary()
_catalogues_lock = threading.Lock()


def _signature(session: Session) -> tuple[Any, ...]:
    return (session.scalar(select(StreetNetwork.revision)),
            *session.execute(select(func.count(), func.max(Street.id))).one(),
            *session.execute(select(func.count(), func.max(Segment.id))).one())


def catalogue(session: Session) -> StreetCatalogue:
    """This database's street catalogue (one per engine), reloaded when the streets changed."""
    engine = session.get_bind()
    signature = _signature(session)
    with _catalogues_lock:
        found = _catalogues.get(engine)  # type: ignore[call-overload]
        if found is not None and found.signature == signature:
            return found
    entries = {sid: StreetEntry(name, commune, f'"street_id":{sid},"name":{_encode(name)},'
                                               f'"commune":{_encode(commune)}')
               for sid, name, commune in session.execute(select(Street.id, Street.name, Street.commune))}
    found = StreetCatalogue(signature, entries)
    with _catalogues_lock:
        _catalogues[engine] = found  # type: ignore[index]
    return found


# --- The answers ---------------------------------------------------------------------------------

def _visible(session: Session, flt: StreetFilter) -> tuple[PeriodRows, StreetCatalogue]:
    known = catalogue(session)
    return street_rows(session, flt, known), known


def street_stats(session: Session, flt: StreetFilter) -> dict[str, Any]:
    """Per street lifts, contaminated lifts, rate with its 95 % interval and the top error categories."""
    rows, known = _visible(session, flt)
    streets = []
    for row in rows.streets:
        entry = known.entries[row.street_id]
        streets.append({"street_id": row.street_id, "name": entry.name, "commune": entry.commune,
                        **rate_fields(row.lifts, row.contaminated), "alerts": row.alerts,
                        "top_errors": [{"category": c, "lifts": n, "items": i} for c, n, i in row.top_errors]})
    return {"streets": streets, "unmatched": {"lifts": rows.unmatched[0], "contaminated": rows.unmatched[1]}}


def _figures(row: StreetRow) -> str:
    """',"lifts":..,"alerts":..' of a street: the part of its JSON that depends on the period.
    Floats are written with ``repr``, as ``json.dumps`` writes them."""
    low, high = wilson(row.contaminated, row.lifts)
    rate = "null" if not row.lifts else repr(row.contaminated / row.lifts)
    return (f',"lifts":{row.lifts},"contaminated":{row.contaminated},"rate":{rate},'
            f'"ci_low":{low!r},"ci_high":{high!r},"alerts":{row.alerts}')


def street_stats_text(session: Session, flt: StreetFilter) -> str:
    """``street_stats`` as the JSON text ``JSONResponse`` would send (same keys, same order), written
    from pre-encoded street names instead of validating and encoding a dictionary per street."""
    rows, known = _visible(session, flt)
    parts: Iterator[str] = (
        f'{{{known.entries[row.street_id].json_head}{_figures(row)},"top_errors":['
        + ",".join(f'{{"category":{_category(c)},"lifts":{n},"items":{i}}}' for c, n, i in row.top_errors)
        + "]}" for row in rows.streets)
    return (f'{{"streets":[{",".join(parts)}],'
            f'"unmatched":{{"lifts":{rows.unmatched[0]},"contaminated":{rows.unmatched[1]}}}}}')


def _top_errors_label(top_errors: list[tuple[str, int, int]]) -> str:
    return ", ".join(f"{c} ({n})" for c, n, _ in top_errors)


def street_geojson(session: Session, flt: StreetFilter) -> dict[str, Any]:
    """The same statistics as GeoJSON features carrying the street geometry (for maps and QGIS)."""
    stats = street_stats(session, flt)["streets"]
    info = _street_info(session, [s["street_id"] for s in stats], None, ("geometry",))
    features = []
    for stat in stats:
        row = info.get(stat["street_id"])
        geometry = json.loads(row.geometry) if row is not None and row.geometry else None
        properties = {k: v for k, v in stat.items() if k != "top_errors"}
        properties["top_errors"] = ", ".join(f"{e['category']} ({e['lifts']})" for e in stat["top_errors"])
        features.append({"type": "Feature", "id": stat["street_id"], "geometry": geometry,
                         "properties": properties})
    return {"type": "FeatureCollection", "features": features}


def street_geojson_text(session: Session, flt: StreetFilter) -> str:
    """``street_geojson`` already encoded: each street's stored GeoJSON geometry and name are
    spliced in as text written once per process (``StreetCatalogue.feature_heads``)."""
    rows, known = _visible(session, flt)
    heads = known.feature_heads(session)
    parts = (f'{heads[row.street_id]}{_figures(row)},"top_errors":{_encode(_top_errors_label(row.top_errors))}}}}}'
             for row in rows.streets)
    return '{"type":"FeatureCollection","features":[' + ",".join(parts) + "]}"


def street_detail(session: Session, street_id: int, flt: StreetFilter) -> dict[str, Any] | None:
    """Totals, daily trend, per-stream figures and full error breakdown of one street, or None."""
    info = _street_info(session, [street_id], None, ("length_m",))
    row = info.get(street_id)
    by_day = flt.apply(select(StreetDay.day, func.sum(StreetDay.lifts), func.sum(StreetDay.contaminated))
                       .where(StreetDay.street_id == street_id).group_by(StreetDay.day)
                       .order_by(StreetDay.day), StreetDay)
    daily = [{"day": d.isoformat(), **rate_fields(int(n), int(c))} for d, n, c in session.execute(by_day)]
    if row is None and not daily:
        return None
    by_stream = flt.apply(select(StreetDay.stream, func.sum(StreetDay.lifts), func.sum(StreetDay.contaminated))
                          .where(StreetDay.street_id == street_id).group_by(StreetDay.stream)
                          .order_by(StreetDay.stream), StreetDay)
    streams = {s: rate_fields(int(n), int(c)) for s, n, c in session.execute(by_stream)}
    lifts = sum(d["lifts"] for d in daily)
    contaminated = sum(d["contaminated"] for d in daily)
    breakdown = flt.apply(select(StreetDayError.stream, StreetDayError.category, StreetDayError.severity,
                                 func.sum(StreetDayError.lifts), func.sum(StreetDayError.items))
                          .where(StreetDayError.street_id == street_id)
                          .group_by(StreetDayError.stream, StreetDayError.category, StreetDayError.severity),
                          StreetDayError)
    errors = [{"stream": s, "category": c, "severity": sev, "lifts": int(n), "items": int(i),
               "share_of_lifts": int(n) / streams[s]["lifts"] if streams.get(s, {}).get("lifts") else None}
              for s, c, sev, n, i in session.execute(breakdown)]
    errors.sort(key=lambda e: (-e["lifts"], e["stream"], e["category"]))
    return {"street_id": street_id, "name": row.name if row else None, "commune": row.commune if row else None,
            "length_m": row.length_m if row else None, **rate_fields(lifts, contaminated),
            "streams": streams, "daily": daily, "errors": errors}
