"""Trajectory matching at ingest: provisional streets, confirmation, aggregates that follow a move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from server.config import load_settings
from server.db import make_engine
from server.ingest.aggregates import rebuild_aggregates
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.models import Lift, MatchQualityDay, StreetDay, StreetDayError
from server.ingest.quality import MEASURES
from server.ingest.tracks import rematch_paths
from server.migrate import upgrade_database
from server.streets.importer import import_streets
from server.streets.models import Street
from server.streets.trajectory import TrackLocator
from server.web.dashboard_api import data_quality, period
from tests.server.crossroads import lonlat, pieces
from tests.server.events import lift_event

T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
# Rue A eastwards through the crossing with Rue B; the lift at index 3 has a fix 14 m up Rue B.
PATH = [(-60, 0), (-40, 1), (-20, 0), (2, 14), (20, 0), (40, -1), (60, 0)]


def aggregates(session: Session) -> tuple[list[Any], list[Any], list[Any]]:
    days = session.execute(select(StreetDay.street_id, StreetDay.day, StreetDay.lifts, StreetDay.contaminated,
                                  StreetDay.alerts, StreetDay.score).order_by(StreetDay.street_id)).all()
    errors = session.execute(select(StreetDayError.street_id, StreetDayError.category, StreetDayError.lifts,
                                    StreetDayError.items).order_by(StreetDayError.street_id,
                                                                   StreetDayError.category)).all()
    # The data-quality page's roll-up: a moved lift's match confidence moves with it.
    quality = session.execute(select(*(getattr(MatchQualityDay, c) for c in ("day", "stream", *MEASURES)))).all()
    return [tuple(r) for r in days], [tuple(r) for r in errors], [tuple(r) for r in quality]


def test_a_lift_moved_by_the_truck_s_next_lifts_moves_its_aggregates(tmp_path: Path, database_url: str) -> None:
    settings = load_settings(env={}, data_dir=tmp_path / "data", database_url=database_url)
    engine = make_engine(database_url)
    upgrade_database(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as session, session.begin():
        import_streets(session, pieces())
    with sessions() as session:
        ids = dict(session.execute(select(Street.name, Street.id)).all())
        locator = TrackLocator.from_session(session)
    street_a, street_b = ids["Rue A"], ids["Rue B"]
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, 2**20), Metrics(), lambda _s: locator)
    events = []
    for k, (x, y) in enumerate(PATH):
        lon, lat = lonlat(x, y)
        counts = {"bottle": 2, "bag": 1} if k == 3 else None  # the moving lift carries an error
        events.append(lift_event("benne-07", sequence=k, gps=(lat, lon), at=T0 + timedelta(seconds=30 * k),
                                 counts=counts))

    def send(*batch: int, received: datetime | None = None) -> None:
        at = received or T0 + timedelta(seconds=30 * max(batch) + 5)
        messages = [MqttMessage(f"{settings.topic_prefix}/benne-07/lift", events[k].to_json().encode(), at)
                    for k in batch]
        with sessions() as session, session.begin():
            assert inbox.write(session, messages) == 0

    def stored() -> dict[int, tuple[int | None, bool]]:
        with sessions() as session:
            rows = session.execute(select(Lift.sequence, Lift.street_id, Lift.match_provisional)
                                   .where(Lift.truck_id == "benne-07")).all()
        return {r.sequence: (r.street_id, r.match_provisional) for r in rows}

    send(0, 1, 2, 3, 3)  # the last lift delivered twice in the batch
    first = stored()
    assert first[3] == (street_b, True), "the premise: alone at the end of the path, the lift looks on Rue B"
    # Lifts 0-2 are settled: the best paths into both of lift 3's candidates pass along Rue A there,
    # so no later lift can move them.
    assert [first[k] for k in range(3)] == [(street_a, False)] * 3
    with sessions() as session:
        assert street_b in {r[0] for r in aggregates(session)[0]}
    for k in (4, 5, 6):
        send(k)
    final = stored()
    assert final[3][0] == street_a, "the next lifts put it back on Rue A"
    assert not any(final[k][1] for k in range(7)), "past the crossing every candidate is on Rue A: all settled"
    assert inbox.metrics.value("trivue_ingest_lifts_rematched_total") >= 1
    with sessions() as session:
        incremental = aggregates(session)
        assert street_b not in {r[0] for r in incremental[0]}, "an emptied street-day row is deleted"
        assert [r[2] for r in incremental[0]] == [7]
        assert {r[0] for r in incremental[1]} == {street_a}
        rebuild_aggregates(session)
        assert aggregates(session) == incremental, "no lift lost or counted twice"
        session.rollback()
    # A re-delivered lift changes nothing.
    send(3, received=T0 + timedelta(minutes=5))
    assert stored() == final
    with sessions() as session:
        assert aggregates(session) == incremental

    def one(truck: str, x: float, y: float, minutes: int) -> None:
        lon, lat = lonlat(x, y)
        event = lift_event(truck, sequence=0, gps=(lat, lon), at=T0 + timedelta(minutes=minutes))
        with sessions() as session, session.begin():
            inbox.write(session, [MqttMessage(f"{settings.topic_prefix}/{truck}/lift", event.to_json().encode(),
                                              T0 + timedelta(minutes=minutes))])

    def provisional(truck: str) -> bool | None:
        with sessions() as session:
            return session.scalar(select(Lift.match_provisional).where(Lift.truck_id == truck))

    # A lone lift on the crossing itself: its street stays uncertain (provisional, flagged), and the
    # data-quality page says so; once its truck is silent for 15 minutes it is confirmed as it is.
    one("benne-09", 0, 0, 31)
    assert provisional("benne-09") is True
    with sessions() as session:
        quality = data_quality(session, period(None, None))
        confidence = session.scalar(select(Lift.street_confidence).where(Lift.truck_id == "benne-09"))
    assert confidence is not None and confidence < 0.8
    assert quality["ambiguous"] == 1
    assert [s["name"] for s in quality["ambiguous_by_street"]] in (["Rue A"], ["Rue B"])
    one("benne-08", 0, -100, 40)  # another truck's batch, 9 minutes later: too soon
    assert provisional("benne-09") is True
    one("benne-08", 0, -100, 47)  # 16 minutes later: benne-09 has stopped
    assert provisional("benne-09") is False
    # ``trivue streets rematch`` re-matches from the paths too: a lift matched alone before goes back.
    with sessions() as session, session.begin():
        session.execute(update(Lift).where(Lift.truck_id == "benne-07", Lift.sequence == 3).values(street_id=street_b))
        rebuild_aggregates(session)
        report = rematch_paths(session, locator, chunk=4)  # chunks of 4: the path carries over between them
    assert report.lifts == 10 and report.changed >= 1
    assert set(stored().values()) == {(street_a, False)}
    with sessions() as session:
        assert sum(r[2] for r in aggregates(session)[0]) == 10
    engine.dispose()


class BrokenPaths(TrackLocator):
    def match_tracks(self, paths: Any) -> Any:
        raise RuntimeError("a bug in trajectory matching")


def test_a_trajectory_bug_stores_lifts_matched_one_by_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'broken.db'}"
    settings = load_settings(env={}, data_dir=tmp_path / "data", database_url=url)
    engine = make_engine(url)
    upgrade_database(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as session, session.begin():
        import_streets(session, pieces())
    with sessions() as session:
        locator = BrokenPaths.from_session(session)
        street_a = session.scalar(select(Street.id).where(Street.name == "Rue A"))
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, 2**20), Metrics(), lambda _s: locator)
    events = [lift_event("benne-07", sequence=k, gps=(lonlat(x, 0)[1], lonlat(x, 0)[0]), at=T0 + timedelta(seconds=k))
              for k, x in enumerate((-60, -40))]
    with sessions() as session, session.begin():
        inbox.write(session, [MqttMessage(f"{settings.topic_prefix}/benne-07/lift", e.to_json().encode(), T0)
                              for e in events])
    with sessions() as session:
        rows = session.execute(select(Lift.street_id, Lift.match_provisional, Lift.street_confidence)).all()
    # Each with its own fix's street confidence (what the data-quality histogram bins), not a path's.
    alone = [locator.locate(e.gps.lat, e.gps.lon, accuracy_m=e.gps.accuracy_m) for e in events if e.gps]
    assert [tuple(r) for r in rows] == [(street_a, False, m.street_confidence) for m in alone if m]
    engine.dispose()


def test_provisional_lifts_are_read_through_their_partial_index_not_the_trucks_history(tmp_path: Path) -> None:
    """Every batch reads its trucks' provisional lifts and every minute the sweep confirms stopped
    trucks' ones. Written ``match_provisional = 1`` (SQLAlchemy's way on SQLite), SQLite could not
    use the partial index and read each truck's whole history: 0.6 s a batch once a truck had
    25,000 lifts. SQLite plans a partial index only for the index's own predicate, word for word."""
    from sqlalchemy import text

    from server.ingest.tracks import provisional_lifts, stopped_trucks_lifts

    engine = make_engine(f"sqlite:///{tmp_path / 'trivue.db'}")
    upgrade_database(engine)
    with engine.begin() as connection:
        for statement in (provisional_lifts(["benne-01", "benne-02"]), stopped_trucks_lifts(T0)):
            sql = str(statement.compile(engine, compile_kwargs={"literal_binds": True}))
            plan = " ".join(str(row[-1]) for row in connection.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
            assert "USING INDEX ix_lifts_provisional" in plan, (sql, plan)


def test_the_data_quality_page_reads_ambiguous_lifts_through_their_partial_index(tmp_path: Path) -> None:
    """The page lists the streets of the lifts flagged ambiguous, a few per cent of the lifts: for
    all time (the page's default) and for a period, read through the partial indexes whose
    predicate is the flag's threshold, never by walking every lift."""
    from datetime import date

    from sqlalchemy import event

    from server.ingest.models import AMBIGUOUS_LIFTS
    from server.streets.trajectory import AMBIGUOUS

    assert str(AMBIGUOUS_LIFTS) == f"lifts.street_confidence < {AMBIGUOUS} AND lifts.view_unusable IS NULL"
    engine = make_engine(f"sqlite:///{tmp_path / 'trivue.db'}")
    upgrade_database(engine)
    with engine.connect() as connection:  # judged lifts only (0024): the old predicate was still used, row by row
        definitions = connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name IN ('ix_lifts_ambiguous_by_street', 'ix_lifts_ambiguous_by_day')")
        assert [d.endswith(" WHERE street_confidence < 0.8 AND view_unusable IS NULL") for d in definitions.scalars()] \
            == [True, True]
    for flt, index in ((period(None, None), "ix_lifts_ambiguous_by_street"),
                       (period(date(2026, 1, 1), date(2026, 12, 31)), "ix_lifts_ambiguous_by_day")):
        seen: list[tuple[str, Any]] = []

        def note(_c: Any, _cursor: Any, sql: str, params: Any, *_: Any, seen: list[tuple[str, Any]] = seen) -> None:
            seen.append((sql, params))

        event.listen(engine, "before_cursor_execute", note)
        with Session(engine) as session:
            data_quality(session, flt)
        event.remove(engine, "before_cursor_execute", note)
        ambiguous = [(sql, params) for sql, params in seen if "street_confidence < 0.8" in sql]
        assert len(ambiguous) == 1, [sql for sql, _ in seen]
        assert not [sql for sql, _ in seen if "FROM lifts" in sql and sql not in ambiguous[0][0]], \
            "the counts come from the daily roll-up, not the lifts"
        with engine.connect() as connection:
            plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {ambiguous[0][0]}", ambiguous[0][1]))
        assert index in plan, plan
