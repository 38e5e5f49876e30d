"""Dead letters an operator can fix keep their whole payload, within bounds, so that a replay stores
what the truck sent: the photos of an unregistered truck's lifts above all (received, receipted, so
deleted from the truck's outbox: the letter is the only copy). A lift's letter remembers the lift's
date and goes with the raw lifts' retention. On SQLite and PostgreSQL, through the real broker."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.config import ServerSettings
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.letters import DEAD_LETTER_BYTES, held_letters
from server.ingest.metrics import Metrics
from server.ingest.models import DeadLetter, Evidence, Lift
from server.ingest.replay import replay_dead_letters
from server.retention import purge_expired
from tests.server.events import lift_event
from tests.server.photos import photo_event


def _inbox(settings: ServerSettings, **update: Any) -> Inbox:
    settings = settings.model_copy(update=update)
    return Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics())


def _refused(session: Session, settings: ServerSettings, messages: list[tuple[str, bytes]],
             at: datetime | None = None, **update: Any) -> None:
    """``(topic under the prefix, payload)`` written by a server whose registry knows only ``nobody``."""
    at = at or datetime.now(UTC)
    _inbox(settings, known_trucks=["nobody"], **update).write(
        session, [MqttMessage(f"{settings.topic_prefix}/{topic}", payload, at) for topic, payload in messages])
    session.commit()


def _letters(session: Session) -> list[DeadLetter]:
    session.expire_all()
    return list(session.scalars(select(DeadLetter).order_by(DeadLetter.id)))


def _wait(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_an_unregistered_trucks_photo_is_stored_with_its_lift_once_the_truck_is_added(
        make_settings: Any, run_server: Any) -> None:
    """As an operator meets it: a new truck, not yet in ``known_trucks``, sends a contaminated lift
    and its photo. Both are dead letters; the operator adds the truck and replays. The lift was
    stored, the photo never: its letter held 4 KiB of it and was skipped as truncated, so the
    lift's evidence (the reminders' proof, the labelling queue) was lost for good."""
    settings = make_settings(known_trucks=["benne-01"])
    event, photo = photo_event(7, truck="benne-02")
    assert len(photo) > DEAD_LETTER_BYTES
    with run_server(settings) as server:
        server.publish("benne-02/lift", event.to_json())
        server.publish(f"benne-02/evidence/{event.event_id}", photo)

        def both() -> bool:
            with server.sessions() as session:
                return [d.reason for d in _letters(session)] == ["unknown_truck"] * 2

        _wait(both, "the two letters")
        held = server.client.get("/api/dead-letters", headers=server.token("manager")).json()
        assert [d["replayable"] for d in held["items"]] == [True, True]
        assert held["held"]["letters"] == 1 and held["held"]["bytes"] == len(photo)
        assert all(d["payload_head"] is None for d in held["items"]), "raw payloads stay household level"
        quality = server.client.get("/api/data-quality", headers=server.token("viewer")).json()
        assert quality["dead_letters_held"] == held["held"]
    registered = settings.model_copy(update={"known_trucks": ["benne-01", "benne-02"]})
    with run_server(registered, start_ingest=False) as server, server.sessions() as session:
        report = replay_dead_letters(session, _inbox(registered))
        assert (report.replayed, report.dead) == (2, 0)
        lift = session.scalars(select(Lift)).one()
        stored = session.scalars(select(Evidence)).one()
        assert stored.event_id == lift.event_id == str(event.event_id)
        assert stored.sha256 == lift.evidence_sha256 == hashlib.sha256(photo).hexdigest()
        assert (registered.evidence_path / stored.path).read_bytes() == photo
        assert _letters(session) == []


def test_only_what_an_operator_can_fix_is_held_and_no_more_than_a_message_may_weigh(make_settings: Any) -> None:
    """A corrupt photo will never be stored: 4 KiB, as before. An unregistered truck's photo larger
    than ``max_evidence_bytes`` or lift larger than ``max_payload_bytes`` (the registry is checked
    first) would be refused when replayed: 4 KiB too."""
    from server.command_line import open_database

    settings = make_settings(ingest_enabled=False, max_evidence_bytes=16 * 1024, max_payload_bytes=8 * 1024)
    event = lift_event("benne-02")
    with open_database(settings) as session:
        _refused(session, settings, [(f"benne-02/evidence/{event.event_id}", b"\xff\xd8" + b"x" * 20_000),
                                     ("benne-02/lift", b"{" + b" " * 9000 + b"}")])
        _inbox(settings).write(session, [MqttMessage(f"{settings.topic_prefix}/benne-01/evidence/{event.event_id}",
                                                     b"\xff\xd8" + bytes(range(256)) * 40, datetime.now(UTC))])
        session.commit()
        letters = _letters(session)
        assert [(d.reason, len(d.payload)) for d in letters] == [
            ("unknown_truck", DEAD_LETTER_BYTES), ("unknown_truck", DEAD_LETTER_BYTES), ("bad_jpeg", DEAD_LETTER_BYTES)]
        assert held_letters(session) == (0, 0)


def test_the_payloads_held_have_a_total_cap(make_settings: Any) -> None:
    """``dead_letter_held_bytes`` bounds them all: a truck left out of the registry for weeks does
    not fill the database with photos. Beyond it a letter keeps 4 KiB and says why."""
    from server.command_line import open_database

    photos = [photo_event(seed, truck="benne-02") for seed in range(4)]
    cap = len(photos[0][1]) + len(photos[1][1]) + 100
    settings = make_settings(ingest_enabled=False, dead_letter_held_bytes=cap)
    with open_database(settings) as session:
        _refused(session, settings, [(f"benne-02/evidence/{e.event_id}", p) for e, p in photos[:3]])
        _refused(session, settings, [(f"benne-02/evidence/{photos[3][0].event_id}", photos[3][1])])
        letters = _letters(session)
        assert [len(d.payload) == d.payload_size for d in letters] == [True, True, False, False]
        assert "dead_letter_held_bytes" in letters[2].detail
        assert held_letters(session) == (2, len(photos[0][1]) + len(photos[1][1]))


def test_a_letter_refused_again_keeps_its_payload_while_it_can_still_be_fixed(make_settings: Any) -> None:
    """Replayed before its truck is added, a held photo stays whole (same letter, whatever the cap
    now); refused for a cause no replay can fix (not a JPEG), it keeps 4 KiB like any such letter."""
    from server.command_line import open_database

    event, photo = photo_event(3, truck="benne-02")
    not_a_jpeg = b"GIF89a" + bytes(range(256)) * 30
    settings = make_settings(ingest_enabled=False)
    with open_database(settings) as session:
        _refused(session, settings, [(f"benne-02/evidence/{event.event_id}", photo),
                                     (f"benne-02/evidence/{lift_event('benne-02').event_id}", not_a_jpeg)])
        before = _letters(session)
        report = replay_dead_letters(session, _inbox(settings, known_trucks=["nobody"], dead_letter_held_bytes=0))
        assert (report.replayed, report.dead) == (2, 2)
        again = _letters(session)
        assert [(d.id, d.payload) for d in again] == [(d.id, d.payload) for d in before]
        replay_dead_letters(session, _inbox(settings))
        assert [(d.reason, d.payload) for d in _letters(session)] == [("bad_jpeg", not_a_jpeg[:DEAD_LETTER_BYTES])]
        assert session.scalar(select(func.count()).select_from(Evidence)) == 1


def test_a_replay_of_held_photos_is_bounded_in_bytes(make_settings: Any) -> None:
    """500 letters a chunk was 2 MiB when a letter held 4 KiB; 500 photos of 2 MiB are 1 GiB in one
    transaction. A chunk stops at ``chunk_bytes`` (one letter at least)."""
    from server.command_line import open_database

    photos = [photo_event(seed, truck="benne-02") for seed in range(5)]
    settings = make_settings(ingest_enabled=False)
    with open_database(settings) as session:
        _refused(session, settings, [(f"benne-02/evidence/{e.event_id}", p) for e, p in photos])
        inbox = _inbox(settings)
        sizes: list[int] = []
        write = inbox.write

        def spy(s: Session, messages: Any) -> int:
            sizes.append(sum(len(m.payload) for m in messages))
            return write(s, messages)

        inbox.write = spy  # type: ignore[method-assign]
        budget = 2 * max(len(p) for _, p in photos)
        report = replay_dead_letters(session, inbox, chunk_bytes=budget)
        assert (report.replayed, report.dead) == (5, 0)
        assert len(sizes) >= 3 and max(sizes) <= budget
        assert session.scalar(select(func.count()).select_from(Evidence)) == 5


def test_a_lifts_letter_goes_with_the_raw_lifts(make_settings: Any) -> None:
    """A lift from day 1 refused on day 29 (its truck unregistered) was kept 90 days from then, its
    GPS fix and bin tag 119 days after the lift where raw lifts are kept 30. The letter now holds
    the lift's date and the purge takes it with the lifts; a letter whose date cannot be read
    keeps the dead letters' own retention."""
    from server.command_line import open_database

    settings = make_settings(ingest_enabled=False, retention_days=30, dead_letter_retention_days=90)
    now = datetime.now(UTC)
    old = lift_event("benne-02", at=now - timedelta(days=29), sequence=1)
    recent = lift_event("benne-02", at=now - timedelta(days=2), sequence=2)
    with open_database(settings) as session:
        _refused(session, settings, [("benne-02/lift", old.to_json().encode()),
                                     ("benne-02/lift", recent.to_json().encode()), ("benne-02/lift", b"{broken")])
        assert [d.lift_started_at for d in _letters(session)] == [old.started_at, recent.started_at, None]
        store = EvidenceStore(settings.evidence_path, settings.max_evidence_bytes)
        assert purge_expired(session, store, settings, now=now + timedelta(days=2)).dead_letters == 1
        session.commit()
        assert [d.payload for d in _letters(session)] == [recent.to_json().encode(), b"{broken"]


