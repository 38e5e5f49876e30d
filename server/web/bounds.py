"""Ids and days the API accepts: values the databases and ``datetime`` arithmetic can hold.

Row ids are 64-bit signed integers in SQLite and PostgreSQL. A larger number from a URL does not
just miss: the driver refuses to bind it (SQLite ``OverflowError``, PostgreSQL "out of range"),
which surfaced as a 500. ``RowId`` refuses it at validation instead: 422 naming the parameter.

Days: no lift predates 1970 (the trucks' cameras are from the 2020s) and none is dated after
2999; the reminders' planner steps back from ``since`` by the period's length (its "before"
window) and forward from ``until`` by days, which overflowed near year 1 and 9999. Inside
1970..2999 every such step stays within ``date.min``..``date.max``. ``Day`` refuses the rest with a
422 naming the field. Datetimes (``/api/lifts``) get the same bounds through ``Moment``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from annotated_types import Interval
from fastapi import HTTPException, status

MAX_ROW_ID = 2**63 - 1
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2999, 12, 31)

RowId = Annotated[int, Interval(ge=1, le=MAX_ROW_ID)]
Day = Annotated[date, Interval(ge=FIRST_DAY, le=LAST_DAY)]
Moment = Annotated[datetime, Interval(ge=datetime(1970, 1, 1, tzinfo=UTC), le=datetime(2999, 12, 31, tzinfo=UTC))]
Count = Annotated[int, Interval(ge=1, le=MAX_ROW_ID)]  # a threshold compared in SQL: bound like an id


def ordered(since: date | datetime | None, until: date | datetime | None,
            names: tuple[str, str] = ("since", "until")) -> None:
    """A period ending before it starts is a 422 on every route (some answered an empty 200)."""
    if since is not None and until is not None and until < since:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"{names[1]} {until} is before {names[0]} {since}")
