"""Databases for the street tests: a SQLite file, and a fresh PostgreSQL database when one is
reachable at 127.0.0.1:5432 (trust auth), created and dropped by the test session."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine

from base.paths import REPO_ROOT
from server.db import Base, make_engine

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "geodata"
PG_USERS = ("postgres", "root")


def create_schema(engine: Engine) -> Engine:
    import server.streets.models  # noqa: F401  (registers the tables on Base)

    Base.metadata.create_all(engine)
    return engine


@contextmanager
def postgres_database(prefix: str = "trivue_streets") -> Iterator[str]:
    """URL of a new empty database, dropped on exit."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(4)}"
    last_error: Exception | None = None
    for user in PG_USERS:
        try:
            admin = psycopg.connect(f"postgresql://{user}@127.0.0.1:5432/test", autocommit=True,
                                    connect_timeout=3)
        except psycopg.OperationalError as error:
            last_error = error
            continue
        with admin:
            admin.execute(f'CREATE DATABASE "{name}"')
            try:
                yield f"postgresql://{user}@127.0.0.1:5432/{name}"
            finally:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    raise RuntimeError(f"cannot connect to PostgreSQL as {' or '.join(PG_USERS)}: {last_error}")


@contextmanager
def database(kind: str, folder: Path, postgres_up: bool) -> Iterator[Engine]:
    """An engine on an empty database with the street tables, of ``kind`` sqlite or postgresql."""
    import pytest

    if kind == "sqlite":
        engine = create_schema(make_engine(f"sqlite:///{folder / 'streets.db'}"))
        yield engine
        engine.dispose()
        return
    if not postgres_up:
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    with postgres_database() as url:
        engine = create_schema(make_engine(url))
        try:
            yield engine
        finally:
            engine.dispose()
