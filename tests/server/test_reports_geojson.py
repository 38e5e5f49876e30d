"""``street_geojson_text`` (what /api/streets.geojson sends) is ``street_geojson`` encoded: the stored
geometry text spliced in gives the same document once parsed, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from server.ingest.aggregates import insert_lifts, lift_row
from server.streets.locator import Locator
from server.web.reports import StreetFilter, street_geojson, street_geojson_text
from tests.server.conftest import RennesDatabase
from tests.server.events import lift_event
from tests.server.streets_fixture import points_on_streets


def test_geojson_text_is_the_geojson_document(rennes_db: RennesDatabase) -> None:
    settings, sessions = rennes_db.settings, rennes_db.sessions
    points = points_on_streets(sessions, 6)
    start = datetime(2026, 5, 4, 7, 0, tzinfo=UTC)
    counts = [{"bottle": 2}, {"bag": 1, "bottle": 1}, {"battery": 1, "food": 2}, {"textile": 1}]
    with sessions() as session, session.begin():
        locator = Locator.from_session(session)
        rows = [lift_row(e, e.started_at, settings.zone, locator) for e in (
            lift_event("benne-01", counts=counts[i % 4], sequence=i, at=start + timedelta(days=i % 9),
                       gps=(points[i % 6].lat, points[i % 6].lon)) for i in range(60))]
        insert_lifts(session, rows)
    with sessions() as session:
        for flt in (StreetFilter(), StreetFilter(since=start.date() + timedelta(days=3)),
                    StreetFilter(stream="glass"), StreetFilter(min_lifts=11)):
            expected = street_geojson(session, flt)
            assert json.loads(street_geojson_text(session, flt)) == expected
        assert len(street_geojson(session, StreetFilter())["features"]) == 6
