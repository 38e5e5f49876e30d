"""Retention against exactly-once and against re-sent photos, on SQLite and PostgreSQL.

A lift's copy is refused (``expired``) once its stored twin can have been purged: judged when the
batch is written, not when it was received, and never while a purge runs (``purge_gate``). A
photo's retention counts from its first reception: a truck sending it again does not extend it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import server.ingest.inbox
from server.config import ServerSettings
from server.db import make_engine
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.models import DeadLetter, Evidence, Lift, StreetDay
from server.retention import purge_expired
from tests.server.conftest import wait_for
from tests.server.events import lift_event
from tests.server.photos import photo_event


def _open(settings: ServerSettings) -> Session:
    from server.command_line import open_database

    return open_database(settings)


def _store(settings: ServerSettings) -> EvidenceStore:
    return EvidenceStore(settings.evidence_path, settings.max_evidence_bytes)


def _inbox(settings: ServerSettings, at: datetime) -> Inbox:
    """Ingest writing at ``at``: the retention is judged at write time."""
    return Inbox(settings, _store(settings), Metrics(), clock=lambda: at)


def _lift(settings: ServerSettings, payload: bytes, truck: str = "benne-01") -> tuple[str, bytes]:
    return f"{settings.topic_prefix}/{truck}/lift", payload


def _counted(session: Session) -> int:
    return session.scalar(select(func.coalesce(func.sum(StreetDay.lifts), 0))) or 0


def test_a_copy_that_waited_in_the_queue_while_the_purge_ran_is_refused(make_settings: Any) -> None:
    """A lift at the retention limit, stored; its copy (a QoS 1 redelivery) received while still
    within the retention, then held in the ingest queue (the database away an hour) while the hourly
    purge deleted the twin. Judged by its reception time it got through and was counted a second
    time in the street figures, which the purge keeps."""
    settings = make_settings(ingest_enabled=False, retention_days=30)
    now = datetime.now(UTC)
    started = now - timedelta(days=30, hours=1)  # past the retention now, within it an hour and a half ago
    event = lift_event(at=started, gps=None).to_json().encode()
    with _open(settings) as session:
        stored = started + timedelta(minutes=5)
        _inbox(settings, stored).write(session, [MqttMessage(*_lift(settings, event), stored)])
        session.commit()
        queued = MqttMessage(*_lift(settings, event), now - timedelta(hours=1, minutes=30))
        assert purge_expired(session, _store(settings), settings, now=now).lifts == 1
        session.commit()
        assert _inbox(settings, now + timedelta(minutes=1)).write(session, [queued]) == 1
        session.commit()
        assert session.scalar(select(func.count()).select_from(Lift)) == 0
        assert _counted(session) == 1, "the lift is counted once"
        letter = session.scalars(select(DeadLetter)).one()
    assert letter.reason == "expired"
    # Past its retention, the lift's fix and tag are not kept as a letter either.
    assert (letter.payload, letter.payload_size) == (b"", len(event))


def _purge_elsewhere(settings: ServerSettings, now: datetime) -> str:
    """Run the purge on its own connection, as the retention task does, waiting at most a moment
    for a lock: 'purged' or 'held off' (it had to wait for the ingest batch)."""
    if settings.db_url.startswith("sqlite"):
        engine = create_engine(settings.db_url, connect_args={"timeout": 0.2})
    else:
        engine = make_engine(settings.db_url)
    try:
        with Session(engine) as session:
            if engine.dialect.name == "postgresql":
                session.execute(text("SET lock_timeout = '200ms'"))
            try:
                purge_expired(session, _store(settings), settings, now=now)
                session.commit()
                return "purged"
            except OperationalError:
                session.rollback()
                return "held off"
    finally:
        engine.dispose()


def test_a_purge_that_runs_while_a_batch_is_written_waits_for_it(make_settings: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The other order: the batch found the copy within the retention, then the purge committed and
    deleted the twin before the batch inserted the copy, which then looked new and was counted again."""
    settings = make_settings(ingest_enabled=False, retention_days=30)
    now = datetime.now(UTC)
    started = now - timedelta(days=30) + timedelta(hours=1)  # within the retention now, past it for the purge
    purge_at = now + timedelta(hours=2)  # the real clock moves on while the batch is written
    event = lift_event(at=started, gps=None).to_json().encode()
    outcomes: list[str] = []
    insert = server.ingest.inbox.insert_lifts

    def purged_meanwhile(session: Session, rows: Sequence[Any]) -> list[Any]:
        outcomes.append(_purge_elsewhere(settings, purge_at))
        return insert(session, rows)

    with _open(settings) as session:
        _inbox(settings, now).write(session, [MqttMessage(*_lift(settings, event), started + timedelta(minutes=5))])
        session.commit()
        monkeypatch.setattr(server.ingest.inbox, "insert_lifts", purged_meanwhile)
        assert _inbox(settings, now).write(session, [MqttMessage(*_lift(settings, event), now)]) == 0
        session.commit()
        monkeypatch.undo()
        purge_expired(session, _store(settings), settings, now=purge_at)
        session.commit()
        assert session.scalar(select(func.count()).select_from(Lift)) == 0
        assert _counted(session) == 1, f"the lift is counted once (purge during the batch: {outcomes})"
    assert outcomes == ["held off"]


