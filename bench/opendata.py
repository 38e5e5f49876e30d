"""The open-data export (``trivue opendata export``, ``GET /api/opendata/streets.csv``) over the
month and year roll-ups against the same export summed from every street day, side by side.

    .venv/bin/python bench/opendata.py [--streets 2500] [--years 3] [--repeat 3]
                                       [--postgres-admin-url URL | --sqlite-only] [--rebuild]

The database holds the street aggregates a city accumulates, written straight into ``street_days``
/ ``street_day_errors`` (the export never reads raw lifts), then rolled up by the server's own
``rebuild_rollups``: ``--streets`` synthetic streets (eight communes) over ``--years`` years from
2023-01-01, each collected on its weekday: recyclables and residual weekly, biowaste weekly on
half the streets, glass every four weeks, a round missed now and then. Lifts per collection from
1 (a dead end, under ``k`` in a month) to 60, a contamination rate per street of 3 % to 40 %,
errors from eight categories (``dangereux`` an alert, ``emballage`` info). 2,500 streets over 3
years are ~1.1 million street days, a city's ~350,000 a year (docs/performance.md). Cached:
SQLite in ``build/bench/opendata-<streets>x<years>.db``, PostgreSQL as ``trivue_bench_od<streets>x<years>``.

Timed, ``--repeat`` times each after a warm-up, alternating: ``publication`` and ``to_csv`` (what
the route and the command run) for every month and every year of the data (the routes' default
range: all of it) and for the months of one year; the reference ("days") is the export as it was
before the roll-ups, every street day read into Python and every row a dictionary
(``bench/opendata_before.py``). Each run checks that both give the same CSV and GeoJSON, byte for
byte. The memory of one request: ``bench/opendata_memory.py``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from base.paths import REPO_ROOT
from bench import opendata_before as before
from server.db import make_engine
from server.ingest.models import StreetDay, StreetDayError, StreetPeriod, StreetPeriodError
from server.ingest.rollups import rebuild_rollups
from server.migrate import upgrade_database
from server.opendata.export import OpenDataQuery, publication, to_csv, to_geojson
from server.streets.models import Address, Street

GENERATOR = "v2"  # bump when the generated data changes: cached databases are then rebuilt
CACHE_DIR = REPO_ROOT / "build" / "bench"
FIRST_YEAR = 2023
COMMUNES = ("Rennes", "Cesson-Sévigné", "Saint-Grégoire", "Bruz", "Chantepie", "Pacé", "Betton", "Vezin-le-Coquet")
# (category, severity, weight): what contaminated lifts hold; ties are common in small cells.
CATEGORIES = (("sac_ferme", "error", 8), ("biodechet", "error", 5), ("textile", "error", 3), ("verre", "error", 3),
              ("papier_souille", "error", 2), ("polystyrene", "error", 2), ("dangereux", "alert", 1),
              ("emballage", "info", 4))
CHUNK = 50_000


def _street_rows(streets: int) -> list[dict[str, Any]]:
    rows = []
    for sid in range(1, streets + 1):
        lon, lat = -1.75 + (sid % 100) * 0.003, 48.05 + (sid // 100) * 0.002
        geometry = f'{{"type":"MultiLineString","coordinates":[[[{lon:.5f},{lat:.5f}],[{lon + 0.002:.5f},{lat:.5f}]]]}}'
        name = f"Rue du Banc {sid}"
        rows.append({"id": sid, "name": name, "commune": COMMUNES[sid % len(COMMUNES)], "name_key": name.lower(),
                     "geometry": geometry, "length_m": 150.0, "code_insee": f"35{sid % 300:03d}"})
    return rows


def _address_rows(streets: int) -> list[dict[str, Any]]:
    """5 to 34 addresses a street (~50,000 for 2,500 streets): every street has the households the
    export asks for (so both ways publish the same), and counting them is part of what is timed."""
    return [{"street_id": sid, "number": str(n), "label": f"{n} Rue du Banc {sid}", "street_name": f"Rue du Banc {sid}",
             "street_key": f"rue du banc {sid}", "commune": COMMUNES[sid % len(COMMUNES)], "lat": 48.1, "lon": -1.7,
             "synthetic": False, "source_key": f"bench:{sid}:{n}"}
            for sid in range(1, streets + 1) for n in range(1, 6 + sid % 30)]


def _aggregate_rows(streets: int, years: int, seed: int) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(street day, its error rows) for every collection of every street, repeatably."""
    rng = random.Random(seed)
    first, last = date(FIRST_YEAR, 1, 1), date(FIRST_YEAR + years - 1, 12, 31)
    names = [c for c, _, _ in CATEGORIES]
    weights = [w for _, _, w in CATEGORIES]
    severity = {c: s for c, s, _ in CATEGORIES}
    for sid in range(1, streets + 1):
        weekday = sid % 7
        size = rng.choice((1, 2, 3, 5, 8, 12, 20, 35, 60))  # lifts per collection, a dead end to a boulevard
        rate = rng.uniform(0.03, 0.40)
        streams = ["recyclables", "residual", "glass"] + (["biowaste"] if sid % 2 else [])
        day = first + timedelta(days=(weekday - first.weekday()) % 7)
        week = 0
        while day <= last:
            for stream in streams:
                if (stream == "glass" and week % 4 != sid % 4) or rng.random() < 0.04:  # glass monthly; missed rounds
                    continue
                lifts = max(1, round(rng.gauss(size, size / 4)))
                dirty = sum(rng.random() < rate for _ in range(lifts))
                errors: dict[str, list[int]] = {}
                for _ in range(dirty):
                    for category in set(rng.choices(names, weights, k=rng.choice((1, 1, 2)))):
                        found = errors.setdefault(category, [0, 0])
                        found[0] += 1
                        found[1] += rng.choice((1, 1, 2))
                yield ({"street_id": sid, "day": day, "stream": stream, "lifts": lifts, "contaminated": dirty,
                        "alerts": errors.get("dangereux", [0])[0], "score": float(dirty)},
                       [{"street_id": sid, "day": day, "stream": stream, "category": c, "severity": severity[c],
                         "lifts": n, "items": items} for c, (n, items) in errors.items()])
            day += timedelta(days=7)
            week += 1


