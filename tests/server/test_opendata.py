"""Open data (``server.opendata``): k-suppression, no personal field, a valid Frictionless package.

Lifts on real Rennes streets go through the ingest's own functions (street matching, aggregates),
carrying a bin tag, a truck and a time of day: the export must show none of them, with the
household-level switch off or on. Figures are checked against counts made here from the events.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import frictionless
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from server.app import create_app
from server.audit import AuditEntry
from server.config import ConfigError, load_settings
from server.ingest.aggregates import insert_lifts, lift_row
from server.opendata.export import COLUMNS, OpenDataQuery, default_query, period_end, publication
from server.streets.locator import Locator
from server.web.auth import create_token
from server.web.reports import wilson
from tests.dashboard.seed import make_event
from tests.server.conftest import RennesDatabase
from tests.server.opendata_homes import give_addresses
from tests.server.streets_fixture import OnStreet, points_on_streets
from trivue.cli import main
from vision.rules import SortingRules
from vision.schema import LiftEvent, Stream

BIN = "BAC-SECRET-0042"
TRUCK = "benne-secrete-7"
DIRTY, CLEAN = {"bag": 1, "textile": 1}, {"bottle": 2}
# street key -> (stream, local day, lifts, contaminated); "nine" never reaches k = 10
PLAN = {
    "busy": [("recyclables", date(2026, 10, 3), 8, 3), ("recyclables", date(2026, 10, 20), 6, 2),
             ("glass", date(2026, 10, 7), 4, 0), ("recyclables", date(2026, 11, 4), 11, 1)],
    "ten": [("recyclables", date(2026, 10, 31), 10, 5)],
    "nine": [("recyclables", date(2026, 10, 12), 9, 9), ("recyclables", date(2026, 11, 12), 9, 9)],
}


def _events(on: OnStreet, stream: str, day: date, lifts: int, dirty: int, rules: SortingRules,
            start: int) -> list[LiftEvent]:
    events = []
    for i in range(lifts):
        # from 08:17 UTC, a minute apart: a time of day that must never leave in the export
        when = datetime(day.year, day.month, day.day, 8, 17 + i % 40, tzinfo=UTC)
        event = make_event(TRUCK, start + i, when, (on.lat, on.lon), DIRTY if i < dirty else CLEAN, rules)
        events.append(event.model_copy(update={"stream": Stream(stream), "bin_id": BIN}))
    return events


@pytest.fixture
def city(rennes_db: RennesDatabase) -> dict[str, OnStreet]:
    streets = dict(zip(PLAN, points_on_streets(rennes_db.sessions, len(PLAN)), strict=True))
    rules = SortingRules.load()
    rows = []
    with rennes_db.sessions() as session:
        locator = Locator.from_session(session)
        for key, cells in PLAN.items():
            for stream, day, lifts, dirty in cells:
                for event in _events(streets[key], stream, day, lifts, dirty, rules, len(rows)):
                    rows.append(lift_row(event, datetime.now(UTC), rennes_db.settings.zone, locator))
        assert {row["street_id"] for row in rows} == {s.street_id for s in streets.values()}
        insert_lifts(session, rows)
        for on in streets.values():  # households enough to publish (test_opendata_households.py)
            give_addresses(session, on.street_id, 5)
        session.commit()
    return streets


def test_cells_under_k_never_appear_and_figures_match_the_lifts(rennes_db: RennesDatabase,
                                                               city: dict[str, OnStreet]) -> None:
    with rennes_db.sessions() as session:
        pub = publication(session, OpenDataQuery("month", 10))
    cells = {(r["street_id"], r["period"], r["stream"]): r for r in pub.records()}
    busy, ten = city["busy"].street_id, city["ten"].street_id
    assert set(cells) == {(busy, "2026-10", "recyclables"), (busy, "2026-11", "recyclables"),
                          (ten, "2026-10", "recyclables")}
    assert city["nine"].street_id not in {r["street_id"] for r in pub.records()}
    assert pub.suppressed == 3  # busy's glass (4), nine's October and November (9 each)
    october = cells[(busy, "2026-10", "recyclables")]
    low, high = wilson(5, 14)
    assert (october["lifts"], october["contaminated_lifts"]) == (14, 5)
    assert october["rate"] == round(5 / 14, 4)
    assert (october["ci_low"], october["ci_high"]) == (round(low, 4), round(high, 4))
    assert october["street_name"] == city["busy"].name and october["commune"] == "Rennes"
    # bag and textile in every dirty lift: both categories, tied, in name order
    assert [october[f"top_error_{i}"] for i in (1, 2, 3)] == ["sac_ferme", "textile", None]
    assert cells[(ten, "2026-10", "recyclables")]["lifts"] == 10  # exactly k is published

    with rennes_db.sessions() as session:
        yearly = publication(session, OpenDataQuery("year", 10))
        raised = publication(session, OpenDataQuery("month", 12))
    assert {(r["street_id"], r["period"], r["stream"], r["lifts"]) for r in yearly.records()} == {
        (busy, "2026", "recyclables", 25), (ten, "2026", "recyclables", 10),
        (city["nine"].street_id, "2026", "recyclables", 18)}  # 9 + 9 in a year pass k
    assert {(r["street_id"], r["period"]) for r in raised.records()} == {(busy, "2026-10")}


def test_query_refuses_k_under_five_and_an_unknown_period() -> None:
    with pytest.raises(ValueError, match="k: cells under 5 lifts are never published, got 4"):
        OpenDataQuery("month", 4)
    with pytest.raises(ValueError, match="period: expected one of month, year, got 'week'"):
        OpenDataQuery("week")
    with pytest.raises(ConfigError, match=r"opendata_min_lifts: .* greater than or equal to 5 \(got '4'\)"):
        load_settings(env={"TRIVUE_OPENDATA_MIN_LIFTS": "4"})
    assert default_query(date(2026, 11, 15)).until == date(2026, 10, 31)
    assert default_query(date(2026, 3, 1), "year").until == date(2025, 12, 31)


def test_cli_export_is_a_valid_frictionless_package(rennes_db: RennesDatabase, city: dict[str, OnStreet],
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(rennes_db.settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", rennes_db.settings.db_url)
    out = tmp_path / "export"
    assert main(["opendata", "export", "--period", "month", "--out", str(out), "--until", "2026-11-30"]) == 0
    assert "3 rows (month, first day to 2026-11-30) written" in capsys.readouterr().err
    report = frictionless.validate(str(out / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    assert [task.stats["rows"] for task in report.tasks] == [3, 3]
    package = json.loads((out / "datapackage.json").read_text(encoding="utf-8"))
    assert {lic["name"] for lic in package["licenses"]} == {"etalab-2.0", "ODbL-1.0"}
    rows = list(csv.DictReader(io.StringIO((out / "streets.csv").read_text(encoding="utf-8"))))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 3
    features = json.loads((out / "streets.geojson").read_text(encoding="utf-8"))["features"]
    assert all(f["geometry"]["type"] in ("LineString", "MultiLineString") for f in features)

    # A package whose data break their schema is reported: the validation can fail.
    (out / "streets.csv").write_text((out / "streets.csv").read_text().replace(",Rennes,,2026-10,", ",Rennes,,oct,", 1))
    assert not frictionless.validate(str(out / "datapackage.json")).valid

    assert main(["opendata", "export", "--out", str(out), "--k", "4"]) == 2
    assert capsys.readouterr().err.strip() == ("trivue opendata: error: --k: cells under 5 lifts are never "
                                               "published, got 4")


@pytest.mark.parametrize("household_level", [False, True])
def test_api_publishes_no_personal_field_whatever_the_household_switch(
        rennes_db: RennesDatabase, city: dict[str, OnStreet], household_level: bool) -> None:
    settings = rennes_db.settings.model_copy(update={"household_level": household_level, "ingest_enabled": False})
    with rennes_db.sessions() as session:
        token = create_token(session, "viewer", "portail open data")
        session.commit()
    client = TestClient(create_app(settings, start_ingest=False))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/opendata/streets.csv").status_code == 401
    bodies = {}
    for kind in ("csv", "geojson"):
        response = client.get(f"/api/opendata/streets.{kind}", params={"until": "2026-11-30"}, headers=headers)
        assert response.status_code == 200, response.text
        bodies[kind] = response.text
    rows = list(csv.DictReader(io.StringIO(bodies["csv"])))
    assert tuple(rows[0]) == COLUMNS
    features = json.loads(bodies["geojson"])["features"]
    assert all(tuple(f["properties"]) == COLUMNS for f in features)
    assert {f["id"] for f in features} == {f"{r['street_id']}-{r['period']}-{r['stream']}" for r in rows}
    for text in bodies.values():
        for personal in (BIN, TRUCK, ":17", ":18", "T08", "T10"):  # the tag, the truck, any time of day
            assert personal not in text, personal
    assert str(city["nine"].street_id) not in {r["street_id"] for r in rows}
    with rennes_db.sessions() as session:
        audited = session.scalars(select(AuditEntry).where(AuditEntry.action == "opendata.export")).all()
    assert Counter(a.detail.split(",")[0] for a in audited) == {"csv": 1, "geojson": 1}
    assert client.get("/api/opendata/streets.csv", params={"period": "week"}, headers=headers).status_code == 422
    bad = client.get("/api/opendata/streets.csv", params={"since": "2026-11-01", "until": "2026-10-01"},
                     headers=headers)
    assert bad.status_code == 422 and "until 2026-10-01 is before since 2026-11-01" in bad.text


def test_no_cell_under_k_can_be_had_by_differencing_two_ranges(
        rennes_db: RennesDatabase, city: dict[str, OnStreet], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """September on "ten": 10 clean lifts on the 10th, one dirty lift on the 25th. September whole
    is 11 lifts; September to the 24th is 10 lifts, also over k: their difference would publish the
    one lift of the 25th, contamination included. Only whole, complete periods are published."""
    rules = SortingRules.load()
    with rennes_db.sessions() as session:
        locator = Locator.from_session(session)
        events = _events(city["ten"], "recyclables", date(2026, 9, 10), 10, 0, rules, 1000)
        events += _events(city["ten"], "recyclables", date(2026, 9, 25), 1, 1, rules, 1100)
        insert_lifts(session, [lift_row(e, datetime.now(UTC), rennes_db.settings.zone, locator) for e in events])
        token = create_token(session, "viewer", "curieux")
        session.commit()
    client = TestClient(create_app(rennes_db.settings.model_copy(update={"ingest_enabled": False}),
                                   start_ingest=False))
    headers = {"Authorization": f"Bearer {token}"}

    def get(**params: str) -> Any:
        return client.get("/api/opendata/streets.csv", params=params, headers=headers)

    whole = list(csv.DictReader(io.StringIO(get(since="2026-09-01", until="2026-09-30").text)))
    assert [(r["period"], r["lifts"]) for r in whole if r["street_id"] == str(city["ten"].street_id)] == [
        ("2026-09", "11")]
    cut = get(since="2026-09-01", until="2026-09-24")
    assert cut.status_code == 422, "a month cut short is published beside the whole month"
    assert "until 2026-09-24: the open data publishes whole months only, end on 2026-09-30" in cut.text
    late = get(since="2026-09-02", until="2026-09-30")
    assert late.status_code == 422 and "start on 2026-09-01" in late.text
    assert get(period="year", since="2026-01-01", until="2026-06-30").status_code == 422
    today = datetime.now(rennes_db.settings.zone).date()
    running = get(until=period_end(today, "month").isoformat())  # this month, still being collected
    assert running.status_code == 422 and "still being collected" in running.text

    monkeypatch.setenv("TRIVUE_DATA_DIR", str(rennes_db.settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", rennes_db.settings.db_url)
    capsys.readouterr()
    assert main(["opendata", "export", "--out", str(tmp_path / "x"), "--since", "2026-09-01",
                 "--until", "2026-09-24"]) == 2
    assert capsys.readouterr().err.strip() == ("trivue opendata: error: --until 2026-09-24: the open data publishes "
                                               "whole months only, end on 2026-09-30")


def test_cli_export_is_audited_and_an_empty_period_writes_nothing(
        rennes_db: RennesDatabase, city: dict[str, OnStreet], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(rennes_db.settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", rennes_db.settings.db_url)
    out = tmp_path / "export"
    assert main(["opendata", "export", "--out", str(out), "--until", "2026-11-30"]) == 0
    with rennes_db.sessions() as session:
        (entry,) = session.scalars(select(AuditEntry).where(AuditEntry.action == "opendata.export")).all()
    assert (entry.actor, entry.target) == ("cli", str(out)) and entry.detail.startswith("package, 3 rows")

    # No street reaches k in 2020: an empty GeoJSON table is not a valid Frictionless resource,
    # and there is nothing to upload. One line, nothing written, nothing audited.
    capsys.readouterr()
    empty = tmp_path / "empty"
    assert main(["opendata", "export", "--out", str(empty), "--since", "2020-01-01", "--until", "2020-12-31"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("trivue opendata: error: nothing to publish (month, 2020-01-01 to 2020-12-31)")
    assert err.count("\n") == 1 and not any(empty.iterdir())
    with rennes_db.sessions() as session:
        assert len(session.scalars(select(AuditEntry).where(AuditEntry.action == "opendata.export")).all()) == 1


def _store(rennes_db: RennesDatabase, events: list[LiftEvent]) -> None:
    """``events`` stored as lifts, matched to their streets."""
    with rennes_db.sessions() as session:
        locator = Locator.from_session(session)
        insert_lifts(session, [lift_row(e, datetime.now(UTC), rennes_db.settings.zone, locator) for e in events])
        session.commit()


def test_a_year_never_gives_away_the_months_left_out(rennes_db: RennesDatabase, city: dict[str, OnStreet]) -> None:
    """"ten": October's 10 lifts are published by month, August's 3 lifts (all in error) are not.
    Its year, 13 lifts, beside the monthly export gives August away by difference: 13 - 10 = 3
    lifts, 3 of them in error. A year is published only when the lifts of its months left out (at
    the same k) are none or k or more."""
    rules = SortingRules.load()
    _store(rennes_db, _events(city["ten"], "recyclables", date(2026, 8, 5), 3, 3, rules, 2000))
    with rennes_db.sessions() as session:
        monthly = publication(session, OpenDataQuery("month", 10))
        yearly = publication(session, OpenDataQuery("year", 10))
    published: Counter[tuple[int, str, str]] = Counter()
    for row in monthly.records():
        published[(row["street_id"], row["period"][:4], row["stream"])] += row["lifts"]
    for row in yearly.records():
        hidden = row["lifts"] - published[(row["street_id"], row["period"], row["stream"])]
        assert hidden == 0 or hidden >= 10, f"{row}: {hidden} lifts of months left out, by difference"
    # busy: October and November both published, nothing hidden; nine: 9 + 9 hidden, 18 >= k
    assert {(r["street_id"], r["period"], r["stream"], r["lifts"]) for r in yearly.records()} == {
        (city["busy"].street_id, "2026", "recyclables", 25), (city["nine"].street_id, "2026", "recyclables", 18)}
    assert yearly.suppressed == 2  # busy's glass (4 lifts) and ten's year (3 lifts hidden)


def test_a_year_at_a_higher_k_keeps_the_months_of_a_lower_one(rennes_db: RennesDatabase,
                                                              city: dict[str, OnStreet]) -> None:
    """Months published at k = 5 and years at k = 12 (k scaled to households, docs/opendata.md):
    "nine"'s October and November (9 each) are published, August's 4 lifts are not. Its year, 22
    lifts, minus the published 18 gives August away, although every month is under the year's k.
    Told the months' k, the year is held back."""
    rules = SortingRules.load()
    _store(rennes_db, _events(city["nine"], "recyclables", date(2026, 8, 5), 4, 4, rules, 3000))
    with rennes_db.sessions() as session:
        monthly = publication(session, OpenDataQuery("month", 5))
        yearly = publication(session, OpenDataQuery("year", 12, months_k=5))
        alone = publication(session, OpenDataQuery("year", 12))  # no monthly export beside it
    nine = city["nine"].street_id
    assert {(r["period"], r["lifts"]) for r in monthly.records() if r["street_id"] == nine} == {("2026-10", 9),
                                                                                           ("2026-11", 9)}
    assert nine not in {r["street_id"] for r in yearly.records()}
    assert {(r["period"], r["lifts"]) for r in alone.records() if r["street_id"] == nine} == {("2026", 22)}
    with pytest.raises(ValueError, match="months_k: cells under 5 lifts are never published, got 4"):
        OpenDataQuery("year", 12, months_k=4)
    with pytest.raises(ValueError, match="months_k: only with the period year"):
        OpenDataQuery("month", 12, months_k=10)


