"""The bulk write path stores exactly what SQLAlchemy's own insert stores, value for value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from server.db import make_engine
from server.ingest.aggregates import insert_lifts, lift_row, upsert, upsert_sums
from server.ingest.models import Lift, StreetDay
from server.migrate import upgrade_database
from tests.server.events import lift_event

PARIS = ZoneInfo("Europe/Paris")


def varied_rows() -> list[dict[str, Any]]:
    """Lifts that exercise every column type: missing fix, JSON with accents and nesting, a
    datetime in another zone, an int score, a photo's boxes and none."""
    plus_two = timezone(timedelta(hours=2))
    events = [
        lift_event(counts={"bag": 2, "bottle": 1}, heading=271.5, sequence=1,  # wire 1.2: the model file named
                   model={"name": "trivue-waste", "version": "test", "sha256": "c" * 64}),
        lift_event(counts={}, gps=None, sequence=2, bin_id="puce-42"),
        lift_event(counts={"glass": 3}, at=datetime(2026, 3, 29, 0, 30, tzinfo=plus_two), sequence=3),
        lift_event(stream="residual", counts={"medical": 1}, sequence=4,
                   evidence={"sha256": "a" * 64, "reason": "contaminated", "width": 640, "height": 480, "detections": [
                       {"class": "medical", "confidence": 0.91, "x1": 0.1, "y1": 0.2, "x2": 0.35, "y2": 1}]}),
    ]
    rows: list[dict[str, Any]] = []
    for i, event in enumerate(events):
        row: dict[str, Any] = dict(lift_row(event, datetime(2026, 12, 4, 10, i, tzinfo=UTC), PARIS, None))
        if row["lat"] is not None:
            row.update(street_id=7, segment_id=70 + i, street_distance_m=1.25 * i, address_id=None,
                       address_distance_m=None, match_confidence=0.5, street_confidence=1, match_provisional=i % 2 == 1)
        row["score"] = int(row["score"]) if i == 0 else row["score"]
        if i == 1:  # the wire allows no accent in a class name; the column must still keep one
            row["counts"] = {"bouteille-é": 1, "nested": {"a": [1, 2.5, None]}}
        rows.append(row)
    return rows


def stored(session: Session, table: str, order: str) -> list[tuple]:
    """The rows as the database holds them (raw driver values: the text SQLite keeps); the lifts'
    JSON also as text, and without their ids (the two writes number them apart)."""
    columns = "*"
    if table == "lifts":
        json_columns = [c.name for c in Lift.__table__.c if isinstance(c.type, JSON)]
        columns = ", ".join([*(c.name for c in Lift.__table__.c if c.name != "id"),
                             *(f"CAST({name} AS TEXT)" for name in json_columns)])
    query = f"SELECT {columns} FROM {table} ORDER BY {order}"
    return [tuple(row) for row in session.connection().exec_driver_sql(query)]


def orm_insert(session: Session, rows: list[dict[str, Any]]) -> None:
    """What the write path did before: SQLAlchemy's dialect insert with a list of dicts."""
    name = session.get_bind().dialect.name
    statement = (postgresql if name == "postgresql" else sqlite).insert(Lift.__table__)
    session.execute(statement.on_conflict_do_nothing(index_elements=["event_id", "started_at"]), rows)


def test_lifts_and_aggregates_are_stored_as_the_orm_stores_them(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade_database(engine)
    rows = varied_rows()
    with Session(engine) as session, session.begin():
        orm_insert(session, rows)
        expected = stored(session, "lifts", "sequence")
        session.execute(text("DELETE FROM lifts"))
        session.execute(text("DELETE FROM street_days"))
        new = insert_lifts(session, [{**row} for row in rows] + [{**rows[0]}])  # a duplicate in the batch
        assert [r["event_id"] for r in new] == [r["event_id"] for r in rows]
        assert stored(session, "lifts", "sequence") == expected
        assert insert_lifts(session, [{**row} for row in rows]) == []  # every one known: nothing new, nothing added
        assert session.scalar(select(func.sum(StreetDay.lifts)).where(StreetDay.street_id == 7,
                                                            StreetDay.stream == "recyclables")) == 2
    engine.dispose()


def test_sums_add_up_like_the_orm_upsert(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade_database(engine)
    day = datetime(2026, 12, 4).date()
    values = [{"street_id": s, "day": day, "stream": "recyclables", "lifts": s, "contaminated": 1, "alerts": 0,
               "score": 0.5 * s} for s in (1, 2, 3)]
    keys, measures = ("street_id", "day", "stream"), ("lifts", "contaminated", "alerts", "score")
    with Session(engine) as session, session.begin():
        for _ in range(2):
            session.execute(upsert(session, StreetDay.__table__, keys, add=measures), values)
        expected = stored(session, "street_days", "street_id")
        session.execute(text("DELETE FROM street_days"))
        for _ in range(2):
            upsert_sums(session, StreetDay.__table__, keys, measures, values)
        assert stored(session, "street_days", "street_id") == expected
        assert expected[2][3:] == (6, 2, 0, 3.0)
    engine.dispose()