def prepare(engine: Engine, streets: int, years: int, rebuild: bool) -> float:
    """Generate (or reuse) the database; returns the seconds it took (0 when cached)."""
    upgrade_database(engine)
    wanted = f"{GENERATOR} streets={streets} years={years}"
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS bench_meta (name VARCHAR(32) PRIMARY KEY, "
                                "value VARCHAR(200))"))
        if connection.execute(text("SELECT value FROM bench_meta WHERE name = 'generator'")).scalar() == wanted \
                and not rebuild:
            return 0.0
    started = time.perf_counter()
    with Session(engine) as session:
        for table in ("street_period_errors", "street_periods", "street_day_errors", "street_days", "addresses",
                      "streets", "bench_meta"):
            session.execute(text(f"DELETE FROM {table}"))
        session.execute(insert(Street), _street_rows(streets))
        session.execute(insert(Address), _address_rows(streets))
        days: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for day, its_errors in _aggregate_rows(streets, years, seed=streets * 100 + years):
            days.append(day)
            errors.extend(its_errors)
            if len(days) >= CHUNK:
                session.execute(insert(StreetDay), days)
                session.execute(insert(StreetDayError), errors)
                days, errors = [], []
        if days:
            session.execute(insert(StreetDay), days)
        if errors:
            session.execute(insert(StreetDayError), errors)
        rebuild_rollups(session)
        session.execute(text("INSERT INTO bench_meta (name, value) VALUES ('generator', :v)"), {"v": wanted})
        session.commit()
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        else:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
    return time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    query: OpenDataQuery


def cases(years: int) -> list[Case]:
    last = date(FIRST_YEAR + years - 1, 12, 31)
    one = date(FIRST_YEAR + years - 1, 1, 1)
    return [Case(f"every month ({years} years)", OpenDataQuery("month", until=last)),
            Case(f"the months of {one.year}", OpenDataQuery("month", since=one, until=last)),
            Case(f"every year ({years})", OpenDataQuery("year", until=last))]


