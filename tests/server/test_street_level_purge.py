"""The retention purge at street level (docs/privacy.md §1 bis, §5): while ``household_level`` is
off, each hourly pass drops the bin tag and address that lifts stored before (the upgrade, or while
the household level was on) still hold, through one indexed UPDATE (one per month partition on
PostgreSQL); streets, ``registry_placed`` and every aggregate stay. Lift dead letters are kept
``street_level_letter_days`` only. On SQLite and PostgreSQL."""

from __future__ import annotations

from ast import literal_eval
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from server import retention
from server.audit import AuditEntry
from server.config import load_settings
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import MqttMessage
from server.ingest.models import DeadLetter, Lift, MatchQualityDay, StreetDay
from server.retention import purge_expired
from server.streets.bins import import_bins
from tests.server.crossroads import lonlat
from tests.server.events import lift_event
from tests.server.test_bins import T0, registry, town
from tests.server.test_street_level_ingest import TAG, TRUTH, _drive, _household, _inbox, _names


def _purge(tmp_path: Path, database_url: str, engine: Engine, household: bool = False, **settings: Any) -> Any:
    config = load_settings(env={}, data_dir=tmp_path / "data", database_url=database_url,
                           household_level=household, retention_days=3650, **settings)
    with sessionmaker(engine)() as session, session.begin():
        return purge_expired(session, EvidenceStore(config.evidence_path, 2**20), config)


def _figures(engine: Engine) -> tuple[Any, ...]:
    with Session(engine) as session:
        days = sorted((d.day, d.street_id, d.stream, d.lifts, d.contaminated)
                      for d in session.scalars(select(StreetDay)))
        quality = sorted(tuple(getattr(q, c.name) for c in MatchQualityDay.__table__.columns)
                         for q in session.scalars(select(MatchQualityDay)))
    return days, quality


def _lifts(engine: Engine) -> list[Lift]:
    with Session(engine) as session:
        return list(session.scalars(select(Lift).order_by(Lift.truck_id, Lift.sequence)))


def _town_with_bin(tmp_path: Path, database_url: str) -> tuple[Engine, dict[str, int]]:
    engine, streets, _ = town(database_url)
    with Session(engine) as session, session.begin():
        import_bins(session, registry(tmp_path, f"tag;address\n{TAG};99999_a001_00003\n"))
    return engine, streets


def test_the_purge_drops_the_tags_and_addresses_stored_before_and_keeps_the_streets(
        tmp_path: Path, database_url: str) -> None:
    engine, streets = _town_with_bin(tmp_path, database_url)
    household = _inbox(tmp_path, database_url, engine, True, household=True)
    _drive(engine, household, "benne-01", 7)
    _drive(engine, household, "benne-02", 7, day=40)  # another month: another partition on PostgreSQL
    before, figures = _lifts(engine), _figures(engine)
    assert sum(lift.address_id is not None for lift in before) == 14 and before[3].bin_id == TAG
    # Household level on: nothing to drop.
    assert _purge(tmp_path, database_url, engine, household=True).lift_tags == 0
    assert [_household(lift) for lift in _lifts(engine)] == [_household(lift) for lift in before]

    report = _purge(tmp_path, database_url, engine)
    after = _lifts(engine)
    assert report.lift_tags == 14 and "14 lift tags and addresses" in report.summary()
    assert [_household(lift) for lift in after] == [(None, None, None)] * 14
    assert _names(streets, after) == TRUTH * 2
    assert [lift.registry_placed for lift in after] == [lift.registry_placed for lift in before]
    assert [lift.registry_placed for lift in after][:7] == [k == 3 for k in range(7)]
    assert [(lift.lat, lift.lon, lift.street_confidence) for lift in after] == \
        [(lift.lat, lift.lon, lift.street_confidence) for lift in before]
    assert all(lift.match_confidence == lift.street_confidence for lift in after), "the street's, as at ingest"
    assert _figures(engine) == figures, "street figures and data-quality tenths do not move"
    with Session(engine) as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "retention.purge")).one()
    assert "'lift_tags': 14" in (entry.detail or "")
    # The next pass finds nothing: no audit entry, nothing logged.
    assert _purge(tmp_path, database_url, engine).total == 0


def test_the_pass_is_capped_and_goes_on_at_the_next_one(tmp_path: Path, database_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    engine, _ = _town_with_bin(tmp_path, database_url)
    household = _inbox(tmp_path, database_url, engine, True, household=True)
    _drive(engine, household, "benne-01", 7)
    _drive(engine, household, "benne-02", 7, day=40)
    monkeypatch.setattr(retention, "STREET_LEVEL_PASS", 5)
    assert [_purge(tmp_path, database_url, engine).lift_tags for _ in range(2)] == [5, 5]
    assert sum(lift.bin_id is not None or lift.address_id is not None for lift in _lifts(engine)) == 4
    _drive(engine, household, "benne-03", 7, day=80)
    # The hourly task runs again at once while a run clears as many as it may: 11 = 5 + 5 + 1.
    config = load_settings(env={}, data_dir=tmp_path / "data", database_url=database_url, retention_days=3650)
    retention.RetentionTask(config, sessionmaker(engine), EvidenceStore(config.evidence_path, 2**20)).run_once()
    assert [_household(lift) for lift in _lifts(engine)] == [(None, None, None)] * 21
    with Session(engine) as session:
        details = list(session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "retention.purge")
                                       .order_by(AuditEntry.id)))
    assert [literal_eval(detail)["lift_tags"] for detail in details] == [5, 5, 5, 5, 1]


