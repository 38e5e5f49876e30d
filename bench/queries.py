"""Street statistics latency by period and database size: the API over the day/month/year
roll-ups vs the naive GROUP BY over raw lifts, on SQLite and PostgreSQL, side by side.

    .venv/bin/python bench/queries.py [--runs sqlite:10M,postgresql:10M,postgresql:30M]
                                      [--repeat 30] [--naive-repeat 1] [--turns 100] [--explain] [--rebuild]
                                      [--prepare-only]

Each database is generated once and cached: SQLite in ``build/bench/queries-<lifts>.db``,
PostgreSQL as the database ``trivue_bench_q<lifts>`` (created through ``--postgres-admin-url``;
drop it when done, 30 million lifts take ~25 GB). Generation is SQL inside the database (a
recursive CTE on SQLite, ``generate_series`` on PostgreSQL, whose ``lifts`` is partitioned by
month as migration 0005 leaves it), half a million lifts per statement, with the lifts' secondary
indexes built after the load; the aggregates and their roll-ups are then built by the server's own
bulk rebuild (``server.ingest.aggregates.rebuild_aggregates``, what ``trivue streets rematch`` runs).

The data: the 1,530 real Rennes streets (``../shared/geodata``), 364 days from Monday 2025-01-06;
each street is collected on one weekday (as real rounds are), about 3 % of lifts unmatched, four
streams, a contamination rate per street from 8 % to 37 % and five error mixes. More lifts make
each street-day heavier, not more numerous: the aggregates stay the same size.

Timed, ``--repeat`` calls each after two warm-ups: wall p50 and p95, and the mean CPU per call
(this process plus, on PostgreSQL, the database's server processes), through the real FastAPI app
(``TestClient``, JSON encoding included): a day, a week, a month, a quarter, the year, all time, a
rolling 90 days, the year filtered by stream, commune and error type, and the GeoJSON of the month
and the year; against the same periods computed naively from raw lifts (totals and top errors by
``GROUP BY`` over ``lifts``, SQL only, no HTTP: flattering to naive). With two PostgreSQL sizes,
the ``/api/streets`` periods are timed once more with the calls alternating between the sizes
(``measure_in_turn``): the growth ratio then compares timings taken over the same seconds, not two
runs minutes apart on a machine whose load drifts. Issue 16's goal is judged on it, and only on
``postgresql:10M`` with ``postgresql:30M``: the year's p95 at 30M at most 1.3x its p95 at 10M.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
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
from server.ingest.models import Lift, StreetDay, StreetDayError, StreetPeriod, StreetPeriodError
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
# Issue 16's goal: on PostgreSQL, /api/streets for the year at 30M lifts at most 1.3x its 10M p95.
GOAL_SIZES, GOAL_RATIO = (10_000_000, 30_000_000), 1.3
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


@dataclass(frozen=True, slots=True)
class Period:
    name: str
    since: str | None
    until: str | None
    extra: str = ""  # more query parameters (filters)
    naive: bool = False  # also timed naively (a GROUP BY over raw lifts; minutes for a year of SQLite)

    def query(self) -> str:
        bounds = [f"since={self.since}" if self.since else "", f"until={self.until}" if self.until else "",
                  self.extra]
        return "&".join(b for b in bounds if b)


# June 2025 in data running from Monday 2025-01-06 to 2026-01-04.
PERIODS = [
    Period("day", "2025-06-11", "2025-06-11", naive=True),
    Period("week", "2025-06-09", "2025-06-15", naive=True),
    Period("month", "2025-06-01", "2025-06-30", naive=True),
    Period("quarter", "2025-04-01", "2025-06-30"),
    Period("year", "2025-01-01", "2025-12-31", naive=True),
    Period("all time", None, None),
    Period("last 90 days (rolling)", "2025-04-03", "2025-07-01"),
    Period("year, one stream", "2025-01-01", "2025-12-31", "stream=recyclables"),
    Period("year, one commune", "2025-01-01", "2025-12-31", "commune=Rennes"),
    Period("year, one error type", "2025-01-01", "2025-12-31", "category=verre"),
]
GEOJSON = ("month", "year")


def naive(session: Session, since: str | None, until: str | None) -> int:
    """What the routes would cost without aggregates: totals and top errors straight from raw lifts."""
    dialect = session.get_bind().dialect.name
    where = " AND ".join(w for w in ("l.day >= :since" if since else "", "l.day <= :until" if until else "") if w)
    where = where or "1 = 1"
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


class CpuClock:
    """CPU seconds of this process plus, on PostgreSQL, of the bench database's server processes
    (read from /proc: the server runs on this machine). Wall time on a shared machine includes
    other people's work; CPU time is what the query itself cost."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.ticks = os.sysconf("SC_CLK_TCK")

    def _backends(self) -> float:
        if self.engine.dialect.name != "postgresql":
            return 0.0
        with self.engine.connect() as connection:
            # Client backends only: autovacuum workers on a freshly loaded database are not the query's.
            pids = connection.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                           "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                                           )).scalars().all()
        total = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / self.ticks

    def now(self) -> float:
        return time.process_time() + self._backends()