def export(session: Session, q: OpenDataQuery, way: str) -> tuple[str, int, int]:
    if way == "days":
        old = before.publication(session, q)
        return before.to_csv(old), len(old.rows), old.suppressed
    pub = publication(session, q)
    return to_csv(pub), pub.count, pub.suppressed


def geojson(session: Session, q: OpenDataQuery, way: str) -> str:
    return before.to_geojson(before.publication(session, q)) if way == "days" else to_geojson(publication(session, q))


def measure(engine: Engine, run: str, years: int, repeat: int) -> list[tuple[str, str, float, float, int, int]]:
    """(run, case, days median s, roll-ups median s, rows, cells held back) per case; raises when they differ."""
    results = []
    with Session(engine) as session:
        for case in cases(years):
            times: dict[str, list[float]] = {"days": [], "roll-ups": []}
            ways = list(times)
            outputs: dict[str, tuple[str, int, int]] = {}
            for i in range(repeat + 1):  # the first round warms the caches, untimed
                for way in (ways if i % 2 == 0 else ways[::-1]):
                    started = time.perf_counter()
                    outputs[way] = export(session, case.query, way)
                    if i:
                        times[way].append(time.perf_counter() - started)
            if outputs["days"] != outputs["roll-ups"]:
                raise SystemExit(f"{run}, {case.name}: the export over the roll-ups differs from the daily one")
            if geojson(session, case.query, "days") != geojson(session, case.query, "roll-ups"):
                raise SystemExit(f"{run}, {case.name}: the GeoJSON over the roll-ups differs from the daily one")
            _, rows, held = outputs["roll-ups"]
            results.append((run, case.name, statistics.median(times["days"]), statistics.median(times["roll-ups"]),
                            rows, held))
    return results


def counts(engine: Engine) -> str:
    with Session(engine) as session:
        return ", ".join(f"{session.scalar(select(func.count()).select_from(t)):,} {t.__tablename__}"
                         for t in (Street, StreetDay, StreetDayError, StreetPeriod, StreetPeriodError))


def postgres_url(admin_url: str, name: str) -> str | None:
    import psycopg

    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        print(f"PostgreSQL skipped: {admin_url} does not answer ({error})")
        return None
    with admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            admin.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"at least 1, got {number}")
    return number


def main(argv: list[str] | None = None, say: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streets", type=positive, default=2500, help="synthetic streets (default 2,500)")
    parser.add_argument("--years", type=positive, default=3, help="years of daily aggregates from 2023 (default 3)")
    parser.add_argument("--repeat", type=positive, default=3, help="timed exports per way and case (median)")
    parser.add_argument("--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="an existing database to create the bench database from")
    parser.add_argument("--sqlite-only", action="store_true", help="leave PostgreSQL out")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help="where the SQLite database is kept")
    parser.add_argument("--rebuild", action="store_true", help="regenerate the cached databases")
    args = parser.parse_args(argv)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{args.streets}x{args.years}"
    urls = {"sqlite": f"sqlite:///{args.cache_dir / f'opendata-{tag}.db'}"}
    if not args.sqlite_only and (url := postgres_url(args.postgres_admin_url, f"trivue_bench_od{tag}")):
        urls["postgresql"] = url
    results = []
    for run, url in urls.items():
        engine = make_engine(url)
        try:
            built = prepare(engine, args.streets, args.years, args.rebuild)
            say(f"{run}: {counts(engine)}" + (f" (generated in {built:,.0f} s)" if built else " (cached)"))
            results.extend(measure(engine, run, args.years, args.repeat))
        finally:
            engine.dispose()
    say(f"bench/opendata.py: publication + CSV, median of {args.repeat} after a warm-up; same CSV and GeoJSON "
        "both ways")
    say(f"{'database':<11} {'export':<26} {'rows':>9} {'held back':>10} {'days s':>9} {'roll-ups s':>11} {'x':>6}")
    for run, name, days, rolled, rows, held in results:
        say(f"{run:<11} {name:<26} {rows:>9,} {held:>10,} {days:>9.3f} {rolled:>11.3f} {days / rolled:>6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
