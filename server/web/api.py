"""The HTTP API: street statistics (JSON, GeoJSON, CSV), lifts, photos, trucks, dead letters (``/metrics``:
``server.web.prometheus``).

Roles: street-level statistics and trucks for every signed-in role; household-level data (lifts,
addresses, photos, raw dead letters) for managers and admins, audited; the audit trail for admins.
A truck's configuration and models are the fleet's (``server.fleet.api``). Only ``/api/health`` is open.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from base.version import __version__
from server.audit import audit, filter_words
from server.ingest.inbox import newest_dead_letters
from server.ingest.letters import held_summary
from server.ingest.models import Evidence, Lift, Truck, TruckStatus
from server.ingest.truck_state import never_heard, silent, state, twins
from server.migrate import current_revision
from server.web import schemas
from server.web.audit_filter import AuditFilterDep, audit_page
from server.web.bounds import MAX_ROW_ID, Count, Day, Moment, RowId, ordered
from server.web.commune_scope import lift_in_scope, open_to_communes, street_in_scope
from server.web.communes import known_commune
from server.web.csvexport import rows_csv
from server.web.deps import Admin, AppContext, ContextDep, Manager, SessionDep, Viewer
from server.web.drilldown import CursorError, LiftFilter, lift_detail, list_lifts
from server.web.privacy import street_level_lift
from server.web.private import private_get
from server.web.reports import StreetFilter, street_detail, street_geojson_text, street_stats, street_stats_text
from vision.refusals import refusal_kind
from vision.schema import Stream
from vision.severity import CATEGORY_PATTERN

RECENT_DAYS = 7  # GET /api/trucks: lifts_7d counts a truck's lifts started this many days back

CSV_COLUMNS = ("street_id", "name", "commune", "lifts", "contaminated", "rate", "ci_low", "ci_high", "alerts",
               "top_errors")


def street_filter(since: Day | None = None, until: Day | None = None, stream: Stream | None = None,
                  commune: str | None = Query(default=None, max_length=120),
                  min_lifts: Count = 1,
                  category: str | None = Query(default=None, max_length=64, pattern=CATEGORY_PATTERN)) -> StreetFilter:
    """Common street filters; ``since``/``until`` are local collection days, both inclusive;
    ``category`` keeps the streets where lifts had that error (not info) in the period; ``commune``
    as typed (``scoped_filter`` finds it as stored)."""
    ordered(since, until)
    return StreetFilter(since, until, stream.value if stream else None, commune, min_lifts, category)


def scoped_filter(flt: Annotated[StreetFilter, Depends(street_filter)], who: Viewer,
                  ctx: ContextDep, db: SessionDep) -> StreetFilter:
    """Viewers never see a street with fewer lifts than ``viewer_min_lifts``: too close to a household.
    The commune is read once the caller is known: a refusal names the communes (``known_commune``),
    a scoped account's only, whose streets are all it sees (``server.web.commune_scope``)."""
    flt = replace(flt, commune=known_commune(db, flt.commune, who.communes), communes=who.communes)
    floor = ctx.settings.viewer_min_lifts
    if who.can("manager") or flt.min_lifts >= floor:
        return flt
    return replace(flt, min_lifts=floor)


StreetFilterDep = Annotated[StreetFilter, Depends(scoped_filter)]


def streets_csv(streets: list[dict[str, Any]]) -> str:
    """Street names come from OpenStreetMap: cells are neutralised against formulas (``server.web.csvexport``)."""
    rows = ({**street, "top_errors": "; ".join(f"{e['category']}={e['lifts']}" for e in street["top_errors"])}
            for street in streets)
    return rows_csv(CSV_COLUMNS, rows)


def _health(db: Session, ctx: AppContext) -> dict[str, Any]:
    try:
        db.execute(text("SELECT 1"))
        database, revision = "ok", current_revision(db.get_bind())  # type: ignore[arg-type]
    except Exception as error:  # health reports the failure instead of failing
        database, revision = f"error: {type(error).__name__}", None
    broker = "disabled"
    if ctx.ingest is not None:
        broker = "connected" if ctx.ingest.connected.is_set() else "disconnected"
    ok = database == "ok" and broker != "disconnected"
    return {"status": "ok" if ok else "degraded", "database": database, "schema_revision": revision,
            "broker": broker, "version": __version__, "dev": ctx.settings.dev}


