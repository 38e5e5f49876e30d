"""The audit journal's filters (``GET /api/audit``, page ``/journal``) with and without their indexes.

    .venv/bin/python bench/audit_log.py [--entries 1000000] [--postgres-url postgresql://...]

Fills ``audit_log`` with ``--entries`` entries a month apart of 30 s (20 actors; 1 in 5,000 a
``truck.config`` of one of 7 trucks, the rest lift reads and lists with a unique target), then
times one page of 50 (``server.web.audit_filter.audit_page``, median of 5) for each filter, with
the indexes of migration 0017 and after dropping them, side by side in one run. SQLite in a
temporary folder always; the PostgreSQL database given is migrated and its ``audit_log`` emptied
first (use a scratch one).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from server.db import make_engine
from server.migrate import upgrade_database
from server.web.audit_filter import AuditFilter, audit_page

INDEXES = ("ix_audit_log_action_id", "ix_audit_log_actor_id", "ix_audit_log_target_id")
CASES = {
    "no filter": AuditFilter(),
    "action=lift.read (common)": AuditFilter(action="lift.read"),
    "a truck's config history (rare)": AuditFilter(action="truck.config", target="benne-3"),
    "actor=user:u7": AuditFilter(actor="user:u7"),
    "one day": AuditFilter(since=datetime(2026, 5, 1, tzinfo=UTC), before=datetime(2026, 5, 2, tzinfo=UTC)),
    "a target matching nothing": AuditFilter(target="nobody"),
}


def fill(engine: Engine, entries: int) -> None:
    """In SQL, in batches of 100,000: a million entries in seconds, not minutes of ORM inserts."""
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log"))
        for first in range(1, entries + 1, 100_000):
            last = min(first + 99_999, entries)
            rows = [{"at": datetime.fromtimestamp(1_767_225_600 + g * 30, UTC).replace(tzinfo=None),
                     "actor": f"user:u{g % 20}",
                     "action": "truck.config" if g % 5000 == 0 else "lift.read" if g % 3 == 0 else "lifts.list",
                     "target": f"benne-{g % 7}" if g % 5000 == 0 else f"{g:032x}", "detail": "street level"}
                    for g in range(first, last + 1)]
            connection.execute(text("INSERT INTO audit_log (at, actor, action, target, detail) "
                                    "VALUES (:at, :actor, :action, :target, :detail)"), rows)
        connection.execute(text("ANALYZE audit_log" if engine.dialect.name == "postgresql" else "ANALYZE"))


def page_ms(engine: Engine) -> dict[str, float]:
    with Session(engine) as db:
        times = {}
        for name, flt in CASES.items():
            audit_page(db, flt, 50, None)  # warm the cache: a journal page is read again and again
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                audit_page(db, flt, 50, None)
                runs.append((time.perf_counter() - started) * 1000)
            times[name] = statistics.median(runs)
        return times


def measure(url: str, entries: int) -> tuple[dict[str, float], dict[str, float]]:
    engine = make_engine(url)
    try:
        upgrade_database(engine)
        fill(engine, entries)
        indexed = page_ms(engine)
        with engine.begin() as connection:
            for name in INDEXES:
                connection.execute(text(f"DROP INDEX {name}"))
        scanned = page_ms(engine)
        with engine.begin() as connection:  # a scratch PostgreSQL database stays as migrated
            for name, column in zip(INDEXES, ("action", "actor", "target"), strict=True):
                connection.execute(text(f"CREATE INDEX {name} ON audit_log ({column}, id)"))
            connection.execute(text("DELETE FROM audit_log"))
        return indexed, scanned
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--postgres-url", default=None, help="a scratch PostgreSQL database (its audit_log is emptied)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        urls = {"SQLite": f"sqlite:///{folder}/audit.db"}
        if args.postgres_url:
            urls["PostgreSQL"] = args.postgres_url
        for label, url in urls.items():
            indexed, scanned = measure(url, args.entries)
            print(f"\n{label}, {args.entries:,} audit entries, one page of 50 (median of 5)")
            print(f"{'filter':34s} {'indexed ms':>11s} {'no index ms':>12s} {'speed-up':>9s}")
            for name in CASES:
                print(f"{name:34s} {indexed[name]:11.1f} {scanned[name]:12.1f} {scanned[name] / indexed[name]:8.1f}x")


if __name__ == "__main__":
    main()
