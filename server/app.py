"""The composition root: settings -> database -> migrations -> evidence -> ingest -> retention -> API.

``create_app(settings)`` builds everything from its collaborators; tests call the same factory
with a temporary database and a test broker. The ingest starts and stops with the app's
lifespan, so ``trivue server`` runs both in one process and shuts both down cleanly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from base.version import __version__
from server.command_line import migrated_engine
from server.config import ServerSettings
from server.fleet.api import fleet_router
from server.fleet.rollout import RolloutTask
from server.ingest.aggregates import StreetLocator
from server.ingest.day_zone import settle_day_zone
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox
from server.ingest.metrics import Metrics
from server.ingest.partitions import ensure_partitions
from server.ingest.subscriber import Ingest
from server.labels.api import labels_router
from server.migrate import upgrade_database
from server.opendata.api import opendata_router
from server.reminders.api import mount_reminders
from server.retention import RetentionTask
from server.streets.bins import bin_places
from server.streets.models import Address, Segment
from server.streets.trajectory import TrackLocator
from server.web.api import api_router
from server.web.deps import AppContext
from server.web.login import login_router
from server.web.overrule_api import overrule_router
from server.web.prometheus import metrics_router
from server.web.rejections import answer_database_outages, answer_validation_errors, document_refusals
from server.web.site import mount_dashboard

log = logging.getLogger(__name__)

LOCATOR_REFRESH_S = 60.0
LocatorFactory = Callable[[Session], StreetLocator | None]


def default_locator_factory(session: Session) -> StreetLocator | None:
    """The street index over the streets and addresses in the database, with trajectory matching."""
    return TrackLocator.from_session(session)


class LocatorCache:
    """Keeps one street index; rebuilds it when another process has imported streets or addresses."""

    def __init__(self, factory: LocatorFactory, refresh_s: float = LOCATOR_REFRESH_S) -> None:
        self.factory = factory
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._locator: StreetLocator | None = None
        self._signature: tuple[Any, ...] | None = None
        self._checked = float("-inf")

    def _signature_of(self, session: Session) -> tuple[Any, ...]:
        return (*session.execute(select(func.count(), func.max(Segment.id))).one(),
                *session.execute(select(func.count(), func.max(Address.id))).one())

    def __call__(self, session: Session) -> StreetLocator | None:
        import time

        with self._lock:
            now = time.monotonic()
            if now - self._checked < self.refresh_s:
                return self._locator
            self._checked = now
            signature = self._signature_of(session)
            if signature != self._signature:
                self._locator = self.factory(session)
                self._signature = signature
                log.info("street index (re)built: %d street segments, %d addresses", signature[0], signature[2])
            return self._locator


def create_app(settings: ServerSettings, engine: Engine | None = None, *, start_ingest: bool | None = None,
               locator_factory: LocatorFactory = default_locator_factory) -> FastAPI:
    """The FastAPI app with its database, evidence store, metrics and (optionally) MQTT ingest.

    The database is upgraded to the newest schema here. ``start_ingest`` defaults to
    ``settings.ingest_enabled``; the ingest runs for the lifetime of the app (its lifespan).
    """
    if settings.dev:
        log.warning("DEV MODE: every route is open without login, as an admin. Never expose this server.")
    sorting_rules = settings.load_sorting_rules()  # a bad file stops start-up before the database is touched
    settings.make_folders()
    if engine is None:
        engine = migrated_engine(settings.db_url)
    else:
        upgrade_database(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as session:  # stored days in another zone than `timezone`: stop, naming the rebuild
        settle_day_zone(session, settings.timezone)
    try:
        with sessions() as session, session.begin():  # PostgreSQL: this month's and the coming months' partitions
            created = ensure_partitions(session)
        if created:
            log.info("lifts partitions created: %s", ", ".join(created))
    except SQLAlchemyError:  # lifts still land in the default partition; the hourly upkeep tries again
        log.exception("lifts partitions could not be created at start-up")
    metrics = Metrics()
    evidence = EvidenceStore(settings.evidence_path, settings.max_evidence_bytes)
    ingest = None
    if settings.ingest_enabled if start_ingest is None else start_ingest:
        inbox = Inbox(settings, evidence, metrics, LocatorCache(locator_factory), bin_places,
                      streams=sorting_rules.streams)  # a lift of another stream: unknown_stream
        ingest = Ingest(settings, sessions, inbox, metrics)
    ctx = AppContext(settings, sessions, metrics, evidence, sorting_rules, ingest,
                     ingest.publish_config if ingest else None)
    retention = RetentionTask(settings, sessions, evidence)
    rollouts = RolloutTask(settings, sessions, ctx.publish_config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        retention.start()
        if ingest is not None:
            ingest.start()
        rollouts.start()
        try:
            yield
        finally:
            rollouts.stop()
            if ingest is not None:
                ingest.stop()
            retention.stop()

    # /docs is served from this server's own files (server.web.site); FastAPI's pages load a CDN.
    app = FastAPI(title="Trivue", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Household waste sorting quality by street, from collection-truck cameras.")
    app.state.ctx = ctx
    answer_validation_errors(app)
    answer_database_outages(app)
    document_refusals(app)
    app.include_router(login_router())
    app.include_router(api_router())
    app.include_router(overrule_router())
    app.include_router(fleet_router())
    app.include_router(metrics_router())
    app.include_router(opendata_router())
    app.include_router(labels_router(sorting_rules))
    mount_dashboard(app, settings, sorting_rules)
    mount_reminders(app, settings, sorting_rules)  # reminders' routes and their review pages
    _freeze_startup_objects()
    return app


_frozen = False


def _freeze_startup_objects() -> None:
    """Move what start-up allocated (modules, ORM metadata, the app) out of the garbage collector's
    sight, once per process.

    A city's month of streets allocates tens of thousands of objects per request, which triggers
    full collections that scan every long-lived object too: bench/queries.py, a month of 1,421
    streets over 10 million lifts, p95 131-153 ms -> 82 ms on SQLite (p50 unchanged). Once per
    process only, so that test runs creating many apps do not pin each one in memory.
    """
    import gc

    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()  # unreachable start-up garbage first: frozen objects are never collected
        gc.freeze()
