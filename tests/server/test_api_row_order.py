"""Lists and objects the dashboard API builds from a GROUP BY come in one order on both databases:
SQLite groups by sorting, PostgreSQL by hashing, which gave /api/error-rates its streets (and a
ranking's equal rows, which the page's stable sort keeps as given) in a hash order."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, text
from sqlalchemy.orm import Session

from server.ingest.inbox import newest_dead_letters
from server.ingest.models import DeadLetter, Lift, StreetDay
from server.ingest.rollups import rebuild_rollups
from server.streets.models import Street
from server.web.dashboard_api import data_quality, error_rates, period
from server.web.reports import street_detail
from tests.server.streets_db import database

STREETS = list(range(1, 41))
REASONS = ["schema", "unknown_truck", "too_large", "store_error", "bad_json", "clock", "duplicate", "acl"]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path, postgres_available: bool) -> Iterator[Engine]:
    with database(request.param, tmp_path, postgres_available) as engine:
        yield engine


def test_error_rates_list_the_streets_by_id(engine: Engine) -> None:
    shuffled = random.Random(1).sample(STREETS, len(STREETS))
    with Session(engine) as session:
        session.execute(insert(StreetDay), [
            {"street_id": sid, "day": date(2026, 11, day), "stream": "emballages", "lifts": 5, "contaminated": 1,
             "alerts": 0, "score": 0.0} for sid in shuffled for day in (1, 2)])
        rebuild_rollups(session)  # what ingest keeps beside the days: the error rates read these
        session.commit()
        rows = error_rates(session, "verre", period(None, None))
    assert [r["street_id"] for r in rows] == STREETS


def test_dead_letters_by_reason_come_by_reason(engine: Engine) -> None:
    at = datetime(2026, 11, 2, 8, tzinfo=UTC)
    with Session(engine) as session:
        session.add_all([DeadLetter(received_at=at, topic="t", truck_id="t1", reason=reason, detail="d",
                                    payload=b"{}", payload_size=2) for reason in REASONS])
        session.commit()
        quality = data_quality(session, period(None, None))
        counts, _letters = newest_dead_letters(session)  # GET /api/dead-letters, dead-letters list --json
    assert list(quality["dead_letters_by_reason"]) == sorted(REASONS)
    assert list(counts) == sorted(REASONS)


def test_ambiguous_streets_of_one_name_and_count_come_by_commune(engine: Engine) -> None:
    """Sorted by lifts then name alone, two 'Rue de la Gare' of two communes kept the join's order."""
    at = datetime(2026, 11, 2, 8, tzinfo=UTC)
    communes = ["Vezin", "Betton", "Rennes", "Cesson"]
    with Session(engine) as session:
        session.add_all([Street(id=n, name="Rue de la Gare", commune=c, name_key="gare", geometry="null")
                         for n, c in enumerate(communes, start=1)])
        session.add_all([Lift(event_id=f"00000000-0000-4000-8000-{n:012d}", truck_id="T1", sequence=n,
                              stream="emballages", started_at=at, ended_at=at, day=at.date(), received_at=at,
                              street_id=n, street_confidence=0.5, contaminated=False, has_alert=False, score=0.0,
                              counts={}, errors=[], model_name="m", model_version="1", frames=1)
                         for n in range(1, len(communes) + 1)])
        session.commit()
        quality = data_quality(session, period(None, None))
    assert [s["commune"] for s in quality["ambiguous_by_street"]] == sorted(communes)


def test_a_streets_figures_list_its_streams_by_name(engine: Engine) -> None:
    streams = ["residual", "glass", "recyclables", "paper", "biowaste"]
    with Session(engine) as session:
        session.add(Street(id=1, name="Rue Hoche", commune="Rennes", name_key="hoche", geometry="null"))
        session.execute(insert(StreetDay), [
            {"street_id": 1, "day": date(2026, 11, 2), "stream": stream, "lifts": 5, "contaminated": 1, "alerts": 0,
             "score": 0.0} for stream in streams])
        session.commit()
        if session.get_bind().dialect.name == "postgresql":  # as on a large table: the planner hashes
            session.execute(text("SET enable_sort = off"))
        detail = street_detail(session, 1, period(None, None))
    assert detail is not None and list(detail["streams"]) == sorted(streams)
