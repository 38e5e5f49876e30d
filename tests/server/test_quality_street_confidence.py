"""The data-quality page's histogram "street-match confidence" bins each lift's confidence in its
STREET (``lifts.street_confidence``), not its address confidence, which two houses facing each other
halve (SQLite and PostgreSQL): a street matched without doubt is in the top tenths, the histogram
agrees with the "uncertain street" count, and it follows a lift confirmed with a new confidence."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.config import load_settings
from server.db import make_engine
from server.ingest.aggregates import rebuild_aggregates
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.models import AMBIGUOUS_LIFTS, Lift, MatchQualityDay
from server.ingest.quality import BIN_COLUMNS, MEASURES, confidence_bin
from server.ingest.tracks import Tracks
from server.migrate import upgrade_database
from server.streets.importer import import_streets
from server.streets.locator import Locator
from server.streets.models import Address, Street
from server.streets.trajectory import TrackLocator
from tests.server.crossroads import lonlat, pieces
from tests.server.events import lift_event

T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
XS = range(-220, -80, 20)  # lifts along Rue A, far from its crossing with Rue B (x = 0)


def city(database_url: str) -> sessionmaker[Session]:
    """Rue A with a house on each side of the carriageway at every lift: one fix cannot tell them apart."""
    engine = make_engine(database_url)
    upgrade_database(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as session, session.begin():
        import_streets(session, pieces())
        street_a = session.scalar(select(Street.id).where(Street.name == "Rue A"))
        for k, x in enumerate(XS):
            for side, y in (("", 9.0), (" bis", -9.0)):
                lon, lat = lonlat(x, y)
                session.add(Address(street_id=street_a, number=f"{k}{side}", label=f"{k}{side} Rue A",
                                    street_name="Rue A", street_key="rue a", commune="Testville", lat=lat, lon=lon))
    return sessions


def rolled_up(session: Session) -> dict[str, int]:
    rows = session.execute(select(*(getattr(MatchQualityDay, m) for m in MEASURES))).all()
    return {m: sum(r[i] for r in rows) for i, m in enumerate(MEASURES)}


def send_lifts(sessions: sessionmaker[Session], database_url: str, tmp_path: Path, locator: Any,
               per_batch: int, tracks: Tracks | None = None) -> None:
    settings = load_settings(env={}, data_dir=tmp_path / "data", database_url=database_url,
                             household_level=True)  # the address and its confidence are kept
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, 2**20), Metrics(), lambda _s: locator)
    if tracks is not None:
        inbox.tracks = tracks
    events = []
    for k, x in enumerate(XS):
        lon, lat = lonlat(x, 1.0)
        events.append(lift_event("benne-07", sequence=k, gps=(lat, lon), at=T0 + timedelta(seconds=30 * k)))
    for start in range(0, len(events), per_batch):
        batch = events[start:start + per_batch]
        at = batch[-1].started_at + timedelta(seconds=5)
        with sessions() as session, session.begin():
            assert inbox.write(session, [MqttMessage(f"{settings.topic_prefix}/benne-07/lift",
                                                     e.to_json().encode(), at) for e in batch]) == 0


def assert_consistent(sessions: sessionmaker[Session]) -> list[tuple[float, float]]:
    """The roll-up's bins are the stored street confidences', a rebuild gives the same, and the
    bins under 0.8 hold the lifts the uncertain-street card counts; returns (street, match) confidences."""
    with sessions() as session:
        lifts = [tuple(r) for r in session.execute(select(Lift.street_confidence, Lift.match_confidence))]
        incremental = rolled_up(session)
        ambiguous = len(session.execute(select(Lift.id).where(AMBIGUOUS_LIFTS)).all())
        assert len(lifts) == len(XS) and all(c is not None for c, _ in lifts), "every lift has a street confidence"
        expected = Counter(BIN_COLUMNS[confidence_bin(c)] for c, _ in lifts)
        assert {c: incremental[c] for c in BIN_COLUMNS} == {c: expected[c] for c in BIN_COLUMNS}
        assert sum(incremental[c] for c in BIN_COLUMNS) == incremental["matched"] == len(XS)
        assert sum(incremental[c] for c in BIN_COLUMNS[:8]) == ambiguous, "as the uncertain-street card"
        rebuild_aggregates(session)
        assert rolled_up(session) == incremental, "a rebuild from the raw lifts gives the same bins"
        session.rollback()
    return lifts  # type: ignore[return-value]


def assert_histogram_is_the_street_confidence(sessions: sessionmaker[Session]) -> None:
    lifts = assert_consistent(sessions)
    assert max(m for _, m in lifts) <= 0.6, "the premise: two houses facing each other halve the address's"
    assert min(c for c, _ in lifts) >= 0.9, "the premise: the street itself is not in doubt"
    with sessions() as session:
        assert rolled_up(session)["conf_9"] == len(XS), "every lift in the top tenth"


def test_a_street_without_doubt_is_in_the_top_tenth_from_the_truck_s_path(tmp_path: Path, database_url: str) -> None:
    sessions = city(database_url)
    with sessions() as session:
        locator = TrackLocator.from_session(session)
    send_lifts(sessions, database_url, tmp_path, locator, per_batch=len(XS))
    assert_histogram_is_the_street_confidence(sessions)


def test_a_street_matched_from_one_fix_is_binned_by_its_street_confidence(tmp_path: Path, database_url: str) -> None:
    sessions = city(database_url)
    with sessions() as session:
        locator = Locator.from_session(session)  # no paths: each lift from its own fix
    send_lifts(sessions, database_url, tmp_path, locator, per_batch=3)
    assert_histogram_is_the_street_confidence(sessions)


class ProvisionalUnsure(Tracks):
    """Each batch's new lifts stored provisional at half the confidence their path gives: the next
    batch confirms them where they are with the path's (a plain street settles a lift at once)."""

    def match(self, session: Session, locator: Any, rows: Any) -> list[dict[str, Any]]:
        changes = super().match(session, locator, rows)
        self._last.clear()  # the next path starts from the confirmed lifts in the database
        for row in rows:
            if row["street_confidence"] is not None:
                row.update(street_confidence=row["street_confidence"] / 2, match_provisional=True)
        return changes


def test_confirming_a_lift_moves_it_to_its_final_confidence_s_bin(tmp_path: Path, database_url: str) -> None:
    sessions = city(database_url)
    with sessions() as session:
        locator = TrackLocator.from_session(session)
    seen: list[dict[str, int]] = []
    tracks = ProvisionalUnsure()
    settle: Callable[..., Any] = tracks.settle

    def settle_and_look(session: Session, changes: list[dict[str, Any]], now: datetime) -> Any:
        report = settle(session, changes, now)
        session.flush()
        seen.append(rolled_up(session))
        return report

    tracks.settle = settle_and_look  # type: ignore[method-assign]
    send_lifts(sessions, database_url, tmp_path, locator, per_batch=1, tracks=tracks)  # a truck publishing live
    assert any(sum(s[c] for c in BIN_COLUMNS[:8]) for s in seen), "the premise: provisional lifts were unsure"
    assert_consistent(sessions)
    with sessions() as session:
        confirmed = session.scalars(select(Lift.street_confidence).where(Lift.match_provisional.is_(False))).all()
        assert len(confirmed) == len(XS) - 1 and min(confirmed) >= 0.9, "confirmed with their final confidence"
        assert rolled_up(session)["conf_9"] == len(XS) - 1, "the last lift waits, unsure, for the next one"
