"""Migration 0016 on a populated database: the data-quality histogram's stored lifts change tenth."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text

from server.db import make_engine
from server.migrate import alembic_config
from tests.server.test_migrations import migrator


def test_quality_street_confidence_migration_moves_the_stored_lifts_tenths(database_url: str) -> None:
    """0016: the histogram's lifts still stored move from their address confidence's tenth to their
    street confidence's, as a rebuild at the head counts them; a purged lift keeps its tenth; down again."""
    from sqlalchemy.orm import Session

    from server.ingest.quality import BIN_COLUMNS, rebuild_quality

    config = alembic_config()
    engine = make_engine(database_url)
    migrate = migrator(engine, config)
    # (event, day, street, match confidence: the address's, street confidence)
    rows = [("e-1", "2026-01-05", 42, 0.45, 0.97), ("e-2", "2026-01-05", 42, 0.3, None),
            ("e-3", "2026-01-05", 42, 1.0, 1.0), ("e-4", "2026-01-04", 42, 0.5, 0.95),
            ("e-5", "2026-01-04", 42, 0.25, 0.5), ("e-6", "2026-01-04", None, None, None)]
    query = text(f"SELECT day, {', '.join(BIN_COLUMNS)} FROM match_quality_days ORDER BY day")

    def tenths() -> list[tuple[str, list[int]]]:
        with engine.connect() as connection:
            return [(str(day), [i for i, n in enumerate(bins) for _ in range(n)])
                    for day, *bins in connection.execute(query)]

    try:
        migrate("upgrade", "0015")
        with engine.begin() as connection:
            for event_id, day, street, match, confidence in rows:
                connection.execute(text(
                    "INSERT INTO lifts (event_id, truck_id, sequence, stream, started_at, ended_at, day, received_at, "
                    "contaminated, has_alert, score, counts, errors, model_name, model_version, frames, street_id, "
                    "lat, lon, match_confidence, street_confidence) VALUES (:e, 'benne-01', 1, 'glass', "
                    ":start, :end, :day, :received, false, false, 1.0, '{}', "
                    "'[]', 'm', '1', 10, :street, 48.1, -1.68, :m, :c)"),
                    {"e": event_id, "day": day, "start": f"{day} 07:00:00", "end": f"{day} 07:00:08",
                     "received": f"{day} 07:00:09", "street": street, "m": match, "c": confidence})
            # The roll-up as ingest kept it until 0015 (match confidence), then the oldest lift purged.
            connection.execute(text(f"INSERT INTO match_quality_days (day, stream, lifts, matched, no_gps, "
                                    f"{', '.join(BIN_COLUMNS)}) VALUES ('2026-01-04', 'glass', 3, 2, 0, "
                                    "0, 0, 1, 0, 0, 1, 0, 0, 0, 0), ('2026-01-05', 'glass', 3, 3, 0, "
                                    "0, 0, 0, 1, 1, 0, 0, 0, 0, 1)"))
            connection.execute(text("DELETE FROM lifts WHERE event_id = 'e-4'"))
        before = tenths()
        assert before == [("2026-01-04", [2, 5]), ("2026-01-05", [3, 4, 9])]
        migrate("upgrade", "head")
        assert tenths() == [("2026-01-04", [5, 5]), ("2026-01-05", [3, 9, 9])], "e-4, purged, keeps its 5"
        with Session(engine) as session, session.begin():  # the whole day kept: as a rebuild counts it
            rebuild_quality(session, since=date(2026, 1, 5))
        assert tenths()[1] == ("2026-01-05", [3, 9, 9])
        migrate("downgrade", "0015")
        assert tenths() == before
    finally:
        engine.dispose()
