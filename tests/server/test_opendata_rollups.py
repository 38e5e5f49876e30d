"""The open-data export read from the month and year roll-ups publishes exactly what summing every
street day published (``bench/opendata_before.py``: the export before the roll-ups, and before its
rows were compact cells read in one pass instead of dictionaries), byte for byte: the same cells
kept and held back at ``k``, the same years held back by the months' guard, the same top errors
and ties, the same order. The aggregates are written by the ingest's own incremental path, lifts
added and some taken out again (rows left at zero deleted), on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from bench import opendata_before as before
from bench.opendata_before import DAYS
from server.db import make_engine
from server.ingest.aggregates import add_to_aggregates
from server.migrate import upgrade_database
from server.opendata.export import OpenDataQuery, publication, to_csv, to_geojson
from server.streets.models import Street
from tests.server.opendata_homes import give_addresses

STREETS = 14
# Error categories and their severities: "verre" both ways (one lift counts once, under alert),
# "emballage" info only (never a top error).
KINDS = [("sac_ferme", "error"), ("textile", "error"), ("verre", "error"), ("verre", "alert"),
         ("dangereux", "alert"), ("biodechet", "error"), ("emballage", "info")]
FIRST, LAST = date(2024, 11, 1), date(2026, 2, 28)  # two year ends, a February each side


def _lift(rng: random.Random, street: int | None) -> dict[str, Any]:
    day = FIRST + timedelta(days=rng.randrange((LAST - FIRST).days + 1))
    errors = [{"category": c, "severity": s, "count": rng.choice((1, 2))}
              for c, s in rng.sample(KINDS, rng.choice((0, 0, 1, 2, 3)))]
    contaminated = any(e["severity"] != "info" for e in errors)
    return {"street_id": street, "day": day, "stream": rng.choice(("recyclables", "residual", "glass")),
            "overruled_at": None, "contaminated": contaminated,
            "has_alert": any(e["severity"] == "alert" for e in errors), "score": float(len(errors)),
            "errors": errors, "lat": 48.1, "match_confidence": 0.9 if street else None,
            "street_confidence": None}


def _city(sessions: sessionmaker[Session], seed: int) -> None:
    rng = random.Random(seed)
    with sessions() as session:
        # Names repeat from one commune to the other; street 1 has no row (deleted since).
        session.execute(insert(Street), [
            {"id": sid, "name": f"Rue {sid % 7}", "commune": ("Rennes", "Bruz")[sid % 2],
             "name_key": f"rue {sid % 7}", "geometry": '{"type":"MultiLineString","coordinates":[[[-1.7,48.1],'
             f'[-1.69,48.1{sid}]]]}}', "length_m": 100.0, "code_insee": None if sid % 3 else "35238"}
            for sid in range(2, STREETS + 1)])
        for sid in range(2, STREETS + 1):  # households enough to publish: the lifts alone decide here
            give_addresses(session, sid, 5)
        # Streets from a few lifts a month (always under k) to a hundred.
        weights = [rng.choice((1, 3, 8, 20)) for _ in range(STREETS)]
        lifts = [_lift(rng, rng.choices(range(1, STREETS + 1), weights)[0] if rng.random() > 0.03 else None)
                 for _ in range(2500)]
        for start in range(0, len(lifts), 400):
            add_to_aggregates(session, lifts[start:start + 400])
        add_to_aggregates(session, rng.sample(lifts, 300), sign=-1)  # moved to another street, say
        session.commit()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_export_from_the_rollups_equals_the_export_from_the_days(database_url: str, seed: int) -> None:
    engine = make_engine(database_url)
    try:
        upgrade_database(engine)
        sessions = sessionmaker(engine, expire_on_commit=False)
        _city(sessions, seed)
        rng = random.Random(seed)
        queries = [OpenDataQuery("month", k) for k in (5, 10, rng.randrange(5, 15))]
        queries += [OpenDataQuery("month", 8, date(2025, 2, 1), date(2025, 12, 31)),
                    OpenDataQuery("month", 10, since=date(2025, 1, 1)),
                    OpenDataQuery("year", 10), OpenDataQuery("year", 12, months_k=5),
                    OpenDataQuery("year", 20, months_k=rng.randrange(5, 12)), OpenDataQuery("year", 6, months_k=14),
                    OpenDataQuery("year", 10, date(2025, 1, 1), date(2025, 12, 31)),
                    OpenDataQuery("year", 5, until=date(2024, 12, 31))]
        held_by_guard = 0
        with sessions() as session:
            for q in queries:
                days, rolled = before.publication(session, q), publication(session, q)
                assert to_csv(rolled) == before.to_csv(days), q
                assert to_geojson(rolled) == before.to_geojson(days), q
                assert (rolled.count, rolled.suppressed) == (len(days.rows), days.suppressed), q
                assert rolled.count and rolled.suppressed, q  # both decisions are exercised
                if q.period == "year":  # cells over k held back all the same: the months' guard decided
                    totals, _ = DAYS.totals(session, q)
                    published = {(r["street_id"], r["period"], r["stream"]) for r in rolled.records()}
                    held_by_guard += sum(1 for cell, (lifts, _) in totals.items()
                                         if lifts >= q.k and cell[0] != 1 and cell not in published)
            # Categories tied on lifts, where items then the name decide the order (and which one is third).
            ties = sum(1 for q in queries for by in DAYS.errors(session, q).values()
                       if len(set(sorted((n for n, _ in by.values()), reverse=True)[:4])) < min(4, len(by)))
        assert held_by_guard > 0
        assert ties > 0
    finally:
        engine.dispose()
