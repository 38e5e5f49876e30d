"""Every period figure the API serves equals a naive count over the raw ``lifts`` table.

``test_periods.py`` checks the roll-ups against the daily aggregates; here the reference is the
lifts themselves, their local day computed again from ``started_at`` in Europe/Paris: lifts around
local midnight on both DST changes, month and year ends and a leap day, read through random
periods and filters (stream, commune, error category, minimum lifts), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.ingest.aggregates import insert_lifts, lift_row, rebuild_aggregates
from server.ingest.models import UNMATCHED, Lift
from server.streets.locator import Locator
from server.streets.models import Street
from server.web.dashboard_api import data_quality, error_rates
from server.web.reports import StreetFilter, rate_fields, street_detail, street_stats
from tests.server.conftest import RennesDatabase
from tests.server.events import lift_event
from tests.server.streets_fixture import points_on_streets

PARIS = ZoneInfo("Europe/Paris")
# Local days where a period's edge or a roll-up unit's edge falls: DST changes, month and year
# ends, a leap day.
EDGES = [date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30), date(2026, 3, 31), date(2026, 4, 1),
         date(2026, 10, 24), date(2026, 10, 25), date(2026, 10, 26), date(2026, 10, 31), date(2026, 11, 1),
         date(2026, 12, 31), date(2027, 1, 1), date(2028, 2, 28), date(2028, 2, 29), date(2028, 3, 1)]
COUNTS = [{"bottle": 2}, {"bag": 1, "bottle": 1}, {"battery": 1, "food": 2}, {"glass": 3}, {"textile": 1},
          {"bag": 2, "film": 1, "food": 1}, {"food": 1}, {}, {"electronics": 1, "medical": 2}]
STREAMS = ["recyclables", "residual", "glass", "biowaste"]
COMMUNES = ["Rennes", "Saint-Grégoire"]
CATEGORIES = ["emballage", "dangereux", "biodechet", "soins"]
# Rules where one category's classes differ in severity (medicines an error, needles an alert): a
# lift with both counts once for its category, as it does in a naive count.
MIXED = [{"class": "medical", "count": 2, "category": "soins", "severity": "error"},
         {"class": "battery", "count": 1, "category": "soins", "severity": "alert"},
         {"class": "bottle", "count": 1, "category": "soins", "severity": "info"}]


def _raw(session: Session) -> list[dict[str, Any]]:
    """Every lift with its local day computed again from ``started_at`` and its street's commune."""
    communes = dict(session.execute(select(Street.id, Street.commune)).all())
    lifts = []
    for lift in session.scalars(select(Lift)):
        day = lift.started_at.astimezone(PARIS).date()
        assert lift.day == day, (lift.started_at, lift.day)
        lifts.append({"street": lift.street_id or UNMATCHED, "day": day, "stream": lift.stream,
                      "contaminated": lift.contaminated, "alert": lift.has_alert, "errors": lift.errors,
                      "commune": communes.get(lift.street_id), "known": lift.street_id in communes})
    return lifts


def _kept(lift: dict[str, Any], flt: StreetFilter) -> bool:
    return ((flt.since is None or lift["day"] >= flt.since) and (flt.until is None or lift["day"] <= flt.until)
            and (flt.stream is None or lift["stream"] == flt.stream))


def naive_streets(lifts: list[dict[str, Any]], flt: StreetFilter, names: dict[int, tuple[str, str]]) -> dict[str, Any]:
    """``street_stats`` counted straight from the raw lifts."""
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    categories: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for lift in lifts:
        if not _kept(lift, flt):
            continue
        sums = totals[lift["street"]]
        sums[0] += 1
        sums[1] += lift["contaminated"]
        sums[2] += lift["alert"]
        items: Counter[str] = Counter()
        for error in lift["errors"]:
            if error["severity"] != "info":
                items[error["category"]] += error["count"]
        for category, count in items.items():  # a lift counts once per category
            categories[lift["street"]][category][0] += 1
            categories[lift["street"]][category][1] += count
    unmatched = totals.pop(UNMATCHED, [0, 0, 0])
    found = []
    for sid, (lifts_n, contaminated, alerts) in totals.items():
        if sid not in names or lifts_n < flt.min_lifts:
            continue
        if flt.commune is not None and names[sid][1] != flt.commune:
            continue
        if flt.category is not None and flt.category not in categories[sid]:
            continue
        top = sorted(categories[sid].items(), key=lambda e: (-e[1][0], -e[1][1], e[0]))[:3]
        found.append({"street_id": sid, "name": names[sid][0], "commune": names[sid][1],
                      **rate_fields(lifts_n, contaminated), "alerts": alerts,
                      "top_errors": [{"category": c, "lifts": n, "items": i} for c, (n, i) in top]})
    found.sort(key=lambda s: (-s["rate"], -s["lifts"], s["street_id"]))
    return {"streets": found, "unmatched": {"lifts": unmatched[0], "contaminated": unmatched[1]}}


