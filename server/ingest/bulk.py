"""Many rows in one statement: the write path's inserts and upserts without per-row ORM work.

Ingest writes every batch of lifts and then a few hundred aggregate rows; handing SQLAlchemy a
list of dicts makes it compile the statement's parameters row by row (``construct_params`` and
every column's bind processor called per value), which cost more CPU than the database itself
(bench/ingest.py's profile: 14 % of the writer thread). Here the values go through the same bind
processors, once per column, and reach the driver as one statement:

- PostgreSQL: ``INSERT ... SELECT FROM unnest(one array per column)``;
- SQLite: one multi-row ``VALUES`` (``RETURNING`` needs a single statement: sqlite3's
  ``executemany`` returns no rows) or ``executemany`` when nothing comes back.

The rows written are exactly those of the ORM path: tests/server/test_bulk.py compares them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Float, Table, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

# SQLite refuses a statement with more host parameters than this (999 before 3.32).
SQLITE_MAX_PARAMETERS = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999


def _bound(dialect: Dialect, table: Table, name: str, values: list[Any]) -> list[Any]:
    """``values`` of column ``name`` as the driver receives them (UTC datetimes, dates, JSON text)."""
    # The dialect's own type: SQLite's DATETIME writes text, and a TypeDecorator (UtcDateTime) wraps it.
    process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
    return [process(v) for v in values] if process is not None else values


def sqlite_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[tuple]]:
    """(column names, one tuple per row) for sqlite3, the values bound as the ORM binds them."""
    dialect = session.get_bind().dialect
    names = list(rows[0])
    columns = [_bound(dialect, table, name, [row[name] for row in rows]) for name in names]
    return names, list(zip(*columns, strict=True))


def sqlite_insert_returning(session: Session, table: Table, rows: Sequence[Mapping[str, Any]],
                            tail: str) -> list[tuple]:
    """SQLite: ``INSERT INTO table (...) VALUES (...), (...) <tail>``, ``tail`` holding a
    ``RETURNING``; the returned rows of every chunk (as many rows as the parameter limit allows)."""
    names, tuples = sqlite_rows(session, table, rows)
    one = f"({', '.join('?' * len(names))})"
    per = max(1, SQLITE_MAX_PARAMETERS // len(names))
    connection = session.connection()
    returned: list[tuple] = []
    for start in range(0, len(tuples), per):
        chunk = tuples[start:start + per]
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES {', '.join([one] * len(chunk))} {tail}"
        returned.extend(tuple(row) for row in connection.exec_driver_sql(sql, tuple(v for t in chunk for v in t)))
    return returned


def sqlite_executemany(session: Session, table: Table, rows: Sequence[Mapping[str, Any]], tail: str) -> None:
    """SQLite: ``INSERT INTO table (...) VALUES (?, ...) <tail>`` run once per row by the driver."""
    names, tuples = sqlite_rows(session, table, rows)
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) {tail}"
    session.connection().exec_driver_sql(sql, tuples)


def unnest_insert(session: Session, table: Table, rows: Sequence[Mapping[str, Any]], tail: str) -> Any:
    """PostgreSQL: ``INSERT INTO table SELECT ... FROM unnest(one array per column) <tail>``.

    A multi-row ``VALUES`` (what SQLAlchemy sends for a list of rows) has a placeholder per value,
    and psycopg rewrites the placeholders of a long statement with a regex at every execution: 70 %
    of a 500-lift batch went there. One array per column keeps the statement short and the same
    for every batch. Values go through each column type's own bind processing (UTC datetimes,
    JSON), so the rows are exactly those the ORM path would write.
    """
    dialect = session.get_bind().dialect
    names = list(rows[0])
    params: dict[str, list[Any]] = {}
    arrays, selected = [], []
    for i, name in enumerate(names):
        column = table.c[name]
        values = [row[name] for row in rows]
        if isinstance(column.type, JSON):
            # Sent as text and cast in SQL: an array of json has no psycopg adapter for nested values.
            serialise = dialect._json_serializer or json.dumps  # type: ignore[attr-defined]
            # Python None is JSON 'null' unless the column says none_as_null, as in the ORM path.
            keep_null = column.type.none_as_null
            params[f"a{i}"] = [None if v is None and keep_null else serialise(v) for v in values]
            arrays.append(f"CAST(:a{i} AS TEXT[])")
            selected.append(f"CAST(u.{name} AS JSON)")
            continue
        values = _bound(dialect, table, name, values)
        if isinstance(column.type, Float):  # psycopg refuses a list mixing int and float (score 0, 2.5)
            values = [float(v) if v is not None else None for v in values]
        params[f"a{i}"] = values
        arrays.append(f"CAST(:a{i} AS {column.type.compile(dialect)}[])")
        selected.append(f"u.{name}")
    sql = (f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(selected)} "
           f"FROM unnest({', '.join(arrays)}) AS u({', '.join(names)}) {tail}")
    return session.execute(text(sql), params)
