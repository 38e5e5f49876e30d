"""``/api/lifts`` with local days (``day_since``/``day_until``, the street page's photos and any
integrator's "lifts of January") reads that range of an index, not the table from today back.

Lifts come newest first through ``started_at`` indexes; ``day`` alone bounded none of them, so
SQLite walked a truck's or the city's lifts from the newest until the period's: on three years
of a métropole, a truck's January 2024 took 5.2 s and the city's December 2023 1.7 s
(docs/performance.md). The days now also bound ``started_at`` (a local day lies within a day of
its UTC date), and ``day`` still decides.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from server.db import make_engine
from server.migrate import upgrade_database
from server.web.drilldown import LiftFilter, list_lifts

JANUARY = {"day_since": date(2024, 1, 1), "day_until": date(2024, 1, 31)}
CASES = {"city": LiftFilter(**JANUARY), "truck": LiftFilter(truck_id="benne-3", **JANUARY),
         "street": LiftFilter(street_id=100, **JANUARY),
         "truck, from a day": LiftFilter(truck_id="benne-3", day_since=date(2024, 1, 1)),
         "truck, until a day": LiftFilter(truck_id="benne-3", contaminated=True, day_until=date(2024, 1, 31))}


@pytest.mark.parametrize("name", list(CASES))
def test_days_bound_the_index_the_lifts_are_read_by(tmp_path: Path, name: str) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'trivue.db'}")
    upgrade_database(engine)
    read: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        if "FROM lifts" in sql:
            read.append((sql, params))

    event.listen(engine, "before_cursor_execute", keep)
    with Session(engine) as session:
        assert list_lifts(session, CASES[name], 100, None)["items"] == []
    event.remove(engine, "before_cursor_execute", keep)
    flt = CASES[name]
    both = flt.day_since and flt.day_until
    bound = "started_at>? AND started_at<?" if both else "started_at>?" if flt.day_since else "started_at<?"
    by_day = "day>? AND day<?" if both else "day>?" if flt.day_since else "day<?"  # a range of ix_lifts_day: as good
    with engine.connect() as connection:
        steps = [row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {read[0][0]}", read[0][1])]
    engine.dispose()
    searches = [s for s in steps if s.startswith(("SEARCH lifts", "SCAN lifts"))]
    assert searches and all(bound in s or by_day in s for s in searches), steps
