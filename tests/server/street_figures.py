"""Street figures summed straight from every day's aggregates: the reference period queries must equal."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ingest.models import UNMATCHED, StreetDay, StreetDayError
from server.streets.models import Street
from server.web.reports import StreetFilter, rate_fields


def reference(session: Session, flt: StreetFilter) -> dict[str, Any]:
    """The street figures summed from every day of the period (what the routes did before roll-ups)."""
    def kept(row: Any) -> bool:
        return ((flt.since is None or row.day >= flt.since) and (flt.until is None or row.day <= flt.until)
                and (flt.stream is None or row.stream == flt.stream))

    # Named columns: the upgrade tests read a database older than the newest street columns.
    streets = {s.id: s for s in session.execute(select(Street.id, Street.name, Street.commune))}
    totals: dict[int, list[int]] = {}
    for row in filter(kept, session.scalars(select(StreetDay))):
        sums = totals.setdefault(row.street_id, [0, 0, 0])
        sums[0] += row.lifts
        sums[1] += row.contaminated
        sums[2] += row.alerts
    errors: dict[int, dict[str, list[int]]] = {}
    for row in filter(kept, session.scalars(select(StreetDayError))):
        if row.severity != "info":
            sums = errors.setdefault(row.street_id, {}).setdefault(row.category, [0, 0])
            sums[0] += row.lifts
            sums[1] += row.items
    unmatched = totals.pop(UNMATCHED, [0, 0, 0])
    found = []
    for sid, (lifts, contaminated, alerts) in totals.items():
        street = streets.get(sid)
        if street is None or lifts < flt.min_lifts or (flt.commune is not None and street.commune != flt.commune):
            continue
        if flt.category is not None and flt.category not in errors.get(sid, {}):
            continue
        top = sorted(errors.get(sid, {}).items(), key=lambda e: (-e[1][0], -e[1][1], e[0]))[:3]
        found.append({"street_id": sid, "name": street.name, "commune": street.commune,
                      **rate_fields(lifts, contaminated), "alerts": alerts,
                      "top_errors": [{"category": c, "lifts": n, "items": i} for c, (n, i) in top]})
    found.sort(key=lambda s: (-s["rate"], -s["lifts"], s["street_id"]))
    return {"streets": found, "unmatched": {"lifts": unmatched[0], "contaminated": unmatched[1]}}
