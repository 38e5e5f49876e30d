"""Re-matching stored lifts after a street import (``trivue streets rematch`` calls rematch_paths)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from server.ingest.models import UNMATCHED, StreetDay
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


def test_rematch_keeps_the_totals_of_a_day_the_retention_purge_cut_in_two(make_settings: Any) -> None:
    """The purge deletes raw lifts at an instant (``now - retention_days``), so the oldest day left
    has lost its first lifts while its street totals still count them. Re-matching must not recount
    that day from the lifts that are left: street statistics are kept without limit."""
    from server.app import create_app
    from server.ingest.evidence import EvidenceStore
    from server.ingest.inbox import Inbox, MqttMessage
    from server.ingest.metrics import Metrics
    from server.ingest.models import Lift, MatchQualityDay
    from server.retention import purge_expired

    settings = make_settings(ingest_enabled=False, retention_days=40)
    sessions = create_app(settings, start_ingest=False).state.ctx.sessions
    import_rennes(sessions)
    points = points_on_streets(sessions, 3)
    first = datetime(2026, 11, 10, 7, tzinfo=UTC)  # local day 2026-11-10, 08:00 to 19:00 in Paris
    events = [lift_event(counts={"bag": 1}, at=first + timedelta(hours=i), gps=(p.lat, p.lon), heading=p.heading,
                         sequence=i) for i, p in enumerate(points * 4)]
    events += [lift_event(at=first + timedelta(days=1, hours=i), gps=(p.lat, p.lon), heading=p.heading,
                          sequence=100 + i) for i, p in enumerate(points)]
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics(),
                  lambda _s: None)  # stored unmatched, as before a street import
    with sessions() as session, session.begin():
        inbox.write(session, [MqttMessage(f"{settings.topic_prefix}/benne-01/lift", e.to_json().encode(),
                                          e.started_at) for e in events])
    day = date(2026, 11, 10)
    totals = select(func.sum(StreetDay.lifts)).where(StreetDay.day == day)
    with sessions() as session, session.begin():  # the limit falls at 13:30 UTC: 7 of the day's 12 lifts go
        purge_expired(session, EvidenceStore(settings.evidence_path, 10_000_000), settings,
                      now=datetime(2026, 11, 10, 13, 30, tzinfo=UTC) + timedelta(days=40))
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lift).where(Lift.day == day)) == 5
        assert session.scalar(totals) == 12
    with sessions() as session:
        rematch_paths(session, TrackLocator.from_session(session), chunk=5)
        session.commit()
    with sessions() as session:
        assert session.scalar(totals) == 12, "the purged lifts' share of the day was lost"
        assert session.scalar(select(func.sum(MatchQualityDay.lifts)).where(MatchQualityDay.day == day)) == 12
        moved = session.scalar(select(func.sum(StreetDay.lifts)).where(StreetDay.day == day,
                                                                       StreetDay.street_id != UNMATCHED))
        assert moved == 5, "the lifts left were re-matched onto their streets"
        next_day = select(func.sum(StreetDay.lifts)).where(StreetDay.day == day + timedelta(days=1),
                                                           StreetDay.street_id != UNMATCHED)
        assert session.scalar(next_day) == 3


def test_a_street_added_never_takes_the_id_of_a_street_with_lifts(make_settings: Any) -> None:
    """SQLite gives a new row the highest id + 1: Rue C (the highest id) dropped by an import, the
    next import's new street took Rue C's id, and with it Rue C's lifts and street totals (those of
    purged days for ever, since a rematch rebuilds only the days with raw lifts)."""
    from dataclasses import replace

    from server.app import create_app
    from server.ingest.aggregates import insert_lifts, lift_row
    from server.streets.importer import import_streets
    from server.streets.locator import Locator
    from server.streets.models import Street
    from server.web.reports import StreetFilter, street_stats
    from tests.server.crossroads import lonlat, pieces

    settings = make_settings(ingest_enabled=False)
    sessions = create_app(settings, start_ingest=False).state.ctx.sessions
    streets = pieces()
    with sessions() as session, session.begin():
        import_streets(session, streets)
    with sessions() as session, session.begin():
        rue_c = session.scalar(select(Street.id).where(Street.name == "Rue C"))
        assert rue_c == max(session.scalars(select(Street.id)))
        lon, lat = lonlat(-150, 30)
        event = lift_event(gps=(lat, lon), at=datetime(2026, 11, 10, 8, tzinfo=UTC))
        row = lift_row(event, event.started_at, settings.zone, Locator.from_session(session))
        assert row["street_id"] == rue_c
        insert_lifts(session, [row])
    without_c = [p for p in streets if p.name != "Rue C"]
    with sessions() as session, session.begin():
        import_streets(session, without_c)  # Rue C is gone from the new data
    with sessions() as session, session.begin():
        import_streets(session, [*without_c, *(replace(p, name="Rue D") for p in streets if p.name == "Rue C")])
    with sessions() as session:
        rue_d = session.scalar(select(Street.id).where(Street.name == "Rue D"))
        assert rue_d != rue_c
        assert [s["name"] for s in street_stats(session, StreetFilter())["streets"]] == [], \
            "Rue D has no lift of its own"
