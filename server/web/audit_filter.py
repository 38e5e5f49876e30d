"""The audit trail's filters (``GET /api/audit``, read by the dashboard's ``/journal``): what, who, on what, when.

``action``, ``actor`` and ``target`` match exactly (``truck.config``, ``user:alice``, a truck id).
``since`` and ``until`` take a day, ``YYYY-MM-DD``, read as the collectivité's local day (the server's
``timezone``) as the street routes read a period, or an ISO datetime, that moment (UTC when naive);
both bounds are included. Anything else is a 422 naming the parameter and the value: a typo in a
date must not widen an investigation to the whole trail, nor a stray character in a name answer
"nothing happened". Empty values are no filter (the dashboard's form sends none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, HTTPException, Query, status
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from server.audit import AuditEntry
from server.web.audit_details import coded
from server.web.bounds import FIRST_DAY, LAST_DAY
from server.web.deps import ContextDep

# server.audit writes lowercase dotted names (truck.config, reminders.contacts.read, login.failed).
ACTION_PATTERN = r"^([a-z0-9_]+(\.[a-z0-9_]+)*)?$"
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f]*$"  # a control character is no actor or target anyone wrote
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# fromisoformat alone reads more than ISO 8601 datetimes (week dates, "20261201", a space before
# the time): the form is checked first, then read; a day alone is a day, never its midnight UTC.
MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?")
WHEN_HELP = "a local day YYYY-MM-DD (the server's timezone) or an ISO datetime (UTC when naive); included"
ONE_TICK = timedelta(microseconds=1)  # the databases' resolution: at < until + 1 µs is at <= until


@dataclass(frozen=True, slots=True)
class AuditFilter:
    action: str | None = None
    actor: str | None = None
    target: str | None = None
    since: datetime | None = None  # aware, included
    before: datetime | None = None  # aware, excluded: ``until``'s day ended, or ``until`` plus a tick

    def apply(self, query: Select[Any]) -> Select[Any]:
        for column, value in ((AuditEntry.action, self.action), (AuditEntry.actor, self.actor),
                              (AuditEntry.target, self.target)):
            if value:
                query = query.where(column == value)
        if self.since is not None:
            query = query.where(AuditEntry.at >= self.since)
        if self.before is not None:
            query = query.where(AuditEntry.at < self.before)
        return query


def _refuse(name: str, value: str, why: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name} {value!r}: {why}")


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)


def parse_when(name: str, value: str | None, zone: ZoneInfo, end: bool) -> datetime | None:
    """The first moment of ``value`` (``end``: the first moment after it), aware; None when empty."""
    if not value:
        return None
    try:
        if DAY.fullmatch(value):
            day = date.fromisoformat(value)
            if not FIRST_DAY <= day <= LAST_DAY:
                raise _refuse(name, value, f"outside {FIRST_DAY} .. {LAST_DAY}")
            return _local_midnight(day + timedelta(days=1) if end else day, zone)
        if MOMENT.fullmatch(value):
            moment = datetime.fromisoformat(value)
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
            if not _local_midnight(FIRST_DAY, UTC) <= moment < _local_midnight(LAST_DAY + timedelta(days=1), UTC):
                raise _refuse(name, value, f"outside {FIRST_DAY} .. {LAST_DAY}")
            return moment + ONE_TICK if end else moment
    except ValueError as error:  # the right form with a 13th month, a 25th hour
        raise _refuse(name, value, str(error)) from None
    raise _refuse(name, value, f"expected {WHEN_HELP}")


def audit_filter(ctx: ContextDep,
                 action: str | None = Query(default=None, max_length=64, pattern=ACTION_PATTERN,
                                            description="exact action, e.g. truck.config"),
                 actor: str | None = Query(default=None, max_length=128, pattern=PRINTABLE_PATTERN,
                                           description="exact actor, e.g. user:alice, token:grafana, cli"),
                 target: str | None = Query(default=None, max_length=256, pattern=PRINTABLE_PATTERN,
                                            description="exact target, e.g. a truck id or a lift's event id"),
                 since: str | None = Query(default=None, max_length=40, description=WHEN_HELP),
                 until: str | None = Query(default=None, max_length=40, description=WHEN_HELP)) -> AuditFilter:
    zone = ctx.settings.zone
    start, before = parse_when("since", since, zone, end=False), parse_when("until", until, zone, end=True)
    if start is not None and before is not None and before <= start:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"until {until!r} is before since {since!r}")
    return AuditFilter(action or None, actor or None, target or None, start, before)


AuditFilterDep = Annotated[AuditFilter, Depends(audit_filter)]


def audit_page(db: Session, flt: AuditFilter, limit: int, before_id: int | None) -> list[dict[str, Any]]:
    """The newest ``limit`` entries that ``flt`` keeps, older than ``before_id`` when given."""
    query = flt.apply(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))
    if before_id:
        query = query.where(AuditEntry.id < before_id)
    return [{"id": a.id, "at": a.at.isoformat(), "actor": a.actor, "action": a.action,
             "target": a.target, "detail": a.detail, **_worded(a.action, a.detail)} for a in db.scalars(query)]


def _worded(action: str, detail: str | None) -> dict[str, Any]:
    """The detail's code and values for the journal to word in its reader's language, beside the
    detail as stored (``server.web.audit_details``); nulls for a detail of no known form."""
    found = coded(action, detail)
    return {"detail_code": found[0] if found else None, "detail_params": found[1] if found else None}
