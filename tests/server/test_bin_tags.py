"""One canonical form of a bin's RFID tag (``base.bin_tags``) wherever a tag enters the server: the
registry's file, the lifts at ingest, household keys and exclusions; the stored ones are brought to
it by migrations 0023 (bins, lifts) and r0007 (the reminders' keys)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from base.bin_tags import canonical_tag
from server.db import make_engine
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.models import Lift
from server.migrate import alembic_config
from server.reminders.config import Exclusions
from server.reminders.targets import HouseholdKey
from server.streets.bins import bin_places, import_bins
from server.streets.locator import Locator
from server.streets.models import Bin
from tests.server.crossroads import lonlat
from tests.server.events import lift_event
from tests.server.test_bins import household_settings, registry, town

T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(("written", "canonical"), [
    ("04a1b2c3", "04A1B2C3"), ("04:A1:B2:C3", "04A1B2C3"), (" 04 a1 b2 c3 ", "04A1B2C3"),
    ("04-a1-b2-c3", "04A1B2C3"), ("04.A1.B2.C3", "04A1B2C3"), ("E2000017221101441890abcd", "E2000017221101441890ABCD"),
    ("bac-0042", "BAC-0042"), ("999_000000001234", "999_000000001234"), ("0a-1b.2c", "0A-1B.2C"), ("ßx", "ßx")])
def test_the_canonical_form(written: str, canonical: str) -> None:
    assert canonical_tag(written) == canonical
    assert canonical_tag(canonical) == canonical, "canonical twice is canonical"


@pytest.mark.parametrize(("in_registry", "from_truck"), [("04A1B2C3", "04a1b2c3"), ("04:a1:b2:c3", "04A1B2C3"),
                                                         ("04 A1 B2 C3", "04a1B2c3")])
def test_a_tag_spelled_otherwise_by_the_reader_still_finds_its_bin(
        tmp_path: Path, database_url: str, in_registry: str, from_truck: str) -> None:
    engine, streets, addresses = town(database_url)
    with Session(engine) as session, session.begin():
        report = import_bins(session, registry(tmp_path, f"puce;id_ban\n{in_registry};99999_a001_00003\n"))
    assert report.added == 1
    with Session(engine) as session:
        assert session.scalars(select(Bin.tag)).all() == ["04A1B2C3"], "the registry keeps the canonical form"
        locator = Locator.from_session(session)
    settings = household_settings(tmp_path, database_url)
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, 2**20), Metrics(), lambda _s: locator, bin_places)
    lon, lat = lonlat(3.0, 15.0)  # the fix alone puts the lift on Rue B
    event = lift_event("benne-01", gps=(lat, lon), at=T0, bin_id=from_truck)
    message = MqttMessage(f"{settings.topic_prefix}/benne-01/lift", event.to_json().encode(), T0 + timedelta(0, 20))
    with sessionmaker(engine)() as session, session.begin():
        assert inbox.write(session, [message]) == 0
    with Session(engine) as session:
        lift = session.scalars(select(Lift)).one()
    assert (lift.bin_id, lift.street_id, lift.address_id) == (
        "04A1B2C3", streets["Rue A"], addresses["99999_a001_00003"])
    assert lift.match_confidence == 1.0 and lift.registry_placed
    engine.dispose()


def test_two_spellings_of_one_tag_in_a_registry_file_are_one_bin(tmp_path: Path) -> None:
    engine, _, addresses = town(f"sqlite:///{tmp_path / 'trivue.db'}")
    with Session(engine) as session, session.begin():
        report = import_bins(session, registry(
            tmp_path, "puce;id_ban\n04a1b2c3;99999_a001_00003\n04:A1:B2:C3;99999_a001_00005\n"))
    assert report.added == 1
    assert report.errors == ["line 3: tag '04A1B2C3' listed again (line 2); this line is kept"]
    with Session(engine) as session:
        assert session.execute(select(Bin.tag, Bin.address_id)).all() == [("04A1B2C3", addresses["99999_a001_00005"])]
    engine.dispose()


def test_household_keys_and_exclusions_name_the_canonical_tag() -> None:
    assert HouseholdKey.parse("bin:04:a1:b2:c3") == HouseholdKey(bin_id="04A1B2C3")
    assert str(HouseholdKey.parse("bin:bac-0042")) == "bin:BAC-0042"
    with pytest.raises(ValueError, match="household key"):
        HouseholdKey.parse("bin:04 a1 é")
    assert Exclusions(bins=["04 a1 b2 c3", "BAC-7"]).bins == ["04A1B2C3", "BAC-7"]


def _reminders_config() -> Config:
    from server.reminders.models import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def test_the_migrations_bring_stored_tags_to_the_canonical_form(
        database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Tags stored before: the registry's as imported, the lifts' as the readers sent them, and the
    reminders' household keys. Two spellings of one bin in the registry keep the last imported; a
    household's opt-out under either spelling keeps it opted out (the earliest request)."""
    engine = make_engine(database_url)
    core, reminders = alembic_config(), _reminders_config()

    def migrate(config: Config, revision: str) -> None:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    lift = ("INSERT INTO lifts (event_id, truck_id, sequence, stream, started_at, ended_at, day, received_at, "
            "contaminated, has_alert, score, counts, errors, model_name, model_version, frames, bin_id) VALUES "
            "(:id, 'benne-01', :n, 'recyclables', '2026-01-05 07:00:00', '2026-01-05 07:00:08', '2026-01-05', "
            "'2026-01-05 07:00:09', false, false, 1.0, '{}', '[]', 'm', '1', 10, :tag)")
    try:
        migrate(core, str(ScriptDirectory.from_config(core).get_revision("0023").down_revision))
        migrate(reminders, "r0006")
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO addresses (number, label, street_name, street_key, postcode, "
                                    "commune, lat, lon, synthetic) VALUES ('3', '3 Rue A', 'Rue A', 'rue a', "
                                    "'45000', 'Orléans', 47.9, 1.9, false)"))
            address = connection.execute(text("SELECT id FROM addresses")).scalar_one()
            connection.execute(text("INSERT INTO bins (tag, address_id, imported_at) VALUES (:tag, :a, :at)"), [
                {"tag": "04a1b2c3", "a": address, "at": "2026-01-01 00:00:00"},
                {"tag": "04A1B2C3", "a": None, "at": "2025-06-01 00:00:00"},
                {"tag": "bac-7", "a": address, "at": "2026-01-01 00:00:00"}])
            connection.execute(text(lift), [{"id": f"e-{n}", "n": n, "tag": tag} for n, tag in
                                            enumerate(["04a1b2c3", "04A1B2C3", "E200abcd", None])])
            connection.execute(text("INSERT INTO reminder_optouts (key, at, \"by\") VALUES (:k, :at, 'x')"), [
                {"k": "bin:04a1b2c3", "at": "2026-02-01 00:00:00"}, {"k": "bin:04A1B2C3", "at": "2026-03-01 00:00:00"},
                {"k": "bin:e200abcd", "at": "2026-02-01 00:00:00"}, {"k": "address:12", "at": "2026-02-01 00:00:00"}])
            connection.execute(text("INSERT INTO reminder_contacts (key, email, updated_at) VALUES (:k, :e, :at)"), [
                {"k": "bin:04a1b2c3", "e": "new@example.org", "at": "2026-03-01 00:00:00"},
                {"k": "bin:04A1B2C3", "e": "old@example.org", "at": "2026-01-01 00:00:00"}])
            connection.execute(text(
                "INSERT INTO reminder_campaigns (id, name, created_at, created_by, since, until, rules) VALUES "
                "(1, 'c', '2026-02-01 00:00:00', 'x', '2026-01-01', '2026-01-31', "
                "'{\"exclude\": {\"bins\": [\"e200abcd\"], \"addresses\": [3]}}')"))
            connection.execute(text(
                "INSERT INTO reminder_items (campaign_id, kind, level, target_key, bin_id, lifts, contaminated, "
                "categories, event_ids, reason, status, attempts) VALUES "
                "(1, 'household', 1, 'bin:04a1b2c3', '04a1b2c3', 2, 2, '{}', '[]', 'r', 'pending', 0)"))
        caplog.set_level(logging.INFO, "server.migrate")
        migrate(core, "head")
        migrate(reminders, "head")
        # Irreversible: each says what it deleted, beside the upgrade's own line.
        assert "2 registry rows respelled, 1 deleted as another spelling of a tag (the row imported last " \
               "kept), 2 lifts rewritten (2 spellings)" in caplog.text
        assert "1 opt-outs and 1 contacts deleted as another spelling" in caplog.text
        with engine.connect() as connection:
            bins = connection.execute(text("SELECT tag, address_id FROM bins ORDER BY tag")).all()
            lifts = connection.execute(text("SELECT bin_id FROM lifts ORDER BY sequence")).scalars().all()
            optouts = connection.execute(text("SELECT key, at FROM reminder_optouts ORDER BY key")).all()
            contacts = connection.execute(text("SELECT key, email FROM reminder_contacts")).all()
            item = connection.execute(text("SELECT target_key, bin_id FROM reminder_items")).one()
            rules = connection.execute(text("SELECT rules FROM reminder_campaigns")).scalar_one()
        assert [tuple(b) for b in bins] == [("04A1B2C3", address), ("BAC-7", address)]
        assert lifts == ["04A1B2C3", "04A1B2C3", "E200ABCD", None]
        assert [(k, str(at)[:10]) for k, at in optouts] == [
            ("address:12", "2026-02-01"), ("bin:04A1B2C3", "2026-02-01"), ("bin:E200ABCD", "2026-02-01")]
        assert [tuple(c) for c in contacts] == [("bin:04A1B2C3", "new@example.org")]
        assert tuple(item) == ("bin:04A1B2C3", "04A1B2C3")
        assert "E200ABCD" in str(rules) and "e200abcd" not in str(rules)
    finally:
        engine.dispose()


