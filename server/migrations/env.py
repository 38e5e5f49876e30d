"""Alembic environment: every table on ``server.db.Base`` (lifts, users, streets...), SQLite or PostgreSQL.

``server.migrate.upgrade_database`` hands us an open connection; ``alembic -c server/alembic.ini``
on the command line builds one from ``TRIVUE_DATABASE_URL`` instead.
"""

from __future__ import annotations

import os

from alembic import context

from server.db import make_engine
from server.tables import include_object, load_models

target_metadata = load_models()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
        include_object=include_object,  # the reminders' tables have their own tree: never ours to drop
    )
    if connection.dialect.name == "sqlite" and not connection.connection.dbapi_connection.in_transaction:
        # Python's sqlite3 opens a transaction only before the first INSERT/UPDATE/DELETE, so a batch
        # rebuild's CREATE TABLE _alembic_tmp_... committed alone: a downgrade refused half-way (0022
        # while an account is limited to communes) left it behind, and the next try stopped on it.
        # ``upgrade_database`` already begins one (server.migrate.migration_transaction).
        connection.exec_driver_sql("BEGIN")
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = os.environ.get("TRIVUE_DATABASE_URL") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set TRIVUE_DATABASE_URL to the database to migrate")
    engine = make_engine(url)
    with engine.begin() as connection:  # committed here: _run's BEGIN makes alembic leave it to us
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run against a database")
run_migrations_online()
