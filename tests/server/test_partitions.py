"""Exactly-once across months and partitions, partition upkeep and retention by partition.

On PostgreSQL ``lifts`` is partitioned by month of ``started_at``; the same tests run on SQLite
(no partitions) so that both keep the same behaviour: a re-delivered event is refused however
late it comes, a lift of a month without partition is stored (default partition) and later
moved to its month, retention removes exactly the expired lifts and keeps the street figures.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from server.app import create_app
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.models import Lift, StreetDay, StreetPeriod
from server.ingest.partitions import DEFAULT, create_month, ensure_partitions, is_partitioned, partitions
from server.retention import purge_expired
from tests.server.events import lift_event


def _postgres(session: Any) -> bool:
    """PostgreSQL, where ``lifts`` must be partitioned (checked here, never assumed from the table)."""
    pg = session.get_bind().dialect.name == "postgresql"
    assert is_partitioned(session) == pg, "lifts is partitioned on PostgreSQL and only there"
    return pg


def _where(session: Any, event_id: str) -> str | None:
    """The partition holding a lift (None on SQLite)."""
    if not _postgres(session):
        return None
    return session.execute(text("SELECT tableoid::regclass::text FROM lifts WHERE event_id = :e"),
                           {"e": event_id}).scalar_one()


def test_a_duplicate_three_months_later_is_refused(make_settings: Any) -> None:
    settings = make_settings(ingest_enabled=False)
    sessions = create_app(settings, start_ingest=False).state.ctx.sessions
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics())
    topic = f"{settings.topic_prefix}/benne-01/lift"
    # Years ahead of the partitions the server keeps: lands in the default partition.
    first = lift_event(counts={"bag": 1}, at=datetime(2031, 1, 15, 7, tzinfo=UTC), gps=None)
    other = lift_event(counts={"bottle": 1}, at=datetime(2031, 1, 16, 7, tzinfo=UTC), gps=None, sequence=2)
    received = datetime(2031, 1, 15, 7, 5, tzinfo=UTC)
    with sessions() as session, session.begin():
        assert inbox.write(session, [MqttMessage(topic, first.to_json().encode(), received)]) == 0
    with sessions() as session, session.begin():
        assert _where(session, str(first.event_id)) in (None, DEFAULT)
        created = ensure_partitions(session, today=date(2031, 4, 20))
        if _postgres(session):  # the stray month got its partition, the lift moved into it
            assert "lifts_p203101" in created and "lifts_p203107" in created
            assert _where(session, str(first.event_id)) == "lifts_p203101"
    later = received + timedelta(days=92)
    with sessions() as session, session.begin():
        assert inbox.write(session, [MqttMessage(topic, first.to_json().encode(), later),
                                     MqttMessage(topic, other.to_json().encode(), later),
                                     MqttMessage(topic, first.to_json().encode(), later)]) == 0
    with sessions() as session:
        ids = session.scalars(select(Lift.event_id).order_by(Lift.started_at)).all()
        assert ids == [str(first.event_id), str(other.event_id)]
        assert session.scalar(select(func.sum(StreetDay.lifts))) == 2
        year = select(StreetPeriod.lifts).where(StreetPeriod.span == "y", StreetPeriod.stream == "*")
        assert session.scalar(year) == 2, "the roll-ups counted the duplicate no more than the daily rows"
        assert session.get(Lift, session.scalar(select(Lift.id).where(Lift.event_id == str(first.event_id)))
                           ).received_at == received, "the first delivery is the one kept"


def _lifts_over_three_months(make_settings: Any) -> tuple[Any, Any, list[datetime]]:
    """A lift every 4 days from 2031-01-10 for 100 days, stored with partitions made on 2031-02-01
    (retention 60 days): the settings, the app's sessions and the lifts' start times."""
    settings = make_settings(ingest_enabled=False, retention_days=60)
    sessions = create_app(settings, start_ingest=False).state.ctx.sessions
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics())
    topic = f"{settings.topic_prefix}/benne-01/lift"
    days = [datetime(2031, 1, 10, 8, tzinfo=UTC) + timedelta(days=d) for d in range(0, 100, 4)]
    events = [lift_event(counts={"bag": 1}, at=at, gps=None, sequence=i) for i, at in enumerate(days)]
    with sessions() as session, session.begin():
        ensure_partitions(session, today=date(2031, 2, 1))
        inbox.write(session, [MqttMessage(topic, e.to_json().encode(), e.started_at) for e in events])
    return settings, sessions, days


def test_retention_drops_expired_months(make_settings: Any) -> None:
    settings, sessions, days = _lifts_over_three_months(make_settings)
    now = datetime(2031, 5, 10, 12, tzinfo=UTC)
    cutoff = now - timedelta(days=60)  # 2031-03-11 12:00: January and February whole, March in part
    expired = sum(1 for at in days if at < cutoff)
    with sessions() as session, session.begin():
        report = purge_expired(session, EvidenceStore(settings.evidence_path, 10_000_000), settings, now=now)
    assert report.lifts == expired > 10
    with sessions() as session:
        kept = session.scalars(select(Lift.started_at)).all()
        assert len(kept) == len(days) - expired and min(kept) >= cutoff
        assert session.scalar(select(func.sum(StreetDay.lifts))) == len(days), "street figures stay"
        if _postgres(session):
            names = {p.name for p in partitions(session)}
            assert "lifts_p203101" not in names and "lifts_p203102" not in names, "dropped whole"
            assert "lifts_p203103" in names and DEFAULT in names


def test_partitions_take_a_later_migrations_columns_and_indexes(make_settings: Any) -> None:
    """A later migration adds a column and a partial index to ``lifts`` with plain DDL on the
    parent: months created afterwards (also by moving rows out of the default) carry both."""
    settings = make_settings(ingest_enabled=False)
    app = create_app(settings, start_ingest=False)
    sessions = app.state.ctx.sessions
    with sessions() as session:
        if not _postgres(session):
            pytest.skip("SQLite: nothing is partitioned (batch migrations rewrite the table)")
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics())
    event = lift_event(counts={"bag": 1}, at=datetime(2033, 6, 1, 8, tzinfo=UTC), gps=None)
    with sessions() as session, session.begin():
        session.execute(text("ALTER TABLE lifts ADD COLUMN later_flag BOOLEAN"))
        session.execute(text("CREATE INDEX ix_lifts_later_flag ON lifts (truck_id) WHERE later_flag"))
        inbox.write(session, [MqttMessage(f"{settings.topic_prefix}/benne-01/lift", event.to_json().encode(),
                                          event.started_at)])
        session.execute(text("UPDATE lifts SET later_flag = true"))
        assert create_month(session.connection(), date(2033, 6, 1))
        assert create_month(session.connection(), date(2033, 7, 1))
    with sessions() as session:
        assert _where(session, str(event.event_id)) == "lifts_p203306"
        assert session.scalar(text("SELECT later_flag FROM lifts_p203306")) is True
        indexed = session.scalars(text("SELECT tablename FROM pg_indexes WHERE indexdef LIKE '%WHERE later_flag%'"
                                       " AND tablename LIKE 'lifts_p2033%'")).all()
        assert sorted(indexed) == ["lifts_p203306", "lifts_p203307"]



def test_two_processes_purging_at_once_both_succeed(make_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scale-out: every ``trivue server`` runs the hourly purge, and processes started together
    purge together. Both have read ``lifts`` (the photos of expired lifts) when the first drops an
    expired month: the second must wait for it and find nothing left, not deadlock with it or fail
    on the month it dropped (its whole purge rolled back, a traceback in the log)."""
    import contextlib
    import threading

    import server.retention

    settings, sessions, days = _lifts_over_three_months(make_settings)
    now = datetime(2031, 5, 10, 12, tzinfo=UTC)
    expired = sum(1 for at in days if at < now - timedelta(days=60))
    store = EvidenceStore(settings.evidence_path, 10_000_000)
    # Both purges reach the partitions together (when one waits for the other before that, the
    # meeting times out and each goes on alone).
    meeting, drop = threading.Barrier(2), server.retention.drop_partitions_before

    def drop_together(db: Any, before: datetime) -> int:
        with contextlib.suppress(threading.BrokenBarrierError):
            meeting.wait(timeout=3)
        return drop(db, before)

    monkeypatch.setattr(server.retention, "drop_partitions_before", drop_together)
    outcomes: list[Any] = []

    def purge() -> None:
        try:
            with sessions() as session, session.begin():
                outcomes.append(purge_expired(session, store, settings, now=now))
        except Exception as error:  # reported to the test's thread
            outcomes.append(error)

    workers = [threading.Thread(target=purge) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not any(isinstance(o, Exception) for o in outcomes), f"a purge failed: {outcomes!r}"
    assert sorted(o.lifts for o in outcomes) == [0, expired] and expired > 10
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lift)) == len(days) - expired


