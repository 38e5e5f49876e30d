"""The dashboard's API routes and page routing, through HTTP, on SQLite and PostgreSQL.

Every figure is checked against an independent count over the raw ``lifts`` rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from server.app import create_app
from server.config import load_settings
from server.ingest.models import Lift
from server.streets.models import Street
from tests.dashboard.seed import PASSWORD, SeededCity, seed_city
from tests.server.conftest import database_url, postgres_server_url  # noqa: F401 - fixtures
from tests.server.streets_db import postgres_database

DASHBOARD_ROUTES = ("/api/me", "/api/network.geojson", "/api/error-rates?category=sac_ferme", "/api/alerts",
                    "/api/alerts/stream", "/api/data-quality")


class Seeded:
    def __init__(self, client: TestClient, sessions: sessionmaker[Any], city: SeededCity) -> None:
        self.client, self.sessions, self.city = client, sessions, city

    def login(self, user: str = "gestionnaire") -> None:
        self.client.post("/api/login", json={"name": user, "password": PASSWORD}).raise_for_status()

    def lifts(self) -> list[Lift]:
        with self.sessions() as db:
            return list(db.scalars(select(Lift)))


def _seeded(folder: Path, database_url: str, shared_dir: Path) -> Iterator[Seeded]:  # noqa: F811
    settings = load_settings(env={}, data_dir=folder, database_url=database_url, cookie_secure=False,
                             ingest_enabled=False)
    app = create_app(settings)
    sessions = app.state.ctx.sessions
    with sessions() as db:
        city = seed_city(db, shared_dir / "geodata" / "rennes-streets.osm.geojson", settings.zone)
    with TestClient(app) as client:
        yield Seeded(client, sessions, city)
    sessions.kw["bind"].dispose()


@pytest.fixture
def fresh_seeded(tmp_path: Path, database_url: str, shared_dir: Path) -> Iterator[Seeded]:  # noqa: F811
    """A city of its own, on an app just started: for a test that adds lifts."""
    yield from _seeded(tmp_path, database_url, shared_dir)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_city(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, shared_dir: Path,
                postgres_available: bool) -> Iterator[Seeded]:
    """One seeded city and app per database for the tests that only read it: seeding it (the Rennes
    streets, users, lifts) was most of each test's time. ``seeded`` checks that none of them wrote."""
    folder = tmp_path_factory.mktemp("dashboard-api")
    if request.param == "sqlite":
        yield from _seeded(folder, f"sqlite:///{folder / 'trivue.db'}", shared_dir)
        return
    if not postgres_available:
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    with postgres_database("trivue_dashboard") as url:  # its own: ``database_url`` empties the session's
        yield from _seeded(folder, url, shared_dir)


# What reading tests may add to the shared city: their logins (sessions, trusted addresses) and audit rows.
_OWN_ROWS = {"login_sessions", "login_trusted", "login_failures", "audit_log"}


def _row_counts(seeded: Seeded) -> dict[str, int]:
    from sqlalchemy import func

    from server.db import Base

    with seeded.sessions() as db:
        return {name: db.scalar(select(func.count()).select_from(table)) or 0
                for name, table in Base.metadata.tables.items() if name not in _OWN_ROWS}


@pytest.fixture
def seeded(shared_city: Seeded) -> Iterator[Seeded]:
    """The shared city, to a stranger: no cookie of an earlier test's login or language."""
    shared_city.client.cookies.clear()
    before = _row_counts(shared_city)
    yield shared_city
    shared_city.client.cookies.clear()
    assert _row_counts(shared_city) == before, "a test changed the shared city"


