"""The API's ``commune=`` finds the commune however it is typed, as ``trivue streets list --commune``
and address linking compare communes (case, accents, hyphens, ’ or '); a commune without streets is
a 422 naming those that have some, not an empty answer a typo cannot be told from."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import insert, select

from server.ingest.models import StreetDay, StreetDayError
from server.ingest.rollups import rebuild_rollups
from server.streets.importer import import_street_file
from server.streets.models import Street
from tests.server.conftest import Server
from tests.server.streets_db import FIXTURES

COMMUNE = "Cap-d'Ail"
DAY = date(2026, 11, 2)


@pytest.fixture
def served(make_settings: Callable[..., Any],
           run_server: Callable[..., Any]) -> Iterator[tuple[Server, dict[str, str]]]:
    with run_server(make_settings(ingest_enabled=False)) as server:
        with server.sessions() as session:
            import_street_file(session, FIXTURES / "rennes-centre.geojson", COMMUNE)
            ids = list(session.scalars(select(Street.id).order_by(Street.id).limit(3)))
            session.execute(insert(StreetDay), [
                {"street_id": sid, "day": DAY, "stream": "recyclables", "lifts": 4, "contaminated": 1, "alerts": 0,
                 "score": 1.0} for sid in ids])
            session.execute(insert(StreetDayError), [
                {"street_id": sid, "day": DAY, "stream": "recyclables", "category": "verre", "severity": "error",
                 "lifts": 1, "items": 1} for sid in ids])
            rebuild_rollups(session)  # the street routes read the month and year roll-ups
            session.commit()
        yield server, server.token("manager")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("typed", [COMMUNE, "cap d'ail", "Cap-d’Ail", "CAP-D-AIL", " Cap d'Ail "])
def test_the_commune_filter_finds_the_commune_however_typed(served: tuple[Server, dict[str, str]],
                                                             typed: str) -> None:
    server, auth = served
    streets = server.client.get("/api/streets", params={"commune": typed}, headers=auth)
    assert streets.status_code == 200, streets.text
    body = streets.json()["streets"]
    assert len(body) == 3 and {s["commune"] for s in body} == {COMMUNE}
    rates = server.client.get("/api/error-rates", params={"category": "verre", "commune": typed}, headers=auth)
    assert rates.status_code == 200 and len(rates.json()["items"]) == 3
    csv = server.client.get("/api/streets", params={"commune": typed, "format": "csv"}, headers=auth)
    assert csv.status_code == 200 and csv.text.count(COMMUNE) == 3


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_commune_without_streets_is_refused_naming_those_with_some(served: tuple[Server, dict[str, str]]) -> None:
    server, auth = served
    for path, params in (("/api/streets", {}), ("/api/streets.geojson", {}),
                         ("/api/error-rates", {"category": "verre"})):
        answer = server.client.get(path, params={**params, "commune": "Menton"}, headers=auth)
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["detail"] == ("commune 'Menton': no street is in it; the communes with streets: "
                                           "Cap-d'Ail")
    # An empty value is no filter, as the dashboard's « Toutes ».
    assert len(server.client.get("/api/streets", params={"commune": ""}, headers=auth).json()["streets"]) == 3
