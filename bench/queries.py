"""Street statistics latency over a year of lifts (10 million by default): the API from the
incremental aggregates vs the naive GROUP BY over raw lifts, on SQLite and PostgreSQL, side by side.

    .venv/bin/python bench/queries.py [--lifts 10000000] [--databases sqlite,postgresql]
                                      [--repeat 30] [--naive-repeat 5] [--explain] [--rebuild]

Each database is generated once and cached: SQLite in ``build/bench/queries-<lifts>.db``,
PostgreSQL as the database ``trivue_bench_q<lifts>`` (created through ``--postgres-admin-url``).
Generation is SQL inside the database (a recursive CTE on SQLite, ``generate_series`` on
PostgreSQL), half a million lifts per statement, with the lifts' secondary indexes built after the
load; the aggregates are then built by the server's own bulk rebuild
(``server.aggregates.rebuild_aggregates``, what ``trivue streets rematch`` runs).

The data: the 1,530 real Rennes streets (``../shared/geodata``), 364 days from Monday 2025-01-06;
each street is collected on one weekday (as real rounds are), about 3 % of lifts unmatched, four
streams, a contamination rate per street from 8 % to 37 % and five error mixes.

Timed, ``--repeat`` calls each after two warm-ups, p50 and p95: the routes through the real
FastAPI app (``TestClient``, JSON encoding included) for one month, one month of one stream, the
whole year, and the GeoJSON of one month; against the same month computed naively from raw lifts
(totals and top errors by ``GROUP BY`` over ``lifts``, SQL only, no HTTP: flattering to naive).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from base.paths import REPO_ROOT, SHARED_DIR
from server.db import make_engine
from server.ingest.aggregates import rebuild_aggregates
from server.ingest.models import Lift, StreetDay, StreetDayError
from server.ingest.partitions import create_month, is_partitioned, months_between
from server.migrate import upgrade_database
from server.streets.importer import import_street_file
from server.streets.models import Street

GENERATOR = "v3"  # bump when the generated data changes: cached databases are then rebuilt
CACHE_DIR = REPO_ROOT / "build" / "bench"
FIRST_DAY = "2025-01-06"  # a Monday
DAYS = 364
CHUNK = 500_000
MONTH = ("2025-06-01", "2025-06-30")
YEAR = ("2025-01-01", "2025-12-31")
console = Console(width=None if sys.stdout.isatty() else 150)  # logs and `make bench` keep the table readable

# Error mixes of a contaminated lift (JSON as stored) and their score: error 1 per item, alert 3.
# A space after every colon: ``text()`` would read ``:2`` as a bind parameter.
MIXES = [
    ('[{"class": "bag","count": 1,"category": "sac_ferme","severity": "error"}]', 1.0),
    ('[{"class": "food","count": 2,"category": "biodechet","severity": "error"}]', 2.0),
    ('[{"class": "bag","count": 1,"category": "sac_ferme","severity": "error"},'
     '{"class": "textile","count": 1,"category": "textile","severity": "error"}]', 2.0),
    ('[{"class": "glass","count": 1,"category": "verre","severity": "error"}]', 1.0),
    ('[{"class": "battery","count": 1,"category": "dangereux","severity": "alert"}]', 3.0),
]
INFO = '[{"class": "bottle","count": 2,"category": "emballage","severity": "info"}]'


def generate_sql(dialect: str, total: int, first_street: int, streets: int) -> str:
    """INSERT ... SELECT of lifts :lo..:hi, computed in SQL from the row number alone (repeatable)."""
    sqlite_db = dialect == "sqlite"
    source = ("(WITH RECURSIVE s(x) AS (SELECT :lo UNION ALL SELECT x + 1 FROM s WHERE x < :hi) SELECT x FROM s) AS s"
              if sqlite_db else "generate_series(CAST(:lo AS BIGINT), CAST(:hi AS BIGINT)) AS s(x)")
    per_weekday = streets // 7

    def json(value: str) -> str:
        return f"'{value}'" if sqlite_db else f"CAST('{value}' AS JSON)"

    def flag(condition: str) -> str:  # SQLite stores booleans as 0/1, PostgreSQL has a boolean type
        return f"(CASE WHEN {condition} THEN 1 ELSE 0 END)" if sqlite_db else f"({condition})"

    if sqlite_db:
        event_id = "'00000000-0000-4000-8000-' || printf('%012d', x)"
        day = f"date('{FIRST_DAY}', '+' || d || ' days')"
        at = f"(datetime('{FIRST_DAY}', '+' || d || ' days', '+' || (21600 + x % 28800) || ' seconds') || '.000000')"
    else:
        event_id = "'00000000-0000-4000-8000-' || lpad(CAST(x AS TEXT), 12, '0')"
        day = f"(DATE '{FIRST_DAY}' + CAST(d AS INTEGER))"
        at = f"(TIMESTAMP '{FIRST_DAY} 00:00:00' + d * INTERVAL '1 day' + (21600 + x % 28800) * INTERVAL '1 second')"
    stream = ("CASE WHEN x % 10 < 5 THEN 'recyclables' WHEN x % 10 < 8 THEN 'residual' "
              "WHEN x % 10 = 8 THEN 'glass' ELSE 'biowaste' END")
    errors = ("CASE WHEN c = 1 THEN CASE k " + " ".join(f"WHEN {i} THEN {json(m)}" for i, (m, _) in enumerate(MIXES))
              + f" END WHEN x % 10 BETWEEN 5 AND 7 AND x % 3 = 0 THEN {json(INFO)} ELSE {json('[]')} END")
    score = "CASE WHEN c = 1 THEN CASE k " + " ".join(f"WHEN {i} THEN {s}" for i, (_, s) in enumerate(MIXES)) + \
        " END ELSE 0.0 END"
    matched = "h1 % 100 >= 3"
    columns = {
        "event_id": event_id, "truck_id": "'benne-' || (x % 40)", "sequence": "x", "stream": stream,
        "started_at": at, "ended_at": at, "day": day, "received_at": at,
        "lat": "48.09 + (h1 % 4000) / 100000.0", "lon": "-1.72 + (h2 % 8000) / 100000.0", "accuracy_m": "5.0",
        "contaminated": flag("c = 1"), "has_alert": flag("c = 1 AND k = 4"), "score": score,
        "counts": json('{"bottle": 2}'), "errors": errors, "model_name": "'trivue-waste'",
        "model_version": "'bench'", "frames": "40",
        "street_id": f"CASE WHEN {matched} THEN {first_street} + sidx END",
        "street_distance_m": f"CASE WHEN {matched} THEN 3.0 END",
        "match_confidence": f"CASE WHEN {matched} THEN 0.9 END",
    }
    return f"""INSERT INTO lifts ({', '.join(columns)})
        SELECT {', '.join(columns.values())} FROM (
          SELECT x, d, h1, h2, sidx, (h2 / 7) % 5 AS k,
                 CASE WHEN h2 % 1000 < 80 + (sidx % 25) * 12 THEN 1 ELSE 0 END AS c FROM (
            SELECT x, d, h1, h2, ((h1 / 100) % {per_weekday}) * 7 + (d % 7) AS sidx FROM (
              SELECT x, ((x - 1) * {DAYS}) / {total} AS d, (x * 2654435761) % 2147483647 AS h1,
                     (x * 1103515245 + 12345) % 2147483648 AS h2 FROM {source}
            ) AS a
          ) AS b
        ) AS g"""


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


def _bench_meta(engine: Engine) -> str | None:
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS bench_meta (name VARCHAR(32) PRIMARY KEY, "
                                "value VARCHAR(200))"))
        return connection.execute(text("SELECT value FROM bench_meta WHERE name = 'generator'")).scalar()


def prepare(engine: Engine, lifts: int, rebuild: bool) -> dict[str, float]:
    """Generate (or reuse) the database; returns the timings of what was done."""
    upgrade_database(engine)
    wanted = f"{GENERATOR} lifts={lifts}"
    if _bench_meta(engine) == wanted and not rebuild:
        console.print(f"[dim]{engine.url.render_as_string(hide_password=True)}: cached ({wanted})[/dim]")
        return {}
    dialect = engine.dialect.name
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with Session(engine) as session:
        for table in ("street_period_errors", "street_periods", "street_day_errors", "street_days", "lifts",
                      "bench_meta"):
            session.execute(text(f"DELETE FROM {table}"))
        import_street_file(session, SHARED_DIR / "geodata" / "rennes-streets.osm.geojson", "Rennes")
        session.commit()
        first, last, count = session.execute(select(func.min(Street.id), func.max(Street.id),
                                                    func.count())).one()
    if last - first + 1 != count:
        raise SystemExit(f"street ids are not contiguous ({first}..{last}, {count}): use --rebuild on a new database")
    timings["import Rennes streets"] = time.perf_counter() - started
    with engine.begin() as connection:  # PostgreSQL: a partition per month of the data before the load
        if is_partitioned(connection):
            for month in months_between(_day(FIRST_DAY), _day(FIRST_DAY) + timedelta(days=DAYS)):
                create_month(connection, month)
    indexes = list(Lift.__table__.indexes)
    with engine.begin() as connection:  # secondary indexes are built once after the load: faster than row by row
        for index in indexes:
            index.drop(connection, checkfirst=True)
    insert = text(generate_sql(dialect, lifts, first, count))
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task(f"{dialect}: generating lifts", total=lifts)
        for lo in range(1, lifts + 1, CHUNK):
            hi = min(lifts, lo + CHUNK - 1)
            with engine.begin() as connection:
                if dialect == "sqlite":
                    connection.exec_driver_sql("PRAGMA synchronous=OFF")
                    connection.exec_driver_sql("PRAGMA cache_size=-400000")
                connection.execute(insert, {"lo": lo, "hi": hi})
            progress.update(task, completed=hi)
    timings["generate lifts"] = time.perf_counter() - started
    started = time.perf_counter()
    with console.status(f"{dialect}: building {len(indexes)} lift indexes"), engine.begin() as connection:
        for index in indexes:
            index.create(connection)
    timings["lift indexes"] = time.perf_counter() - started
    started = time.perf_counter()
    with console.status(f"{dialect}: rebuild_aggregates (the server's bulk rebuild)"), Session(engine) as session:
        read = rebuild_aggregates(session)
        session.commit()
    assert read == lifts, (read, lifts)
    timings["rebuild_aggregates"] = time.perf_counter() - started
    started = time.perf_counter()
    with console.status(f"{dialect}: ANALYZE"), engine.connect() as connection:
        if dialect == "postgresql":
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        else:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
    timings["analyze"] = time.perf_counter() - started
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO bench_meta (name, value) VALUES ('generator', :v)"), {"v": wanted})
    return timings


def naive_month(session: Session, since: str, until: str) -> int:
    """What the routes would cost without aggregates: totals and top errors straight from raw lifts."""
    dialect = session.get_bind().dialect.name
    where = "l.day BETWEEN :since AND :until"
    params = {"since": since, "until": until}
    totals = session.execute(text(
        f"SELECT l.street_id, COUNT(*), SUM(CASE WHEN l.contaminated THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN l.has_alert THEN 1 ELSE 0 END) FROM lifts l WHERE {where} GROUP BY l.street_id"),
        params).all()
    if dialect == "sqlite":
        expand, category = "json_each(l.errors) AS e", "json_extract(e.value, '$.category')"
        severity, count = "json_extract(e.value, '$.severity')", "json_extract(e.value, '$.count')"
    else:
        expand, category = "json_array_elements(l.errors) AS e(value)", "(e.value ->> 'category')"
        severity, count = "(e.value ->> 'severity')", "CAST(e.value ->> 'count' AS INTEGER)"
    errors = session.execute(text(
        f"SELECT l.street_id, {category}, COUNT(DISTINCT l.id), SUM({count}) FROM lifts l, {expand} "
        f"WHERE {where} AND {severity} <> 'info' GROUP BY l.street_id, {category}"), params).all()
    return len(totals) + len(errors)


@dataclass(frozen=True, slots=True)
class Timing:
    database: str
    name: str
    samples: list[float]
    size: str

    def percentile(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def timed(database: str, name: str, call: Callable[[], Any], repeat: int, size: Callable[[Any], str]) -> Timing:
    for _ in range(2):
        result = call()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        samples.append(time.perf_counter() - started)
    return Timing(database, name, samples, size(result))


def measure(engine: Engine, url: str, repeat: int, naive_repeat: int) -> list[Timing]:
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.config import load_settings

    database = engine.dialect.name
    with tempfile.TemporaryDirectory() as folder:
        # No lifespan (no ``with``): the retention task must not purge the 2025 lifts; dev opens the routes.
        settings = load_settings(env={}, data_dir=Path(folder), database_url=url, dev=True, ingest_enabled=False,
                                 retention_days=100_000)
        client = TestClient(create_app(settings, engine, start_ingest=False))

        def get(path: str) -> Callable[[], Any]:
            def call() -> Any:
                response = client.get(path)
                response.raise_for_status()
                return response
            return call

        def streets(response: Any) -> str:
            body = response.json()
            found = body.get("streets", body.get("features", []))
            return f"{len(found)} streets, {len(response.content) / 1024:,.0f} KiB"

        month = f"since={MONTH[0]}&until={MONTH[1]}"
        results = [
            timed(database, "/api/streets, one month", get(f"/api/streets?{month}"), repeat, streets),
            timed(database, "/api/streets, one month, recyclables", get(f"/api/streets?{month}&stream=recyclables"),
                  repeat, streets),
            timed(database, "/api/streets.geojson, one month", get(f"/api/streets.geojson?{month}"), repeat, streets),
            timed(database, "/api/streets, whole year", get(f"/api/streets?since={YEAR[0]}&until={YEAR[1]}"),
                  repeat, streets),
        ]
        with Session(engine) as session:
            results.append(timed(database, "naive GROUP BY over lifts, one month (SQL only)",
                                 lambda: naive_month(session, *MONTH), naive_repeat, lambda n: f"{n:,} rows"))
    return results


def explain(engine: Engine) -> None:
    """The plans of the month's queries: which index each one uses."""
    from sqlalchemy.dialects import postgresql, sqlite

    from server.web.reports import StreetFilter, _totals_query

    flt = StreetFilter(since=_day(MONTH[0]), until=_day(MONTH[1]))
    totals = _totals_query(flt)
    errors = flt.apply(select(StreetDayError.street_id, StreetDayError.category, func.sum(StreetDayError.lifts))
                       .where(StreetDayError.street_id.in_([1, 2, 3]), StreetDayError.severity != "info")
                       .group_by(StreetDayError.street_id, StreetDayError.category), StreetDayError)
    dialect = postgresql.dialect() if engine.dialect.name == "postgresql" else sqlite.dialect()
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    with engine.connect() as connection:
        for name, query in (("street totals", totals), ("top errors (3 streets)", errors)):
            sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
            plan = connection.exec_driver_sql(prefix + sql).all()
            console.print(f"[bold]{engine.dialect.name}: {name}[/bold]")
            for row in plan:
                console.print("  " + " | ".join(str(v) for v in row), highlight=False)


