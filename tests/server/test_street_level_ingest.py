"""Street level at ingest (docs/privacy.md §1 bis): while ``household_level`` is off, a lift is
stored without its bin's RFID tag or its address, at insertion, when its truck's path settles it
and at ``trivue streets rematch``; a lift the bin registry placed keeps its street by
``registry_placed``. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from server.config import load_settings
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.models import Lift, StreetDay
from server.ingest.tracks import rematch_paths
from server.streets.bins import bin_places, import_bins
from server.streets.locator import Locator
from server.streets.trajectory import TrackLocator
from tests.server.crossroads import lonlat
from tests.server.events import lift_event
from tests.server.test_bins import T0, registry, town

TAG = "E2801160000000AA"
# Down Rue B, then east into Rue A (tests/server/test_bins.py): the corner lifts' fixes are up
# Rue B; the bin at the corner (k = 3) is registered on Rue A and pins the path there.
FIXES = [(0.0, 90.0), (1.0, 60.0), (0.0, 40.0), (4.0, 12.0), (6.0, 10.0), (40.0, 0.0), (70.0, 1.0)]
TRUTH = ["Rue B", "Rue B", "Rue B", "Rue A", "Rue A", "Rue A", "Rue A"]


def _inbox(tmp_path: Path, database_url: str, engine: Engine, trajectory: bool, household: bool) -> Inbox:
    settings = load_settings(env={}, data_dir=tmp_path / "data", database_url=database_url,
                             household_level=household)
    with Session(engine) as session:
        locator = TrackLocator.from_session(session) if trajectory else Locator.from_session(session)
    return Inbox(settings, EvidenceStore(settings.evidence_path, 2**20), Metrics(), lambda _s: locator, bin_places)


def _drive(engine: Engine, inbox: Inbox, truck: str, batch: int, day: int = 0) -> list[Lift]:
    """The truck's seven lifts down Rue B into Rue A, ``batch`` at a time; its stored lifts in order."""
    events = []
    for k, (x, y) in enumerate(FIXES):
        lon, lat = lonlat(x, y)
        events.append(lift_event(truck, sequence=k, gps=(lat, lon), bin_id=TAG if k == 3 else None,
                                 at=T0 + timedelta(days=day, seconds=20 * k)))
    messages = [MqttMessage(f"{inbox.settings.topic_prefix}/{truck}/lift", event.to_json().encode(),
                            event.started_at + timedelta(seconds=10)) for event in events]
    for start in range(0, len(messages), batch):
        with sessionmaker(engine)() as session, session.begin():
            assert inbox.write(session, messages[start:start + batch]) == 0
    with Session(engine) as session:
        return list(session.scalars(select(Lift).where(Lift.truck_id == truck).order_by(Lift.sequence)))


def _names(streets: dict[str, int], lifts: list[Lift]) -> list[str]:
    names = {v: k for k, v in streets.items()}
    return [names.get(lift.street_id, "-") for lift in lifts]  # type: ignore[arg-type]


def _household(lift: Lift) -> tuple[Any, ...]:
    return lift.bin_id, lift.address_id, lift.address_distance_m


def _days(engine: Engine) -> dict[Any, int]:
    with Session(engine) as session:
        return {(d.day, d.street_id): d.lifts for d in session.scalars(select(StreetDay))}


@pytest.mark.parametrize(("trajectory", "batch"), [(True, 1), (True, 7), (False, 7)],
                         ids=["trajectory-lift-by-lift", "trajectory-one-batch", "one-point"])
