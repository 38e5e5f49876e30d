"""PostgreSQL ``lifts`` partitioned by month of ``started_at`` (declarative partitioning, plain SQL).

Migration ``0005`` turns ``lifts`` into a partitioned table with one partition per month
(``lifts_p202506``) and a DEFAULT partition (``lifts_pdefault``). Ingest never fails for want of
a partition: a lift of a month without one lands in the default partition, and
``ensure_partitions`` (at start-up, then hourly with the retention task, or ``trivue partitions``)
creates the coming months ahead and moves any such lift into its own month. Retention then drops
whole months (``drop_partitions_before``) instead of deleting millions of rows one by one.
Creating or dropping a month waits at most ``LOCK_WAIT_MS`` for the readers of ``lifts``, and is
otherwise left to the next hourly run (``_briefly``).

SQLite has no partitions: every function here is a no-op there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TypeVar

from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

PARENT = "lifts"
DEFAULT = "lifts_pdefault"
NAME = re.compile(r"^lifts_p(\d{4})(\d{2})$")
MONTHS_AHEAD = 3  # partitions exist this many months ahead: a clock gone wrong on a truck, a late job
LOCK_KEY = 0x7472_6976_7565  # pg_advisory_xact_lock key of partition upkeep ("trivue")
LOCK_WAIT_MS = 5_000  # the longest one month's CREATE or DROP waits for the readers of lifts
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE when lock_timeout ends a wait
T = TypeVar("T")


def partition_name(month: date) -> str:
    return f"lifts_p{month:%Y%m}"


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def months_between(first: date, last: date) -> list[date]:
    """First days of every month from ``first``'s to ``last``'s, both included."""
    month, found = first.replace(day=1), []
    while month <= last:
        found.append(month)
        month = next_month(month)
    return found


Db = Session | Connection


def is_partitioned(db: Db) -> bool:
    """True on PostgreSQL once ``lifts`` is a partitioned table (migration 0005)."""
    dialect = db.get_bind().dialect if isinstance(db, Session) else db.dialect
    if dialect.name != "postgresql":
        return False
    kind = db.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": PARENT}).scalar()
    return kind == "p"


def lock_upkeep(db: Db) -> None:
    """Wait for any other server process's partition upkeep or retention purge to commit, then hold
    them off until this transaction ends (a no-op on SQLite, whose writers queue anyway).

    Every ``trivue server`` runs both hourly, and processes started together run them together:
    two purges that had both read an expired month (its photos) deadlocked when each dropped it."""
    if is_partitioned(db):
        db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})


def leaves(db: Db) -> list[str]:
    """The tables that hold the lifts, quoted for SQL: every partition (months in order, then the
    default one) on PostgreSQL once partitioned, else ``lifts`` alone. Reads the catalogue only."""
    if not is_partitioned(db):
        return [PARENT]
    names = db.execute(text(
        "SELECT c.relname, c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(:t)"), {"t": PARENT}).all()
    return [table for name, table in sorted(names, key=lambda n: (n[0] == DEFAULT, n[0]))]


COUNT_CAP = 100_000  # a partition without statistics is counted up to this many lifts (tens of ms)


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    month: date | None  # None: the default partition
    rows: int = 0  # lifts: the planner's estimate at today's size, or counted (below)
    counted: bool = False  # no usable statistics: ``rows`` was counted, exactly up to COUNT_CAP
    at_least: bool = False  # counted and COUNT_CAP reached: ``rows`` is only a lower bound


def partitions(db: Db) -> list[Partition]:
    """The partitions of ``lifts``, months in order then the default one; [] when not partitioned."""
    if not is_partitioned(db):
        return []
    # ``reltuples`` is -1 before the first ANALYZE and stays 0 if that ran on an empty partition
    # (autovacuum off, or a partition filled since): never shown as such. With statistics, the
    # density they give is applied to the partition's size now, as the planner does.
    rows = db.execute(text(
        "SELECT c.relname, c.oid::regclass::text, c.reltuples, c.relpages, "
        "pg_relation_size(c.oid) / current_setting('block_size')::int "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(:t)"), {"t": PARENT}).all()
    found = []
    for name, table, tuples, pages, pages_now in rows:
        match = NAME.match(name)
        month = date(int(match[1]), int(match[2]), 1) if match else None
        if tuples is not None and tuples > 0 and pages > 0:
            found.append(Partition(name, month, round(tuples / pages * pages_now)))
            continue
        counted = db.execute(text(  # ``table``: PostgreSQL's own quoting of the partition's name
            f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT :cap) AS head"), {"cap": COUNT_CAP}).scalar_one()
        found.append(Partition(name, month, counted, counted=True, at_least=counted >= COUNT_CAP))
    return sorted(found, key=lambda p: (p.month is None, p.month or date.min))


def _bound(month: date) -> str:
    return f"'{month.isoformat()} 00:00:00'"  # started_at is naive UTC (server.db.UtcDateTime)


def create_month(db: Db, month: date) -> bool:
    """Create the partition of ``month`` (first day) unless it exists; moves that month's lifts out
    of the default partition first, which PostgreSQL requires. Returns True when created."""
    name, low, high = partition_name(month), _bound(month), _bound(next_month(month))
    if db.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None:
        return False
    # The lock CREATE ... PARTITION OF takes anyway, taken before looking for the month's lifts in
    # the default partition: an ingest batch committing one in between (a truck back after months
    # offline) made PostgreSQL refuse the month ("would be violated by some row"), and the whole
    # upkeep rolled back. Ingest locks the parent first, so it now waits for the month instead.
    db.execute(text(f"LOCK TABLE ONLY {PARENT} IN ACCESS EXCLUSIVE MODE"))
    stray = db.execute(text(f"SELECT 1 FROM {DEFAULT} WHERE started_at >= {low} AND started_at < {high} LIMIT 1")
                       ).first() if db.execute(text("SELECT to_regclass(:n)"), {"n": DEFAULT}).scalar() else None
    if stray is None:
        db.execute(text(f"CREATE TABLE {name} PARTITION OF {PARENT} FOR VALUES FROM ({low}) TO ({high})"))
        return True
    # Rows of this month sit in the default partition: move them into a table of their own, then
    # attach it (attaching checks that the default partition holds none of the month any more).
    columns = ", ".join(db.execute(text(
        "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = to_regclass(:t) AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum"), {"t": PARENT}).scalars())
    db.execute(text(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    moved = db.execute(text(
        f"WITH moved AS (DELETE FROM {DEFAULT} WHERE started_at >= {low} AND started_at < {high} "
        f"RETURNING {columns}) INSERT INTO {name} ({columns}) SELECT {columns} FROM moved")).rowcount
    db.execute(text(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM ({low}) TO ({high})"))
    log.info("partition %s created with %d lifts moved from %s", name, moved, DEFAULT)
    return True


def _briefly(db: Db, what: str, work: Callable[[], T]) -> T | None:
    """``work()`` (one month's DDL) in a savepoint whose lock waits end after ``LOCK_WAIT_MS``;
    None, and nothing done, when one did.

    Creating or dropping a month takes PostgreSQL's strongest lock on ``lifts``, so it waits for
    every reader: a nightly ``pg_dump`` or a year's export reads for minutes. Queued meanwhile, it
    made every later ingest batch and dashboard query queue behind it. The next hourly run tries
    again (months are created 3 ahead; expired lifts are deleted row by row meanwhile)."""
    previous = db.execute(text("SELECT current_setting('lock_timeout')")).scalar_one()
    try:
        with db.begin_nested():
            db.execute(text("SELECT set_config('lock_timeout', :wait, true)"), {"wait": f"{LOCK_WAIT_MS}ms"})
            done = work()
            db.execute(text("SELECT set_config('lock_timeout', :wait, true)"), {"wait": previous})
            return done
    except OperationalError as error:  # the savepoint's rollback restored lock_timeout too
        if getattr(error.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        log.warning("%s: lifts still in use after %d ms (a dump, a long export); next hourly run",
                    what, LOCK_WAIT_MS)
        return None


def ensure_partitions(db: Db, today: date | None = None, ahead: int = MONTHS_AHEAD) -> list[str]:
    """Partitions from last month to ``ahead`` months after ``today``, plus one for every month
    found in the default partition; returns the names created. The caller commits."""
    if not is_partitioned(db):
        return []
    # Server processes starting together (scale-out) would race to create the same month: one
    # at a time, each seeing what the previous one created.
    lock_upkeep(db)
    today = today or datetime.now(UTC).date()
    this_month = today.replace(day=1)
    last_month = date(today.year - 1, 12, 1) if today.month == 1 else date(today.year, today.month - 1, 1)
    last = this_month
    for _ in range(ahead):
        last = next_month(last)
    wanted = set(months_between(last_month, last))
    if db.execute(text("SELECT to_regclass(:n)"), {"n": DEFAULT}).scalar() is not None:
        wanted.update(db.execute(text(
            f"SELECT DISTINCT CAST(date_trunc('month', started_at) AS DATE) FROM {DEFAULT}")).scalars())
    return [partition_name(month) for month in sorted(wanted)
            if _briefly(db, f"partition {partition_name(month)} not created", lambda m=month: create_month(db, m))]


def drop_partitions_before(db: Db, before: datetime) -> int:
    """Drop every month partition that ends at or before ``before`` (aware UTC); returns the lifts
    they held. Lifts of the month that straddles ``before``, and of a month still in use by a
    reader (``_briefly``), are left to the caller's DELETE."""
    cutoff = before.astimezone(UTC).replace(tzinfo=None)
    dropped = 0
    for partition in partitions(db):
        if partition.month is None or datetime.combine(next_month(partition.month), datetime.min.time()) > cutoff:
            continue
        rows = _briefly(db, f"retention: partition {partition.name} not dropped", lambda p=partition.name: _drop(db, p))
        dropped += rows or 0
    return dropped


def _drop(db: Db, name: str) -> int:
    rows = int(db.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar_one())
    db.execute(text(f"DROP TABLE {name}"))
    log.info("retention: dropped partition %s (%d lifts)", name, rows)
    return rows
