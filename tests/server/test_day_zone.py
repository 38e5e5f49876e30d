"""The database records the zone of its collection days; a changed ``timezone`` is refused until
``trivue aggregates rebuild`` moves the days, and the moved figures equal an ingest in the new
zone, on SQLite and PostgreSQL. Days whose raw lifts were purged keep the old zone, said and recorded."""

from __future__ import annotations

import io
import logging
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from server.app import create_app
from server.db import make_engine
from server.ingest.aggregates import insert_lifts, lift_row
from server.ingest.day_rebuild import rebuild_days
from server.ingest.day_zone import ZONE, DayZoneMismatch, KeptDays, kept_days, settle_day_zone, stored_zone
from server.ingest.models import (
    DatabaseSetting,
    Lift,
    MatchQualityDay,
    StreetDay,
    StreetDayError,
    StreetPeriod,
    StreetPeriodError,
)
from server.migrate import upgrade_database
from tests.conftest import free_port
from tests.server.events import lift_event
from tests.server.test_aggregates_rebuild import COUNTS, STREAMS, StreetByLongitude, snapshot
from trivue.cli import main

PARIS, REUNION, MARTINIQUE = "Europe/Paris", "Indian/Reunion", "America/Martinique"
START = datetime(2026, 12, 27, 0, 0, tzinfo=UTC)  # eight days over a month's and a year's end


