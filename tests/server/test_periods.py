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
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from server.ingest.aggregates import insert_lifts, lift_row
from server.streets.locator import Locator
from server.web.periods import MONTH_IN_DAYS, Units, split
from server.web.reports import StreetFilter, street_geojson_text, street_stats, street_stats_text
from tests.server.conftest import RennesDatabase
from tests.server.events import lift_event
from tests.server.street_figures import reference
from tests.server.streets_fixture import points_on_streets

WINDOW = (date(2020, 1, 1), date(2030, 12, 31))  # open ends reach years 1 and 9999: count the days within


def _days(first: date, last: date) -> list[date]:
    first, last = max(first, WINDOW[0]), min(last, WINDOW[1])
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def added_days(units: Units) -> Counter[date]:
    """How many times the units add each day (within ``WINDOW``), before the subtractions."""
    spans = [*units.days,
             *((first, last.replace(day=calendar.monthrange(last.year, last.month)[1]))
               for first, last in units.months),
             *((first, date(last.year, 12, 31)) for first, last in units.years)]
    return Counter(day for first, last in spans for day in _days(first, last))


def covered(units: Units) -> set[date]:
    """The days the signed units sum: each added once, each subtracted one among those added."""
    added = added_days(units)
    assert set(added.values()) <= {1}, "no day is added twice"
    subtracted = Counter(day for first, last in units.minus_days for day in _days(first, last))
    assert set(subtracted.values()) <= {1}, "no day is subtracted twice"
    assert set(subtracted) <= set(added), "only days of the months read whole are subtracted"
    return set(added) - set(subtracted)


def period_days(since: date | None, until: date | None) -> set[date]:
    return set(_days(since or date.min, until or date.max))


def day_rows(units: Units) -> int:
    """Days read one by one, added or subtracted: what a period costs beyond its months and years."""
    return sum((last - first).days + 1 for first, last in [*units.days, *units.minus_days])


def test_split_covers_every_period_of_a_winter_exactly() -> None:
    """Every (since, until) from November 2023 to March 2024: a year boundary, a leap February,
    months of 30 and 31 days; the signed units are exactly the period, each partial month costs
    its days inside, or its days outside when read whole: only when the days inside outnumber those
    outside by more than a month's rows (``MONTH_IN_DAYS``)."""
    first, last = date(2023, 11, 1), date(2024, 3, 31)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    for i, since in enumerate(days):
        for until in days[i:]:
            units = split(since, until)
            assert covered(units) == period_days(since, until), (since, until)
            assert len(units.days) <= 2 and len(units.minus_days) <= 2 and len(units.months) <= 2
            assert not units.years
            cost = 0
            for month in {since.replace(day=1), until.replace(day=1)}:
                length = calendar.monthrange(month.year, month.month)[1]
                inside = len(period_days(since, until) & set(_days(month, month.replace(day=length))))
                if inside < length:
                    whole = any(a <= month <= b for a, b in units.months)
                    assert whole == (inside - (length - inside) > MONTH_IN_DAYS), (since, until, month)
                    cost += length - inside if whole else inside
            assert day_rows(units) == cost, (since, until)


@pytest.mark.parametrize(("since", "until"), [
    (date(2026, 6, 1), date(2026, 6, 30)), (date(2026, 6, 10), date(2026, 6, 10)),
    (date(2026, 6, 10), date(2026, 9, 20)), (date(2025, 1, 1), date(2026, 12, 31)),
    (date(2025, 3, 15), date(2026, 3, 14)), (date(2024, 12, 31), date(2027, 1, 1)),
    (date(2026, 2, 1), date(2026, 2, 28)), (date(2024, 2, 29), date(2024, 3, 1)),
    (date(2025, 1, 1), date(2025, 11, 30)), (date(2025, 2, 1), date(2025, 12, 31)),
    (date(2024, 1, 2), date(2025, 12, 30)), (date(2025, 12, 2), date(2027, 1, 30)),
    (None, None), (None, date(2026, 7, 20)), (None, date(2026, 7, 3)), (date(2026, 2, 5), None),
    (date(2026, 2, 17), None), (date(2030, 12, 2), None), (None, date(2020, 1, 30)),
])
def test_split_covers_each_day_once_with_few_units(since: date | None, until: date | None) -> None:
    units = split(since, until)
    assert covered(units) == period_days(since, until)
    assert len(units.days) <= 2 and len(units.months) <= 2 and len(units.years) <= 1
    assert len(units.minus_days) <= 2


