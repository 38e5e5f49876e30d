"""API routes the dashboard needs beyond the core API: open to integrators with the same auth.

``/api/me`` (who is logged in), ``/api/network.geojson`` (every street's geometry, drawn once and
then recoloured from ``/api/streets``), ``/api/error-rates`` (rate of one error category per
street), ``/api/alerts`` and ``/api/alerts/stream`` (alert lifts, live as server-sent events) and
``/api/data-quality`` (matched and unmatched lifts, match confidence, dead letters).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from sse_starlette import EventSourceResponse, ServerSentEvent

from server.config import ServerSettings
from server.db import utcnow
from server.ingest.letters import held_summary
from server.ingest.models import AMBIGUOUS_LIFTS, UNMATCHED, DeadLetter, Lift
from server.ingest.quality import BIN_COLUMNS, BINS, first_whole_day, quality_totals
from server.streets.models import Street
from server.streets.trajectory import AMBIGUOUS
from server.web import schemas
from server.web.alert_feed import StreamCursor, alert_rows, feed_of, last_lift_id, page_cursor
from server.web.bounds import MAX_ROW_ID, Count, Day, ordered
from server.web.commune_scope import open_to_communes
from server.web.communes import known_commune
from server.web.deps import SIGNED_IN, Manager, SessionDep, Viewer, authorize, context
from server.web.reports import StreetFilter, day_binds, period_params, rate_fields, rollup_branches
from vision.schema import Stream
from vision.severity import CATEGORY_PATTERN

ALERT_POLL_S = 1.0  # how often the streams look for new alert lifts (one query per app, ``alert_feed``)
AUTH_RECHECK_S = 60.0
# An alert is one lift (time, street, truck): on a short street nearly one household, so the feed is
# for managers and admins; viewers keep the per-street alert counts of /api/streets (docs/privacy.md).
ALERTS_ROLE = "manager"


def _lift_period(query: Any, flt: StreetFilter) -> Any:
    if flt.since is not None:
        query = query.where(Lift.day >= flt.since)
    if flt.until is not None:
        query = query.where(Lift.day <= flt.until)
    return query


AMBIGUOUS_STREETS = 20  # streets listed on the data-quality page


@dataclass(frozen=True, slots=True)
class Kept:
    """What the retention has left whole: the first local day of every raw lift (``retention_days``)
    and of every dead letter, in the collectivité's zone. Letters of photos go with the photos and,
    at street level, those of lifts after ``street_level_letter_days`` (``server.retention``): counted
    from the longer ``dead_letter_retention_days``, most of a period's letters were already gone."""

    lifts: date
    dead_letters: date
    zone: ZoneInfo

    @classmethod
    def of(cls, settings: ServerSettings, now: datetime | None = None) -> Kept:
        now = now or utcnow()
        letters = min(settings.dead_letter_retention_days, settings.evidence_retention_days,
                      settings.dead_letter_retention_days if settings.household_level
                      else settings.street_level_letter_days)
        return cls(first_whole_day(now, settings.retention_days, settings.zone),
                   first_whole_day(now, letters, settings.zone), settings.zone)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, dt_time(), zone).astimezone(UTC)


