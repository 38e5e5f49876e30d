"""Street import and matching on the real Rennes network and the Monaco OSM extract."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from server.streets.importer import import_street_file
from server.streets.locator import Locator
from server.streets.models import Segment, Street
from server.streets.names import street_key
from server.streets.osm import STREET_HIGHWAYS, StreetFileError, polyline_length_m
from tests.server.streets_db import FIXTURES, database

EARTH_M = 6_371_008.8


@dataclass(frozen=True)
class Network:
    engine: Engine
    locator: Locator
    segments: list[tuple[int, int, str, list[tuple[float, float]]]]  # id, street id, name, coords
    names: dict[int, str]
    one_way: frozenset[int]  # segment ids
    pieces: np.ndarray  # every vertex pair of every segment: ax, ay, bx, by, street id; by street


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def rennes(request: pytest.FixtureRequest, shared_dir: Path, tmp_path_factory: pytest.TempPathFactory,
           postgres_available: bool) -> Iterator[Network]:
    path = shared_dir / "geodata" / "rennes-streets.osm.geojson"
    with database(request.param, tmp_path_factory.mktemp("rennes"), postgres_available) as engine:
        with Session(engine) as session:
            import_street_file(session, path, "Rennes")
            session.commit()
            locator = Locator.from_session(session)
            names = dict(session.execute(select(Street.id, Street.name)).all())
            rows = session.execute(select(Segment.id, Segment.street_id, Segment.geometry, Segment.oneway)).all()
        segments = [(sid, street, names[street], json.loads(geometry)["coordinates"])
                    for sid, street, geometry, _ in rows]
        pieces = np.concatenate([np.column_stack([np.asarray(c[:-1]), np.asarray(c[1:]), np.full(len(c) - 1, st)])
                                 for _sid, st, _name, c in segments])
        pieces = pieces[np.argsort(pieces[:, 4], kind="stable")]
        yield Network(engine, locator, segments, names, frozenset(row[0] for row in rows if row[3]), pieces)


# Independent geometry: spherical destination and a brute-force scan of every segment.

def destination(lon: float, lat: float, bearing_deg: float, distance_m: float) -> tuple[float, float]:
    phi, lam, theta, delta = math.radians(lat), math.radians(lon), math.radians(bearing_deg), distance_m / EARTH_M
    phi2 = math.asin(math.sin(phi) * math.cos(delta) + math.cos(phi) * math.sin(delta) * math.cos(theta))
    lam2 = lam + math.atan2(math.sin(theta) * math.sin(delta) * math.cos(phi),
                            math.cos(delta) - math.sin(phi) * math.sin(phi2))
    return math.degrees(lam2), math.degrees(phi2)


def bearing(a: tuple[float, float], b: tuple[float, float]) -> float:
    phi1, phi2 = math.radians(a[1]), math.radians(b[1])
    dlam = math.radians(b[0] - a[0])
    y = math.sin(dlam) * math.cos(phi2)
    x = math.cos(phi1) * math.sin(phi2) - math.sin(phi1) * math.cos(phi2) * math.cos(dlam)
    return math.degrees(math.atan2(y, x)) % 360


def street_distances(network: Network, lon: float, lat: float) -> dict[int, float]:
    """Distance from the point to every street, scanning all segments (no index)."""
    p = network.pieces
    kx, ky = math.cos(math.radians(lat)) * EARTH_M * math.pi / 180, EARTH_M * math.pi / 180
    ax, ay = (p[:, 0] - lon) * kx, (p[:, 1] - lat) * ky
    dx, dy = (p[:, 2] - lon) * kx - ax, (p[:, 3] - lat) * ky - ay
    t = np.clip(-(ax * dx + ay * dy) / np.maximum(dx * dx + dy * dy, 1e-12), 0, 1)
    d = np.hypot(ax + t * dx, ay + t * dy)
    streets, starts = np.unique(p[:, 4], return_index=True)
    return dict(zip(streets.astype(int).tolist(), np.minimum.reduceat(d, starts).tolist(), strict=True))


def test_import_keeps_every_named_street_and_its_length(rennes: Network, shared_dir: Path) -> None:
    raw = json.loads((shared_dir / "geodata" / "rennes-streets.osm.geojson").read_text())
    kept = [f for f in raw["features"] if f["geometry"]["type"] == "LineString"
            and f["properties"].get("highway") in STREET_HIGHWAYS and f["properties"].get("area") != "yes"]
    with Session(rennes.engine) as session:
        # One street per name key: the file spells three streets two ways ("Rue de Châteaugiron")
        assert session.scalar(select(func.count()).select_from(Street)) == len(
            {street_key(f["properties"]["name"]) for f in kept}) == len({f["properties"]["name"] for f in kept}) - 3
        total_m = session.scalar(select(func.sum(Street.length_m)))
        geometry = json.loads(session.scalar(select(Street.geometry).where(Street.name == "Rue de Paris")))
    expected_m = sum(polyline_length_m(map(tuple, f["geometry"]["coordinates"])) for f in kept)
    # Less the stretch of the one closed way drawn on a street's nodes (server.streets.outlines):
    # « Carrefour de la Cathédrale » over « Rue de la Monnaie », 58 m.
    outline_m = 58.3
    assert total_m == pytest.approx(expected_m - outline_m, abs=0.1)
    assert 450_000 < total_m < 560_000  # footways, cycleways, paths, steps are left out of 553 km
    assert geometry["type"] == "MultiLineString" and len(geometry["coordinates"]) >= 2


def test_segments_are_cut_at_every_junction(rennes: Network) -> None:
    vertices = Counter(tuple(c) for _s, _st, _n, coords in rennes.segments for c in coords)
    ends = Counter(tuple(c) for _s, _st, _n, coords in rennes.segments for c in (coords[0], coords[-1]))
    interior_shared = [c for _s, _st, _n, coords in rennes.segments for c in coords[1:-1]
                       if vertices[tuple(c)] > 1]
    assert interior_shared == []  # a vertex used by two segments is always an end of both
    assert sum(1 for count in ends.values() if count >= 3) > 1000  # real junctions, not just dead ends
    assert len(rennes.segments) > 4000


def test_points_beside_real_segments_match_their_street(rennes: Network) -> None:
    checked = 0
    for _sid, street, name, coords in rennes.segments[::5]:
        if polyline_length_m(map(tuple, coords)) < 40:
            continue
        a, b = coords[len(coords) // 2 - 1], coords[len(coords) // 2]
        mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
        lon, lat = destination(*mid, bearing(a, b) + 90, 4.0)
        others = street_distances(rennes, lon, lat)
        if min(d for s, d in others.items() if s != street) < 15:  # another street as close: ambiguous
            continue
        match = rennes.locator.locate(lat, lon)
        assert match is not None and match.street_name == name, (name, lat, lon)
        # 4 m from this piece, nearer where the street bends back towards the point
        assert match.distance_m == pytest.approx(others[street], abs=0.02)
        assert match.distance_m <= 4.02
        assert match.confidence > 0.9
        checked += 1
    assert checked > 300


def _corner_cases(network: Network) -> Iterator[tuple[int, float, int, float, float, float]]:
    """(street A, heading along A, street B, heading along B, lon, lat) at a right-angle junction of
    exactly two streets, the point 5 m from the junction into the corner between them."""
    ends: dict[tuple[float, float], list[tuple[int, tuple[float, float], tuple[float, float], int]]] = {}
    for sid, street, _name, coords in network.segments:
        ends.setdefault(tuple(coords[0]), []).append((street, tuple(coords[0]), tuple(coords[1]), sid))
        ends.setdefault(tuple(coords[-1]), []).append((street, tuple(coords[-1]), tuple(coords[-2]), sid))
    for node, arms in ends.items():
        streets = {arm[0] for arm in arms}
        # One-way arms are left out: driving them backwards rightly costs a little.
        if len(arms) != 2 or len(streets) != 2 or {arm[3] for arm in arms} & network.one_way:
            continue
        (sa, _, next_a, _), (sb, _, next_b, _) = arms
        ha, hb = bearing(node, next_a), bearing(node, next_b)
        if not 70 <= abs((ha - hb + 180) % 360 - 180) <= 110:
            continue
        corner_bearing = ha + ((hb - ha + 180) % 360 - 180) / 2
        lon, lat = destination(*node, corner_bearing, 5.0)
        yield sa, ha, sb, hb, lon, lat


def test_heading_chooses_between_crossing_streets_at_a_corner(rennes: Network) -> None:
    checked = 0
    for street_a, heading_a, street_b, heading_b, lon, lat in _corner_cases(rennes):
        near = {s: d for s, d in street_distances(rennes, lon, lat).items() if d < 20}
        if set(near) != {street_a, street_b}:
            continue
        # Driving away from the junction along A or B, or towards it: the street is the same.
        for heading, expected in ((heading_a, street_a), ((heading_a + 180) % 360, street_a),
                                  (heading_b, street_b), ((heading_b + 180) % 360, street_b)):
            match = rennes.locator.locate(lat, lon, heading_deg=heading)
            assert match is not None and match.street_id == expected, (rennes.names[expected], lat, lon)
        without = rennes.locator.locate(lat, lon)
        assert without is not None and without.confidence < 0.85  # two streets equally near
        checked += 1
    assert checked >= 20


def test_locate_agrees_with_a_brute_force_scan(rennes: Network) -> None:
    rng = np.random.default_rng(5)
    lats, lons = 48.085 + rng.random(300) * 0.045, -1.72 + rng.random(300) * 0.08
    matched = 0
    for lat, lon in zip(lats.tolist(), lons.tolist(), strict=True):
        distances = street_distances(rennes, lon, lat)
        street, nearest = min(distances.items(), key=lambda item: item[1])
        match = rennes.locator.locate(lat, lon)
        if nearest > rennes.locator.max_distance_m + rennes.locator.default_accuracy_m + 0.01:
            assert match is None
            continue
        assert match is not None
        assert match.distance_m == pytest.approx(nearest, abs=0.02)
        assert match.street_id == street or distances[match.street_id] - nearest < 0.02
        matched += 1
    assert 50 < matched < 300


def test_far_points_are_unmatched_unless_the_fix_is_that_poor(rennes: Network) -> None:
    assert rennes.locator.locate(48.8566, 2.3522) is None  # Paris
    rng = np.random.default_rng(11)
    for lat, lon in zip((48.09 + rng.random(400) * 0.03).tolist(), (-1.71 + rng.random(400) * 0.06).tolist(),
                        strict=True):
        nearest = min(street_distances(rennes, lon, lat).values())
        if 60 < nearest < 80:
            assert rennes.locator.locate(lat, lon) is None
            assert rennes.locator.locate(lat, lon, accuracy_m=5) is None
            widened = rennes.locator.locate(lat, lon, accuracy_m=60)
            assert widened is not None and widened.distance_m == pytest.approx(nearest, abs=0.05)
            assert widened.confidence < 0.3
            return
    pytest.fail("no point 60-80 m from every street in the sample")


def test_confidence_falls_with_distance_and_gps_accuracy(rennes: Network) -> None:
    name, coords = next((n, c) for _s, st, n, c in rennes.segments if n == "Rue de Paris" and len(c) >= 2
                        and polyline_length_m(map(tuple, c)) > 60)
    a, b = coords[0], coords[1]
    mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
    on = rennes.locator.locate(mid[1], mid[0])
    lon, lat = destination(*mid, bearing(a, b) + 90, 20.0)
    off = rennes.locator.locate(lat, lon)
    poor = rennes.locator.locate(mid[1], mid[0], accuracy_m=200)
    assert on is not None and off is not None and poor is not None
    assert on.street_name == name and on.confidence > 0.95
    assert off.distance_m == pytest.approx(20, abs=2) and off.confidence < on.confidence
    assert poor.confidence <= on.confidence


def _import(engine: Engine, path: Path, commune: str | None = "Rennes") -> dict[str, int]:
    with Session(engine) as session:
        report = import_street_file(session, path, commune)
        session.commit()
        assert report.segments >= report.ways
        return dict(session.execute(select(Street.name, Street.id)).all())


def test_reimport_replaces_streets_and_keeps_their_ids(tmp_path: Path) -> None:
    source = FIXTURES / "rennes-centre.geojson"
    with database("sqlite", tmp_path, False) as engine:
        first = _import(engine, source)
        assert _import(engine, source) == first
        data = json.loads(source.read_text())
        data["features"] = [f for f in data["features"] if f["properties"]["name"] != "Rue Hoche"]
        smaller = tmp_path / "smaller.geojson"
        smaller.write_text(json.dumps(data))
        after = _import(engine, smaller)
        assert "Rue Hoche" not in after
        assert after == {name: sid for name, sid in first.items() if name != "Rue Hoche"}
        with Session(engine) as session:
            orphans = session.scalar(select(func.count()).select_from(Segment).where(
                Segment.street_id.not_in(select(Street.id))))
        assert orphans == 0


def test_monaco_pbf_takes_communes_from_admin_boundaries(shared_dir: Path, tmp_path: Path) -> None:
    with database("sqlite", tmp_path, False) as engine, Session(engine) as session:
        report = import_street_file(session, shared_dir / "geodata" / "monaco.osm.pbf")
        session.commit()
        per_commune = dict(session.execute(select(Street.commune, func.count()).group_by(Street.commune))
                           .all())
        locator = Locator.from_session(session)
        beausoleil = session.execute(select(Segment.geometry).join(Street).where(
            Street.commune == "Beausoleil").order_by(Segment.length_m.desc()).limit(1)).scalar_one()
    assert set(report.communes) == {"Monaco", "Beausoleil", "Cap-d'Ail", "La Turbie"}
    assert per_commune["Monaco"] > 100 and per_commune["Beausoleil"] > 30
    assert report.segments > report.ways > 500
    coords = json.loads(beausoleil)["coordinates"]
    lon, lat = destination(*coords[len(coords) // 2], 0, 2.0)
    match = locator.locate(lat, lon)
    assert match is not None and match.commune == "Beausoleil"


def test_commune_option_overrides_boundaries(shared_dir: Path, tmp_path: Path) -> None:
    with database("sqlite", tmp_path, False) as engine, Session(engine) as session:
        report = import_street_file(session, shared_dir / "geodata" / "monaco.osm.pbf", "Monaco-test")
        assert report.communes == ("Monaco-test",)
        assert report.ways > 900  # the ways outside every assembled boundary are kept too


@pytest.mark.parametrize(("name", "content", "message"), [
    ("broken.geojson", '{"type": "FeatureCollection",\n "features": [\n{"type": ', "broken.geojson line 3"),
    ("list.geojson", "[1, 2]", "not a GeoJSON FeatureCollection"),
    ("empty.geojson", '{"type": "FeatureCollection", "features": []}', "no named street way"),
    ("bad.osm.pbf", "this is not protobuf", "bad.osm.pbf: cannot read OSM data"),
    ("streets.shp", "", "unknown street file type"),
])
def test_bad_street_files_name_the_file(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with database("sqlite", tmp_path, False) as engine, Session(engine) as session, \
            pytest.raises(StreetFileError, match=message.replace(".", r"\.")):
        import_street_file(session, path, "Rennes")


def test_geojson_without_commune_asks_for_the_option(tmp_path: Path) -> None:
    with database("sqlite", tmp_path, False) as engine, Session(engine) as session, \
            pytest.raises(StreetFileError, match="pass --commune"):
        import_street_file(session, FIXTURES / "rennes-centre.geojson", None)


def _synthetic(tmp_path: Path, ways: list[tuple[str, dict[str, str], list[tuple[float, float]]]]) -> Locator:
    """A Locator over hand-made ways (name, extra tags, (east m, north m) points near Rennes)."""
    features = []
    for name, tags, points in ways:
        coords = [at(east, north)[::-1] for east, north in points]
        features.append({"type": "Feature", "properties": {"highway": "residential", "name": name, **tags},
                         "geometry": {"type": "LineString", "coordinates": coords}})
    path = tmp_path / "synthetic.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with database("sqlite", tmp_path, False) as engine, Session(engine) as session:
        import_street_file(session, path, "Testville")
        session.commit()
        return Locator.from_session(session)


def at(east_m: float, north_m: float) -> tuple[float, float]:
    lon, lat = destination(*destination(-1.68, 48.11, 90, east_m), 0, north_m)
    return lat, lon


def test_heading_separates_parallel_one_way_streets(tmp_path: Path) -> None:
    # Two one-way service roads 12 m apart, eastbound to the north, westbound to the south.
    locator = _synthetic(tmp_path, [
        ("Contre-allée Nord", {"oneway": "yes"}, [(0, 6), (300, 6)]),
        ("Contre-allée Sud", {"oneway": "yes"}, [(300, -6), (0, -6)]),
    ])
    lat, lon = at(150, 0.5)  # a hair nearer the north road
    east, west = locator.locate(lat, lon, heading_deg=90), locator.locate(lat, lon, heading_deg=270)
    assert east is not None and east.street_name == "Contre-allée Nord"
    assert west is not None and west.street_name == "Contre-allée Sud"
    unknown = locator.locate(lat, lon)
    assert unknown is not None and unknown.street_name == "Contre-allée Nord" and unknown.confidence < 0.7


def test_heading_does_not_override_a_much_nearer_street(tmp_path: Path) -> None:
    locator = _synthetic(tmp_path, [
        ("Rue Est-Ouest", {}, [(0, 0), (300, 0)]),
        ("Rue Nord-Sud", {}, [(150, 25), (150, 200)]),
    ])
    lat, lon = at(150, 2)  # 2 m from the east-west street, 23 m below the end of the other
    match = locator.locate(lat, lon, heading_deg=0)  # driving north, as if on Rue Nord-Sud
    assert match is not None and match.street_name == "Rue Est-Ouest"
    near_end = locator.locate(*at(150, 14), heading_deg=0)  # 14 m from one, 11 m from the other
    assert near_end is not None and near_end.street_name == "Rue Nord-Sud"


OSM_XML = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="trivue tests">
  <node id="1" lat="48.1100" lon="-1.6800" version="1"/>
  <node id="2" lat="48.1100" lon="-1.6790" version="1"/>
  <node id="3" lat="48.1100" lon="-1.6780" version="1"/>
  <node id="4" lat="48.1110" lon="-1.6790" version="1"/>
  <node id="5" lat="48.1090" lon="-1.6790" version="1"/>
  <node id="6" lat="48.1090" lon="-1.6780" version="1"/>
  <way id="10" version="1"><nd ref="1"/><nd ref="2"/><nd ref="3"/>
    <tag k="highway" v="residential"/><tag k="name" v="Rue du Test"/><tag k="oneway" v="-1"/></way>
  <way id="11" version="1"><nd ref="4"/><nd ref="2"/><nd ref="5"/>
    <tag k="highway" v="tertiary"/><tag k="name" v="Avenue de l'Essai"/></way>
  <way id="12" version="1"><nd ref="5"/><nd ref="6"/>
    <tag k="highway" v="footway"/><tag k="name" v="Sentier"/></way>
</osm>
"""


def test_osm_xml_ways_are_cut_at_shared_nodes(tmp_path: Path) -> None:
    path = tmp_path / "tiny.osm"
    path.write_text(OSM_XML)
    with database("sqlite", tmp_path, False) as engine, Session(engine) as session:
        with pytest.raises(StreetFileError, match=r"tiny\.osm: no commune boundary .* pass --commune"):
            import_street_file(session, path, None)
        report = import_street_file(session, path, "Testville")
        rows = session.execute(select(Street.name, Segment.osm_way_id, Segment.oneway, Segment.length_m)
                               .join(Segment).order_by(Segment.osm_way_id, Segment.id)).all()
    assert (report.ways, report.segments) == (2, 4)  # the footway is left out
    assert [(r.name, r.osm_way_id, r.oneway) for r in rows] == [
        ("Rue du Test", 10, -1), ("Rue du Test", 10, -1), ("Avenue de l'Essai", 11, 0), ("Avenue de l'Essai", 11, 0)]
    # 0.001 degree of longitude at 48.11 N and of latitude
    assert [round(r.length_m, 1) for r in rows] == [74.2, 74.2, 111.2, 111.2]
