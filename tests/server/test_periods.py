"""Period queries over the day/month/year roll-ups give exactly what summing every day gives.

``split`` must cover a period with each day once; ``street_stats`` (one SQL statement over the
roll-ups) must equal the street figures summed straight from ``street_days`` /
``street_day_errors`` for calendar and rolling periods, open ends, and every filter, on SQLite
and PostgreSQL; the JSON text the route sends must be that document.
"""

from __future__ import annotations

import calendar
import json
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from server.ingest.aggregates import insert_lifts, lift_row
from server.streets.locator import Locator
from server.web.periods import Units, split
from server.web.reports import StreetFilter, street_geojson_text, street_stats, street_stats_text
from tests.server.conftest import RennesDatabase
from tests.server.events import lift_event
from tests.server.street_figures import reference
from tests.server.streets_fixture import points_on_streets


def days_of(units: Units) -> set[date]:
    """Every day the units cover: the split must cover the period exactly once."""
    spans = [*units.days,
             *((first, last.replace(day=calendar.monthrange(last.year, last.month)[1]))
               for first, last in units.months),
             *((first, date(last.year, 12, 31)) for first, last in units.years)]
    return {first + timedelta(days=n) for first, last in spans for n in range((last - first).days + 1)}


@pytest.mark.parametrize(("since", "until"), [
    (date(2026, 6, 1), date(2026, 6, 30)), (date(2026, 6, 10), date(2026, 6, 10)),
    (date(2026, 6, 10), date(2026, 9, 20)), (date(2025, 1, 1), date(2026, 12, 31)),
    (date(2025, 3, 15), date(2026, 3, 14)), (date(2024, 12, 31), date(2027, 1, 1)),
    (date(2026, 2, 1), date(2026, 2, 28)), (date(2024, 2, 29), date(2024, 3, 1)),
    (date(2025, 1, 1), date(2025, 11, 30)), (date(2025, 2, 1), date(2025, 12, 31)),
])
def test_split_covers_each_day_once_with_few_units(since: date, until: date) -> None:
    units = split(since, until)
    covered = days_of(units)
    expected = {since + timedelta(days=i) for i in range((until - since).days + 1)}
    assert covered == expected
    total = sum((last - first).days + 1 for first, last in units.days) + sum(
        len(days_of(type(units)(months=[m]))) for m in units.months) + sum(
        len(days_of(type(units)(years=[y]))) for y in units.years)
    assert total == len(expected), "no day is counted twice"
    assert len(units.days) <= 2 and len(units.months) <= 2 and len(units.years) <= 1


def test_split_of_calendar_periods_reads_one_unit() -> None:
    assert split(date(2026, 1, 1), date(2026, 12, 31)).years == [(date(2026, 1, 1), date(2026, 1, 1))]
    month = split(date(2026, 4, 1), date(2026, 6, 30))
    assert (month.days, month.years, month.months) == ([], [], [(date(2026, 4, 1), date(2026, 6, 1))])
    everything = split(None, None)
    assert (everything.days, everything.months) == ([], []) and len(everything.years) == 1
    assert split(date(2026, 5, 2), date(2026, 5, 1)).days == []


COUNTS = [{"bottle": 2}, {"bag": 1, "bottle": 1}, {"battery": 1, "food": 2}, {"glass": 3}, {"textile": 1},
          {"bag": 2, "film": 1, "food": 1}, {"food": 1}, {}]