def api_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["api"])

    @router.get("/health", summary="Liveness: database, broker connection, version (no login)",
                response_model=schemas.Health, responses={503: {"model": schemas.Health}})
    def health(db: SessionDep, ctx: ContextDep) -> JSONResponse:
        body = _health(db, ctx)
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    @router.get("/streets", summary="Contamination per street with a 95 % Wilson interval (JSON or CSV)",
                response_model=schemas.StreetList, responses={200: {"content": {"text/csv": {}}}})
    @open_to_communes  # StreetFilterDep: the account's communes (as every street route below)
    def streets(request: Request, db: SessionDep, who: Viewer, flt: StreetFilterDep,
                format: str | None = Query(default=None, pattern="^(json|csv)$")) -> Response:
        wants_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
        if wants_csv:
            stats = street_stats(db, flt)
            # Every export is in the audit trail (who, when, what), street-level ones included.
            audit(db, who.actor, "streets.export",
                  detail=f"csv, {len(stats['streets'])} streets, {filter_words(flt)}"[:2000])
            db.commit()
            return Response(streets_csv(stats["streets"]), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": 'attachment; filename="trivue-streets.csv"'})
        return Response(street_stats_text(db, flt), media_type="application/json")

    @router.get("/streets.geojson", summary="The same statistics as GeoJSON street geometries",
                response_model=schemas.FeatureCollection, response_class=schemas.GeoJSONResponse)
    @open_to_communes
    def streets_geojson(db: SessionDep, who: Viewer, flt: StreetFilterDep) -> Response:
        body = street_geojson_text(db, flt)
        # The CSV's rows for QGIS and other tools (the dashboard draws /api/network.geojson): an export too.
        audit(db, who.actor, "streets.export", detail=f"geojson, {filter_words(flt)}"[:2000])
        db.commit()
        return Response(body, media_type="application/geo+json")

    @router.get("/streets/{street_id}", summary="One street: daily trend, streams and error breakdown",
                response_model=schemas.StreetDetail)
    @open_to_communes
    def street(street_id: RowId, db: SessionDep, who: Viewer, flt: StreetFilterDep) -> dict[str, Any]:
        # Another commune's street is not found, as a street that does not exist.
        detail = street_detail(db, street_id, flt) if street_in_scope(db, who, street_id) else None
        if detail is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no street {street_id}")
        # A street with no lift in the period says nothing about a household: its zeros are shown
        # (it answered 403 "managers only", to managers too, for a week the street was not collected).
        if 0 < detail["lifts"] < flt.min_lifts:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"street {street_id} has fewer than {flt.min_lifts} lifts in this period: "
                                "shown to managers only")
        return detail

    @private_get(router, "/lifts", summary="Lifts, newest first, paginated (household-level: manager)",
                 response_model=schemas.LiftPage)
    @open_to_communes
    def lifts(db: SessionDep, ctx: ContextDep, who: Manager, street_id: RowId | None = None,
              truck_id: str | None = Query(default=None, max_length=64), contaminated: bool | None = None,
              since: Moment | None = None, until: Moment | None = None, stream: Stream | None = None,
              day_since: Day | None = None, day_until: Day | None = None,
              limit: int = Query(default=100, ge=1, le=1000), cursor: str | None = None) -> dict[str, Any]:
        since, until = _aware(since), _aware(until)
        ordered(since, until)
        ordered(day_since, day_until, ("day_since", "day_until"))
        # A scoped account: the lifts of its communes' streets only.
        flt = LiftFilter(street_id, truck_id, contaminated, since, until, stream.value if stream else None,
                         day_since, day_until, who.communes)
        try:
            page = list_lifts(db, flt, limit, cursor)
        except CursorError as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
        household = ctx.settings.household_level
        audit(db, who.actor, "lifts.list",
              detail=f"{len(page['items'])} lifts, {filter_words(flt)}, household_level={household}")
        db.commit()
        if not household:  # street level until an admin enables households (server.web.privacy)
            page = {**page, "items": [street_level_lift(item) for item in page["items"]]}
        return page

    @private_get(router, "/lifts/{event_id}", summary="One lift with its street, address and photo link (manager)",
                 response_model=schemas.Lift)
    @open_to_communes
    def lift(event_id: uuid.UUID, db: SessionDep, ctx: ContextDep, who: Manager) -> dict[str, Any]:
        detail = lift_detail(db, str(event_id)) if lift_in_scope(db, who, str(event_id)) else None
        if detail is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no lift {event_id}")
        household = ctx.settings.household_level
        address = detail["address"]["address_id"] if household and detail["address"] else None
        # What was seen: the address and the bin are named in the trail when they were shown.
        audit(db, who.actor, "lift.read", str(event_id),
              f"address={address} bin={detail['bin_id']}" if household else "street level")
        db.commit()
        return detail if household else street_level_lift(detail)

    # A household's bin, read on the review page: not kept by a shared office browser (private_get: no-store).
    @private_get(router, "/lifts/{event_id}/evidence.jpg", summary="The blurred evidence photo (manager)",
                 response_class=FileResponse, responses={200: {"content": {"image/jpeg": {}}}})
    @open_to_communes
    def evidence(event_id: uuid.UUID, db: SessionDep, ctx: ContextDep, who: Manager) -> FileResponse:
        photo = db.get(Evidence, str(event_id)) if lift_in_scope(db, who, str(event_id)) else None
        path = ctx.evidence.path(photo.path) if photo is not None else None
        if path is None or not path.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no photo for lift {event_id}")
        audit(db, who.actor, "evidence.read", str(event_id))
        db.commit()
        return FileResponse(path, media_type="image/jpeg")

    _truck_routes(router)
    return router


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def view_photos(db: Session, trucks: list[Truck]) -> dict[str, tuple[str, datetime]]:
    """Event id and lift start of the latest photo of each truck whose camera view is unusable now (its
    heartbeat's ``camera_view``), taken since the run began: what the camera saw, for the fleet page's flag. One
    indexed look-up per such truck, a handful at most; none while every view is usable."""
    found = {}
    for truck in trucks:
        view = (truck.stats or {}).get("camera_view") or {}
        if not view.get("problem"):
            continue
        query = (select(Lift.event_id, Lift.started_at).join(Evidence, Evidence.event_id == Lift.event_id)
                 .where(Lift.truck_id == truck.truck_id, Lift.view_unusable.is_not(None))
                 .order_by(Lift.started_at.desc()).limit(1))
        if view.get("since"):
            query = query.where(Lift.started_at >= datetime.fromisoformat(view["since"]))
        if (row := db.execute(query).first()) is not None:
            found[truck.truck_id] = (row.event_id, row.started_at)
    return found