@dataclass(frozen=True, slots=True)
class Timing:
    run: str
    name: str
    samples: list[float]
    cpu: float  # mean CPU seconds per call
    size: str

    def percentile(self, q: float) -> float:
        return _p(self.samples, q)


def timed(run: str, name: str, call: Callable[[], Any], repeat: int, size: Callable[[Any], str],
          clock: CpuClock) -> Timing:
    for _ in range(2):
        result = call()
    samples = []
    cpu_started = clock.now()
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        samples.append(time.perf_counter() - started)
    return Timing(run, name, samples, (clock.now() - cpu_started) / repeat, size(result))


def measure(engine: Engine, url: str, run: str, repeat: int) -> list[Timing]:
    """The routes, through the real app."""
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.config import load_settings

    clock = CpuClock(engine)
    results = []
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

        with _progress() as progress:
            task = progress.add_task(f"{run}: timing", total=len(PERIODS) + len(GEOJSON))
            for period in PERIODS:
                results.append(timed(run, f"/api/streets, {period.name}", get(f"/api/streets?{period.query()}"),
                                     repeat, streets, clock))
                progress.advance(task)
            for name in GEOJSON:
                period = next(p for p in PERIODS if p.name == name)
                results.append(timed(run, f"/api/streets.geojson, {name}",
                                     get(f"/api/streets.geojson?{period.query()}"), repeat, streets, clock))
                progress.advance(task)
    return results


def measure_in_turn(urls: dict[str, str], repeat: int) -> dict[str, dict[str, list[float]]]:
    """``/api/streets`` for every period on several databases, one call on each in turn (10M, 30M,
    30M, 10M, ...), through one app per database: the sizes' timings are taken over the same
    seconds, so what the machine does meanwhile (its load, a checkpoint, the clock) falls on every
    size alike, and their ratio is the data's size, not the drift between two runs minutes apart.
    Returns period -> run -> samples (seconds)."""
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.config import load_settings

    samples: dict[str, dict[str, list[float]]] = {}
    engines = {run: make_engine(url) for run, url in urls.items()}
    with tempfile.TemporaryDirectory() as folder:
        clients = {}
        for k, (run, url) in enumerate(urls.items()):
            settings = load_settings(env={}, data_dir=Path(folder) / str(k), database_url=url, dev=True,
                                     ingest_enabled=False, retention_days=100_000)
            clients[run] = TestClient(create_app(settings, engines[run], start_ingest=False))
        order = list(clients)
        with _progress() as progress:
            task = progress.add_task("the sizes in turn: timing", total=len(PERIODS))
            for period in PERIODS:
                path = f"/api/streets?{period.query()}"
                for client in clients.values():
                    for _ in range(2):  # warm-up, as in ``timed``
                        client.get(path).raise_for_status()
                by_run: dict[str, list[float]] = {run: [] for run in order}
                for i in range(repeat):
                    for run in (order if i % 2 == 0 else order[::-1]):  # neither size always goes first
                        started = time.perf_counter()
                        clients[run].get(path).raise_for_status()
                        by_run[run].append(time.perf_counter() - started)
                samples[period.name] = by_run
                progress.advance(task)
    for engine in engines.values():
        engine.dispose()
    return samples