def test_period_sums_equal_the_daily_sums(rennes_db: RennesDatabase) -> None:
    settings, sessions = rennes_db.settings, rennes_db.sessions
    points = points_on_streets(sessions, 8)
    rng = random.Random(16)
    start = datetime(2025, 11, 20, 6, 0, tzinfo=UTC)
    events = []
    for i in range(500):
        gps = None if i % 13 == 0 else (points[i % 8].lat, points[i % 8].lon)
        events.append(lift_event(f"benne-{i % 3}", stream=rng.choice(["recyclables", "residual", "glass"]),
                                 counts=rng.choice(COUNTS), sequence=i, gps=gps,
                                 at=start + timedelta(days=rng.randrange(0, 450), hours=rng.randrange(0, 10))))
    with sessions() as session, session.begin():
        locator = Locator.from_session(session)
        rows = [lift_row(e, e.started_at, settings.zone, locator) for e in events]
        for chunk in range(0, len(rows), 90):
            insert_lifts(session, rows[chunk:chunk + 90])
    filters = [StreetFilter(), StreetFilter(date(2026, 1, 1), date(2026, 12, 31)),
               StreetFilter(date(2026, 3, 1), date(2026, 3, 31)), StreetFilter(date(2026, 4, 1), date(2026, 6, 30)),
               StreetFilter(date(2026, 3, 9), date(2026, 3, 15)), StreetFilter(date(2026, 5, 5), date(2026, 5, 5)),
               StreetFilter(date(2025, 12, 15), date(2027, 1, 10)), StreetFilter(since=date(2026, 2, 17)),
               StreetFilter(until=date(2026, 7, 3)), StreetFilter(date(2026, 1, 28), date(2026, 4, 2), "glass"),
               StreetFilter(date(2026, 1, 1), date(2026, 12, 31), "residual"), StreetFilter(stream="recyclables"),
               StreetFilter(date(2026, 2, 10), date(2026, 11, 5), commune="Rennes"),
               StreetFilter(commune="Nowhere"), StreetFilter(min_lifts=40),
               StreetFilter(date(2026, 1, 1), date(2026, 12, 31), category="verre"),
               StreetFilter(date(2025, 12, 20), date(2026, 2, 10), "residual", "Rennes", 2, "sac_ferme")]
    with sessions() as session:
        assert len(reference(session, StreetFilter())["streets"]) == 8
        for flt in filters:
            expected = reference(session, flt)
            assert street_stats(session, flt) == expected, flt
            assert json.loads(street_stats_text(session, flt)) == expected, flt
        yearly = reference(session, filters[1])
        assert yearly["streets"] and yearly["unmatched"]["lifts"] > 0
        assert any(s["top_errors"] for s in yearly["streets"])
        only_glass = street_stats(session, filters[-2])["streets"]
        assert 0 < len(only_glass) < len(yearly["streets"]), "the error filter keeps some streets, not all"


def test_street_list_follows_a_new_street_import(rennes_db: RennesDatabase, tmp_path: Any) -> None:
    """Names and geometries are encoded once per process, and encoded again after an import (here
    the same streets with one geometry moved: same counts, same ids), also from another process."""
    from server.streets.importer import import_street_file
    from tests.server.streets_fixture import RENNES_CENTRE

    settings, sessions = rennes_db.settings, rennes_db.sessions
    point = points_on_streets(sessions, 1)[0]
    event = lift_event(counts={"bag": 1}, gps=(point.lat, point.lon), at=datetime(2026, 5, 4, 7, tzinfo=UTC))
    with sessions() as session, session.begin():
        insert_lifts(session, [lift_row(event, event.started_at, settings.zone, Locator.from_session(session))])
    with sessions() as session:
        before = json.loads(street_geojson_text(session, StreetFilter()))["features"][0]
    assert before["id"] == point.street_id
    collection = json.loads(RENNES_CENTRE.read_text())
    for feature in collection["features"]:
        if feature["properties"].get("name") == point.name:
            feature["geometry"]["coordinates"] = [[x + 0.0001, y] for x, y in feature["geometry"]["coordinates"]]
    moved = tmp_path / "moved.geojson"
    moved.write_text(json.dumps(collection))
    with sessions() as session, session.begin():
        import_street_file(session, moved, commune="Rennes")
    with sessions() as session:
        after = json.loads(street_geojson_text(session, StreetFilter()))["features"][0]
    assert after["id"] == point.street_id and after["properties"] == before["properties"]
    assert after["geometry"] != before["geometry"]
    first = before["geometry"]["coordinates"][0][0]
    assert any(abs(x - first[0] - 0.0001) < 1e-9 and y == first[1]
               for line in after["geometry"]["coordinates"] for x, y in line)