def test_routes_need_login_and_pages_send_strangers_to_the_login_page_and_back(seeded: Seeded) -> None:
    for path in DASHBOARD_ROUTES:
        assert seeded.client.get(path).status_code == 401, path
    pages = ["/carte", "/classement", "/flotte", "/alertes", "/qualite", "/rues/1"]
    for page in pages:
        response = seeded.client.get(page, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == f"/login?next={page.replace('/', '%2F')}"
    seeded.login("lecteur")
    for page in pages:
        page_html = seeded.client.get(page).text
        assert '<html lang="fr">' in page_html and "Qualité des données" in page_html


def test_me_names_the_user_and_role(seeded: Seeded) -> None:
    seeded.login("lecteur")
    assert seeded.client.get("/api/me").json() == {"name": "lecteur", "role": "viewer", "kind": "user",
                                                   "household_level": False,  # off by default
                                                   "communes": None}  # not limited to some communes


def test_error_rates_match_a_count_over_raw_lifts(seeded: Seeded) -> None:
    seeded.login("lecteur")
    rows = seeded.client.get("/api/error-rates", params={"category": "sac_ferme"}).json()["items"]
    expected: dict[int, list[int]] = {}
    for lift in seeded.lifts():
        hit = any(e["category"] == "sac_ferme" and e["severity"] != "info" for e in lift.errors)
        counts = expected.setdefault(lift.street_id, [0, 0])
        counts[0] += 1
        counts[1] += hit
    assert {r["street_id"]: [r["lifts"], r["contaminated"]] for r in rows} == expected
    for row in rows:
        assert row["ci_low"] <= row["rate"] <= row["ci_high"]


def test_data_quality_counts_and_confidence_histogram(seeded: Seeded) -> None:
    seeded.login("lecteur")
    quality = seeded.client.get("/api/data-quality").json()
    lifts = seeded.lifts()
    matched = [lift for lift in lifts if lift.street_id is not None]
    assert quality["lifts"] == len(lifts) and quality["matched"] == len(matched)
    assert quality["unmatched"] == quality["unmatched_no_gps"] + quality["unmatched_too_far"] == 0
    histogram = quality["confidence_histogram"]
    assert len(histogram) == 10 and histogram[0]["low"] == 0 and histogram[-1]["high"] == 1
    assert sum(b["lifts"] for b in histogram) == len(matched)
    for bucket in histogram:
        inside = [x for x in matched if bucket["low"] <= x.match_confidence < bucket["high"]
                  or (bucket["high"] == 1 and x.match_confidence == 1)]
        assert bucket["lifts"] == len(inside)


def test_network_has_every_street_and_answers_304_when_unchanged(seeded: Seeded) -> None:
    seeded.login("lecteur")
    response = seeded.client.get("/api/network.geojson")
    network = json.loads(response.text)
    with seeded.sessions() as db:
        streets = {s.id: s for s in db.scalars(select(Street))}
    assert {f["id"] for f in network["features"]} == set(streets)
    feature = network["features"][0]
    assert feature["geometry"]["type"] == "MultiLineString"
    assert feature["properties"]["name"] == streets[feature["id"]].name
    again = seeded.client.get("/api/network.geojson", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_alerts_list_only_alert_lifts_newest_first(fresh_seeded: Seeded) -> None:
    from tests.dashboard.seed import make_event

    seeded = fresh_seeded

    seeded.login("lecteur")  # one lift by one: near a household on a short street (docs/privacy.md)
    assert seeded.client.get("/api/alerts").status_code == 403
    seeded.login("gestionnaire")
    assert seeded.client.get("/api/alerts").json()["items"] == []  # the seed has no battery
    from datetime import UTC, datetime

    from server.ingest.aggregates import insert_lifts, lift_row
    from server.streets.locator import Locator
    from vision.rules import SortingRules

    street = seeded.city.streets["clean"][0]
    with seeded.sessions() as db:
        events = [make_event("benne-05", n, datetime.now(UTC), seeded.city.point_of[street], items,
                             SortingRules.load()) for n, items in enumerate(
            ({"battery": 1}, {"bottle": 1}, {"gas_cylinder": 1, "bag": 1}))]
        locator = Locator.from_session(db)
        insert_lifts(db, [lift_row(e, datetime.now(UTC), load_settings(env={}).zone, locator) for e in events])
        db.commit()
    body = seeded.client.get("/api/alerts").json()
    assert [a["event_id"] for a in body["items"]] == [str(events[2].event_id), str(events[0].event_id)]
    assert body["items"][0]["street_id"] == street and body["items"][0]["street_name"]
    # No lift id is settled yet (the app has just started): the stream sends the listed alerts again
    # (the page drops them) rather than miss one another writer commits later below them.
    assert body["cursor"] < min(a["id"] for a in body["items"])


def test_language_switch_sets_a_cookie_and_refuses_foreign_redirects(seeded: Seeded) -> None:
    seeded.login("lecteur")
    response = seeded.client.get("/langue/en", params={"next": "//evil.example/x"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/carte"
    assert '<html lang="en">' in seeded.client.get("/classement").text
    assert seeded.client.get("/langue/de", follow_redirects=False).status_code == 404
