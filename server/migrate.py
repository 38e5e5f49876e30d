"""Bring a database to the newest schema with Alembic; ``trivue server`` does it at every start."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)
# Alembic narrates its plugins and each step at INFO; our one line says what changed.
logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
LOCK_KEY = 0x7472_6976_7564  # pg_advisory_xact_lock key of schema upgrades (partition upkeep: ...65)


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def migration_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection whose whole migration is one transaction, DDL included, on SQLite too.

    Python's sqlite3 opens a transaction only before INSERT/UPDATE/DELETE, so each CREATE TABLE
    committed alone: a first start cut short (a full disk, Ctrl-C) left tables without a version
    row, and every later start stopped on "table ... already exists". SQLite's DDL is
    transactional once a BEGIN is issued; PostgreSQL's already is.

    Server processes started together (scale-out workers after an upgrade) migrate one at a time:
    the second waits until the first commits, then reads the revision it left and has nothing to
    do. Without that it ran the same steps and stopped on the first one's tables (PostgreSQL) or on
    "database is locked" (SQLite), and the worker did not start. SQLite's ``BEGIN IMMEDIATE``
    takes the write lock before the revision is read (waiting the engine's busy timeout for it).
    """
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({LOCK_KEY})")
        yield connection


def upgrade_database(engine: Engine) -> str | None:
    """Apply pending migrations; returns the revision the database is at afterwards."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    config = alembic_config()
    with migration_transaction(engine) as connection:
        before = MigrationContext.configure(connection).get_current_revision()  # once no one else migrates
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    after = current_revision(engine)
    if before != after:
        log.info("database schema upgraded from %s to %s", before or "empty", after)
    return after
