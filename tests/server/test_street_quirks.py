"""Street and address import on the quirks of real data: one street spelled two ways in OSM, a
street whose OSM way lies in the neighbouring commune, address files in Latin-1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from server.streets.addresses import import_address_file
from server.streets.importer import import_street_file
from server.streets.locator import Locator
from server.streets.models import Address, Segment, Street
from server.streets.osm import degrees_per_metre
from tests.server.streets_db import database

BAN_HEADER = ("id;id_fantoir;numero;rep;nom_voie;code_postal;code_insee;nom_commune;code_insee_ancienne_commune;"
              "nom_ancienne_commune;x;y;lon;lat;type_position;alias;nom_ld;libelle_acheminement;nom_afnor;"
              "source_position;source_nom_voie;certification_commune;cad_parcelles")
LON0, LAT0 = -1.68, 48.11


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with database("sqlite", tmp_path, False) as engine:
        yield engine


def lonlat(east_m: float, north_m: float) -> tuple[float, float]:
    per_lon, per_lat = degrees_per_metre(LAT0)
    return round(LON0 + east_m * per_lon, 7), round(LAT0 + north_m * per_lat, 7)


def geojson(tmp_path: Path, ways: list[tuple[str, str, list[tuple[float, float]]]]) -> Path:
    """A street file of (name, commune, points in metres east and north of a corner of Rennes)."""
    features = [{"type": "Feature", "properties": {"highway": "residential", "name": name, "commune": commune},
                 "geometry": {"type": "LineString", "coordinates": [lonlat(*p) for p in points]}}
                for name, commune, points in ways]
    path = tmp_path / "streets.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False),
                    encoding="utf-8")
    return path


def ban(tmp_path: Path, rows: list[tuple[str, str, str, str, tuple[float, float]]],
        encoding: str = "utf-8") -> Path:
    """A BAN file of (id, numero, nom_voie, nom_commune, (east m, north m))."""
    lines = [BAN_HEADER]
    for ident, number, street, commune, point in rows:
        lon, lat = lonlat(*point)
        lines.append(f"{ident};;{number};;{street};35000;35238;{commune};;;0;0;{lon};{lat};entrée;;;;;;;;")
    path = tmp_path / "adresses.csv"
    path.write_text("\n".join(lines) + "\n", encoding=encoding)
    return path


def test_one_street_spelled_two_ways_is_one_street(engine: Engine, tmp_path: Path) -> None:
    # As in the real Rennes file: "Rue de Châteaugiron" for 2.6 km, "Rue de Chateaugiron" for its
    # last 300 m; the same street, which must not become two streets sharing one key.
    streets = geojson(tmp_path, [("Rue de l'Église", "Testville", [(0, 0), (200, 0)]),
                                 ("Rue de l’Eglise", "Testville", [(200, 0), (300, 0)]),
                                 ("rue de l'église", "Testville", [(300, 0), (320, 0)]),
                                 ("Rue Pasteur", "Testville", [(200, 0), (200, 150)])])
    addresses = ban(tmp_path, [("T_1_1", "1", "Rue de l'Eglise", "Testville", (50, 8)),
                               ("T_1_9", "9", "Rue de l’Église", "Testville", (280, 8))])
    with Session(engine) as session:
        report = import_street_file(session, streets)
        import_address_file(session, addresses)
        session.commit()
        named = dict(session.execute(select(Street.name, Street.id)).all())
        locator = Locator.from_session(session)
        linked = set(session.scalars(select(Address.street_id)))
    assert sorted(named) == ["Rue Pasteur", "Rue de l'Église"]  # the spelling covering most length
    assert (report.streets_added, report.segments) == (2, 4)
    assert linked == {named["Rue de l'Église"]}
    match = locator.locate(*reversed(lonlat(280, 3)))
    assert match is not None and match.street_id == named["Rue de l'Église"]
    assert match.address_label == "9 Rue de l’Église 35000 Testville"


def test_reimport_over_two_stored_spellings_keeps_one_street(engine: Engine, tmp_path: Path) -> None:
    # A database filled before streets were grouped by key holds both spellings.
    with Session(engine) as session:
        session.add_all([Street(id=5, commune="Testville", name="Rue de l’Eglise", name_key="rue eglise",
                                geometry="{}", length_m=1.0),
                         Street(id=7, commune="Testville", name="Rue de l'Église", name_key="rue eglise",
                                geometry="{}", length_m=1.0)])
        session.commit()
        streets = geojson(tmp_path, [("Rue de l'Église", "Testville", [(0, 0), (200, 0)]),
                                     ("Rue de l’Eglise", "Testville", [(200, 0), (300, 0)])])
        report = import_street_file(session, streets)
        session.commit()
        rows = session.execute(select(Street.id, Street.name)).all()
        segments = set(session.scalars(select(Segment.street_id)))
    assert [tuple(row) for row in rows] == [(7, "Rue de l'Église")]  # the one spelled as now keeps its id
    assert segments == {7} and (report.streets_updated, report.streets_removed) == (1, 1)


def test_address_whose_street_lies_in_the_next_commune(engine: Engine, tmp_path: Path) -> None:
    # A way drawn across the commune border belongs wholly to the commune holding its middle
    # vertex (pbf) or its `commune` property: the addresses of "Rue de la Gare" on the Villebis
    # side have no street of that name in Villebis, and Villebis's own Rue Victor Hugo runs 20 m
    # behind them. They belong to the Rue de la Gare 6 m away, not to the nearest Villebis street.
    streets = geojson(tmp_path, [("Rue de la Gare", "Testville", [(-200, 0), (100, 0)]),
                                 ("Rue Victor Hugo", "Villebis", [(0, 26), (100, 26)]),
                                 ("Rue de la Gare", "Autreville", [(2000, 0), (2300, 0)])])
    addresses = ban(tmp_path, [("V_1_2", "2", "Rue de la Gare", "Villebis", (50, 6)),
                               ("V_2_1", "1", "Rue Victor Hugo", "Villebis", (50, 20)),
                               ("V_3_1", "1", "Rue du Moulin", "Villebis", (60, 20))])
    with Session(engine) as session:
        import_street_file(session, streets)
        report = import_address_file(session, addresses)
        session.commit()
        linked = dict(session.execute(select(Address.label, Street.name + " / " + Street.commune)
                                      .join(Street, Street.id == Address.street_id)).all())
    assert linked == {"2 Rue de la Gare 35000 Villebis": "Rue de la Gare / Testville",
                      "1 Rue Victor Hugo 35000 Villebis": "Rue Victor Hugo / Villebis",
                      "1 Rue du Moulin 35000 Villebis": "Rue Victor Hugo / Villebis"}
    assert (report.links.by_name, report.links.by_similar_name, report.links.by_proximity) == (1, 1, 1)
