"""Database engine and the declarative base every server table derives from.

SQLite (a file, WAL) is the embedded default; PostgreSQL is the production store. Tables live
next to the code that owns them (``ingest/models.py``: lifts and aggregates; ``streets/models.py``:
streets, segments and addresses; ``web/accounts.py``: users and the audit trail) but share this one
``Base.metadata`` so migrations see them all. Timestamps are stored as naive UTC (SQLite has no
time zone type) and come back aware through ``UtcDateTime``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Engine, Integer, TypeDecorator, create_engine, event
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL wants a 64-bit key for lifts.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database (same on SQLite and PostgreSQL)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


def utcnow() -> datetime:
    return datetime.now(UTC)


CONNECT_TIMEOUT_S = 10  # PostgreSQL: seconds to open a connection before giving up (libpq's minimum is 2)


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
    # A database host that accepts the connection and never answers (a firewall dropping packets,
    # a hung server) held every request, /api/health and /metrics included, for as long as the
    # kernel kept trying: libpq waits forever by default. A timeout in the URL wins.
    connect = {} if "connect_timeout=" in url else {"connect_timeout": CONNECT_TIMEOUT_S}
    return create_engine(url, pool_pre_ping=True, connect_args=connect)