def truck_json(truck: Truck, lifts_7d: int, now: datetime,
               view_photo: tuple[str, datetime] | None = None) -> dict[str, Any]:
    update = (truck.stats or {}).get("model_update") or {}
    now_state = state(truck)
    return {"truck_id": truck.truck_id, "status": truck.status, "state": now_state.value,
            "online": now_state is TruckStatus.online, "silent": silent(truck, now),
            "duplicate_agents": twins(truck.agents, now),
            "status_at": truck.status_at.isoformat() if truck.status_at else None,
            "last_seen_at": truck.last_seen_at.isoformat() if truck.last_seen_at else None,
            "stats": truck.stats, "stats_at": truck.stats_at.isoformat() if truck.stats_at else None,
            "config": truck.config, "lifts_7d": lifts_7d,
            # Beside the truck's message, not in it: ``stats`` stays what the truck sent.
            "model_refusal": refusal_kind(update.get("reason")) if update.get("state") == "refused" else None,
            # The photo's lift start names the fleet page's link (« voir la photo … levée du … »).
            "view_photo": view_photo[0] if view_photo else None,
            "view_photo_at": view_photo[1].isoformat() if view_photo else None}


def _truck_routes(router: APIRouter) -> None:
    @router.get("/trucks", summary="Trucks: state (online, offline, stopped), last seen, last stats, two agents",
                response_model=schemas.TruckList)
    def trucks(db: SessionDep, ctx: ContextDep, who: Viewer) -> dict[str, Any]:
        # The fleet page asks every 30 s: a count of all time read every lift ever stored. The last
        # 7 days are a range of ix_lifts_truck_started per truck, in the last month or two partitions
        # whatever the history; they also tell a truck that stopped sending from one that works.
        since = datetime.now(UTC) - timedelta(days=RECENT_DAYS)
        recent = (select(func.count()).select_from(Lift)
                  .where(Lift.truck_id == Truck.truck_id, Lift.started_at >= since).scalar_subquery())
        rows = db.execute(select(Truck, recent).order_by(Truck.truck_id)).all()
        now = datetime.now(UTC)
        unheard = [(t, 0) for t in never_heard(ctx.settings.known_trucks, (t.truck_id for t, _ in rows))]
        listed = sorted([*rows, *unheard], key=lambda row: row[0].truck_id)
        photos = view_photos(db, [t for t, _ in rows])
        return {"trucks": [truck_json(t, lifts, now, photos.get(t.truck_id)) for t, lifts in listed]}

    @private_get(router, "/audit", summary="The audit trail, newest first (admin)", response_model=schemas.AuditPage)
    def audit_log(db: SessionDep, who: Admin, flt: AuditFilterDep, limit: int = Query(default=100, ge=1, le=1000),
                  before_id: int | None = Query(default=None, ge=1, le=MAX_ROW_ID)) -> dict[str, Any]:
        # Reading the trail is not itself audited (it never was): each page of /journal would add
        # entries to what it shows. Filters and their 422s: server.web.audit_filter.
        return {"items": audit_page(db, flt, limit, before_id)}

    @private_get(router, "/dead-letters", summary="Messages refused by ingest, newest first (manager)",
                 response_model=schemas.DeadLetters)
    def dead_letters(db: SessionDep, ctx: ContextDep, who: Manager,
                     reason: str | None = Query(default=None, max_length=32),
                     limit: int = Query(default=100, ge=1, le=1000)) -> dict[str, Any]:
        try:
            by_reason, letters = newest_dead_letters(db, reason, limit)
        except ValueError as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
        # A refused lift's raw bytes hold its bin tag and GPS fix, a photo's the picture: shown only
        # at household level, and never more than their first 512 bytes (a held photo stays in the table).
        raw = ctx.settings.household_level
        items = [{"id": d.id, "received_at": d.received_at.isoformat(), "topic": d.topic, "truck_id": d.truck_id,
                  "reason": d.reason, "detail": d.detail, "payload_size": d.payload_size,
                  "replayable": d.replayable, "payload_head": d.head.decode("utf-8", "replace") if raw else None}
                 for d in letters]
        audit(db, who.actor, "dead_letters.read",
              detail=f"{len(items)} messages, payloads {'shown' if raw else 'hidden'}")
        db.commit()
        return {"counts": by_reason, "held": held_summary(db, ctx.settings), "items": items}