def _blocked_on_a_lock(session: Any) -> bool:
    """Whether another session of this database waits for a table lock."""
    return bool(session.execute(text(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE NOT l.granted AND l.locktype = 'relation' AND a.datname = current_database()")).scalar())


@pytest.mark.parametrize("stray", [False, True], ids=["new-month", "month-in-default"])
def test_upkeep_creates_a_month_while_ingest_stores_a_lift_of_it(make_settings: Any, stray: bool) -> None:
    """A truck back after months offline sends lifts of a month without partition (stored in the
    default partition) while the hourly upkeep creates that month. A batch committed between the
    upkeep's look at the default partition and its CREATE/ATTACH made PostgreSQL refuse the month
    ("would be violated by some row"): the whole upkeep rolled back, the coming months included."""
    import threading

    settings = make_settings(ingest_enabled=False)
    sessions = create_app(settings, start_ingest=False).state.ctx.sessions
    with sessions() as session:
        if not _postgres(session):
            pytest.skip("SQLite: nothing is partitioned")
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics())
    topic = f"{settings.topic_prefix}/benne-01/lift"
    early, late = (lift_event(counts={"bag": 1}, at=datetime(2034, 6, d, 8, tzinfo=UTC), gps=None, sequence=d)
                   for d in (2, 20))
    with sessions() as session, session.begin():
        create_month(session.connection(), date(2034, 5, 1))  # June is the first month the upkeep creates
        if stray:
            inbox.write(session, [MqttMessage(topic, early.to_json().encode(), early.started_at)])
    ingest = sessions()
    ingest.begin()
    inbox.write(ingest, [MqttMessage(topic, late.to_json().encode(), late.started_at)])  # not committed yet
    outcome: list[Any] = []

    def upkeep() -> None:
        try:
            with sessions() as session, session.begin():
                outcome.append(ensure_partitions(session, today=date(2034, 6, 25)))
        except Exception as error:  # reported to the test's thread
            outcome.append(error)

    worker = threading.Thread(target=upkeep)
    worker.start()
    with sessions() as watcher:  # the upkeep waits for the batch's locks, then the batch commits
        while worker.is_alive() and not _blocked_on_a_lock(watcher):
            watcher.rollback()
    ingest.commit()
    ingest.close()
    worker.join(60)
    assert outcome and not isinstance(outcome[0], Exception), f"the upkeep failed: {outcome!r}"
    assert outcome[0] == ["lifts_p203406", "lifts_p203407", "lifts_p203408", "lifts_p203409"]
    with sessions() as session:
        assert _where(session, str(late.event_id)) == "lifts_p203406"
        if stray:
            assert _where(session, str(early.event_id)) == "lifts_p203406"


def test_a_long_read_of_lifts_neither_stalls_nor_defers_the_retention(make_settings: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A nightly ``pg_dump`` or a year's export reads ``lifts`` for minutes. Dropping or creating a
    month needs PostgreSQL's strongest lock on ``lifts``: queued behind the reader, it made every
    ingest batch and dashboard query queue behind it until the reader ended. The month's DDL now
    gives up after a short wait and is done at the next hourly run; the expired lifts are deleted
    all the same, row by row."""
    import server.ingest.partitions

    settings, sessions, days = _lifts_over_three_months(make_settings)
    with sessions() as session:
        if not _postgres(session):
            pytest.skip("SQLite: nothing is partitioned")
    monkeypatch.setattr(server.ingest.partitions, "LOCK_WAIT_MS", 100, raising=False)
    now = datetime(2031, 5, 10, 12, tzinfo=UTC)
    expired = sum(1 for at in days if at < now - timedelta(days=60))
    store = EvidenceStore(settings.evidence_path, 10_000_000)
    reader = sessions()
    assert reader.scalar(select(func.count()).select_from(Lift)) == len(days)  # holds its lock until rollback
    with sessions() as session, session.begin():
        # Without a bounded wait the purge queued behind the reader: this ends it instead of hanging.
        session.execute(text("SET LOCAL statement_timeout = '10s'"))
        assert purge_expired(session, store, settings, now=now).lifts == expired > 10
        assert ensure_partitions(session, today=date(2031, 6, 10)) == [], "the coming months wait an hour"
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lift)) == len(days) - expired
        assert {"lifts_p203101", "lifts_p203102"} <= {p.name for p in partitions(session)}
    reader.rollback()
    reader.close()
    with sessions() as session, session.begin():  # the next hourly run, the reader gone
        assert ensure_partitions(session, today=date(2031, 6, 10)) == [f"lifts_p2031{m:02}" for m in range(6, 10)]
        assert purge_expired(session, store, settings, now=now).lifts == 0
    with sessions() as session:
        names = {p.name for p in partitions(session)}
        assert "lifts_p203101" not in names and "lifts_p203102" not in names and "lifts_p203103" in names