def test_an_erasure_finds_the_refused_messages_naming_the_bin_in_another_spelling(database_url: str) -> None:
    """A refused lift of an older truck holds the tag as its reader printed it: the household's
    erasure must still find and empty it (its payload names the bin)."""
    from server.ingest.models import DeadLetter
    from server.migrate import upgrade_database
    from server.reminders.dead_letters import letters_naming

    engine = make_engine(database_url)
    try:
        upgrade_database(engine)
        with Session(engine) as session, session.begin():
            letters = []
            # Byte pairs joined by hyphens or dots were valid wire tags too (canonical_tag drops them).
            for tag in ["04a1b2c3", "04A1B2C3", "04a1b2c4", "04-a1-b2-c3", "04.A1.B2.C3"]:
                payload = f'{{"truck_id": "benne-01", "bin_id": "{tag}", "score": 1.0}}'.encode()
                letters.append(DeadLetter(received_at=T0, topic="trivue/benne-01/lift", truck_id="benne-01",
                                          reason="invalid", detail="test", payload=payload, payload_size=len(payload)))
            session.add_all(letters)
            session.flush()
            ids = [letter.id for letter in letters]
        with Session(engine) as session:
            found = letters_naming(session, HouseholdKey.parse("bin:04A1B2C3"))
        assert [(letter.id, letter.tag) for letter in found] == [(i, "04A1B2C3") for i in ids if i != ids[2]]
    finally:
        engine.dispose()
