"""``GET /api/opendata/streets.{csv,geojson}``: the open data publication, straight from the server.

The same rows as ``trivue opendata export`` (``server.opendata``): per street, period and stream,
cells under the server's ``opendata_min_lifts`` and streets of fewer than ``opendata_min_households``
known addresses (or none, unless ``opendata_publish_without_addresses``) left out, whatever the caller's role.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from server.audit import audit
from server.opendata.export import CSV_NAME, GEOJSON_NAME, csv_pieces, default_query, geojson_pieces, publication
from server.web.auth import Principal
from server.web.bounds import Day
from server.web.deps import AppContext, ContextDep, SessionDep, Viewer

Period = Literal["month", "year"]
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "geojson": "application/geo+json"}


def opendata_router() -> APIRouter:
    router = APIRouter(prefix="/api/opendata", tags=["open data"])

    def export(kind: str, db: Session, ctx: AppContext, who: Principal, period: str, since: date | None,
               until: date | None) -> Response:
        settings = ctx.settings
        today = datetime.now(settings.zone).date()
        try:
            query = default_query(today, period, settings.opendata_min_lifts, since, until, None,
                                  settings.opendata_min_households, settings.opendata_publish_without_addresses)
        except ValueError as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
        pub = publication(db, query)
        audit(db, who.actor, "opendata.export", detail=f"{kind}, {pub.count} rows, {query}"[:2000])
        db.commit()
        # Streamed in pieces of rows: the rows are all known (the query ran above, before the first
        # byte, so a failure is still an error status and the audit counts them), but the body of a
        # métropole's history (tens of MB) is never held whole, once per viewer downloading.
        pieces, name = (csv_pieces(pub), CSV_NAME) if kind == "csv" else (geojson_pieces(pub), GEOJSON_NAME)
        stamp = f"{today:%Y%m%d}"  # the collectivité's day: at 00:30 on the 1st, November is over
        return StreamingResponse(pieces, media_type=MEDIA_TYPES[kind],
                                 headers={"Content-Disposition": f'attachment; filename="trivue-{stamp}-{name}"'})

    @router.get("/streets.csv", summary="Open data: per street, month (or year) and stream, as CSV",
                response_class=Response, responses={200: {"content": {"text/csv": {}}}})
    def streets_csv(db: SessionDep, ctx: ContextDep, who: Viewer, period: Period = "month",
                    since: Day | None = None, until: Day | None = None) -> Response:
        """``until`` defaults to the end of the last complete period (local days of ``timezone``)."""
        return export("csv", db, ctx, who, period, since, until)

    @router.get("/streets.geojson", summary="Open data: the same rows as GeoJSON with the street geometries",
                response_class=Response, responses={200: {"content": {"application/geo+json": {}}}})
    def streets_geojson(db: SessionDep, ctx: ContextDep, who: Viewer, period: Period = "month",
                        since: Day | None = None, until: Day | None = None) -> Response:
        return export("geojson", db, ctx, who, period, since, until)

    return router
