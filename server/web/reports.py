"""Street-level statistics read from the aggregates: rates with Wilson intervals, trends, error mix.

Nothing here scans raw lifts: every figure comes from ``street_days`` / ``street_day_errors``,
which ingest keeps up to date. Street names and geometries come from ``server.streets``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from server.ingest.models import UNMATCHED, StreetDay, StreetDayError
from server.streets.models import Street
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
    return max(0.0, centre - margin), min(1.0, centre + margin)


@dataclass(frozen=True, slots=True)
class StreetFilter:
    since: date | None = None
    until: date | None = None
    stream: str | None = None
    commune: str | None = None
    min_lifts: int = 1

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
    """id -> row with ``name`` and ``commune`` (and the ``extra`` columns, e.g. geometry) of the streets.

    Plain rows, not ORM objects: a month of a city is ~1,500 streets, and loading every street's
    geometry for a table that never shows it cost more than the aggregates query itself.
    """
    street = Street
    columns = [street.id, street.name, street.commune, *(getattr(street, name) for name in extra)]
    query = select(*columns).where(street.id.in_(street_ids))
    if commune is not None:
        query = query.where(street.commune == commune)
    return {row.id: row for row in session.execute(query)}


# Above this many streets the top errors are read for the whole period and filtered here: an
# ``IN`` list of thousands of ids costs more to build and to plan than the few extra rows.
TOP_ERRORS_IN_LIST_MAX = 200


def _top_errors(session: Session, flt: StreetFilter, street_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    query = flt.apply(select(StreetDayError.street_id, StreetDayError.category,
                             func.sum(StreetDayError.lifts), func.sum(StreetDayError.items))
                      .where(StreetDayError.severity != Severity.info.value)
                      .group_by(StreetDayError.street_id, StreetDayError.category), StreetDayError)
    if len(street_ids) <= TOP_ERRORS_IN_LIST_MAX:
        query = query.where(StreetDayError.street_id.in_(street_ids))
    wanted = set(street_ids)
    found: dict[int, list[dict[str, Any]]] = {}
    for street_id, category, lifts, items in session.execute(query):
        if street_id in wanted:
            found.setdefault(street_id, []).append({"category": category, "lifts": int(lifts), "items": int(items)})
    return {k: sorted(v, key=lambda e: (-e["lifts"], -e["items"], e["category"]))[:TOP_ERRORS]
            for k, v in found.items()}


def _totals_query(flt: StreetFilter) -> Select[Any]:
    return flt.apply(select(StreetDay.street_id, func.sum(StreetDay.lifts), func.sum(StreetDay.contaminated),
                            func.sum(StreetDay.alerts)).group_by(StreetDay.street_id), StreetDay)


def rate_fields(lifts: int, contaminated: int) -> dict[str, Any]:
    low, high = wilson(contaminated, lifts)
    return {"lifts": lifts, "contaminated": contaminated,
            "rate": contaminated / lifts if lifts else None, "ci_low": low, "ci_high": high}


def street_stats(session: Session, flt: StreetFilter) -> dict[str, Any]:
    """Per street lifts, contaminated lifts, rate with its 95 % interval and the top error categories."""
    totals = {sid: (int(n), int(c), int(a)) for sid, n, c, a in session.execute(_totals_query(flt))}
    unmatched = totals.pop(UNMATCHED, (0, 0, 0))
    ids = [sid for sid, (n, _, _) in totals.items() if n >= flt.min_lifts]
    info = _street_info(session, ids, flt.commune)
    ids = [sid for sid in ids if sid in info]
    errors = _top_errors(session, flt, ids) if ids else {}
    streets = []
    for sid in ids:
        lifts, contaminated, alerts = totals[sid]
        row = info.get(sid) if info else None
        streets.append({"street_id": sid, "name": row.name if row else None,
                        "commune": row.commune if row else None, **rate_fields(lifts, contaminated),
                        "alerts": alerts, "top_errors": errors.get(sid, [])})
    streets.sort(key=lambda s: (-s["rate"], -s["lifts"], s["street_id"]))
    return {"streets": streets, "unmatched": {"lifts": unmatched[0], "contaminated": unmatched[1]}}


def street_geojson(session: Session, flt: StreetFilter) -> dict[str, Any]:
    """The same statistics as GeoJSON features carrying the street geometry (for maps and QGIS)."""
    import json

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
    """``street_geojson`` already encoded: each street's stored GeoJSON geometry is spliced in as
    text instead of being parsed and encoded again (half the route's time for a city's month)."""
    import json

    stats = street_stats(session, flt)["streets"]
    info = _street_info(session, [s["street_id"] for s in stats], None, ("geometry",))
    parts = []
    for stat in stats:
        row = info.get(stat["street_id"])
        properties = {k: v for k, v in stat.items() if k != "top_errors"}
        properties["top_errors"] = ", ".join(f"{e['category']} ({e['lifts']})" for e in stat["top_errors"])
        encoded = json.dumps(properties, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        geometry = row.geometry if row is not None and row.geometry else "null"
        parts.append(f'{{"type":"Feature","id":{int(stat["street_id"])},"geometry":{geometry},'
                     f'"properties":{encoded}}}')
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
                          .where(StreetDay.street_id == street_id).group_by(StreetDay.stream), StreetDay)
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
