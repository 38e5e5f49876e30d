"""Re-matching stored lifts after a street import (``trivue streets rematch`` calls rematch_paths)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from server.ingest.models import StreetDay
from server.ingest.rollups import rebuild_rollups
from server.ingest.tracks import rematch_paths
from server.streets.trajectory import TrackLocator
from tests.server.events import lift_event
from tests.server.streets_fixture import import_rennes, points_on_streets
from tests.server.test_api import seed


def test_rematch_moves_lifts_onto_streets_and_rebuilds_aggregates(make_settings: Any, run_server: Any) -> None:

    with run_server(make_settings(ingest_enabled=False)) as server:
        import_rennes(server.sessions)
        points = points_on_streets(server.sessions, 3)
        start = datetime(2026, 11, 10, 8, tzinfo=UTC)
        events = [lift_event(counts={"bag": 1} if i % 2 else {"bottle": 1}, at=start + timedelta(hours=i),
                             gps=(p.lat, p.lon), heading=p.heading) for i, p in enumerate(points * 4)]
        events += [lift_event(gps=None, at=start), lift_event(gps=(48.2, -1.9), at=start)]  # no fix / far away
        seed(server, events, locator=None)
        with server.sessions() as session:  # a day whose raw lifts were purged: its totals must survive
            session.add(StreetDay(street_id=points[0].street_id, day=date(2026, 1, 5), stream="glass", lifts=7,
                                  contaminated=1, alerts=0, score=1.0))
            session.flush()
            rebuild_rollups(session)  # its month and year roll-ups, as ingest wrote them with the day
            session.commit()
        headers = server.token("viewer")
        before = server.client.get("/api/streets", headers=headers).json()
        assert before["unmatched"]["lifts"] == len(events) and len(before["streets"]) == 1

        with server.sessions() as session:
            report = rematch_paths(session, TrackLocator.from_session(session), chunk=5)
            session.commit()
        assert (report.lifts, report.matched, report.unmatched, report.changed) == (14, 12, 2, 12)

        after = server.client.get("/api/streets", params={"since": "2026-11-01"}, headers=headers).json()
        want = Counter(p.street_id for p in points * 4)
        assert {s["street_id"]: s["lifts"] for s in after["streets"]} == dict(want)
        assert after["unmatched"] == {"lifts": 2, "contaminated": 0}
        contaminated = Counter(points[i % 3].street_id for i in range(12) if i % 2)
        assert {s["street_id"]: s["contaminated"] for s in after["streets"]} == dict(contaminated)
        with server.sessions() as session:
            old = session.scalar(select(StreetDay.lifts).where(StreetDay.day == date(2026, 1, 5)))
        assert old == 7