def _p(samples: list[float], q: float) -> float:
    """The ``q`` quantile of ``samples`` (seconds), in milliseconds."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def growth_line(small_run: str, small: int, a: list[float], large_run: str, large: int, b: list[float]) -> str:
    """The year's growth from ``small`` to ``large`` lifts (samples ``a`` and ``b``, seconds, timed in
    turn), judged against issue 16's goal where the sizes are the goal's: 10M and 30M, p95 against p95."""
    ratio = _p(b, 0.95) / _p(a, 0.95)
    line = (f"PostgreSQL /api/streets year at {large / small:g}x the lifts, the sizes in turn: "
            f"p95 {_p(b, 0.95):,.1f} ms at {_short(large)} against {_p(a, 0.95):,.1f} ms at {_short(small)}: "
            f"x{ratio:.2f}; p50 x{_p(b, 0.5) / _p(a, 0.5):.2f}")
    goal = f"the 30M p95 at most {GOAL_RATIO:g}x the 10M p95"
    if (small, large) != GOAL_SIZES:
        return f"{line} (issue 16's goal, {goal}, not judged: {small_run} against {large_run})"
    return f"{line} (goal: {goal}: {'met' if ratio <= GOAL_RATIO else 'NOT met'})"


def measure_naive(engine: Engine, run: str, naive_repeat: int) -> list[Timing]:
    """The naive GROUP BYs over raw lifts."""
    clock, results = CpuClock(engine), []
    with Session(engine) as session:
        for period in (p for p in PERIODS if p.naive):
            with console.status(f"{run}: naive GROUP BY, {period.name}"):
                results.append(timed(run, f"naive, {period.name}", lambda p=period: naive(session, p.since, p.until),
                                     naive_repeat, lambda n: f"{n:,} rows", clock))
    return results


def explain(engine: Engine, period: Period) -> None:
    """The plan of a period's statement (the one ``/api/streets`` runs)."""
    from server.web.reports import StreetFilter, _period_sql

    flt = StreetFilter(since=_day(period.since) if period.since else None,
                       until=_day(period.until) if period.until else None)
    sql, params = _period_sql(flt, engine.dialect.name)
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    with engine.connect() as connection:
        plan = connection.execute(text(prefix + sql), {k: (_day(v) if isinstance(v, str) and k.endswith(
            ("_low", "_high")) else v) for k, v in params.items()}).all()
    console.print(f"[bold]{engine.dialect.name}: {period.name}[/bold]")
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


def _runs(value: str) -> list[tuple[str, int]]:
    """'sqlite:10M,postgresql:30M' -> [('sqlite', 10000000), ('postgresql', 30000000)]."""
    runs = []
    for item in (v.strip() for v in value.split(",") if v.strip()):
        database, _, size = item.partition(":")
        if database not in ("sqlite", "postgresql") or not size:
            raise argparse.ArgumentTypeError(f"{item!r}: expected sqlite:<lifts> or postgresql:<lifts>")
        scale = {"k": 1_000, "M": 1_000_000}.get(size[-1], 1)
        runs.append((database, int(float(size.rstrip("kM")) * scale)))
    return runs


def _short(lifts: int) -> str:
    return f"{lifts / 1e6:g}M" if lifts >= 1_000_000 else f"{lifts:,}"