def test_street_level_stores_no_tag_and_no_address_but_the_same_streets(
        tmp_path: Path, database_url: str, trajectory: bool, batch: int) -> None:
    engine, streets, addresses = town(database_url)
    with Session(engine) as session, session.begin():
        import_bins(session, registry(tmp_path, f"tag;address\n{TAG};99999_a001_00003\n"))
    whole = _drive(engine, _inbox(tmp_path, database_url, engine, trajectory, household=True), "benne-01", batch)
    lean = _drive(engine, _inbox(tmp_path, database_url, engine, trajectory, household=False), "benne-02", batch,
                  day=1)
    if trajectory:
        assert _names(streets, whole) == _names(streets, lean) == TRUTH
    else:
        assert _names(streets, whole) == _names(streets, lean)
        assert _names(streets, lean)[3] == "Rue A", "the registry places the tagged lift whatever its fix"
    # Household level on: what the truck sent and the address matched, as before.
    assert whole[3].bin_id == TAG and whole[3].address_id == addresses["99999_a001_00003"]
    assert [lift.registry_placed for lift in whole] == [k == 3 for k in range(7)]
    # Off: no tag, no address, at insertion and after the path settled the provisional lifts.
    assert [_household(lift) for lift in lean] == [(None, None, None)] * 7
    assert [lift.registry_placed for lift in lean] == [k == 3 for k in range(7)]
    assert all(not lift.match_provisional for lift in lean[:-1])
    # The street's confidence as matched stands for the match: no address's term is left in it (a
    # lift confirmed later on the same street keeps it, its street confidence moves).
    if batch > 1:
        assert all(lift.match_confidence == lift.street_confidence for lift in lean)
    assert lean[3].match_confidence == 1.0
    assert [(lift.lat, lift.lon) for lift in lean] == [(lift.lat, lift.lon) for lift in whole], \
        "the fix is kept (trajectory matching, rematch, the data-quality page)"
    days = _days(engine)
    for street in ("Rue A", "Rue B"):
        assert days[(T0.date(), streets[street])] == days[(T0.date() + timedelta(days=1), streets[street])]


def test_rematch_keeps_a_registry_placed_lift_on_its_street_without_its_tag(tmp_path: Path,
                                                                            database_url: str) -> None:
    """A lift stored at street level has no tag left to read: ``registry_placed`` keeps it on the
    street the registry gave it (its fix alone says Rue B), at street level and once the household
    level is on; at household level the other lifts get an address again from their fix, the
    registry-placed one cannot (its address came from the tag)."""
    engine, streets, addresses = town(database_url)
    with Session(engine) as session, session.begin():
        import_bins(session, registry(tmp_path, f"tag;address\n{TAG};99999_a001_00003\n"))
    inbox = _inbox(tmp_path, database_url, engine, True, household=False)
    before = _drive(engine, inbox, "benne-01", 7)
    days = _days(engine)
    with Session(engine) as session:
        locator = TrackLocator.from_session(session)
    for street_level in (True, False):
        with Session(engine) as session, session.begin():
            report = rematch_paths(session, locator, bins=bin_places, street_level=street_level)
        with Session(engine) as session:
            after = list(session.scalars(select(Lift).order_by(Lift.sequence)))
        assert _names(streets, after) == TRUTH and report.changed == (0 if street_level else 6), street_level
        assert after[3].registry_placed and after[3].match_confidence == 1.0
        assert _household(after[3]) == (None, None, None), "its address came from the tag: not recoverable"
        assert _days(engine) == days, "the street figures do not move"
    assert [lift.address_id is not None for lift in after] == [k != 3 for k in range(7)], \
        "household level on: the untagged lifts' addresses come back from their fixes"
    assert after[5].address_id in addresses.values() and before[5].address_id is None


def test_rematch_at_street_level_drops_the_tags_and_addresses_stored_before(tmp_path: Path,
                                                                            database_url: str) -> None:
    """Lifts stored while the household level was on (or before this version) keep their tag and
    address until a rematch at street level, which drops them and keeps each lift on its street."""
    engine, streets, _ = town(database_url)
    with Session(engine) as session, session.begin():
        import_bins(session, registry(tmp_path, f"tag;address\n{TAG};99999_a001_00003\n"))
    _drive(engine, _inbox(tmp_path, database_url, engine, True, household=True), "benne-01", 7)
    days = _days(engine)
    with Session(engine) as session:
        locator = TrackLocator.from_session(session)
    with Session(engine) as session, session.begin():
        rematch_paths(session, locator, bins=bin_places, street_level=True)
    with Session(engine) as session:
        after = list(session.scalars(select(Lift).order_by(Lift.sequence)))
    assert _names(streets, after) == TRUTH and _days(engine) == days
    assert [_household(lift) for lift in after] == [(None, None, None)] * 7
    assert [lift.registry_placed for lift in after] == [k == 3 for k in range(7)]


