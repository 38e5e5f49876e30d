"""A small made-up town for trajectory matching: Rue A (west-east) crossed by Rue B (south-north)
at the origin, and Rue C parallel to A 30 m north, also crossing B. Positions in metres."""

from __future__ import annotations

import json
import math

from server.streets.osm import Piece

LAT0, LON0 = 48.11, -1.68
KY = 111_195.0
KX = KY * math.cos(math.radians(LAT0))
STREETS = {1: ("Rue A", "Testville"), 2: ("Rue B", "Testville"), 3: ("Rue C", "Testville")}
# (street id, polyline in metres): every street cut at its junctions, as the importer does.
LINES = [
    (1, [(-300.0, 0.0), (0.0, 0.0)]), (1, [(0.0, 0.0), (300.0, 0.0)]),
    (2, [(0.0, -300.0), (0.0, 0.0)]), (2, [(0.0, 0.0), (0.0, 30.0)]), (2, [(0.0, 30.0), (0.0, 300.0)]),
    (3, [(-300.0, 30.0), (0.0, 30.0)]), (3, [(0.0, 30.0), (300.0, 30.0)]),
]


def lonlat(x: float, y: float) -> tuple[float, float]:
    return round(LON0 + x / KX, 8), round(LAT0 + y / KY, 8)


def segment_rows() -> list[tuple[int, int, str, int]]:
    """(segment id, street id, GeoJSON, oneway) rows, what ``Locator`` is built from."""
    return [(i + 1, street, json.dumps({"type": "LineString", "coordinates": [lonlat(x, y) for x, y in line]}), 0)
            for i, (street, line) in enumerate(LINES)]


def pieces() -> list[Piece]:
    """The same streets as ``import_streets`` takes them."""
    return [Piece(STREETS[street][0], STREETS[street][1], "residential", 0,
                  tuple(lonlat(x, y) for x, y in line), None) for street, line in LINES]