def data_quality(db: Session, flt: StreetFilter, kept: Kept | None = None) -> dict[str, Any]:
    """The data-quality page's figures over one population of lifts.

    The counts and histogram come from a roll-up kept for ever, the ambiguous lifts from the raw
    lifts, which the retention deletes: "all time" read 1.2 million lifts beside the ambiguous of
    the last year only. So the period starts by default on ``kept.lifts``, the first day whose
    lifts are all kept, and every figure covers it; a ``since`` asked before it keeps its roll-up
    figures, and ``ambiguous_since`` then says the ambiguous count starts later. Dead letters are
    those received in the period and still kept (``dead_letters_since``). ``kept`` None: no
    retention (a fixed history in tests), all time and every dead letter.
    """
    since = flt.since if flt.since is not None or kept is None else kept.lifts
    ambiguous_since = since if kept is None or (since is not None and since >= kept.lifts) else kept.lifts
    # Counts and histogram from the daily roll-up ingest keeps (``server.ingest.quality``): a year
    # is ~1,500 rows; summed from the raw lifts it took a second per million lifts on SQLite.
    totals = quality_totals(db, since, flt.until)
    dead_query = select(DeadLetter.reason, func.count()).group_by(DeadLetter.reason).order_by(DeadLetter.reason)
    dead_since = None
    if kept is not None and since is not None:
        dead_since = max(since, kept.dead_letters)
        dead_query = dead_query.where(DeadLetter.received_at >= _midnight(dead_since, kept.zone))
        if flt.until is not None:
            dead_query = dead_query.where(DeadLetter.received_at < _midnight(flt.until + timedelta(days=1), kept.zone))
    dead = db.execute(dead_query).all()
    # Issue 16b: lifts whose street stays uncertain even from the truck's path (crossings,
    # parallel streets), by street: shown for review, never silently counted as sure; judged
    # ones only, those counted in their likeliest street (not a ``view_unusable`` lift). Their
    # posterior changes when a lift is confirmed, so they are read from the lifts, through the
    # partial index of those few (``AMBIGUOUS_LIFTS``, written as the index's own predicate).
    # Counted first, named after: joined to the streets, SQLite walked every street's lifts.
    counts = _lift_period(select(Lift.street_id, func.count().label("lifts")).where(AMBIGUOUS_LIFTS)
                          .group_by(Lift.street_id), StreetFilter(ambiguous_since, flt.until)).subquery()
    by_street = db.execute(select(counts.c.street_id, Street.name, Street.commune, counts.c.lifts)
                           .join(Street, Street.id == counts.c.street_id)).all()
    ambiguous = sorted(by_street, key=lambda r: (-r[3], r[1], r[2], r[0]))  # a name is in several communes
    total, matched, no_gps = totals["lifts"], totals["matched"], totals["no_gps"]
    edges = [i / BINS for i in range(BINS + 1)]
    return {
        **{name: day.isoformat() if day else None for name, day in (
            ("since", since), ("until", flt.until), ("ambiguous_since", ambiguous_since),
            ("dead_letters_since", dead_since))},
        "ambiguous": sum(int(r[3]) for r in by_street), "ambiguous_threshold": AMBIGUOUS,
        "ambiguous_by_street": [{"street_id": sid, "name": name, "commune": commune, "lifts": int(n)}
                                for sid, name, commune, n in ambiguous[:AMBIGUOUS_STREETS]],
        "lifts": total, "matched": matched, "unmatched": total - matched,
        "unmatched_no_gps": no_gps, "unmatched_too_far": total - matched - no_gps,
        "view_unusable": totals["view_unusable"],
        "dead_letters": sum(n for _, n in dead), "dead_letters_by_reason": dict(dead),
        "confidence_histogram": [{"low": low, "high": high, "lifts": totals[column]}
                                 for (low, high), column in zip(itertools.pairwise(edges), BIN_COLUMNS, strict=True)],
    }


def error_rates(db: Session, category: str, flt: StreetFilter) -> list[dict[str, Any]]:
    """Per street: lifts, lifts with an error (not info) of ``category``, and that share with its CI.

    Summed from the day, month and year roll-ups as ``/api/streets`` is (``rollup_branches``): from
    the daily aggregates, all time over three years of a métropole read ~1 million rows, 1.4 s."""
    params = period_params(flt, category)
    totals = " UNION ALL ".join(rollup_branches(flt, ("lifts",), False, params))
    hits = " UNION ALL ".join(rollup_branches(flt, ("category", "lifts"), True, params))
    days = day_binds(params)
    with_category = {sid: int(n) for sid, n in db.execute(text(
        f"SELECT street_id, SUM(lifts) FROM ({hits}) AS u WHERE category = :category GROUP BY street_id"
    ).bindparams(*days), params)}
    # By street id: PostgreSQL's hashed GROUP BY gave the streets (and a ranking's ties) in its own
    # order. A street whose days in the period were all subtracted sums to 0: it had no lift then.
    rows = db.execute(text(
        f"SELECT street_id, SUM(lifts) FROM ({totals}) AS u WHERE street_id <> {UNMATCHED} GROUP BY street_id "
        "HAVING SUM(lifts) > 0 AND SUM(lifts) >= :min_lifts ORDER BY street_id").bindparams(*days), params)
    return [{"street_id": sid, "category": category, **rate_fields(int(lifts), with_category.get(sid, 0))}
            for sid, lifts in rows]