def test_a_held_photo_goes_with_the_photos(make_settings: Any) -> None:
    """A whole photo in a letter is a photo: kept ``evidence_retention_days``, not the letters' 90."""
    from server.command_line import open_database

    settings = make_settings(ingest_enabled=False, evidence_retention_days=30, dead_letter_retention_days=90)
    now = datetime.now(UTC)
    event, photo = photo_event(5, truck="benne-02")
    with open_database(settings) as session:
        _refused(session, settings, [(f"benne-02/evidence/{event.event_id}", photo)], at=now - timedelta(days=31))
        assert held_letters(session) == (1, len(photo))
        store = EvidenceStore(settings.evidence_path, settings.max_evidence_bytes)
        assert purge_expired(session, store, settings, now=now).dead_letters == 1
        session.commit()
        assert _letters(session) == []


def test_upgrade_to_0013_dates_the_lift_letters_already_stored(database_url: str) -> None:
    """Letters stored before the upgrade get their lift's date too: the next purge takes those past
    the raw lifts' retention instead of keeping them up to 90 more days."""
    from sqlalchemy import MetaData, Table, insert

    from server.db import make_engine
    from server.migrate import alembic_config
    from tests.server.test_migrations import migrator

    engine = make_engine(database_url)
    migrate = migrator(engine, alembic_config())
    event = lift_event("benne-02", at=datetime(2026, 3, 1, 8, 30, tzinfo=UTC))
    payloads = [("t/benne-02/lift", event.to_json().encode()), ("t/benne-02/lift", b"{broken"),
                ("t/benne-02/lift", b'{"started_at": "2026-03-01T08:30:00"}'),  # no zone: not a date to trust
                ("t/benne-02/evidence/x", b'{"started_at": "2026-03-01T08:30:00Z"}'), ("t/benne-02/lift", b"")]
    try:
        migrate("upgrade", "0012")
        with engine.begin() as connection:
            letters = Table("dead_letters", MetaData(), autoload_with=connection)
            connection.execute(insert(letters), [
                {"received_at": datetime(2026, 11, 1), "topic": topic, "truck_id": "benne-02",
                 "reason": "unknown_truck", "detail": "d", "payload": payload, "payload_size": len(payload)}
                for topic, payload in payloads])
        migrate("upgrade", "0013")
        with Session(engine) as session:
            assert [d.lift_started_at for d in _letters(session)] == [event.started_at, None, None, None, None]
        migrate("downgrade", "0012")
        with engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(
                Table("dead_letters", MetaData(), autoload_with=connection))) == len(payloads)
    finally:
        engine.dispose()