def test_export_names_each_commune_by_its_code_insee(rennes_db: RennesDatabase, city: dict[str, OnStreet],
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``code_insee`` beside ``commune``: from the BAN addresses linked to the street (Rennes 35238),
    empty when nothing says it (a street without addresses), described and checked by the package."""
    from server.streets.addresses import import_address_file
    from server.streets.models import Address
    from tests.server.streets_db import FIXTURES

    assert COLUMNS[COLUMNS.index("commune") + 1] == "code_insee"
    with rennes_db.sessions() as session:
        import_address_file(session, FIXTURES / "ban-rennes-centre.csv")
        session.commit()
        addressed = set(session.scalars(select(Address.street_id).where(Address.street_id.is_not(None))))
    hoche = next(on for on in points_on_streets(rennes_db.sessions, 40) if on.name == "Rue Hoche")
    assert hoche.street_id in addressed and city["busy"].street_id not in addressed
    with rennes_db.sessions() as session:
        locator, rules = Locator.from_session(session), SortingRules.load()
        insert_lifts(session, [lift_row(event, datetime.now(UTC), rennes_db.settings.zone, locator)
                               for event in _events(hoche, "recyclables", date(2026, 10, 9), 12, 4, rules, 500)])
        session.commit()
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(rennes_db.settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", rennes_db.settings.db_url)
    out = tmp_path / "export"
    # The BAN import replaced Rennes' addresses: busy and ten have none left, published at the risk taken.
    assert main(["opendata", "export", "--out", str(out), "--until", "2026-11-30", "--publish-without-addresses"]) == 0
    rows = list(csv.DictReader(io.StringIO((out / "streets.csv").read_text(encoding="utf-8"))))
    codes = {r["street_id"]: r["code_insee"] for r in rows}
    assert codes == {str(hoche.street_id): "35238", str(city["busy"].street_id): "", str(city["ten"].street_id): ""}
    features = json.loads((out / "streets.geojson").read_text(encoding="utf-8"))["features"]
    assert {str(f["properties"]["street_id"]): f["properties"]["code_insee"] or "" for f in features} == codes
    package = json.loads((out / "datapackage.json").read_text(encoding="utf-8"))
    field = next(f for f in package["resources"][0]["schema"]["fields"] if f["name"] == "code_insee")
    assert field["type"] == "string" and "INSEE" in field["title"]
    assert any("Base Adresse Nationale" in s["title"] for s in package["sources"])
    report = frictionless.validate(str(out / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    # A code that is no code INSEE breaks the schema.
    published = (out / "streets.csv").read_text(encoding="utf-8")
    (out / "streets.csv").write_text(published.replace(",Rennes,35238,", ",Rennes,3523,"))
    assert not frictionless.validate(str(out / "datapackage.json")).valid


def test_a_year_at_its_own_k_must_be_told_the_months_k(rennes_db: RennesDatabase, city: dict[str, OnStreet],
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Months exported at the default k (10), a year at ``--k 12``: "ten" has October's 10 lifts
    (published) and August's 3 (all in error, left out). Checked against the year's k, October counts
    as left out too, 13 lifts "left out" pass 12, and the year's 13 minus October's 10 would publish
    August. The command refuses the year's own k without the months' k, and publishes nothing that
    gives a month away once told it."""
    _store(rennes_db, _events(city["ten"], "recyclables", date(2026, 8, 5), 3, 3, SortingRules.load(), 2000))
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(rennes_db.settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", rennes_db.settings.db_url)
    months, year = tmp_path / "months", tmp_path / "year"
    assert main(["opendata", "export", "--out", str(months), "--until", "2026-11-30"]) == 0
    capsys.readouterr()
    assert main(["opendata", "export", "--period", "year", "--k", "12", "--out", str(year),
                 "--until", "2025-12-31"]) == 2  # a year that is over whatever day the test runs
    err = capsys.readouterr().err
    assert err.startswith("trivue opendata: error: --k 12 with --period year: say the k of the monthly export "
                          "published beside it with --months-k (the months' default is opendata_min_lifts, 10)")
    assert not year.exists()

    with rennes_db.sessions() as session:  # 2026 as the command exports it once December is over
        untold = publication(session, OpenDataQuery("year", 12))
        yearly = publication(session, OpenDataQuery("year", 12, months_k=10))
    assert (city["ten"].street_id, "2026", 13) in {(r["street_id"], r["period"], r["lifts"]) for r in untold.records()}
    published: Counter[tuple[str, str, str]] = Counter()
    for row in csv.DictReader(io.StringIO((months / "streets.csv").read_text(encoding="utf-8"))):
        published[(row["street_id"], row["period"][:4], row["stream"])] += int(row["lifts"])
    for row in yearly.records():
        hidden = row["lifts"] - published[(str(row["street_id"]), row["period"], row["stream"])]
        assert hidden == 0 or hidden >= 10, f"{row}: {hidden} lifts of months left out, by difference"
    assert city["ten"].street_id not in {r["street_id"] for r in yearly.records()}


class _HalfPastMidnightInParis(datetime):
    """1 December 2026, 00:30 in Paris: still 30 November in UTC."""

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        moment = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
        return moment.astimezone(tz) if tz is not None else moment.replace(tzinfo=None)


def test_the_file_is_named_after_the_local_day(rennes_db: RennesDatabase, city: dict[str, OnStreet],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Exported at 00:30 on 1 December (Paris), November complete: the file says the 1st, the day
    the collectivité exported it, not the 30th of a November that was then still being collected."""
    import server.opendata.api

    monkeypatch.setattr(server.opendata.api, "datetime", _HalfPastMidnightInParis)
    with rennes_db.sessions() as session:
        token = create_token(session, "viewer", "portail open data")
        session.commit()
    client = TestClient(create_app(rennes_db.settings.model_copy(update={"ingest_enabled": False}),
                                   start_ingest=False))
    response = client.get("/api/opendata/streets.csv", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert {r["period"] for r in csv.DictReader(io.StringIO(response.text))} == {"2026-10", "2026-11"}
    assert response.headers["content-disposition"] == 'attachment; filename="trivue-20261201-streets.csv"'
