"""The ingest writer survives failures of its collaborators, on the real broker, SQLite and PostgreSQL.

A message that breaks its batch is stored alone or as a dead letter; when even the dead letter
cannot be written (the database refuses the row, a disk error), the writer thread must live on,
count it, and leave the message unacknowledged so that the broker delivers it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from server.config import load_settings
from server.db import make_engine
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.models import DeadLetter, Lift
from server.ingest.subscriber import Ingest
from server.migrate import upgrade_database
from tests.ports import free_port
from tests.server.conftest import Server, wait_for
from tests.server.events import lift_event

POISON = b'{"poison": true}'


def _poisoned(server: Server, refuse_failures: int | None) -> dict[str, int]:
    """``inbox.write`` breaks on POISON (forcing the one-by-one path); ``inbox.refuse`` (the dead
    letter) raises ``refuse_failures`` times, or always when None."""
    inbox, calls = server.ingest.inbox, {"refuse": 0}
    write, refuse = inbox.write, inbox.refuse

    def breaking_write(session: Any, messages: Sequence[MqttMessage]) -> int:
        if any(m.payload == POISON for m in messages):
            raise RuntimeError("a bug that this message triggers")
        return write(session, messages)

    def failing_refuse(session: Any, message: MqttMessage, reason: str, detail: str) -> None:
        calls["refuse"] += 1
        if refuse_failures is None or calls["refuse"] <= refuse_failures:
            raise OSError(28, "No space left on device")
        refuse(session, message, reason, detail)

    inbox.write, inbox.refuse = breaking_write, failing_refuse
    return calls


def _count(server: Server, table: Any) -> int:
    with server.sessions() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def _alive_and_storing(server: Server, sequence: int) -> None:
    assert server.ingest._writer.is_alive()
    server.publish("truck-a/lift", lift_event("truck-a", sequence=sequence).to_json())
    wait_for(lambda: _count(server, Lift) >= 1, "a good lift after the failure")


def test_a_dead_letter_that_fails_once_is_retried_and_the_writer_lives(server: Server) -> None:
    calls = _poisoned(server, refuse_failures=1)
    server.publish("truck-a/lift", POISON)
    wait_for(lambda: _count(server, DeadLetter) == 1, "the poison message as a dead letter")
    assert calls["refuse"] == 2
    assert server.ingest.metrics.value("trivue_ingest_errors_total") >= 2
    assert server.ingest.metrics.value("trivue_ingest_unstored_total") == 0
    _alive_and_storing(server, 2)


def test_a_message_that_cannot_be_stored_anywhere_is_not_acknowledged(
        server: Server, run_server: Callable[..., Any]) -> None:
    _poisoned(server, refuse_failures=None)
    server.publish("truck-a/lift", POISON)
    wait_for(lambda: server.ingest.metrics.value("trivue_ingest_unstored_total") >= 1, "the unstored count")
    assert _count(server, DeadLetter) == 0
    _alive_and_storing(server, 2)
    # Not acknowledged: a server restarted on the same persistent session receives it again.
    server.ingest.stop()
    with run_server(server.settings) as again:
        wait_for(lambda: _count(again, DeadLetter) == 1, "the redelivered message, now a dead letter", 20)


def test_an_unreachable_broker_is_logged_with_its_password_hidden(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A wrong broker_url ran quietly: ingest logged "subscribing" and then nothing at all."""
    settings = load_settings(env={}, data_dir=tmp_path, broker_url=f"mqtt://ingest:hunter2@127.0.0.1:{free_port()}")
    engine = make_engine(settings.db_url)
    upgrade_database(engine)
    evidence = EvidenceStore(settings.evidence_path, settings.max_evidence_bytes)
    ingest = Ingest(settings, sessionmaker(engine), Inbox(settings, evidence, Metrics()), Metrics())
    caplog.set_level(logging.WARNING, logger="server.ingest.subscriber")
    ingest.start()
    try:
        wait_for(lambda: "unreachable" in caplog.text, "the warning", timeout=10)
    finally:
        ingest.stop(timeout=2)
        engine.dispose()
    assert "mqtt://ingest:***@127.0.0.1" in caplog.text and "hunter2" not in caplog.text


def test_lifts_far_from_their_arrival_are_dead_letters_and_the_first_copy_wins(tmp_path: Path) -> None:
    """A lift older than the raw lifts' retention would be counted again after the purge (a truck
    clock set back to 2006 did it); one from a clock a day ahead would sit in days still to come.
    And of two copies of one event in one batch, the first stays, as the stored one does later."""
    from datetime import UTC, datetime, timedelta

    from server.ingest.models import StreetDay
    from tests.server.events import lift_event

    settings = load_settings(env={}, data_dir=tmp_path, retention_days=30)
    engine = make_engine(settings.db_url)
    upgrade_database(engine)
    sessions = sessionmaker(engine)
    now = datetime(2026, 12, 5, 9, tzinfo=UTC)
    # Written when received: the retention is judged at write time, and these dates are fixed.
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics(),
                  clock=lambda: now)
    topic = f"{settings.topic_prefix}/benne-01/lift"
    old, ahead, fine = (lift_event(at=now + delta, gps=None) for delta in (timedelta(days=-31), timedelta(hours=25),
                                                                          timedelta(hours=-1)))
    clean = lift_event(at=now, gps=None, counts={"bottle": 1})
    dirty = lift_event(at=now, gps=None, counts={"bottle": 1, "food": 3}, event_id=str(clean.event_id))
    with sessions() as session, session.begin():
        inbox.write(session, [MqttMessage(topic, e.to_json().encode(), now) for e in (old, ahead, fine, clean, dirty)])
    with sessions() as session:
        reasons = sorted(session.scalars(select(DeadLetter.reason)))
        stored = {row.event_id: row.contaminated for row in session.scalars(select(Lift))}
        lifts = session.scalar(select(func.sum(StreetDay.lifts)))
    engine.dispose()
    assert reasons == ["expired", "future"]
    assert stored == {str(fine.event_id): fine.contaminated, str(clean.event_id): False}  # the first copy
    assert lifts == 2
