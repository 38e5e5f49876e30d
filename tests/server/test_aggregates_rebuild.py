"""The bulk rebuild (SQL ``GROUP BY`` in the database) gives exactly the aggregates and their day,
month and year roll-ups that ingest maintains lift by lift (``add_to_aggregates``), on SQLite and
PostgreSQL; taking lifts out again (``sign=-1``) leaves what a rebuild without them gives."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.db import make_engine
from server.ingest.aggregates import add_to_aggregates, insert_lifts, lift_row, rebuild_aggregates
from server.ingest.models import Lift, MatchQualityDay, StreetDay, StreetDayError, StreetPeriod, StreetPeriodError
from server.ingest.quality import MEASURES
from server.migrate import upgrade_database
from tests.server.events import lift_event

ZONE_NAME = "Europe/Paris"
COUNTS = [{"bottle": 2}, {"bag": 1, "bottle": 1}, {"battery": 1, "food": 2}, {"glass": 3}, {"can": 1},
          {"bag": 2, "film": 1, "food": 1}, {"textile": 1, "electronics": 1, "gas_cylinder": 1}, {}]
STREAMS = ["recyclables", "residual", "glass", "biowaste"]
CONFIDENCES = [0.0, 0.05, 0.1, 0.2, 0.2999, 0.3, 0.45, 0.5, 0.55, 0.6, 0.7, 0.7001, 0.85, 0.9, 0.9999, 1.0]


@dataclass(frozen=True)
class StubMatch:
    street_id: int
    segment_id: int = 1
    distance_m: float = 2.0
    address_id: int | None = None
    address_distance_m: float | None = None
    confidence: float = 0.9
    street_confidence: float = 0.9


class StreetByLongitude:
    """Five fake streets side by side; fixes east of them match nothing."""

    def locate(self, lat: float, lon: float, heading_deg: float | None = None,
               accuracy_m: float | None = None) -> StubMatch | None:
        street = int((lon + 1.70) * 1000)
        # Confidences over every tenth of the histogram, its edges included (0.3 * 10 is 3.0000000000000004).
        confidence = CONFIDENCES[int(lon * 1e6) % len(CONFIDENCES)]
        return StubMatch(street + 1, confidence=confidence, street_confidence=confidence) if 0 <= street < 5 else None


def snapshot(session: Session) -> tuple[dict[Any, tuple[Any, ...]], ...]:
    days = {(r.street_id, r.day, r.stream): (r.lifts, r.contaminated, r.alerts, round(r.score, 6))
            for r in session.scalars(select(StreetDay))}
    errors = {(r.street_id, r.day, r.stream, r.category, r.severity): (r.lifts, r.items)
              for r in session.scalars(select(StreetDayError))}
    periods = {(r.span, r.stream, r.start, r.street_id): (r.lifts, r.contaminated, r.alerts, round(r.score, 6))
               for r in session.scalars(select(StreetPeriod))}
    period_errors = {(r.span, r.stream, r.start, r.street_id, r.category, r.severity): (r.lifts, r.items)
                     for r in session.scalars(select(StreetPeriodError))}
    quality = {(r.day, r.stream): tuple(getattr(r, m) for m in MEASURES)
               for r in session.scalars(select(MatchQualityDay))}
    return days, errors, periods, period_errors, quality


def test_bulk_rebuild_equals_the_incremental_aggregates(make_settings: Any) -> None:
    settings = make_settings(timezone=ZONE_NAME)
    engine = make_engine(settings.db_url)
    upgrade_database(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    rng = random.Random(4)
    start = datetime(2026, 12, 20, 6, 0, tzinfo=UTC)  # 20 days over two months and two years
    rows = []
    for i in range(600):
        stream = rng.choice(STREAMS)
        gps = None if i % 9 == 0 else (48.11, -1.70 + rng.random() * 0.007)  # some unmatched, some off-street
        # some lifts whose camera view was unusable (wire 1.4): in no street figure, counted for data quality
        view = {"view_unusable": rng.choice(["dark", "frozen"])} if i % 7 == 0 else {}
        event = lift_event(f"benne-{i % 3}", stream=stream, counts=rng.choice(COUNTS), sequence=i, gps=gps,
                           at=start + timedelta(hours=rng.randrange(0, 24 * 20)), **view)
        row = lift_row(event, event.started_at, settings.zone, StreetByLongitude())
        if i % 5 == 0:  # a plug-in locator may give whole numbers: lists mixing int and float must insert
            row["score"] = int(row["score"]) if float(row["score"]).is_integer() else row["score"]
            row["street_distance_m"] = 3 if row["street_distance_m"] is not None else None
        rows.append(row)
    try:
        with sessions() as session, session.begin():
            for chunk in range(0, len(rows), 70):  # as ingest batches would
                insert_lifts(session, rows[chunk:chunk + 70])
        with sessions() as session:
            incremental = snapshot(session)
        assert len(incremental[0]) > 100 and len(incremental[1]) > 100
        assert any(key[0] == 0 for key in incremental[0]), "unmatched lifts are counted under street 0"
        assert any(key[4] == "info" for key in incremental[1]), "info items are kept"
        histogram = [sum(values[3 + i] for values in incremental[4].values()) for i in range(10)]
        assert all(histogram), f"every tenth of the confidence histogram is exercised: {histogram}"
        assert sum(values[2] for values in incremental[4].values()) > 0, "lifts without a fix are counted"
        unusable = sum(1 for r in rows if r["view_unusable"])
        assert sum(values[-1] for values in incremental[4].values()) == unusable > 0, "not judged: counted apart"
        assert sum(lifts for lifts, *_ in incremental[0].values()) == 600 - unusable, "and in no street's lifts"

        with sessions() as session, session.begin():
            assert rebuild_aggregates(session) == 600
        with sessions() as session:
            assert snapshot(session) == incremental

        spans = {key[0] for key in incremental[2]}
        assert spans == {"d", "m", "y"} and {key[2].year for key in incremental[2]} == {2026, 2027}

        since = date(2026, 12, 30)
        with sessions() as session, session.begin():
            session.query(StreetDay).filter(StreetDay.day >= since).update({"lifts": 0})
            kept = sum(1 for r in rows if r["day"] >= since)
            assert rebuild_aggregates(session, since=since) == kept
        with sessions() as session:
            assert snapshot(session) == incremental

        # Take a third of the lifts out again, as a lift moving to another street does.
        gone = rows[::3]
        with sessions() as session, session.begin():
            add_to_aggregates(session, gone, sign=-1)
            session.query(Lift).filter(Lift.event_id.in_([r["event_id"] for r in gone])).delete()
        with sessions() as session:
            taken_out = snapshot(session)
        with sessions() as session, session.begin():
            assert rebuild_aggregates(session) == 600 - len(gone)
        with sessions() as session:
            assert snapshot(session) == taken_out, "no row left at zero, every sum as if never added"
    finally:
        engine.dispose()
