"""Upgrades as operators meet them: an old database holding lifts of any date, and server
processes that start together and all migrate at start-up; on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import text

from server.db import make_engine
from server.migrate import alembic_config, current_revision, head_revision, upgrade_database
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


def _lift_indexes(connection: Any) -> dict[str, str]:
    """Every index of ``lifts`` by name with its definition: on every partition on PostgreSQL."""
    if connection.dialect.name == "postgresql":
        return dict(connection.execute(text(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'lifts'::regclass OR i.indrelid IN "
            "(SELECT inhrelid FROM pg_inherits WHERE inhparent = 'lifts'::regclass)")).all())
    return dict(connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                        "AND tbl_name = 'lifts' AND sql IS NOT NULL")).all())


def test_upgrade_from_0021_keeps_every_figure_and_canonicalises_tags_in_one_pass(
        database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A database populated at 0021 / r0006 (lifts of three months in their partitions, tags in a
    reader's spellings, some lifts not judged) upgraded to today's heads: every street and
    data-quality figure the same, each lift the same but for its tag in the canonical form, written
    by one UPDATE whatever the number of spellings (one per tag read the whole table each time: ~107
    minutes for 2 million lifts); the ambiguous-lift indexes judged-only on every partition, and
    those of 0021 exactly back after a downgrade."""
    from datetime import UTC, date, datetime, timedelta
    from zoneinfo import ZoneInfo

    from sqlalchemy import event, insert
    from sqlalchemy.orm import Session

    from base.bin_tags import canonical_tag
    from server.ingest.aggregates import insert_lifts, lift_row
    from server.ingest.partitions import create_month, ensure_partitions, leaves
    from server.reminders.models import upgrade_reminders
    from server.streets.models import Street
    from server.web.dashboard_api import data_quality
    from server.web.reports import StreetFilter, street_stats
    from tests.server.events import lift_event
    from tests.server.test_bin_tags import _reminders_config

    engine = make_engine(database_url)
    migrate, reminders = migrator(engine, alembic_config()), migrator(engine, _reminders_config())
    start = datetime(2026, 1, 5, 7, tzinfo=UTC)
    try:
        migrate("upgrade", "0021")
        reminders("upgrade", "r0006")
        with Session(engine) as session, session.begin():
            session.execute(insert(Street.__table__), [
                {"id": n, "name": f"Rue {n}", "commune": "Orléans", "name_key": f"rue {n}", "geometry": "{}"}
                for n in (1, 2, 3)])
            rows = []
            for n in range(60):
                unusable = n % 9 == 4
                row = lift_row(lift_event(f"benne-{n % 3}", sequence=n, gps=None, at=start + timedelta(days=n * 1.4),
                                          counts={} if unusable else [{"bottle": 2}, {"bag": 1}, {"food": 1}][n % 3],
                                          **({"view_unusable": "dark"} if unusable else {})),
                               start, ZoneInfo("Europe/Paris"), None)
                # 16 bins, each in three spellings: two readers' and the canonical one
                tag = [f"04a1b2{n % 20:02x}", f"04:A1:B2:{n % 20:02X}", f"04A1B2{n % 20:02X}"][n // 20]
                row.update(street_id=1 + n % 3, street_confidence=[0.5, 0.95, 0.7][n % 3],
                           bin_id=None if n % 5 == 0 else tag)
                rows.append(row)
            assert len(insert_lifts(session, rows)) == 60
            ensure_partitions(session)  # months of their own, as the hourly upkeep leaves them
        filters = [StreetFilter(), StreetFilter(date(2026, 2, 1), date(2026, 2, 28)),
                   StreetFilter(date(2026, 1, 1), date(2026, 3, 31), "recyclables")]

        def figures() -> tuple[Any, ...]:
            with Session(engine) as session:
                return ([street_stats(session, flt) for flt in filters],
                        [data_quality(session, flt) for flt in filters],
                        [dict(r._mapping) for r in session.execute(text("SELECT * FROM lifts ORDER BY id"))])

        before = figures()
        with engine.connect() as connection:
            indexes_0021 = _lift_indexes(connection)
            months = len(leaves(connection))
        assert before[1][0]["ambiguous"] > 0 and len({r["bin_id"] for r in before[2]}) == 49
        statements: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", record)
        caplog.set_level(logging.INFO, "server.migrate")
        assert upgrade_database(engine) == head_revision()
        upgrade_reminders(engine)
        event.remove(engine, "before_cursor_execute", record)
        after = figures()
        assert after[:2] == before[:2]
        assert after[2] == [{**r, "bin_id": r["bin_id"] and canonical_tag(r["bin_id"])} for r in before[2]]
        assert len({r["bin_id"] for r in after[2]}) == 17
        rewrites = [s for s in statements if s.lstrip().upper().startswith("UPDATE LIFTS")]
        assert len(rewrites) == 1, f"one pass over lifts, not one per tag: {len(rewrites)} updates"
        assert "0 registry rows respelled, 0 deleted as another spelling of a tag (the row imported last kept), " \
               "32 lifts rewritten (32 spellings)" in caplog.text, "irreversible: the log says what changed"

        pg = engine.dialect.name == "postgresql"
        with Session(engine) as session, session.begin():
            if pg:
                create_month(session, date(2031, 1, 1))  # a month made after the upgrade
            indexes = _lift_indexes(session.connection())
        ambiguous = {name: sql for name, sql in indexes.items() if "street_confidence" in sql}
        # the parent's, every partition's (the default one included) and the new month's
        assert len(ambiguous) == (2 * (1 + months + 1) if pg else 2), sorted(ambiguous)
        assert all("view_unusable IS NULL" in sql for sql in ambiguous.values()), ambiguous

        migrate("downgrade", "0023")
        with engine.connect() as connection:
            assert {n: s for n, s in _lift_indexes(connection).items() if "2031" not in n} == indexes_0021
        migrate("downgrade", "0022")
        statements.clear()
        event.listen(engine, "before_cursor_execute", record)
        migrate("upgrade", "0023")  # run again (an interrupted upgrade rolls back whole): nothing to rewrite
        assert not [s for s in statements if s.lstrip().upper().startswith(("UPDATE LIFTS", "UPDATE BINS", "DELETE"))]
    finally:
        engine.dispose()
