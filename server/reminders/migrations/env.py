"""Alembic environment of the reminders' tables only, with their own version table."""

from __future__ import annotations

from alembic import context

from server.reminders.models import VERSION_TABLE, RemindersBase

target_metadata = RemindersBase.metadata


def _include(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
    # The core server's tables share the database; they are not ours to compare or drop.
    return type_ != "table" or name in target_metadata.tables


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise SystemExit("run through server.reminders.models.upgrade_reminders(engine)")
    context.configure(connection=connection, target_metadata=target_metadata, version_table=VERSION_TABLE,
                      include_object=_include, render_as_batch=connection.dialect.name == "sqlite",
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
