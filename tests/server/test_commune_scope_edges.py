"""Commune scopes at their edges: an empty list of communes (stored by hand: the CLI refuses one) is
a scope of no commune, never the whole territory, and a code INSEE typed in lower case or with
spaces (Corsica's 2A and 2B) is the code its streets carry; the streets' filters and the lifts' pages,
followed to the last, stay within the account's communes."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from server.streets.models import Street
from server.web.accounts import User
from server.web.auth import add_user
from tests.server.conftest import PASSWORD
from tests.server.test_commune_scope import DAY, Site, site, street_ids  # noqa: F401 - the fixture


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_empty_list_of_communes_sees_nothing(site: Site) -> None:  # noqa: F811
    with site.server.sessions() as session:
        add_user(session, "mairie-vide", PASSWORD, "admin", communes=["45234"])
        session.execute(update(User).where(User.name == "mairie-vide").values(communes=[]))
        session.commit()
    empty = site.cookie("mairie-vide")
    assert site.get("/api/me", empty).json()["communes"] == []
    for path in ("/api/streets", "/api/network.geojson", "/api/streets.geojson"):
        assert street_ids(site.get(path, empty)) == set(), path
    assert site.get("/api/error-rates", empty, category="verre").json()["items"] == []
    assert site.get("/api/lifts", empty).json()["items"] == []
    for street in (1, 3, 4):
        assert site.get(f"/api/streets/{street}", empty).status_code == 404
        assert site.get(f"/api/lifts/{site.lifts[street]}/evidence.jpg", empty).status_code == 404
    # An admin by role, yet refused every route not opened to scoped accounts.
    for path in ("/api/trucks", "/api/audit", "/api/data-quality"):
        assert site.get(path, empty).status_code == 403, path


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_corsican_code_typed_loosely_is_its_streets_code(site: Site) -> None:  # noqa: F811
    with site.server.sessions() as session:
        session.execute(update(Street).where(Street.id == 4).values(commune="Ajaccio", code_insee="2A004"))
        add_user(session, "mairie-ajaccio", PASSWORD, "manager", communes=[" 2a004 "])
        session.commit()
    ajaccio = site.cookie("mairie-ajaccio")
    assert site.get("/api/me", ajaccio).json()["communes"] == ["2A004"]
    assert street_ids(site.get("/api/streets", ajaccio, commune="ajaccio")) == {4}
    assert {item["event_id"] for item in site.get("/api/lifts", ajaccio).json()["items"]} == {site.lifts[4]}
    assert site.get("/api/streets/1", ajaccio).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_filters_and_pages_stay_within_the_communes(site: Site) -> None:  # noqa: F811
    mairie = site.cookie("mairie-orleans")
    period = {"since": DAY.isoformat(), "until": DAY.isoformat(), "stream": "recyclables", "category": "verre"}
    for path in ("/api/streets", "/api/streets.geojson"):
        assert street_ids(site.get(path, mairie, **period)) == {1, 2}, path
    # Page by page with the truck every commune shares: its lifts in Orléans only, to the last page.
    seen, cursor = [], None
    while True:
        page = site.get("/api/lifts", mairie, truck_id="T1", limit=1, **({"cursor": cursor} if cursor else {})).json()
        seen += [item["event_id"] for item in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert sorted(seen) == [site.lifts[1], site.lifts[2]]
    assert site.get("/api/lifts", mairie, street_id=4).json()["items"] == []