def network_geojson(db: Session, communes: tuple[str, ...] | None = None) -> str:
    """Every street (of ``communes``, codes INSEE, when given) as a GeoJSON feature, built from the
    stored geometry text without re-parsing it."""
    parts = []
    query = select(Street.id, Street.name, Street.commune, Street.geometry).order_by(Street.id)
    if communes is not None:
        query = query.where(Street.code_insee.in_(communes))
    for sid, name, commune, geometry in db.execute(query):
        properties = json.dumps({"street_id": sid, "name": name, "commune": commune}, ensure_ascii=False)
        parts.append(f'{{"type":"Feature","id":{sid},"geometry":{geometry or "null"},"properties":{properties}}}')
    return '{"type":"FeatureCollection","features":[' + ",".join(parts) + "]}"


def period(since: date | None, until: date | None, stream: str | None = None, commune: str | None = None,
           min_lifts: int = 1, communes: tuple[str, ...] | None = None) -> StreetFilter:
    ordered(since, until)
    return StreetFilter(since=since, until=until, stream=stream, commune=commune, min_lifts=min_lifts,
                        communes=communes)


async def alert_events(request: Request, after: int) -> AsyncIterator[ServerSentEvent]:
    """New alert lifts as they are stored; the event id (``StreamCursor.next_events``) resumes a reconnect.

    The caller's credentials and role are checked again every ``AUTH_RECHECK_S``: a logout, an
    expired session, a disabled account, a revoked token or a role lowered below ``ALERTS_ROLE``
    ends the stream (the browser then lands on the login page, or on the page's notice).
    """
    sessions = context(request).sessions
    feed = feed_of(request.app.state, sessions, ALERT_POLL_S)
    cursor = StreamCursor(after)

    def poll(recheck: bool) -> list[tuple[int, dict[str, Any]]] | None:
        window = feed.window()
        with sessions() as db:
            if recheck:
                try:
                    authorize(request, db, ALERTS_ROLE)
                except HTTPException:
                    return None
            return cursor.next_events(db, window)

    checked = time.monotonic()
    while not await request.is_disconnected():
        recheck = time.monotonic() - checked > AUTH_RECHECK_S
        checked = time.monotonic() if recheck else checked
        events = await asyncio.to_thread(poll, recheck)
        if events is None:
            return
        for event_id, row in events:
            # The event id is where to resume after this event: a settled id at or below this alert's
            # (in the data), so that an older alert committed later still comes; the page drops repeats.
            yield ServerSentEvent(data=json.dumps(row, ensure_ascii=False), event="alert", id=str(event_id))
        await asyncio.sleep(ALERT_POLL_S)


