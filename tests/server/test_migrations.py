"""Alembic migrations build exactly the tables the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from server.db import Base, make_engine
from server.migrate import alembic_config, current_revision, head_revision, load_models, upgrade_database


def test_migrations_match_the_models(database_url: str) -> None:
    load_models()
    engine = make_engine(database_url)
    try:
        assert upgrade_database(engine) == head_revision()
        assert upgrade_database(engine) == head_revision()  # a second start changes nothing
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                    Base.metadata)
        assert diff == [], f"models and migrations differ; add a migration: {diff}"
        assert {"lifts", "street_days", "street_day_errors", "trucks", "dead_letters", "evidence", "users",
                "api_tokens", "login_sessions", "audit_log", "streets", "addresses"} <= set(
                    inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_downgrade_to_empty_and_back(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade_database(engine)
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert upgrade_database(engine) == head_revision()
    finally:
        engine.dispose()