def _label(database: str, lifts: int) -> str:
    return f"{database} {_short(lifts)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=_runs, default=_runs("sqlite:10M,postgresql:10M,postgresql:30M"),
                        help="database:lifts, comma-separated (default sqlite:10M,postgresql:10M,postgresql:30M)")
    parser.add_argument("--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="an existing database to create the bench database from")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per route (p50, p95)")
    parser.add_argument("--naive-repeat", type=int, default=1, help="timed naive GROUP BY runs per period")
    parser.add_argument("--turns", type=int, default=100,
                        help="calls per size and period when two PostgreSQL sizes are timed in turn (the growth "
                             "ratio: a p95 of 30 calls is one outlier)")
    parser.add_argument("--explain", action="store_true", help="print the plans of the year's and the week's statement")
    parser.add_argument("--rebuild", action="store_true", help="regenerate the cached databases")
    parser.add_argument("--prepare-only", action="store_true", help="generate the databases, time nothing")
    args = parser.parse_args()
    if not (SHARED_DIR / "geodata").is_dir():
        raise SystemExit(f"{SHARED_DIR / 'geodata'} is absent: the bench needs the real Rennes streets")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    results: list[Timing] = []
    preparation = Table("run", "step", "seconds", title="generation (skipped when cached)")
    sizes: dict[str, str] = {}
    urls: dict[str, str] = {}
    # Every run's routes are timed before any full scan of lifts (the naive GROUP BYs, the sizes):
    # a scan of 30 million lifts churns the caches, and the next run's routes would pay for it.
    for database, lifts in args.runs:
        run = _label(database, lifts)
        if database == "sqlite":
            url = f"sqlite:///{CACHE_DIR / f'queries-{lifts}.db'}"
        elif (found := postgres_url(args.postgres_admin_url, lifts)) is None:
            continue
        else:
            url = found
        urls[run] = url
        engine = make_engine(url)
        for step, seconds in prepare(engine, lifts, args.rebuild).items():
            preparation.add_row(run, step, f"{seconds:,.1f}")
        if not args.prepare_only:
            if args.explain:
                for name in ("year", "week"):
                    explain(engine, next(p for p in PERIODS if p.name == name))
            results.extend(measure(engine, url, run, args.repeat))
        engine.dispose()
    for run, url in urls.items():
        engine = make_engine(url)
        if not args.prepare_only:
            results.extend(measure_naive(engine, run, args.naive_repeat))
        with Session(engine) as session:
            count = session.scalar(select(func.count()).select_from(Lift)) or 0
            sizes[run] = (f"{count:,} lifts, "
                          f"{session.scalar(select(func.count()).select_from(StreetDay)):,} street_days, "
                          f"{session.scalar(select(func.count()).select_from(StreetDayError)):,} street_day_errors, "
                          f"{session.scalar(select(func.count()).select_from(StreetPeriod)):,} street_periods, "
                          f"{session.scalar(select(func.count()).select_from(StreetPeriodError)):,} "
                          f"street_period_errors; {disk_bytes(session) / max(count, 1):,.0f} bytes per lift on disk")
        engine.dispose()
    if preparation.row_count:
        console.print(preparation)
    for run, size in sizes.items():
        console.print(f"{run}: {size}")
    if not results:
        return
    runs = list(dict.fromkeys(r.run for r in results))
    table = Table("query", *(f"{run}\np50 / p95 ms (CPU ms)" for run in runs),
                  title=f"bench/queries.py: the routes over the roll-ups, {args.repeat} calls each after 2 warm-ups")
    for name in dict.fromkeys(r.name for r in results if not r.name.startswith("naive")):
        cells = []
        for run in runs:
            found = next((r for r in results if r.run == run and r.name == name), None)
            cells.append(f"{found.percentile(0.5):,.1f} / {found.percentile(0.95):,.1f} ({found.cpu * 1000:,.1f})"
                         if found else "")
        table.add_row(name, *cells)
    console.print(table)
    naive_table = Table("period", *(f"{run}\nnaive ms (x p50 of the route)" for run in runs),
                        title=f"naive GROUP BY over raw lifts (SQL only, no HTTP), {args.naive_repeat} run(s)")
    for period in (p for p in PERIODS if p.naive):
        cells = []
        for run in runs:
            slow = next((r for r in results if r.run == run and r.name == f"naive, {period.name}"), None)
            fast = next((r for r in results if r.run == run and r.name == f"/api/streets, {period.name}"), None)
            cells.append(f"{slow.percentile(0.5):,.0f} (x{slow.percentile(0.5) / fast.percentile(0.5):,.0f})"
                         if slow and fast else "")
        naive_table.add_row(period.name, *cells)
    console.print(naive_table)
    year = {r.run: r for r in results if r.name == "/api/streets, year"}
    postgres = sorted((lifts, run) for run in year for database, lifts in args.runs
                      if run == _label(database, lifts) and database == "postgresql")
    if len(postgres) >= 2:
        (small, small_run), (large, large_run) = postgres[0], postgres[-1]
        console.print(f"PostgreSQL year p95 at {large / small:g}x the lifts, each size timed on its own: "
                      f"x{year[large_run].percentile(0.95) / year[small_run].percentile(0.95):.2f}; "
                      f"CPU x{year[large_run].cpu / year[small_run].cpu:.2f} (the drift between two runs shows "
                      "here: the goal is judged on the sizes in turn, below)")
        in_turn = measure_in_turn({small_run: urls[small_run], large_run: urls[large_run]}, args.turns)
        turns = Table("query", f"{small_run}\np50 / p95 ms", f"{large_run}\np50 / p95 ms", "p50 ratio", "p95 ratio",
                      title=f"PostgreSQL, /api/streets called on each size in turn ({args.turns} calls each after "
                            "2 warm-ups): the growth with the data, without the drift between runs")
        for period, by_run in in_turn.items():
            a, b = by_run[small_run], by_run[large_run]
            turns.add_row(period, f"{_p(a, 0.5):,.1f} / {_p(a, 0.95):,.1f}", f"{_p(b, 0.5):,.1f} / {_p(b, 0.95):,.1f}",
                          f"x{_p(b, 0.5) / _p(a, 0.5):.2f}", f"x{_p(b, 0.95) / _p(a, 0.95):.2f}")
        console.print(turns)
        console.print(growth_line(small_run, small, in_turn["year"][small_run],
                                  large_run, large, in_turn["year"][large_run]))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    console.print(f"target: p95 < 100 ms for every period; load average at the end {load} "
                  f"on {os.cpu_count()} CPUs (other work on the machine shows in wall times, not in CPU)")


if __name__ == "__main__":
    main()