def test_split_subtracts_the_lesser_part_of_an_edge_month() -> None:
    assert MONTH_IN_DAYS == 12  # the cases below are the months on either side of the threshold
    rolling = split(date(2025, 9, 5), date(2025, 12, 3))  # the last 90 days on December 3
    assert rolling == Units(days=[(date(2025, 12, 1), date(2025, 12, 3))],
                            months=[(date(2025, 9, 1), date(2025, 11, 1))],
                            minus_days=[(date(2025, 9, 1), date(2025, 9, 4))])
    inside = split(date(2026, 6, 2), date(2026, 6, 29))
    assert inside == Units(months=[(date(2026, 6, 1), date(2026, 6, 1))],
                           minus_days=[(date(2026, 6, 1), date(2026, 6, 1)), (date(2026, 6, 30), date(2026, 6, 30))])
    both = split(date(2026, 6, 5), date(2026, 9, 25))
    assert both == Units(months=[(date(2026, 6, 1), date(2026, 9, 1))],
                         minus_days=[(date(2026, 6, 1), date(2026, 6, 4)), (date(2026, 9, 26), date(2026, 9, 30))])
    assert split(date(2026, 6, 10), date(2026, 6, 20)) == Units(days=[(date(2026, 6, 10), date(2026, 6, 20))])
    assert split(date(2026, 6, 15), date(2026, 6, 30)).days == [(date(2026, 6, 15), date(2026, 6, 30))]  # 16 of 30
    assert split(date(2026, 6, 10), date(2026, 6, 30)).days == [(date(2026, 6, 10), date(2026, 6, 30))]  # 21 of 30
    assert split(date(2026, 6, 9), date(2026, 6, 30)).minus_days == [(date(2026, 6, 1), date(2026, 6, 8))]  # 22
    assert split(date(2026, 7, 1), date(2026, 7, 21)).days == [(date(2026, 7, 1), date(2026, 7, 21))]  # 21 of 31
    assert split(date(2026, 7, 1), date(2026, 7, 22)).minus_days == [(date(2026, 7, 23), date(2026, 7, 31))]
    # 21 days of February: 8 outside in a leap year, 7 otherwise; 20 days: 9 or 8 outside.
    assert split(date(2024, 2, 9), date(2024, 3, 10)).minus_days == [(date(2024, 2, 1), date(2024, 2, 8))]
    assert split(date(2023, 2, 8), date(2023, 3, 10)).minus_days == [(date(2023, 2, 1), date(2023, 2, 7))]
    assert split(date(2024, 2, 10), date(2024, 3, 10)).days[0] == (date(2024, 2, 10), date(2024, 2, 29))
    assert split(date(2023, 2, 9), date(2023, 3, 10)).days[0] == (date(2023, 2, 9), date(2023, 2, 28))
    since = split(date(2026, 2, 5), None)
    assert since.minus_days == [(date(2026, 2, 1), date(2026, 2, 4))] and since.months[0][0] == date(2026, 2, 1)
    assert since.years == [(date(2027, 1, 1), date(9999, 1, 1))]
    until = split(None, date(2026, 12, 25))  # December 26-31 subtracted, then year 2026 read whole
    assert until.minus_days == [(date(2026, 12, 26), date(2026, 12, 31))]
    assert until.years == [(date(1, 1, 1), date(2026, 1, 1))] and not until.months and not until.days
    newyear = split(date(2025, 12, 3), date(2026, 1, 28))  # December and January both read whole
    assert newyear == Units(months=[(date(2025, 12, 1), date(2025, 12, 1)), (date(2026, 1, 1), date(2026, 1, 1))],
                            minus_days=[(date(2025, 12, 1), date(2025, 12, 2)), (date(2026, 1, 29), date(2026, 1, 31))])


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
    with_glass = StreetFilter(date(2026, 1, 1), date(2026, 12, 31), category="verre")
    filters = [StreetFilter(), StreetFilter(date(2026, 1, 1), date(2026, 12, 31)),
               StreetFilter(date(2026, 3, 1), date(2026, 3, 31)), StreetFilter(date(2026, 4, 1), date(2026, 6, 30)),
               StreetFilter(date(2026, 3, 9), date(2026, 3, 15)), StreetFilter(date(2026, 5, 5), date(2026, 5, 5)),
               StreetFilter(date(2025, 12, 15), date(2027, 1, 10)), StreetFilter(since=date(2026, 2, 17)),
               StreetFilter(until=date(2026, 7, 3)), StreetFilter(date(2026, 1, 28), date(2026, 4, 2), "glass"),
               StreetFilter(date(2026, 1, 1), date(2026, 12, 31), "residual"), StreetFilter(stream="recyclables"),
               StreetFilter(date(2026, 2, 10), date(2026, 11, 5), commune="Rennes"),
               StreetFilter(commune="Nowhere"), StreetFilter(min_lifts=40),
               with_glass,
               StreetFilter(date(2025, 12, 20), date(2026, 2, 10), "residual", "Rennes", 2, "sac_ferme"),
               # Edge months read whole minus their days outside the period (``split``):
               StreetFilter(date(2026, 3, 5), date(2026, 6, 2)),  # the last 90 days on June 2
               StreetFilter(date(2026, 6, 2), date(2026, 6, 29)),  # inside June: June minus its first and last day
               StreetFilter(date(2026, 6, 5), date(2026, 9, 25)),  # both edges subtracted
               StreetFilter(since=date(2026, 2, 5)), StreetFilter(until=date(2026, 7, 26)),
               StreetFilter(date(2025, 12, 3), date(2026, 1, 28)),  # both edges, across the new year
               StreetFilter(date(2026, 3, 5), date(2026, 6, 2), "recyclables"),
               StreetFilter(date(2026, 6, 2), date(2026, 6, 29), "glass"),
               StreetFilter(date(2026, 3, 5), date(2026, 6, 2), commune="Rennes"),
               StreetFilter(date(2026, 3, 5), date(2026, 6, 2), category="biodechet"),
               StreetFilter(date(2026, 6, 5), date(2026, 9, 25), "residual", "Rennes", 2, "sac_ferme"),
               StreetFilter(date(2026, 3, 5), date(2026, 6, 2), min_lifts=0)]
    assert sum(bool(split(flt.since, flt.until).minus_days) for flt in filters) == 12, "subtractions are covered"
    with sessions() as session:
        assert len(reference(session, StreetFilter())["streets"]) == 8
        for flt in filters:
            expected = reference(session, flt)
            assert street_stats(session, flt) == expected, flt
            assert json.loads(street_stats_text(session, flt)) == expected, flt
        yearly = reference(session, filters[1])
        assert yearly["streets"] and yearly["unmatched"]["lifts"] > 0
        assert any(s["top_errors"] for s in yearly["streets"])
        only_glass = street_stats(session, with_glass)["streets"]
        assert 0 < len(only_glass) < len(yearly["streets"]), "the error filter keeps some streets, not all"