def test_a_provisional_lift_settled_after_the_switch_loses_its_tag_and_address(
        tmp_path: Path, database_url: str) -> None:
    """Stored provisional with the household level on, then settled on the same street by its
    truck's next lifts once it is off (confirmed in place: its columns are not rewritten): the pass
    drops its tag and address, whether it settles before the pass (benne-01) or after (benne-02)."""
    engine, streets = _town_with_bin(tmp_path, database_url)
    household = _inbox(tmp_path, database_url, engine, True, household=True)
    for day, truck in enumerate(("benne-01", "benne-02")):
        _drive(engine, household, truck, 7, day=day)
    with Session(engine) as session, session.begin():  # the truck's last two lifts, still waiting for its next ones
        session.execute(update(Lift).where(Lift.sequence >= 5).values(match_provisional=True))
    street_level = _inbox(tmp_path, database_url, engine, True, household=False)

    def settle(truck: str, day: int) -> None:
        messages = []
        for k, x in enumerate((100.0, 130.0, 160.0, 190.0), start=7):
            lon, lat = lonlat(x, 1.0)
            event = lift_event(truck, sequence=k, gps=(lat, lon), at=T0 + timedelta(days=day, seconds=20 * k))
            messages.append(MqttMessage(f"{street_level.settings.topic_prefix}/{truck}/lift",
                                        event.to_json().encode(), event.started_at + timedelta(seconds=10)))
        street_level.clock = lambda: messages[-1].received_at
        with sessionmaker(engine)() as session, session.begin():
            assert street_level.write(session, messages) == 0

    settle("benne-01", 0)
    first = _lifts(engine)
    assert [(lift.match_provisional, lift.address_id is not None) for lift in first[5:7]] == [(False, True)] * 2, \
        "confirmed in place, tag and address as stored"
    assert _purge(tmp_path, database_url, engine).lift_tags == 14
    figures = _figures(engine)
    settle("benne-02", 1)
    lifts = _lifts(engine)
    assert [_household(lift) for lift in lifts] == [(None, None, None)] * 22
    assert _names(streets, lifts) == (TRUTH + ["Rue A"] * 4) * 2
    assert not any(lift.match_provisional for lift in lifts if lift.sequence < 7)
    assert _figures(engine) != figures  # the new lifts counted, stored without tag or address
    assert _purge(tmp_path, database_url, engine).lift_tags == 0


def test_the_pass_reads_only_its_partial_index(tmp_path: Path, database_url: str) -> None:
    """Once done, an hourly pass costs an empty index's probe, not a scan of the lifts."""
    engine, _ = _town_with_bin(tmp_path, database_url)
    from server.ingest.street_level import HOUSEHOLD_WHERE

    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            plan = " ".join(str(row[-1]) for row in connection.execute(
                text(f"EXPLAIN QUERY PLAN SELECT id FROM lifts WHERE {HOUSEHOLD_WHERE} LIMIT 5")))
        else:
            connection.execute(text("SET enable_seqscan = off"))
            table = connection.execute(text(
                "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = to_regclass('lifts') LIMIT 1")).scalar_one()
            plan = " ".join(connection.execute(
                text(f"EXPLAIN SELECT id FROM {table} WHERE {HOUSEHOLD_WHERE} LIMIT 5")).scalars())
            # the partition's copy of ix_lifts_household, named by PostgreSQL
            partial = connection.execute(text(
                "SELECT indexname FROM pg_indexes WHERE tablename = :t "
                "AND indexdef LIKE '%WHERE%bin_id IS NOT NULL%'"), {"t": table}).scalar_one()
            plan = plan.replace(partial, "household")
    assert "household" in plan and "Seq Scan" not in plan, plan


def test_lift_letters_go_sooner_at_street_level(make_settings: Any) -> None:
    """A lift's letter holds the raw message (tag, fix): kept ``street_level_letter_days`` (30) while
    the household level is off, ``dead_letter_retention_days`` (90) once on; other letters 90 days."""
    from server.command_line import open_database

    now = datetime.now(UTC)
    for household, kept in ((True, {"lift-40", "lift-20", "status-40"}), (False, {"lift-20", "status-40"})):
        settings = make_settings(ingest_enabled=False, household_level=household)
        prefix = settings.topic_prefix
        with open_database(settings) as session:
            session.execute(DeadLetter.__table__.delete())
            for topic, days in (("lift", 40), ("lift", 20), ("status", 40)):
                session.add(DeadLetter(received_at=now - timedelta(days=days), topic=f"{prefix}/benne-01/{topic}",
                                       truck_id="benne-01", reason="unknown_truck", detail=f"{topic}-{days}",
                                       payload=TAG.encode(), payload_size=16))
            session.commit()
            report = purge_expired(session, EvidenceStore(settings.evidence_path, 2**20), settings)
            session.commit()
            assert set(session.scalars(select(DeadLetter.detail))) == kept, household
            assert report.dead_letters == 3 - len(kept)