def disk_bytes(session: Session) -> int:
    """Size of the database on disk (sizing arithmetic in docs/deployment.md)."""
    if session.get_bind().dialect.name == "postgresql":
        return int(session.scalar(text("SELECT pg_database_size(current_database())")) or 0)
    page_size = session.scalar(text("PRAGMA page_size")) or 0
    return int(page_size * (session.scalar(text("PRAGMA page_count")) or 0))


def _day(value: str) -> Any:
    from datetime import date

    return date.fromisoformat(value)


def postgres_url(admin_url: str, lifts: int) -> str | None:
    """The bench database's URL (created when missing), or None when PostgreSQL does not answer."""
    import psycopg

    name = f"trivue_bench_q{lifts}"
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        console.print(f"[yellow]PostgreSQL skipped: {admin_url} does not answer ({error})[/yellow]")
        return None
    with admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            admin.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lifts", type=int, default=10_000_000)
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="an existing database to create the bench database from")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per route (p50, p95)")
    parser.add_argument("--naive-repeat", type=int, default=5, help="timed naive GROUP BY runs")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    parser.add_argument("--rebuild", action="store_true", help="regenerate the cached databases")
    parser.add_argument("--prepare-only", action="store_true", help="generate the databases, time nothing")
    args = parser.parse_args()
    if not (SHARED_DIR / "geodata").is_dir():
        raise SystemExit(f"{SHARED_DIR / 'geodata'} is absent: the bench needs the real Rennes streets")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    results: list[Timing] = []
    preparation = Table("database", "step", "seconds", title="generation (skipped when cached)")
    sizes: dict[str, str] = {}
    for database in [d.strip() for d in args.databases.split(",") if d.strip()]:
        if database == "sqlite":
            url = f"sqlite:///{CACHE_DIR / f'queries-{args.lifts}.db'}"
        elif database == "postgresql":
            if (found := postgres_url(args.postgres_admin_url, args.lifts)) is None:
                continue
            url = found
        else:
            parser.error(f"unknown database {database!r}")
        engine = make_engine(url)
        for step, seconds in prepare(engine, args.lifts, args.rebuild).items():
            preparation.add_row(database, step, f"{seconds:,.1f}")
        with Session(engine) as session:
            count = session.scalar(select(func.count()).select_from(Lift)) or 0
            sizes[database] = (f"{count:,} lifts, "
                               f"{session.scalar(select(func.count()).select_from(StreetDay)):,} street_days, "
                               f"{session.scalar(select(func.count()).select_from(StreetDayError)):,} "
                               f"street_day_errors; {disk_bytes(session) / max(count, 1):,.0f} bytes per lift "
                               "on disk (whole database: lifts, indexes, aggregates, streets)")
        if args.prepare_only:
            engine.dispose()
            continue
        if args.explain:
            explain(engine)
        results.extend(measure(engine, url, args.repeat, args.naive_repeat))
        engine.dispose()
    if preparation.row_count:
        console.print(preparation)
    for database, size in sizes.items():
        console.print(f"{database}: {size}")
    table = Table("database", "query", "p50 ms", "p95 ms", "naive p50 / p50", "answer",
                  title=f"bench/queries.py, {args.lifts:,} lifts, month {MONTH[0]}..{MONTH[1]}")
    for database in sizes:
        rows = [r for r in results if r.database == database]
        naive = next(r for r in rows if r.name.startswith("naive"))
        for row in rows:
            ratio = "" if row is naive else f"x{naive.percentile(0.5) / row.percentile(0.5):,.0f}"
            table.add_row(database, row.name, f"{row.percentile(0.5):,.1f}", f"{row.percentile(0.95):,.1f}",
                          ratio, row.size)
    console.print(table)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    console.print(f"target: p95 < 100 ms from the aggregates; load average at the end {load} "
                  f"on {os.cpu_count()} CPUs (other work on the machine shows in p95)")


if __name__ == "__main__":
    main()
