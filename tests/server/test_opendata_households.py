"""Open data counts households, not only lifts: a street is published only when it has at least
``opendata_min_households`` known addresses (real ones: BAN, not ``synthetic``), and a street with
none known is left out unless ``opendata_publish_without_addresses`` says to take the risk.

A dead end of one household whose bins go out twice a week is 12 lifts a month, over any ``k``:
its row would be that household's own sorting. Lifts go straight into ``street_days`` and its
roll-ups (the export reads nothing else), on SQLite and PostgreSQL (``rennes_db``).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from server.app import create_app
from server.config import ConfigError, load_settings
from server.ingest.models import StreetDay
from server.ingest.rollups import rebuild_rollups
from server.opendata.export import OpenDataQuery, Publication, publication
from server.opendata.package import datapackage
from server.streets.models import Street
from server.web.auth import create_token
from tests.server.conftest import RennesDatabase
from tests.server.opendata_homes import give_addresses
from trivue.cli import main

ROUNDS = [date(2026, month, day) for month in (10, 11) for day in (2, 6, 9, 13, 16, 20)]  # 2 a week, 6 a month
# street -> (real addresses, synthetic addresses); each street has 2 lifts a round: 12 a month, 24 a year
HOMES = {"alone": (1, 0), "four": (4, 0), "five": (5, 0), "unknown": (0, 0), "made_up": (0, 6)}


@pytest.fixture
def streets(rennes_db: RennesDatabase) -> dict[str, int]:
    with rennes_db.sessions() as session:
        ids = dict(zip(HOMES, session.scalars(select(Street.id).order_by(Street.id).limit(len(HOMES))), strict=True))
        session.execute(insert(StreetDay), [
            {"street_id": sid, "day": day, "stream": "recyclables", "lifts": 2, "alerts": 0, "score": 0.0,
             "contaminated": 2 if key == "alone" else 0} for key, sid in ids.items() for day in ROUNDS])
        rebuild_rollups(session)
        for key, (real, synthetic) in HOMES.items():
            give_addresses(session, ids[key], real)
            give_addresses(session, ids[key], synthetic, synthetic=True)
        session.commit()
    return ids


def _published(rennes_db: RennesDatabase, q: OpenDataQuery) -> set[tuple[int, str]]:
    with rennes_db.sessions() as session:
        return {(r["street_id"], r["period"]) for r in publication(session, q).records()}


def test_a_one_household_street_is_never_published_however_many_lifts(rennes_db: RennesDatabase,
                                                                      streets: dict[str, int]) -> None:
    five = streets["five"]
    assert _published(rennes_db, OpenDataQuery("month", 10)) == {(five, "2026-10"), (five, "2026-11")}
    assert _published(rennes_db, OpenDataQuery("year", 10)) == {(five, "2026")}
    with rennes_db.sessions() as session:
        pub = publication(session, OpenDataQuery("month", 10))
    # 5 streets x 2 months: "alone" and "four" too few households, "unknown" and "made_up" none known
    assert (pub.suppressed, pub.few_households, pub.no_addresses) == (8, 4, 4)

    # At 4 households the street of four is published; the lone household never is (floor 3).
    assert _published(rennes_db, OpenDataQuery("year", 10, households=4)) == {(five, "2026"), (streets["four"], "2026")}
    # Accepting the risk publishes the streets without a real address, on k alone; never the few.
    risky = OpenDataQuery("year", 10, publish_without_addresses=True)
    assert _published(rennes_db, risky) == {(five, "2026"), (streets["unknown"], "2026"), (streets["made_up"], "2026")}


def test_the_household_threshold_has_a_floor() -> None:
    with pytest.raises(ValueError, match="households: streets of fewer than 3 known addresses are never published, "
                                         "got 2"):
        OpenDataQuery("month", 10, households=2)
    with pytest.raises(ConfigError, match=r"opendata_min_households: .* greater than or equal to 3 \(got '2'\)"):
        load_settings(env={"TRIVUE_OPENDATA_MIN_HOUSEHOLDS": "2"})
    assert load_settings(env={}).opendata_min_households == 5
    assert load_settings(env={}).opendata_publish_without_addresses is False


def test_the_command_says_why_cells_were_left_out(rennes_db: RennesDatabase, streets: dict[str, int], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(rennes_db.settings.data_dir))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", rennes_db.settings.db_url)
    out = tmp_path / "export"
    assert main(["opendata", "export", "--out", str(out), "--until", "2026-11-30"]) == 0
    err = capsys.readouterr().err
    assert "2 rows (month, first day to 2026-11-30)" in err, err
    assert ("8 cells held back: 4 on streets of fewer than 5 known addresses, 4 on streets without a known address "
            "(opendata_publish_without_addresses: false), 0 under 10 lifts") in err, err
    described = json.loads((out / "datapackage.json").read_text(encoding="utf-8"))["description"]
    assert "moins de 5 adresses connues" in described and "aucune adresse connue" in described, described
    assert "8 cases retenues" in described, described

    assert main(["opendata", "export", "--out", str(out), "--until", "2026-11-30", "--households", "4",
                 "--publish-without-addresses"]) == 0
    err = capsys.readouterr().err
    assert "8 rows" in err and ("2 cells held back: 2 on streets of fewer than 4 known addresses, 0 on streets "
                                "without a known address (published at your risk: --publish-without-addresses)") in err
    assert main(["opendata", "export", "--out", str(out), "--households", "2"]) == 2
    assert capsys.readouterr().err.strip() == ("trivue opendata: error: --households: streets of fewer than 3 known "
                                               "addresses are never published, got 2")


def test_the_api_counts_households_by_the_settings(rennes_db: RennesDatabase, streets: dict[str, int]) -> None:
    with rennes_db.sessions() as session:
        token = create_token(session, "viewer", "portail open data")
        session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    for update, expected in (({}, {"five"}), ({"opendata_min_households": 4}, {"four", "five"}),
                             ({"opendata_publish_without_addresses": True}, {"five", "unknown", "made_up"})):
        settings = rennes_db.settings.model_copy(update={"ingest_enabled": False, **update})
        client = TestClient(create_app(settings, start_ingest=False))
        body = client.get("/api/opendata/streets.csv", params={"until": "2026-11-30"},
                          headers=headers)
        assert body.status_code == 200, body.text
        ids = {line.split(",")[0] for line in body.text.splitlines()[1:]}
        assert ids == {str(streets[key]) for key in expected}, update


def test_the_package_says_its_held_back_cells_in_proper_french() -> None:
    for held, words in ((0, "0 case retenue"), (1, "1 case retenue"), (2, "2 cases retenues")):
        pub = Publication([], held, few_households=held)
        described = datapackage(OpenDataQuery("month", 10), datetime(2026, 12, 1, tzinfo=UTC), pub=pub)["description"]
        assert f" Dans cet export, {words} : " in described, described