def events() -> list[Any]:
    """Lifts every 37 minutes round the clock: many near midnight in Paris, La Réunion and Martinique."""
    return [
        lift_event(
            f"benne-{i % 3}",
            stream=STREAMS[i % 4],
            counts=COUNTS[i % len(COUNTS)],
            sequence=i,
            gps=None if i % 7 == 0 else (48.11, -1.70 + (i % 9) * 0.0008),
            at=START + timedelta(minutes=37 * i),
        )
        for i in range(8 * 24 * 60 // 37)
    ]


def ingest(sessions: sessionmaker[Session], zone_name: str, chosen: list[Any]) -> None:
    from zoneinfo import ZoneInfo

    rows = [lift_row(e, e.started_at, ZoneInfo(zone_name), StreetByLongitude()) for e in chosen]
    with sessions() as session, session.begin():
        for chunk in range(0, len(rows), 50):
            insert_lifts(session, rows[chunk : chunk + 50])


def wipe(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        for table in (Lift, StreetDay, StreetDayError, StreetPeriod, StreetPeriodError, MatchQualityDay):
            session.execute(delete(table))


def days_of(sessions: sessionmaker[Session]) -> dict[int, date]:
    """Each lift's day, by its sequence (``events()`` draws new event ids at each call)."""
    with sessions() as session:
        return dict(session.execute(select(Lift.sequence, Lift.day)).tuples().all())


@pytest.fixture
def database(make_settings: Any) -> Any:
    settings = make_settings(timezone=PARIS)
    engine = make_engine(settings.db_url)
    upgrade_database(engine)
    yield settings, sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def test_a_changed_timezone_is_refused_until_the_days_are_rebuilt(database: Any, make_settings: Any) -> None:
    settings, sessions = database
    create_app(settings, start_ingest=False)  # a new database records the zone it starts with
    with sessions() as session:
        assert stored_zone(session) == PARIS
    ingest(sessions, PARIS, events())

    with pytest.raises(DayZoneMismatch) as refused:
        create_app(make_settings(timezone=REUNION), start_ingest=False)
    message = str(refused.value)
    assert message.startswith("timezone: ")
    assert f"{REUNION!r}" in message and f"{PARIS!r}" in message
    assert f"trivue aggregates rebuild --timezone {REUNION}" in message

    with sessions() as session, session.begin():
        report = rebuild_days(session, REUNION)
    assert (report.old_zone, report.new_zone, report.kept, report.kept_days) == (PARIS, REUNION, None, 0)
    assert report.lifts == len(events()) and 0 < report.moved < report.lifts
    create_app(make_settings(timezone=REUNION), start_ingest=False)  # starts now
    with pytest.raises(DayZoneMismatch):
        create_app(make_settings(timezone=PARIS), start_ingest=False)

    with sessions() as session:
        rebuilt, rebuilt_days = snapshot(session), days_of(sessions)
    wipe(sessions)
    ingest(sessions, REUNION, events())
    with sessions() as session:
        assert snapshot(session) == rebuilt, "the rebuilt figures are those of an ingest in the new zone"
    assert days_of(sessions) == rebuilt_days
    # Months and years moved too: the lifts of 2026-12-31 after 20:00 UTC are 2027's in La Réunion.
    assert any(key[2] == date(2027, 1, 1) and key[0] == "y" for key in rebuilt[2])


def test_days_whose_raw_lifts_were_purged_keep_the_old_zone(database: Any) -> None:
    _settings, sessions = database
    with sessions() as session:
        settle_day_zone(session, PARIS)
    ingest(sessions, PARIS, events())
    cutoff = datetime(2026, 12, 29, 15, 10, tzinfo=UTC)  # a purge cuts at an instant, inside a day
    with sessions() as session, session.begin():
        session.execute(delete(Lift).where(Lift.started_at < cutoff))
    with sessions() as session:
        before = snapshot(session)
        total = session.scalar(select(func.sum(StreetDay.lifts)))

    with sessions() as session, session.begin():
        report = rebuild_days(session, MARTINIQUE)
    first = date(2026, 12, 30)  # 2026-12-29 lost its morning: kept as it is, with the lifts left in it
    assert report.kept == KeptDays(first, PARIS) and report.kept_days == 3
    with sessions() as session:
        assert kept_days(session) == [KeptDays(first, PARIS)]
        assert stored_zone(session) == MARTINIQUE
        after = snapshot(session)
        assert session.scalar(select(func.sum(StreetDay.lifts))) == total, "every lift counted once"
    assert {k: v for k, v in after[0].items() if k[1] < first} == {k: v for k, v in before[0].items() if k[1] < first}

    # The days after the first moved one are what an ingest in Martinique gives of the lifts left.
    kept_lifts = [e for e in events() if e.started_at >= cutoff]
    wipe(sessions)
    ingest(sessions, MARTINIQUE, kept_lifts)
    with sessions() as session:
        fresh = snapshot(session)
    assert {k: v for k, v in after[0].items() if k[1] > first} == {k: v for k, v in fresh[0].items() if k[1] > first}
    assert {k: v for k, v in after[1].items() if k[1] > first} == {k: v for k, v in fresh[1].items() if k[1] > first}
    assert {k: v for k, v in after[4].items() if k[0] > first} == {k: v for k, v in fresh[4].items() if k[0] > first}


def test_an_upgraded_database_records_the_configured_zone(database: Any, caplog: pytest.LogCaptureFixture) -> None:
    settings, sessions = database
    ingest(sessions, PARIS, events()[:10])  # lifts stored before the zone was recorded (before 0014)
    with caplog.at_level(logging.WARNING, logger="server.ingest.day_zone"):
        create_app(settings, start_ingest=False)
    assert "records no zone" in caplog.text and f"trivue aggregates rebuild --timezone {PARIS}" in caplog.text
    with sessions() as session:
        assert session.get(DatabaseSetting, ZONE).value == PARIS


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    return main(argv)


def test_the_commands_refuse_and_rebuild(
    database: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, sessions = database
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", settings.db_url)
    monkeypatch.setenv("TRIVUE_TIMEZONE", PARIS)
    with sessions() as session:
        settle_day_zone(session, PARIS)
    ingest(sessions, PARIS, events())
    with sessions() as session, session.begin():
        session.execute(delete(Lift).where(Lift.started_at < datetime(2026, 12, 29, 15, 10, tzinfo=UTC)))
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)  # a start that got through ends at once
    monkeypatch.setenv("TRIVUE_TIMEZONE", REUNION)
    port = str(free_port())
    assert run(["server", "--no-ingest", "--port", port], monkeypatch) == 2
    err = capsys.readouterr().err
    assert f"trivue aggregates rebuild --timezone {REUNION}" in err and PARIS in err
    assert run(["dead-letters", "replay"], monkeypatch) == 2
    assert "timezone: " in capsys.readouterr().err

    assert run(["aggregates", "rebuild", "--timezone", MARTINIQUE], monkeypatch) == 2
    assert f"the settings' timezone is {REUNION!r}" in capsys.readouterr().err
    assert run(["aggregates", "rebuild", "--timezone", REUNION], monkeypatch) == 0
    out = capsys.readouterr().out
    assert f"recomputed in {REUNION} (were {PARIS})" in out
    assert f"3 days before 2026-12-30 keep {PARIS}: their raw lifts were deleted by retention" in out
    assert run(["server", "--no-ingest", "--port", port], monkeypatch) == 0
    assert run(["dead-letters", "replay"], monkeypatch) == 0
