"""``GET /metrics``: the Prometheus scrape, cheap at any database size and readable while the database is down.

Prometheus reads it with a bearer token of role viewer or above (``trivue tokens create``), as
every API route. The token is checked in the database; a database outage is exactly when the
ingest counters matter, so a token this process has checked recently (``REMEMBER_S``) still reads
them while the database cannot be reached: the counters and the ingest gauges, no database gauge,
``trivue_database_up 0``. A token never checked by this process, a session cookie, or a token
remembered longer ago, gets ``503`` then; nothing is open to a caller without a good token.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import PlainTextResponse
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from server.db import utcnow
from server.ingest.metrics import stored_rows
from server.ingest.models import DeadLetter, Lift, Truck, TruckStatus
from server.ingest.truck_state import never_heard, silent, state
from server.web.auth import Principal, digest
from server.web.deps import SIGNED_IN, AppContext, ContextDep, bearer_token, current_principal

REMEMBER_S = 24 * 3600.0  # how far into a database outage a checked token still reads the counters
REMEMBERED_TOKENS = 16  # a few scrapers; the oldest is forgotten first


class CheckedTokens:
    """Bearer tokens the database accepted lately (by digest), for the scrapes of a database outage."""

    def __init__(self, keep_s: float = REMEMBER_S, size: int = REMEMBERED_TOKENS) -> None:
        self.keep_s, self.size = keep_s, size
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def remember(self, token: str, who: Principal) -> None:
        with self._lock:
            self._seen[digest(token)] = (who, time.monotonic())
            self._seen.move_to_end(digest(token))
            while len(self._seen) > self.size:
                self._seen.popitem(last=False)

    def forget(self, token: str) -> None:
        """A token the database refused (revoked): never vouched for again."""
        with self._lock:
            self._seen.pop(digest(token), None)

    def vouch(self, token: str) -> Principal | None:
        with self._lock:
            seen = self._seen.get(digest(token))
        if seen is None or time.monotonic() - seen[1] > self.keep_s:
            return None
        return seen[0]


def scrape_caller(request: Request, db: Session, checked: CheckedTokens) -> tuple[Principal, bool]:
    """The caller, and whether the database answered; 401/403 as every route, 503 when the
    database is down and the caller's token was not checked lately."""
    token = bearer_token(request)
    try:
        who = current_principal(request, db)
        database_up = True
    except HTTPException:
        if token:
            checked.forget(token)
        raise
    except SQLAlchemyError:
        db.rollback()
        remembered = checked.vouch(token) if token else None
        if remembered is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                "the database is unreachable, and this token was not checked by this server "
                                "process before the outage") from None
        who, database_up = remembered, False
    if not who.can("viewer"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs the viewer role or above")
    if token and database_up and who.kind == "token":
        checked.remember(token, who)
    return who, database_up


Gauges = dict[str, tuple[str, list[tuple[Any, float]]]]  # name -> (help, [(labels, value)])


def database_gauges(db: Session, known_trucks: list[str] | None = None) -> Gauges:
    return {
        "trivue_lifts": ("Lifts stored: exact up to 10,000, then an estimate (PostgreSQL: its statistics; "
                         "SQLite: the span of lift ids, an upper bound)", [((), stored_rows(db, Lift.__table__))]),
        "trivue_dead_letters": ("Dead letters stored: exact up to 10,000, then an estimate as trivue_lifts",
                                [((), stored_rows(db, DeadLetter.__table__))]),
        **truck_gauges(db, known_trucks),
    }


def truck_gauges(db: Session, known_trucks: list[str] | None) -> Gauges:
    """The trucks as the fleet page and ``/api/trucks`` show them (``known_trucks`` never heard
    included): by state, and those flagged silent. Every state has its series, 0 included, so that an
    alert compares a number rather than nothing. One row per truck, four columns: a fleet is dozens
    of trucks, hundreds at most."""
    now = utcnow()
    stored = db.execute(select(Truck.truck_id, Truck.status, Truck.status_at, Truck.last_seen_at)).all()
    rows: list[Any] = [*stored, *never_heard(known_trucks, (r.truck_id for r in stored))]
    counts = dict.fromkeys(TruckStatus, 0)
    for row in rows:
        counts[state(row)] += 1
    return {
        "trivue_trucks": ("Trucks by state as the fleet page shows it: the last status message (online, offline, "
                          "stopped; unknown before any), or online when heard from after it",
                          [((("state", s.value),), n) for s, n in counts.items()]),
        "trivue_trucks_silent": ("Trucks the fleet page flags silent: not heard from for 15 minutes (or never), "
                                 "unless stopped", [((), sum(silent(row, now) for row in rows))]),
    }


def metrics_router() -> APIRouter:
    router = APIRouter(tags=["metrics"])
    checked = CheckedTokens()

    @router.get("/metrics", summary="Prometheus metrics (text exposition format)",
                response_class=PlainTextResponse, dependencies=SIGNED_IN,
                responses={503: {"description": "The database is down and this token was not checked before"}})
    def metrics(request: Request, ctx: ContextDep) -> PlainTextResponse:
        gauges: dict[str, tuple[str, list[tuple[Any, float]]]] = {}
        with ctx.sessions() as db:
            _who, database_up = scrape_caller(request, db, checked)
            if database_up:
                try:
                    gauges = database_gauges(db, ctx.settings.known_trucks)
                except SQLAlchemyError:  # down between the token check and the gauges
                    database_up = False
        gauges |= ingest_gauges(ctx, database_up)
        return PlainTextResponse(ctx.metrics.render(gauges), media_type="text/plain; version=0.0.4")

    return router


def ingest_gauges(ctx: AppContext, database_up: bool) -> dict[str, tuple[str, list[tuple[Any, float]]]]:
    ingest = ctx.ingest
    return {
        "trivue_database_up": ("1 when this scrape could read the database", [((), int(database_up))]),
        "trivue_ingest_queue_depth": ("Messages received, not yet written",
                                      [((), ingest.queue_depth if ingest else 0)]),
        "trivue_ingest_queue_bytes": ("Payload bytes received, not yet written (bound: ingest_queue_max_bytes)",
                                      [((), ingest.queue_bytes if ingest else 0)]),
        "trivue_broker_connected": ("1 when the ingest is connected to the broker",
                                    [((), int(bool(ingest and ingest.connected.is_set())))]),
    }
