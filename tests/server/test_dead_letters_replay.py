"""``trivue dead-letters replay`` after a fix: each letter fed once, in bounded chunks, filtered,
one still refused stays the same letter with today's reason; on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from server.audit import AuditEntry
from server.config import ServerSettings, load_settings
from server.db import make_engine
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.models import DeadLetter, Lift, StreetDay
from tests.server.events import lift_event
from trivue.cli import main


def _inbox(settings: ServerSettings) -> Inbox:
    return Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics())


def _letters(session: Session, settings: ServerSettings, messages: list[tuple[str, bytes, datetime]]) -> None:
    """Store ``(truck, payload, received_at)`` as lifts from trucks outside the registry: dead letters."""
    refusing = _inbox(settings.model_copy(update={"known_trucks": ["nobody"]}))
    assert refusing.write(session, [MqttMessage(f"{settings.topic_prefix}/{truck}/lift", payload, at)
                                    for truck, payload, at in messages]) == len(messages)
    session.commit()


def _open(settings: ServerSettings) -> Session:
    from server.command_line import open_database

    return open_database(settings)


def test_a_letter_refused_again_stays_the_same_letter_with_todays_reason(make_settings: Any) -> None:
    from server.ingest.replay import replay_dead_letters

    settings = make_settings(ingest_enabled=False)
    received = datetime.now(UTC) - timedelta(days=2)
    with _open(settings) as session:
        _letters(session, settings, [("benne-02", b"{broken", received)])
        before = session.scalars(select(DeadLetter)).one()
        assert before.reason == "unknown_truck"
        report = replay_dead_letters(session, _inbox(settings))  # the truck is known now; the JSON still broken
        assert (report.replayed, report.dead) == (1, 1)
        session.expire_all()
        after = session.scalars(select(DeadLetter)).one()
    # Before: the letter was deleted and a new one written, so the id an operator noted was gone.
    assert (after.id, after.received_at, after.payload, after.reason) == (before.id, received, b"{broken",
                                                                          "invalid_json")
    assert after.detail != before.detail


def test_replay_goes_chunk_by_chunk_with_progress_and_stores_each_lift_once(make_settings: Any) -> None:
    from server.ingest.replay import LetterFilter, ReplayReport, replay_dead_letters

    settings = make_settings(ingest_enabled=False)
    received = datetime.now(UTC) - timedelta(hours=5)
    events = [lift_event("benne-02", sequence=i, counts={"bag": 1}, gps=None, at=received) for i in range(7)]
    with _open(settings) as session:
        _letters(session, settings, [("benne-02", e.to_json().encode(), received) for e in events])
        # The truck, registered meanwhile, sends one of them again: stored now, before the replay.
        inbox = _inbox(settings)
        inbox.write(session, [MqttMessage(f"{settings.topic_prefix}/benne-02/lift", events[3].to_json().encode(),
                                          datetime.now(UTC))])
        session.commit()
        sizes: list[int] = []
        write = inbox.write

        def spy(s: Session, messages: list[MqttMessage]) -> int:
            sizes.append(len(messages))
            return write(s, messages)

        inbox.write = spy  # type: ignore[method-assign]
        seen: list[tuple[int, int]] = []
        report = replay_dead_letters(session, inbox, LetterFilter(reason="unknown_truck"), chunk=3,
                                     progress=lambda r: seen.append((r.replayed, r.total)))
        assert isinstance(report, ReplayReport)
        # Before: every letter was loaded and written in one batch, with no word until the end.
        assert sizes == [3, 3, 1] and seen == [(3, 7), (6, 7), (7, 7)]
        assert (report.replayed, report.dead) == (7, 0)
        again = replay_dead_letters(session, inbox)  # replayed twice: nothing left to feed
        assert again.replayed == 0
        assert session.scalar(select(func.count()).select_from(Lift)) == 7
        assert session.scalar(select(func.sum(StreetDay.lifts))) == 7, "the re-sent lift counted once"
        assert session.scalar(select(func.count()).select_from(DeadLetter)) == 0


def test_replay_filters_by_truck_and_day_and_audits_them(make_settings: Any, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(ingest_enabled=False)
    today = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    days = [today - timedelta(days=d) for d in (5, 3, 1)]
    with _open(settings) as session:
        _letters(session, settings, [(truck, lift_event(truck, counts={"bag": 1}, gps=None, at=day).to_json().encode(),
                                      day) for truck in ("benne-02", "benne-03") for day in days])
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", settings.db_url)
    monkeypatch.setenv("TRIVUE_TOPIC_PREFIX", settings.topic_prefix)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    window = ["--since", f"{days[1]:%Y-%m-%d}", "--until", f"{days[2]:%Y-%m-%d}"]
    # Before: --truck, --since and --until were unknown options (exit 2), all or nothing by reason.
    assert main(["dead-letters", "replay", "--truck", "benne-02", *window]) == 0
    assert "2 dead letters replayed: 2 stored, 0 refused again" in capsys.readouterr().err
    assert main(["dead-letters", "replay", "--since", f"{days[1]:%Y-%m-%d}", "--until",
                 f"{days[0]:%Y-%m-%d}"]) == 2
    assert "is after --until" in capsys.readouterr().err
    with _open(load_settings()) as session:
        stored = session.execute(select(Lift.truck_id, Lift.started_at).order_by(Lift.started_at)).all()
        assert [(t, s) for t, s in stored] == [("benne-02", days[1]), ("benne-02", days[2])]
        assert session.scalar(select(func.count()).select_from(DeadLetter)) == 4
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "dead_letters.replay")).one()
    assert entry.detail == (f"2 replayed: 2 stored, 0 refused again (truck=benne-02 since={days[1]:%Y-%m-%d}T00:00:00Z "
                            f"until={days[2] + timedelta(days=1):%Y-%m-%d}T00:00:00Z)")


def test_two_replays_at_once_feed_each_letter_once(make_settings: Any) -> None:
    """Two operators (or a cron and an operator) replay at the same moment on PostgreSQL: the second
    waits for the first's letters and gets none of them, instead of failing or feeding them twice."""
    from server.ingest.replay import replay_dead_letters

    settings = make_settings(ingest_enabled=False)
    if not settings.db_url.startswith("postgresql"):
        pytest.skip("SQLite takes one writer at a time: two replays cannot overlap")
    received = datetime.now(UTC) - timedelta(hours=1)
    with _open(settings) as session:
        _letters(session, settings, [("benne-02", lift_event("benne-02", gps=None, at=received).to_json().encode(),
                                      received), ("benne-02", b"{broken", received)])
    second: dict[str, Any] = {}
    other, watcher = _open(settings), make_engine(settings.db_url)  # opened (migrated) before any lock is held

    def other_replay() -> None:
        try:
            second["report"] = replay_dead_letters(other, _inbox(settings))
        except Exception as error:  # the old replay: StaleDataError, 0 rows deleted
            second["error"] = error

    with _open(settings) as session:
        inbox, thread = _inbox(settings), threading.Thread(target=other_replay)
        write = inbox.write

        def write_while_the_other_starts(s: Session, messages: list[MqttMessage]) -> int:
            thread.start()
            deadline = time.monotonic() + 15  # until the other replay waits for our letters' row locks
            while time.monotonic() < deadline:
                with watcher.connect() as connection:
                    if connection.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                              " AND datname = current_database()")):
                        break
                time.sleep(0.05)
            return write(s, messages)

        inbox.write = write_while_the_other_starts  # type: ignore[method-assign]
        first = replay_dead_letters(session, inbox)
        thread.join(30)
        other.close()
        watcher.dispose()
        assert (first.replayed, first.dead) == (2, 1)
        assert "error" not in second, second.get("error")
        assert second["report"].replayed == 0
        assert session.scalar(select(func.count()).select_from(Lift)) == 1
        assert list(session.scalars(select(DeadLetter.reason))) == ["invalid_json"]