def test_listing_the_letters_never_reads_a_held_payload(make_settings: Any, run_server: Any) -> None:
    """The data-quality page lists the newest 50 letters (the API up to 1000, ``dead-letters list``
    too): read whole, 50 held photos of 2 MiB were 100 MiB per page view. The listing reads the
    first 512 bytes and the length of each payload, never the payload itself."""
    from sqlalchemy import event

    settings = make_settings(ingest_enabled=False, household_level=True)
    photo_ev, photo = photo_event(9, truck="benne-02")
    statements: list[str] = []
    with run_server(settings, start_ingest=False) as server:
        with server.sessions() as session:
            _refused(session, settings, [(f"benne-02/evidence/{photo_ev.event_id}", photo)])
        engine = server.sessions.kw["bind"]
        listen = lambda _c, _cur, statement, *_a: statements.append(statement)  # noqa: E731
        event.listen(engine, "before_cursor_execute", listen)
        try:
            answer = server.client.get("/api/dead-letters", headers=server.token("manager")).json()
        finally:
            event.remove(engine, "before_cursor_execute", listen)
    item = answer["items"][0]
    assert (item["payload_size"], item["replayable"]) == (len(photo), True)
    assert item["payload_head"] == photo[:512].decode("utf-8", "replace")  # household level on: shown
    listed = [s.split("FROM", 1)[0] for s in statements if "ORDER BY dead_letters.id DESC" in s]
    whole = [c for c in listed if re.search(r"(?<!\()dead_letters\.payload(?!_size)", c)]
    assert listed and not whole, whole