def naive_error_rates(lifts: list[dict[str, Any]], flt: StreetFilter,
                      names: dict[int, tuple[str, str]]) -> dict[int, tuple[int, int]]:
    """``error_rates`` counted from the raw lifts: street -> (lifts, lifts with the category)."""
    found = {}
    for sid in {lift["street"] for lift in lifts} - {UNMATCHED}:
        mine = [lift for lift in lifts if lift["street"] == sid and _kept(lift, flt)]
        if not mine or len(mine) < flt.min_lifts or (flt.commune is not None and names[sid][1] != flt.commune):
            continue
        hits = [lift for lift in mine
                if any(e["category"] == flt.category and e["severity"] != "info" for e in lift["errors"])]
        found[sid] = (len(mine), len(hits))
    return found


def _lifts_around_edges(points: list[Any], rng: random.Random, count: int) -> list[Any]:
    events = []
    for i in range(count):
        day = rng.choice(EDGES) + timedelta(days=rng.choice([0, 0, 0, 1, -1, 20]))
        # Local evening to early morning: the UTC date and the local day differ around midnight.
        local = datetime(day.year, day.month, day.day, tzinfo=PARIS) + timedelta(minutes=rng.randrange(-150, 150))
        point = points[i % len(points)]
        gps = None if i % 11 == 0 else (point.lat, point.lon)
        counts = rng.choice(COUNTS) if i % 7 else {"medical": 2, "battery": 1, "bottle": 1}
        mixed = {} if i % 7 else {"contaminated": True, "score": 5.0, "errors": MIXED[:2] if i % 14 else MIXED}
        events.append(lift_event(f"benne-{i % 3}", stream=rng.choice(STREAMS), counts=counts, sequence=i, gps=gps,
                                 at=local.astimezone(UTC), **mixed))
    return events


def test_period_figures_equal_a_naive_count_of_the_raw_lifts(rennes_db: RennesDatabase) -> None:
    settings, sessions = rennes_db.settings, rennes_db.sessions
    points = points_on_streets(sessions, 6)
    with sessions() as session, session.begin():  # a second commune, for the commune filter
        session.execute(update(Street).where(Street.id.in_([p.street_id for p in points[:2]]))
                        .values(commune=COMMUNES[1]))
    rng = random.Random(2026)
    events = _lifts_around_edges(points, rng, 600)
    with sessions() as session, session.begin():
        locator = Locator.from_session(session)
        rows = [lift_row(e, e.started_at, settings.zone, locator) for e in events]
        for start in range(0, len(rows), 70):
            insert_lifts(session, rows[start:start + 70])
    bounds = sorted({d + timedelta(days=k) for d in EDGES for k in (-1, 0, 1)})
    with sessions() as session:
        lifts = _raw(session)
        names = {s.id: (s.name, s.commune) for s in session.scalars(select(Street))}
        assert len(lifts) == 600
        for _ in range(120):
            since, until = sorted(rng.sample(bounds, 2))
            flt = StreetFilter(rng.choice([since, since, None]), rng.choice([until, until, None]),
                               rng.choice([None, None, *STREAMS]), rng.choice([None, None, *COMMUNES]),
                               rng.choice([1, 1, 3]), rng.choice([None, None, *CATEGORIES]))
            assert street_stats(session, flt) == naive_streets(lifts, flt, names), flt
            # The data-quality page and the error rates over the same period.
            kept = [lift for lift in lifts if _kept(lift, StreetFilter(flt.since, flt.until))]
            quality = data_quality(session, StreetFilter(flt.since, flt.until))
            assert quality["lifts"] == len(kept), flt
            assert quality["matched"] == sum(lift["street"] != UNMATCHED for lift in kept), flt
            if flt.category is not None:
                rates = error_rates(session, flt.category, flt)
                assert {r["street_id"]: (r["lifts"], r["contaminated"]) for r in rates} == \
                    naive_error_rates(lifts, flt, names), flt
        # A rebuild from the raw lifts gives the same figures as ingest added up.
        rebuild_aggregates(session)
        for flt in (StreetFilter(), StreetFilter(date(2026, 3, 29), date(2026, 10, 25), category="soins"),
                    StreetFilter(date(2026, 10, 25), date(2027, 1, 1), "residual")):
            assert street_stats(session, flt) == naive_streets(lifts, flt, names), flt
        for point in points:
            flt = StreetFilter(date(2026, 3, 29), date(2026, 10, 25), "recyclables")
            detail = street_detail(session, point.street_id, flt)
            mine = [lift for lift in lifts if lift["street"] == point.street_id and _kept(lift, flt)]
            assert detail is not None and detail["lifts"] == len(mine)
            assert detail["contaminated"] == sum(lift["contaminated"] for lift in mine)