def test_a_letter_whose_lift_expired_since_is_refused_not_counted_again(make_settings: Any) -> None:
    """A lift stored once, a copy of it refused 20 days later (its truck was out of the registry),
    the stored lift purged at 30 days: replaying the copy stored the lift again and counted it a
    second time in the street totals, which the purge keeps. Received within the retention, it is
    past it on the day of the replay: refused again as ``expired``. (The purge now takes such a
    letter with its lift, ``test_dead_letters_held``; a replay can still come first: the lift
    passes the retention up to an hour before the purge runs.)"""
    from sqlalchemy import delete

    from server.ingest.replay import replay_dead_letters

    settings = make_settings(ingest_enabled=False, retention_days=30)
    started = datetime.now(UTC) - timedelta(days=35)
    event = lift_event("benne-02", gps=None, at=started)
    with _open(settings) as session:
        at_the_time = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics(),
                            clock=lambda: started + timedelta(hours=1))  # retention is judged at write time
        at_the_time.write(session, [MqttMessage(f"{settings.topic_prefix}/benne-02/lift", event.to_json().encode(),
                                                started + timedelta(hours=1))])
        session.commit()
        _letters(session, settings, [("benne-02", event.to_json().encode(), started + timedelta(days=20))])
        assert session.execute(delete(Lift)).rowcount == 1  # the stored lift purged, the letters' turn to come
        session.commit()
        report = replay_dead_letters(session, _inbox(settings))
        assert (report.replayed, report.dead) == (1, 1)
        assert session.scalar(select(func.count()).select_from(Lift)) == 0
        assert session.scalar(select(func.sum(StreetDay.lifts))) == 1, "the lift is counted once"
        assert list(session.scalars(select(DeadLetter.reason))) == ["expired"]