def test_a_street_or_error_entirely_subtracted_is_left_out(rennes_db: RennesDatabase) -> None:
    """June 2-29 is June minus June 1 and June 30: a street, an error category and unmatched lifts
    seen only on those two days sum to 0 and must not appear, not even with ``min_lifts=0``."""
    settings, sessions = rennes_db.settings, rennes_db.sessions
    first, second = points_on_streets(sessions, 2)

    def at(day: int) -> datetime:
        return datetime(2026, 6, day, 7, tzinfo=UTC)

    events = [lift_event(counts={"glass": 1}, gps=(first.lat, first.lon), at=at(1), sequence=0),
              lift_event(counts={"bag": 1}, gps=(second.lat, second.lon), at=at(15), sequence=1),
              lift_event(counts={"glass": 2}, gps=(second.lat, second.lon), at=at(30), sequence=2),
              lift_event(counts={"food": 1}, gps=None, at=at(30), sequence=3)]
    with sessions() as session, session.begin():
        locator = Locator.from_session(session)
        insert_lifts(session, [lift_row(e, e.started_at, settings.zone, locator) for e in events])
    june = StreetFilter(date(2026, 6, 2), date(2026, 6, 29), min_lifts=0)
    assert split(june.since, june.until).minus_days, "the month is read whole minus two days"
    with sessions() as session:
        found = street_stats(session, june)
        assert found == reference(session, june)
        assert [(s["street_id"], s["lifts"]) for s in found["streets"]] == [(second.street_id, 1)]
        assert found["streets"][0]["top_errors"] == [{"category": "sac_ferme", "lifts": 1, "items": 1}]
        assert found["unmatched"] == {"lifts": 0, "contaminated": 0}
        assert street_stats(session, StreetFilter(june.since, june.until, category="verre"))["streets"] == []
        for stream in ("recyclables", "glass"):  # one stream: the days subtracted from street_days
            flt = StreetFilter(june.since, june.until, stream, min_lifts=0)
            assert street_stats(session, flt) == reference(session, flt)
        whole = street_stats(session, StreetFilter(date(2026, 6, 1), date(2026, 6, 30)))
        assert {s["street_id"] for s in whole["streets"]} == {first.street_id, second.street_id}


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
