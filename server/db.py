"""Database engine and the declarative base every server table derives from.

SQLite (a file, WAL) is the embedded default; PostgreSQL is the production store. Tables live
next to the code that owns them (``store.py``: lifts and aggregates; ``streets.py``: streets,
segments and addresses) but share this one ``Base.metadata`` so migrations see them all.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


def make_engine(url: str) -> Engine:
    """Engine for ``url``; ``postgresql://`` is routed to psycopg 3, SQLite gets WAL and a busy wait."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)
