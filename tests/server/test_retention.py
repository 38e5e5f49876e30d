"""Retention: old lifts, photos and dead letters go; street aggregates stay."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from server.app import create_app
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.models import DeadLetter, Evidence, Lift, StreetDay
from server.retention import PurgeReport, purge_expired
from tests.server.events import lift_event


def test_purge_keeps_aggregates(make_settings: Any, litter_val_images: list[Path]) -> None:
    settings = make_settings(ingest_enabled=False, retention_days=30, evidence_retention_days=7,
                             dead_letter_retention_days=10)
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    photo = litter_val_images[0].read_bytes()
    evidence = {"sha256": hashlib.sha256(photo).hexdigest(), "width": 416, "height": 416}
    old, recent = (lift_event(counts={"bag": 1}, at=now - timedelta(days=d), gps=None, evidence=evidence)
                   for d in (40, 2))
    prefix = settings.topic_prefix
    # The app is built but never started: its hourly retention task would purge with the real
    # clock, racing the purge under test (a loaded CI machine lost that race).
    sessions = create_app(settings, start_ingest=False).state.ctx.sessions
    store = EvidenceStore(settings.evidence_path, settings.max_evidence_bytes)
    # each lift arrived, and was written, when it was made: one older than the retention would now
    # be refused (``expired``)
    messages = [MqttMessage(f"{prefix}/benne-01/lift", e.to_json().encode(), at)
                for e, at in ((old, now - timedelta(days=40)), (recent, now - timedelta(days=2)))]
    messages += [MqttMessage(f"{prefix}/benne-01/evidence/{e.event_id}", photo, at)
                 for e, at in ((old, now - timedelta(days=40)), (recent, now - timedelta(days=8)))]
    messages += [MqttMessage(f"{prefix}/benne-01/lift", b"junk", now - timedelta(days=d)) for d in (1, 11)]
    for message in sorted(messages, key=lambda m: m.received_at):
        with sessions() as session, session.begin():
            Inbox(settings, store, Metrics(), clock=lambda at=message.received_at: at).write(session, [message])
    files = sorted(settings.evidence_path.rglob("*.jpg"))
    assert len(files) == 2
    with sessions() as session, session.begin():
        report = purge_expired(session, store, settings, now=now)
    assert (report.lifts, report.photos, report.dead_letters) == (1, 2, 1)
    assert not any(f.exists() for f in files)
    with sessions() as session:
        assert list(session.scalars(select(Lift.event_id))) == [str(recent.event_id)]
        assert session.scalar(select(func.count()).select_from(Evidence)) == 0
        assert session.scalar(select(func.count()).select_from(DeadLetter)) == 1
        assert session.scalar(select(func.sum(StreetDay.lifts))) == 2  # both lifts still counted


def test_purge_deletes_photo_files_no_row_names(make_settings: Any, litter_val_images: list[Path]) -> None:
    """A photo written whose row never committed (its batch failed, it became a dead letter), or the
    ``.part`` of a write cut by a crash: the row purge cannot see them, the files must still go."""
    import os
    import uuid

    settings = make_settings(ingest_enabled=False, evidence_retention_days=30)
    sessions = create_app(settings, start_ingest=False).state.ctx.sessions
    store = EvidenceStore(settings.evidence_path, settings.max_evidence_bytes)
    photo = litter_val_images[0].read_bytes()
    now = datetime.now(UTC)
    event = lift_event(counts={"bag": 1}, at=now - timedelta(hours=1), gps=None,
                       evidence={"sha256": hashlib.sha256(photo).hexdigest(), "width": 416, "height": 416})
    prefix = settings.topic_prefix
    with sessions() as session, session.begin():
        Inbox(settings, store, Metrics()).write(session, [
            MqttMessage(f"{prefix}/benne-01/lift", event.to_json().encode(), now),
            MqttMessage(f"{prefix}/benne-01/evidence/{event.event_id}", photo, now)])
    kept = store.path(store.save("benne-01", str(event.event_id), photo).path)  # its row is recent
    stray = store.path(store.save("benne-02", str(uuid.uuid4()), photo).path)  # no row names it
    part = stray.parent / "tmpk2j4.part"
    part.write_bytes(photo[:100])
    foreign = settings.evidence_path / "LISEZMOI.txt"  # not the store's: never touched
    foreign.write_text("photos des camions")
    old = (now - timedelta(days=31)).timestamp()
    for path in (kept, stray, part, foreign):
        os.utime(path, (old, old))
    with sessions() as session, session.begin():
        report = purge_expired(session, store, settings, now=now)
    assert report.photos == 2
    assert not stray.exists() and not part.exists(), "files past the photo retention stayed on disk"
    assert kept.exists() and foreign.exists()
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Evidence)) == 1


def test_hourly_purge_runs_when_partition_upkeep_fails(make_settings: Any, monkeypatch: Any) -> None:
    """The hourly task creates the coming months' partitions, then purges. Upkeep that fails (a
    statement timeout moving a big default partition, a lock, a partition an operator made by
    hand that overlaps a month) must not stop the purge: expired lifts would then be kept for as
    long as it keeps failing, past the retention promised to the CNIL."""
    from sqlalchemy.exc import OperationalError

    import server.retention
    from server.retention import RetentionTask

    settings = make_settings(ingest_enabled=False, retention_days=30)
    ctx = create_app(settings, start_ingest=False).state.ctx
    store = EvidenceStore(settings.evidence_path, settings.max_evidence_bytes)
    now = datetime.now(UTC)
    old, recent = (lift_event(counts={"bag": 1}, at=now - timedelta(days=d), gps=None) for d in (40, 2))
    for event in (old, recent):  # each written when it was made (retention is judged at write time)
        with ctx.sessions() as session, session.begin():
            Inbox(settings, store, Metrics(), clock=lambda at=event.started_at: at).write(session, [
                MqttMessage(f"{settings.topic_prefix}/benne-01/lift", event.to_json().encode(), event.started_at)])
    with ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lift)) == 2

    def failing_upkeep(*_: Any, **__: Any) -> list[str]:
        raise OperationalError("CREATE TABLE lifts_p...", {}, Exception("canceling statement due to statement timeout"))

    monkeypatch.setattr(server.retention, "ensure_partitions", failing_upkeep)
    RetentionTask(settings, ctx.sessions, store).run_once()
    with ctx.sessions() as session:
        assert list(session.scalars(select(Lift.event_id))) == [str(recent.event_id)]


def test_a_refused_photo_leaves_with_the_photos_not_with_the_letters(make_settings: Any) -> None:
    """A photo refused (a corrupt JPEG, a SHA-256 that is not the lift's) kept its first 4 KiB, the
    top of the picture, for the 90 days of the dead letters: three times the photos' 30 days."""
    # The lift's letter, the one kept: 90 days too at street level here (30 by default,
    # tests/server/test_street_level_purge.py).
    settings = make_settings(ingest_enabled=False, evidence_retention_days=30, dead_letter_retention_days=90,
                             street_level_letter_days=90)
    sessions = create_app(settings, start_ingest=False).state.ctx.sessions
    store = EvidenceStore(settings.evidence_path, settings.max_evidence_bytes)
    now = datetime.now(UTC)
    received = now - timedelta(days=31)
    prefix = settings.topic_prefix
    corrupt = b"\xff\xd8" + bytes(range(256)) * 20  # no end-of-image marker: ``bad_jpeg``
    with sessions() as session, session.begin():
        Inbox(settings, store, Metrics(), clock=lambda: received).write(session, [
            MqttMessage(f"{prefix}/benne-01/evidence/{lift_event().event_id}", corrupt, received),
            MqttMessage(f"{prefix}/benne-01/lift", b"junk", received)])
    with sessions() as session:
        assert sorted(session.scalars(select(DeadLetter.reason))) == ["bad_jpeg", "invalid_json"]
    with sessions() as session, session.begin():
        assert purge_expired(session, store, settings, now=now).dead_letters == 1
    with sessions() as session:
        assert list(session.scalars(select(DeadLetter.reason))) == ["invalid_json"]


def test_the_purge_log_line_reads_as_words() -> None:
    # The hourly line was a Python dict, ten keys of which nine are usually 0:
    # "retention: deleted {'lifts': 149, 'photos': 0, 'dead_letters': 0, ...}".
    report = PurgeReport(lifts=149, photos=2, dead_letters=0, sessions=0, reminder_route_sheets=1)
    assert report.summary() == "149 lifts, 2 photos, 1 reminder route sheets"
