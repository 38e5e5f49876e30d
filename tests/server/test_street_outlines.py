"""A square's outline drawn on top of a street (``server.streets.outlines``): the street keeps its lifts.

The Rennes fixture's « Place de la Mairie » is a closed pedestrian way (its ``area=yes`` cut from the
extract) whose outline runs through the nodes of « Rue de Brilhac »; imported as a centre line, the
shared stretch existed twice and the path matching moved Rue de Brilhac's lifts onto the square.
Here a small made-up network: « Rue Droite » (two-way, west to east) with « Place Carrée » below it,
its north side on the street's nodes, and « Place Voisine » whose north side runs 1.5 m beside the
street on nodes of its own.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from server.streets.importer import import_street_file
from server.streets.osm import read_ways
from server.streets.outlines import drop_outlines_on_streets
from server.streets.trajectory import Fix, TrackLocator
from tests.server.streets_db import FIXTURES, create_schema

LAT0, LON0 = 48.11, -1.68
T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


def lonlat(x: float, y: float) -> list[float]:
    """Metres east / north of the origin as GeoJSON [lon, lat]."""
    return [round(LON0 + x / (111_195 * math.cos(math.radians(LAT0))), 7), round(LAT0 + y / 111_195, 7)]


def feature(name: str, points: list[tuple[float, float]], **tags: str) -> dict:
    return {
        "type": "Feature",
        "properties": {"name": name, "highway": tags.pop("highway", "residential"), **tags},
        "geometry": {"type": "LineString", "coordinates": [lonlat(x, y) for x, y in points]},
    }


def network(folder: Path, *extra: dict) -> Path:
    street = [(x, 0.0) for x in range(0, 401, 40)]  # a vertex every 40 m
    square = [(120, 0), (160, 0), (200, 0), (200, -60), (120, -60), (120, 0)]  # north side: the street's nodes
    beside = [(280, -1.5), (360, -1.5), (360, -50), (280, -50), (280, -1.5)]  # north side 1.5 m off the street
    features = [
        feature("Rue Droite", street, highway="tertiary"),
        feature("Place Carrée", square, highway="pedestrian"),
        feature("Place Voisine", beside, highway="pedestrian"),
        feature("Rue du Sud", [(160, -60), (160, -200)]),
        *extra,
    ]
    path = folder / "outline.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


def imported(folder: Path, path: Path) -> tuple[TrackLocator, dict[str, int], float]:
    engine = create_schema(create_engine(f"sqlite:///{folder / 'outline.db'}"))
    with Session(engine) as session:
        report = import_street_file(session, path, "Testville")
        session.commit()
        locator = TrackLocator.from_session(session)
    engine.dispose()
    return locator, {name: sid for sid, (name, _) in locator._streets.items()}, report.outline_m_dropped


def test_a_truck_going_round_a_square_puts_the_street_s_lifts_on_the_street(tmp_path: Path) -> None:
    locator, ids, dropped = imported(tmp_path, network(tmp_path))
    # Up Place Carrée's east side, west along its north side (which is Rue Droite), down its west side:
    # staying on the square's name saved two changes of street, so the street's lifts went to the square.
    east = [(200.0, y, 0.0) for y in (-50, -40, -30, -20)]
    north = [(x, 0.0, 270.0) for x in (190, 180, 170, 160, 150, 140, 130)]
    west = [(120.0, y, 180.0) for y in (-20, -30, -40, -50)]
    path = [
        Fix(*reversed(lonlat(x, y)), T0 + timedelta(seconds=20 * k), heading, 5.0)
        for k, (x, y, heading) in enumerate(east + north + west)
    ]
    expected = [ids["Place Carrée"]] * 4 + [ids["Rue Droite"]] * 7 + [ids["Place Carrée"]] * 4
    assert [m.street_id if m else None for m in locator.match_track(path)] == expected
    one = [locator.locate(f.lat, f.lon, heading_deg=f.heading_deg, accuracy_m=5.0) for f in path[4:11]]
    assert {m.street_id for m in one if m} == {ids["Rue Droite"]}
    assert all(m is not None and m.street_confidence > 0.8 for m in one), "no tie left with the outline"
    assert round(dropped) == 160, "80 m of each square's north side were on the street"


def test_a_truck_driving_along_the_street_past_both_squares_stays_on_it(tmp_path: Path) -> None:
    locator, ids, _ = imported(tmp_path, network(tmp_path))
    # A lift every 10 m along Rue Droite, fixes 2 m either side of its line.
    path = [
        Fix(*reversed(lonlat(x, 2.0 if k % 2 else -2.0)), T0 + timedelta(seconds=20 * k), 90.0, 5.0)
        for k, x in enumerate(range(10, 400, 10))
    ]
    matches = locator.match_track(path)
    assert [m.street_id if m else None for m in matches] == [ids["Rue Droite"]] * len(path)
    assert all(m is not None and not m.ambiguous for m in matches)


def test_the_square_keeps_its_own_sides(tmp_path: Path) -> None:
    locator, ids, _ = imported(tmp_path, network(tmp_path))
    east_side = locator.locate(*reversed(lonlat(199, -30)), accuracy_m=5.0)  # on Place Carrée's east side
    assert east_side is not None and east_side.street_id == ids["Place Carrée"]
    south_side = locator.locate(*reversed(lonlat(320, -49)), accuracy_m=5.0)
    assert south_side is not None and south_side.street_id == ids["Place Voisine"]
    # The square's remaining sides still meet the street: its corner nodes are junctions with it.
    ways, _ = drop_outlines_on_streets(read_ways(network(tmp_path), "Testville"))
    square = [w for w in ways if w.name == "Place Carrée"]
    assert len(square) == 1 and square[0].coords[0] == tuple(lonlat(200, 0))
    assert square[0].coords[-1] == tuple(lonlat(120, 0)), "one run from corner to corner, not cut at the ring's start"


def test_roundabouts_and_squares_over_squares_are_kept_whole(tmp_path: Path) -> None:
    # A roundabout (one-way ring) whose entry merges on its nodes is a centre line trucks drive;
    # two closed ways over each other give nothing to prefer: both stay, the path decides.
    ring = [(0, 100), (40, 100), (40, 140), (0, 140), (0, 100)]
    roundabout = feature("Rond-Point du Test", ring, junction="roundabout")
    entry = feature("Rue de l'Entrée", [(-80, 100), (0, 100), (40, 100)])
    square_a = feature("Place Haute", [(0, 300), (60, 300), (60, 360), (0, 360), (0, 300)], highway="pedestrian")
    square_b = feature("Marché Haut", [(60, 300), (0, 300), (0, 240), (60, 240), (60, 300)], highway="pedestrian")
    ways = read_ways(network(tmp_path, roundabout, entry, square_a, square_b), "Testville")
    kept, report = drop_outlines_on_streets(ways)
    names = {w.name for w in kept}
    assert {"Rond-Point du Test", "Place Haute", "Marché Haut"} <= names
    assert next(w for w in kept if w.name == "Rond-Point du Test").coords == tuple(tuple(lonlat(*xy)) for xy in ring)
    assert set(report.dropped_m) == {"Place Carrée", "Place Voisine"}


def test_the_rennes_fixture_s_rue_de_brilhac_is_no_longer_doubled(tmp_path: Path) -> None:
    locator, ids, dropped = imported(tmp_path, FIXTURES / "rennes-centre.geojson")
    # Midway along Rue de Brilhac's first edge, which Place de la Mairie's outline ran through.
    match = locator.locate(48.1117419, -1.6789951, heading_deg=90.0, accuracy_m=5.0)
    assert match is not None and match.street_name == "Rue de Brilhac" and match.street_confidence > 0.8
    assert "Place de la Mairie" in ids, "the square keeps its other sides"
    assert 300 < dropped < 450, f"{dropped:.0f} m of outlines: the fixture's squares on their streets"