def test_migration_0019_flags_the_stored_lifts_the_registry_placed(tmp_path: Path, database_url: str) -> None:
    """0019 on a populated database (PostgreSQL: ``lifts`` partitioned by month): a stored lift is
    registry-placed when its tag is registered at the very address it holds, with the registry's
    certainty; the others are not. Down and up again."""
    from sqlalchemy import text

    from server.db import make_engine
    from server.migrate import alembic_config
    from server.streets.importer import import_streets
    from server.streets.models import Address, Street
    from tests.server.crossroads import pieces
    from tests.server.test_migrations import migrator

    engine = make_engine(database_url)
    migrate = migrator(engine, alembic_config())
    try:
        migrate("upgrade", "0018")
        with Session(engine) as session, session.begin():
            import_streets(session, pieces())
            street = session.scalars(select(Street.id)).first()
            for number in ("3", "5"):
                session.add(Address(street_id=street, number=number, label=f"{number} Rue A", street_name="Rue A",
                                    street_key="rue a", postcode="99999", commune="Testville", lat=48.1, lon=-1.68,
                                    source_key=f"ban:99999_a001_0000{number}"))
        with Session(engine) as session, session.begin():
            import_bins(session, registry(tmp_path, f"tag;address\n{TAG};99999_a001_00003\n"))
            three, five = (session.scalar(select(Address.id).where(Address.number == n)) for n in ("3", "5"))
        # (event, tag, address, match confidence)
        rows = [("e-1", TAG, three, 1.0), ("e-2", TAG, five, 1.0), ("e-3", None, three, 1.0),
                ("e-4", "E2801160FFFFFFFF", three, 1.0), ("e-5", TAG, three, 0.6), ("e-6", None, None, None)]
        with engine.begin() as connection:
            for event_id, tag, address, confidence in rows:
                connection.execute(text(
                    "INSERT INTO lifts (event_id, truck_id, sequence, stream, started_at, ended_at, day, received_at, "
                    "contaminated, has_alert, score, counts, errors, model_name, model_version, frames, street_id, "
                    "lat, lon, bin_id, address_id, match_confidence) VALUES (:e, 'benne-01', 1, 'glass', "
                    "'2026-11-05 07:00:00', '2026-11-05 07:00:08', '2026-11-05', '2026-11-05 07:00:09', false, false, "
                    "1.0, '{}', '[]', 'm', '1', 10, :street, 48.1, -1.68, :tag, :address, :m)"),
                    {"e": event_id, "street": street, "tag": tag, "address": address, "m": confidence})
        flagged = text("SELECT event_id FROM lifts WHERE registry_placed ORDER BY event_id")
        for _ in range(2):
            migrate("upgrade", "head")
            with engine.connect() as connection:
                assert list(connection.execute(flagged).scalars()) == ["e-1"]
                assert connection.execute(text("SELECT COUNT(*) FROM lifts WHERE NOT registry_placed")).scalar() == 5
            migrate("downgrade", "0018")
    finally:
        engine.dispose()


def test_a_held_letter_replayed_at_street_level_stores_its_lift_without_its_tag(make_settings: Any) -> None:
    """A lift of a truck not yet declared is held whole (tag and fix with it, docs/privacy.md §1);
    replayed once the truck is declared, it is stored as any lift at street level: no tag, no address."""
    from datetime import UTC, datetime

    from server.command_line import open_database
    from server.ingest.models import DeadLetter
    from server.ingest.replay import replay_dead_letters

    settings = make_settings(ingest_enabled=False)
    assert settings.household_level is False
    event = lift_event("benne-02", at=datetime.now(UTC) - timedelta(days=1), bin_id=TAG)
    message = MqttMessage(f"{settings.topic_prefix}/benne-02/lift", event.to_json().encode(), event.started_at)
    store = EvidenceStore(settings.evidence_path, settings.max_evidence_bytes)
    with open_database(settings) as session:
        refusing = Inbox(settings.model_copy(update={"known_trucks": ["nobody"]}), store, Metrics())
        assert refusing.write(session, [message]) == 1
        session.commit()
        assert TAG.encode() in session.scalars(select(DeadLetter.payload)).one(), "held whole for the replay"
        report = replay_dead_letters(session, Inbox(settings, store, Metrics()))
        session.commit()
        assert (report.replayed, report.dead) == (1, 0)
        lift = session.scalars(select(Lift)).one()
    assert (lift.event_id, lift.bin_id, lift.address_id) == (str(event.event_id), None, None)
    assert lift.lat is not None
