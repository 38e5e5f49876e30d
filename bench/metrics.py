"""What a Prometheus scrape of ``/metrics`` costs the database: the row gauges as they were
(``count(*)`` over ``lifts`` and ``dead_letters``) against ``server.ingest.metrics.stored_rows``
(a count that stops at 10,000, then PostgreSQL's statistics or SQLite's id span), and the
scrape's whole database part (``server.web.prometheus.database_gauges``), on SQLite and PostgreSQL.

    .venv/bin/python bench/metrics.py [--runs sqlite:5M,postgresql:5M] [--repeat 5] [--rebuild]

The lifts are ``bench/queries.py``'s (``generate_sql``: SQL inside the database, repeatable),
without streets or aggregates, which a scrape does not read; PostgreSQL's ``lifts`` is
partitioned by month as the migrations leave it. Cached as ``build/bench/metrics-<lifts>.db``
and the PostgreSQL database ``trivue_bench_m<lifts>`` (drop it when done). Each timing is the
median of ``--repeat`` calls after one warm-up, so the table is in the page cache: a cold
``count(*)`` is slower still.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from queries import CHUNK, DAYS, FIRST_DAY, _day, _runs, generate_sql  # bench/queries.py

from base.paths import REPO_ROOT
from server.db import make_engine
from server.ingest.metrics import stored_rows
from server.ingest.models import DeadLetter, Lift
from server.ingest.partitions import create_month, is_partitioned, months_between
from server.migrate import upgrade_database
from server.web.prometheus import database_gauges

CACHE_DIR = REPO_ROOT / "build" / "bench"
console = Console(width=None if sys.stdout.isatty() else 150)


def prepare(engine: Engine, lifts: int, rebuild: bool) -> None:
    upgrade_database(engine)
    with Session(engine) as session:
        have = session.scalar(select(func.count()).select_from(Lift))
        if have == lifts and not rebuild:
            return
        session.execute(text("DELETE FROM lifts"))
        session.commit()
    with engine.begin() as connection:
        if is_partitioned(connection):
            for month in months_between(_day(FIRST_DAY), _day(FIRST_DAY) + timedelta(days=DAYS)):
                create_month(connection, month)
        for index in Lift.__table__.indexes:  # built once after the load, as bench/queries.py does
            index.drop(connection, checkfirst=True)
    insert = text(generate_sql(engine.dialect.name, lifts, 1, 1530))
    started = time.perf_counter()
    for lo in range(1, lifts + 1, CHUNK):
        with engine.begin() as connection:
            if engine.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA synchronous=OFF")
            connection.execute(insert, {"lo": lo, "hi": min(lifts, lo + CHUNK - 1)})
        console.print(f"[dim]{engine.dialect.name}: {min(lifts, lo + CHUNK - 1):,} lifts[/dim]")
    with engine.begin() as connection:
        for index in Lift.__table__.indexes:
            index.create(connection)
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":  # what autovacuum does on its own after a load
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    console.print(f"[dim]generated in {time.perf_counter() - started:,.0f} s[/dim]")


def median_ms(call: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    result = call()  # warm-up
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), result


def postgres_url(admin_url: str, lifts: int) -> str:
    import psycopg

    name = f"trivue_bench_m{lifts}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            admin.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=_runs, default=_runs("sqlite:5M,postgresql:5M"))
    parser.add_argument("--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true", help="regenerate the cached databases")
    args = parser.parse_args()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    table = Table("run", "lifts", "count(*) lifts + dead letters ms (before)", "stored_rows ms",
                  "trivue_lifts", "database_gauges ms (the scrape now)",
                  title=f"bench/metrics.py: the scrape's database reads, median of {args.repeat}")
    for database, lifts in args.runs:
        url = (f"sqlite:///{CACHE_DIR / f'metrics-{lifts}.db'}" if database == "sqlite"
               else postgres_url(args.postgres_admin_url, lifts))
        engine = make_engine(url)
        prepare(engine, lifts, args.rebuild)
        with Session(engine) as session:
            def before(s: Session = session) -> int:
                return sum(s.scalar(select(func.count()).select_from(t)) or 0 for t in (Lift, DeadLetter))

            def after(s: Session = session) -> int:
                return stored_rows(s, Lift.__table__) + stored_rows(s, DeadLetter.__table__)

            old_ms, exact = median_ms(before, args.repeat)
            new_ms, estimate = median_ms(after, args.repeat)
            scrape_ms, _ = median_ms(lambda s=session: database_gauges(s), args.repeat)
        table.add_row(database, f"{exact:,}", f"{old_ms:,.1f}", f"{new_ms:,.2f}",
                      f"{estimate:,} ({(estimate - exact) / max(exact, 1):+.2%})", f"{scrape_ms:,.2f}")
        engine.dispose()
    console.print(table)


if __name__ == "__main__":
    main()