def dashboard_api_router(settings: ServerSettings) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["dashboard"])

    @router.get("/me", response_model=schemas.Me)
    @open_to_communes
    def me(who: Viewer) -> dict[str, Any]:
        """The authenticated caller: name, role and kind (user, token or dev), whether the server
        works at household level (``server.web.privacy``) so that pages can say so, and the communes
        (codes INSEE) a mairie's account is limited to, null for every commune."""
        return {"name": who.name, "role": who.role, "kind": who.kind, "household_level": settings.household_level,
                "communes": None if who.communes is None else list(who.communes)}

    @router.get("/network.geojson", response_model=schemas.FeatureCollection, response_class=schemas.GeoJSONResponse,
                responses={304: {"description": "Unchanged since the ETag sent in If-None-Match"}})
    @open_to_communes
    def network(db: SessionDep, who: Viewer, if_none_match: str | None = Header(default=None)) -> Response:
        """Geometry of every street (no statistics), for drawing the whole network once; a mairie's
        account gets its communes' streets, so the map opens on them."""
        body = network_geojson(db, who.communes)
        etag = '"' + hashlib.blake2b(body.encode(), digest_size=12).hexdigest() + '"'
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if if_none_match == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/geo+json", headers=headers)

    @router.get("/error-rates", response_model=schemas.ErrorRates)
    @open_to_communes
    def rates(db: SessionDep, who: Viewer, category: str = Query(min_length=1, max_length=64, pattern=CATEGORY_PATTERN),
              since: Day | None = None, until: Day | None = None, stream: Stream | None = None,
              commune: str | None = Query(default=None, max_length=120), min_lifts: Count = 1) -> dict[str, Any]:
        """Per street, the share of lifts with an error of ``category`` (Wilson 95 % interval); viewers
        never see a street under ``viewer_min_lifts``, as on ``/api/streets``."""
        if not who.can("manager"):
            min_lifts = max(min_lifts, settings.viewer_min_lifts)
        flt = period(since, until, stream.value if stream else None, known_commune(db, commune, who.communes),
                     min_lifts, who.communes)
        return {"items": error_rates(db, category, flt)}

    @router.get("/alerts", response_model=schemas.Alerts)
    def alerts(request: Request, db: SessionDep, who: Manager,
               limit: int = Query(default=50, ge=1, le=500)) -> dict[str, Any]:
        """The latest alert lifts, newest first; ``cursor`` resumes ``/api/alerts/stream?after=``: a
        settled id, not the newest one, which lost an alert another writer committed just after.
        Managers and admins only (``ALERTS_ROLE``)."""
        window = feed_of(request.app.state, context(request).sessions, ALERT_POLL_S).window()
        items = alert_rows(db, None, limit)
        return {"items": items, "cursor": page_cursor(window, items, limit)}

    @router.get("/alerts/stream", response_class=EventSourceResponse, dependencies=SIGNED_IN,
                responses={200: {"content": {"text/event-stream": {}},
                                 "description": "One `alert` event per alert lift, data as in /api/alerts"}})
    def alert_stream(request: Request, db: SessionDep,
                     after: int | None = Query(default=None, ge=0, le=MAX_ROW_ID),
                     last_event_id: str | None = Header(default=None)) -> EventSourceResponse:
        """Server-sent events: one ``alert`` event per alert lift stored after ``after`` (or now)."""
        # 401/403 before the stream opens: a truck's token, a viewer or an annotator sees no alerts.
        authorize(request, db, ALERTS_ROLE)
        # A resumed stream's Last-Event-ID is a lift id: beyond 64 bits it names no lift (and would not bind).
        resumed = last_event_id and last_event_id.isdigit() and int(last_event_id) <= MAX_ROW_ID
        start = int(last_event_id) if resumed else after
        if start is None:  # "now": the settled id, so that an alert committed late still comes
            start = feed_of(request.app.state, context(request).sessions, ALERT_POLL_S).window().settled
            start = last_lift_id(db) if start is None else start
        db.close()  # the stream polls with its own short sessions
        return EventSourceResponse(alert_events(request, start), ping=15)

    @router.get("/data-quality", response_model=schemas.DataQuality)
    def quality(db: SessionDep, who: Viewer, since: Day | None = None,
                until: Day | None = None) -> dict[str, Any]:
        """Lifts matched or not to a street (no GPS, too far), match confidence, ambiguous lifts, dead
        letters; by default since the first day whose lifts are all still kept (``since`` in the answer).
        The payloads held whole for a replay are today's, whatever the period."""
        return {**data_quality(db, period(since, until), Kept.of(settings)),
                "dead_letters_held": held_summary(db, settings)}

    return router
