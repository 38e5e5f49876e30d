"""``/api/error-rates`` (the ranking's and the map's « Type d'erreur ») reads the roll-ups.

Summed from ``street_days`` / ``street_day_errors``, all time over three years of a métropole was
~1 million daily rows, 1.4 s a call (the ranking calls it for two periods at once). Whole years
and months are one roll-up row per street each (``server.web.periods``): a period of whole
months and years must read no daily row. That the figures stay those of the raw lifts is
``tests/server/test_periods_raw.py``'s check, on random periods and filters.
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
from server.web.dashboard_api import error_rates
from server.web.reports import StreetFilter

WHOLE_UNITS = [StreetFilter(), StreetFilter(date(2025, 1, 1), date(2025, 12, 31)),
               StreetFilter(date(2024, 3, 1), date(2026, 11, 30)), StreetFilter(date(2026, 6, 1), date(2026, 6, 30)),
               StreetFilter(date(2025, 1, 1), None, commune="Rennes", min_lifts=5)]


@pytest.mark.parametrize("flt", WHOLE_UNITS, ids=["all-time", "year", "months", "month", "commune"])
def test_whole_months_and_years_read_no_daily_row(tmp_path: Path, flt: StreetFilter) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'trivue.db'}")
    upgrade_database(engine)
    read: list[str] = []

    def keep(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        read.append(sql)

    event.listen(engine, "before_cursor_execute", keep)
    with Session(engine) as session:
        assert error_rates(session, "verre", flt) == []
    event.remove(engine, "before_cursor_execute", keep)
    engine.dispose()
    assert read and all("street_period" in sql for sql in read), read
    assert not [sql for sql in read if "street_days" in sql or "street_day_errors" in sql], read