def _photo_message(settings: ServerSettings, event_id: Any, data: bytes, at: datetime) -> MqttMessage:
    return MqttMessage(f"{settings.topic_prefix}/benne-01/evidence/{event_id}", data, at)


def _store_with_photo(settings: ServerSettings, session: Session, event: Any, data: bytes, at: datetime) -> None:
    """The lift and its photo received, and written, at ``at``; committed."""
    lift = MqttMessage(*_lift(settings, event.to_json().encode()), at)
    _inbox(settings, at).write(session, [lift, _photo_message(settings, event.event_id, data, at)])
    session.commit()


def test_a_photo_sent_again_keeps_the_date_it_was_first_received(make_settings: Any) -> None:
    """The truck sends the same photo again (its receipt was lost): ``received_at`` moved to the new
    delivery, and the photo stayed ``evidence_retention_days`` after the last copy, not the first."""
    settings = make_settings(ingest_enabled=False, evidence_retention_days=30)
    now = datetime.now(UTC)
    event, data = photo_event(1, at=now - timedelta(days=20))
    first = now - timedelta(days=20) + timedelta(minutes=10)
    with _open(settings) as session:
        _store_with_photo(settings, session, event, data, first)
        assert _inbox(settings, now).write(session, [_photo_message(settings, event.event_id, data, now)]) == 0
        session.commit()
        assert session.scalar(select(Evidence.received_at)) == first
        report = purge_expired(session, _store(settings), settings, now=first + timedelta(days=30, minutes=1))
        session.commit()
        assert report.photos == 1
        assert session.scalar(select(func.count()).select_from(Evidence)) == 0
    assert not list(settings.evidence_path.rglob("*.jpg")), "the photo file outlived its retention"


def test_a_photo_sent_again_after_its_purge_is_refused_and_not_kept(make_settings: Any) -> None:
    """The photo was received and purged 30 days later; the truck (or the broker, or the ingest
    queue) delivers it once more: it was stored anew and kept 30 days more. Refused, and neither
    its file nor its bytes in the letter stay."""
    settings = make_settings(ingest_enabled=False, evidence_retention_days=30)
    now = datetime.now(UTC)
    event, data = photo_event(2, at=now - timedelta(days=31))
    received = now - timedelta(days=31) + timedelta(minutes=10)
    with _open(settings) as session:
        _store_with_photo(settings, session, event, data, received)
        assert purge_expired(session, _store(settings), settings, now=now).photos == 1
        session.commit()
        assert _inbox(settings, now).write(session, [_photo_message(settings, event.event_id, data, now)]) == 1
        session.commit()
        assert session.scalar(select(func.count()).select_from(Evidence)) == 0
        letter = session.scalars(select(DeadLetter)).one()
    assert (letter.reason, letter.payload, letter.payload_size) == ("expired", b"", len(data))
    assert not list(settings.evidence_path.rglob("*.jpg"))


def test_a_replay_waits_for_the_purge_before_it_takes_its_letters(make_settings: Any) -> None:
    """PostgreSQL: a replay chunk that took (row-locked) its letters and then waited for a purge in
    progress, while that purge deleted the same old letters, deadlocked with it: one of them failed."""
    import threading

    from server.ingest.purge_gate import wait_for_ingest
    from server.ingest.replay import replay_dead_letters

    settings = make_settings(ingest_enabled=False, dead_letter_retention_days=10)
    if not settings.db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer: the replay and the purge cannot hold locks at once")
    now = datetime.now(UTC)
    refusing = Inbox(settings.model_copy(update={"known_trucks": ["nobody"]}), _store(settings), Metrics())
    event = lift_event("benne-02", gps=None, at=now - timedelta(days=11))
    engine = make_engine(settings.db_url)
    errors: list[BaseException] = []
    try:
        with _open(settings) as session:
            refusing.write(session, [MqttMessage(*_lift(settings, event.to_json().encode(), "benne-02"),
                                                 now - timedelta(days=11))])
            session.commit()
        with Session(engine) as purge, Session(engine) as replay:
            wait_for_ingest(purge)  # a purge under way

            def run_replay() -> None:
                try:
                    replay_dead_letters(replay, _inbox(settings, now))
                    replay.commit()
                except BaseException as error:
                    errors.append(error)

            thread = threading.Thread(target=run_replay)
            thread.start()
            # pg_locks is the whole server's: another test database's waiting ingest (a parallel
            # worker's) ended this wait at once, before the replay took its letters.
            wait_for(lambda: purge.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                               "AND NOT granted AND database = (SELECT oid FROM pg_database "
                                               "WHERE datname = current_database())")),
                     "the replay waiting for the purge")
            try:
                purge_expired(purge, _store(settings), settings, now=now)
                purge.commit()
            except BaseException as error:
                errors.append(error)
                purge.rollback()
            thread.join(60)
    finally:
        engine.dispose()
    assert not errors, errors
    with _open(settings) as session:
        assert session.scalar(select(func.count()).select_from(DeadLetter)) == 0
