"""Upgrades as operators meet them: an old database holding lifts of any date, and server
processes that start together and all migrate at start-up; on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import text

from server.db import make_engine
from server.migrate import alembic_config, current_revision, head_revision
from tests.server.test_migrations import migrator


def test_upgrade_to_0005_partitions_only_months_with_lifts(database_url: str) -> None:
    """Before 0005's day, ingest stored lifts of any date: a truck whose clock fell back to the
    epoch, one set years ahead. Upgrading such a database gives their months a partition each, not
    every month in between (57 years of empty partitions that every lookup by event id or id then
    plans over, those in the future kept until their date comes)."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import MetaData, Table, insert
    from sqlalchemy.orm import Session

    from server.ingest.partitions import DEFAULT, MONTHS_AHEAD, months_between, next_month, partitions

    engine = make_engine(database_url)
    migrate = migrator(engine, alembic_config())
    today = datetime.now(UTC)
    dates = [datetime(1970, 1, 1, 0, 0, 3, tzinfo=UTC), today - timedelta(days=40), today,
             today.replace(year=today.year + 5, day=1)]
    try:
        migrate("upgrade", "0004")
        with engine.begin() as connection:
            lifts = Table("lifts", MetaData(), autoload_with=connection)
            connection.execute(insert(lifts), [
                {"event_id": f"e-{i}", "truck_id": "benne-01", "sequence": i, "stream": "recyclables",
                 "started_at": at.replace(tzinfo=None), "ended_at": at.replace(tzinfo=None), "day": at.date(),
                 "received_at": today.replace(tzinfo=None), "contaminated": False, "has_alert": False,
                 "score": 0.0, "counts": {}, "errors": [], "model_name": "m", "model_version": "1", "frames": 10}
                for i, at in enumerate(dates)])
        migrate("upgrade", "0005")
        with Session(engine) as session:
            assert session.scalar(text("SELECT COUNT(*) FROM lifts")) == len(dates)
            if session.get_bind().dialect.name != "postgresql":
                return
            this_month = today.date().replace(day=1)
            last = this_month
            for _ in range(MONTHS_AHEAD):
                last = next_month(last)
            window = months_between((this_month - timedelta(days=1)).replace(day=1), last)
            found = partitions(session)
            months = {*window, *(at.date().replace(day=1) for at in dates)}
            assert [p.month for p in found] == [*sorted(months), None], "the default partition last"
            assert session.scalar(text(f"SELECT COUNT(*) FROM {DEFAULT}")) == 0, "every lift in its month"
    finally:
        engine.dispose()

def test_two_processes_starting_together_migrate_once(database_url: str) -> None:
    """Every ``trivue server`` migrates at start-up, and scale-out workers restarted together (a
    package upgrade) migrate together: the second waits for the first and finds the schema at the
    head, instead of failing on the tables the first created (a worker that does not start)."""
    import subprocess
    import sys
    import time

    from base.paths import REPO_ROOT

    # Two processes (Alembic's ``op`` is one per process), both released at the same instant.
    script = ("import sys, time; from server.db import make_engine; from server.migrate import upgrade_database; "
              "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); "
              "print(upgrade_database(make_engine(sys.argv[1])))")
    go = f"{time.time() + 4:.3f}"
    workers = [subprocess.Popen([sys.executable, "-c", script, database_url, go], cwd=REPO_ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [worker.communicate(timeout=180) for worker in workers]
    for (out, err), worker in zip(outcomes, workers, strict=True):
        assert worker.returncode == 0, f"a server failed to migrate: {err[-2000:]}"
        assert out.split() == [head_revision()]
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
