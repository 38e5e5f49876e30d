"""Reading street ways from OpenStreetMap (``.osm.pbf``, ``.osm``) and GeoJSON, and cutting them
into segments at junctions.

Only named ways a collection truck drives or stops in are kept (``STREET_HIGHWAYS``): footways,
cycleways, paths, steps, tracks, motorways and roads under construction would attract GPS fixes
that belong to the street beside them. Pedestrian streets and named service roads stay: trucks
collect in city-centre pedestrian streets and residential courtyards.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from server.streets.insee import code_insee

log = logging.getLogger(__name__)

STREET_HIGHWAYS = frozenset({
    "primary", "primary_link", "secondary", "secondary_link", "tertiary", "tertiary_link",
    "unclassified", "residential", "living_street", "pedestrian", "service", "road",
    "trunk", "trunk_link",
})

EARTH_RADIUS_M = 6_371_008.8


class StreetFileError(ValueError):
    """A street file that cannot be read; the message names the file and, where known, the place."""


@dataclass(frozen=True, slots=True)
class Way:
    """A named highway way as read from the file, before cutting at junctions."""

    name: str
    highway: str
    oneway: int
    commune: str | None
    coords: tuple[tuple[float, float], ...]  # (lon, lat)
    node_keys: tuple[Hashable, ...]  # OSM node ids, or rounded coordinates for GeoJSON
    osm_id: int | None = None
    insee: str | None = None  # the commune boundary's ``ref:INSEE`` (server.streets.insee)


@dataclass(frozen=True, slots=True)
class Piece:
    """A way cut at junctions: what becomes one ``Segment`` row."""

    name: str
    commune: str
    highway: str
    oneway: int
    coords: tuple[tuple[float, float], ...]
    osm_id: int | None
    insee: str | None = None

    @property
    def length_m(self) -> float:
        return polyline_length_m(self.coords)


def polyline_length_m(coords: Iterable[tuple[float, float]]) -> float:
    """Length along the earth's surface (haversine per vertex pair), metres.

    Plain ``math``: a street piece has a handful of vertices, where numpy's per-call cost was 40 %
    of importing a city's streets (1.1 of 2.7 s for Rennes)."""
    total = 0.0
    previous: tuple[float, float] | None = None
    for lon_deg, lat_deg in coords:
        lon, lat = math.radians(lon_deg), math.radians(lat_deg)
        if previous is not None:
            lon0, lat0 = previous
            a = math.sin((lat - lat0) / 2) ** 2 + math.cos(lat0) * math.cos(lat) * math.sin((lon - lon0) / 2) ** 2
            total += 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(a, 1.0)))
        previous = lon, lat
    return total


def oneway_of(tags: dict[str, str]) -> int:
    value = tags.get("oneway", "")
    if value in ("yes", "true", "1") or tags.get("junction") == "roundabout":
        return 1
    return -1 if value == "-1" else 0


def on_the_globe(lon: float, lat: float) -> bool:
    """A WGS84 position (NaN is not): off it means swapped or projected (Lambert 93) columns."""
    return -180 <= lon <= 180 and -90 <= lat <= 90


def keep_way(tags: dict[str, str]) -> bool:
    return bool(tags.get("name")) and tags.get("highway") in STREET_HIGHWAYS and tags.get("area") != "yes"


def read_ways(path: Path, commune: str | None = None) -> list[Way]:
    """Every street way of ``path``; the format follows the file name."""
    return read_street_file(path, commune)[0]


def read_street_file(path: Path, commune: str | None = None) -> tuple[list[Way], int]:
    """Every street way of ``path``, and how many features had no geometry (GeoJSON ``null``),
    so that the import report can say what it skipped instead of losing them silently."""
    name = path.name.lower()
    if not path.is_file():
        raise StreetFileError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    if name.endswith((".geojson", ".json")):
        without_geometry: list[int] = []
        ways = list(_geojson_ways(path, commune, without_geometry))
        return ways, len(without_geometry)
    if name.endswith((".osm.pbf", ".pbf", ".osm", ".osm.bz2", ".osm.gz")):
        return _osm_ways(path, commune), 0  # osmium drops nodes without a valid location itself
    raise StreetFileError(f"{path}: unknown street file type (expected .osm.pbf, .osm or .geojson)")


def _geojson_ways(path: Path, commune: str | None, without_geometry: list[int]) -> Iterator[Way]:
    """Ways of a FeatureCollection; indexes of features whose geometry is null go to ``without_geometry``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        where = f" line {error.lineno}" if isinstance(error, json.JSONDecodeError) else ""
        raise StreetFileError(f"{path}{where}: not valid GeoJSON ({error})") from error
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise StreetFileError(f"{path}: not a GeoJSON FeatureCollection")
    for index, feature in enumerate(data.get("features") or []):
        if not isinstance(feature, dict):
            raise StreetFileError(f"{path}: feature {index} is not a GeoJSON Feature object")
        props = feature.get("properties") or {}
        geometry = feature.get("geometry")
        if geometry is None:  # legal GeoJSON ("unlocated feature"), but nothing to import: count it
            without_geometry.append(index)
            continue
        if not isinstance(geometry, dict) or not isinstance(props, dict):
            raise StreetFileError(f"{path}: feature {_feature_label(index, feature)} has a malformed "
                                  "geometry or properties (expected JSON objects)")
        if not keep_way(props) or geometry.get("type") not in ("LineString", "MultiLineString"):
            continue
        lines = [geometry["coordinates"]] if geometry["type"] == "LineString" else geometry["coordinates"]
        feature_commune = commune or props.get("commune") or props.get("addr:city")
        if not feature_commune:
            raise StreetFileError(f"{path}: feature {index} ({props['name']}) has no commune: "
                                  "pass --commune or add a 'commune' property")
        for line in lines:
            try:
                coords = tuple((float(x), float(y)) for x, y, *_ in line)
            except (TypeError, ValueError) as error:
                raise StreetFileError(f"{path}: feature {index} has bad coordinates ({error})") from error
            # Refuse the whole file, as for unparsable coordinates: a feature off the globe means
            # swapped or projected (Lambert 93) columns, so the rest of the file is suspect too.
            for lon, lat in coords:
                if not on_the_globe(lon, lat):
                    raise StreetFileError(f"{path}: feature {_feature_label(index, feature)} has position "
                                          f"lon {lon:g}, lat {lat:g} outside WGS84 bounds")
            if len(coords) < 2:
                continue
            # No node ids in GeoJSON: ways meet where they share a vertex, so vertices are
            # compared at 1e-7 degrees (about a centimetre, OSM's own precision).
            keys = tuple((round(x * 1e7), round(y * 1e7)) for x, y in coords)
            osm_id = feature.get("id") if isinstance(feature.get("id"), int) else None
            yield Way(props["name"].strip(), props["highway"], oneway_of(props), feature_commune,
                      coords, keys, osm_id)


def _feature_label(index: int, feature: dict) -> str:
    """``3`` or ``3 (OSM way/123)``: the index always, the id when the file has one."""
    ident = feature.get("id") or (feature.get("properties") or {}).get("@id")
    return f"{index} ({ident})" if ident not in (None, "") else str(index)


def _osm_ways(path: Path, commune: str | None) -> list[Way]:
    import osmium

    ways: list[Way] = []
    boundaries: list[tuple[str, str | None, list[np.ndarray]]] = []
    # Only highway ways and boundary areas reach Python: a département extract has millions of
    # nodes and buildings (node locations and area assembly still see everything, in C++).
    processor = (osmium.FileProcessor(str(path))
                 .with_areas(osmium.filter.TagFilter(("boundary", "administrative")))
                 .with_filter(osmium.filter.KeyFilter("highway", "boundary")))
    try:
        for obj in processor:
            if isinstance(obj, osmium.osm.Way) and keep_way(dict(obj.tags)):
                nodes = [n for n in obj.nodes if n.location.valid()]
                if len(nodes) >= 2:
                    tags = dict(obj.tags)
                    ways.append(Way(tags["name"].strip(), tags["highway"], oneway_of(tags),
                                    commune, tuple((n.lon, n.lat) for n in nodes),
                                    tuple(n.ref for n in nodes), obj.id))
            elif (commune is None and isinstance(obj, osmium.osm.Area) and not obj.from_way()
                  and obj.tags.get("admin_level") == "8" and obj.tags.get("name")):
                # French communes' boundaries carry their code; a malformed one says nothing.
                insee = code_insee(obj.tags.get("ref:INSEE", ""))
                boundaries.append((obj.tags["name"], insee, _area_rings(obj)))
    except RuntimeError as error:
        raise StreetFileError(f"{path}: cannot read OSM data ({error})") from error
    if commune is not None:
        return ways
    return _assign_communes(path, ways, boundaries)


def _area_rings(area: object) -> list[np.ndarray]:
    rings = []
    for outer in area.outer_rings():  # type: ignore[attr-defined]
        rings.append(np.array([(n.lon, n.lat) for n in outer]))
        rings.extend(np.array([(n.lon, n.lat) for n in inner]) for inner in area.inner_rings(outer))  # type: ignore[attr-defined]
    return rings


def _assign_communes(path: Path, ways: list[Way],
                     boundaries: list[tuple[str, str | None, list[np.ndarray]]]) -> list[Way]:
    """Each way takes the commune (and its code) whose admin boundary holds its middle vertex."""
    if not boundaries:
        raise StreetFileError(f"{path}: no commune boundary (admin_level 8) in the file: pass --commune")
    middles = np.array([way.coords[len(way.coords) // 2] for way in ways]).reshape(-1, 2)
    owner: list[tuple[str, str | None] | None] = [None] * len(ways)
    for name, insee, rings in boundaries:
        inside = np.zeros(len(ways), dtype=bool)
        for ring in rings:  # even-odd over all rings handles holes
            inside ^= points_in_ring(middles, ring)
        for index in np.flatnonzero(inside):
            owner[index] = owner[index] or (name, insee)
    kept = [Way(w.name, w.highway, w.oneway, c[0], w.coords, w.node_keys, w.osm_id, c[1])
            for w, c in zip(ways, owner, strict=True) if c is not None]
    if len(kept) < len(ways):
        log.warning("%s: %d of %d street ways lie outside every commune boundary and are skipped",
                    path, len(ways) - len(kept), len(ways))
    return kept


def points_in_ring(points: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Ray casting: which of ``points`` (N x 2) lie inside the closed ``ring`` (M x 2)."""
    x, y = points[:, 0:1], points[:, 1:2]
    x1, y1 = ring[:-1, 0], ring[:-1, 1]
    x2, y2 = ring[1:, 0], ring[1:, 1]
    crosses = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return ((crosses & (x < x_at)).sum(axis=1) % 2) == 1


def split_at_junctions(ways: list[Way]) -> list[Piece]:
    """Cut every way at the vertices it shares with another street way (or with itself)."""
    uses = Counter(key for way in ways for key in way.node_keys)
    pieces: list[Piece] = []
    for way in ways:
        start = 0
        last = len(way.coords) - 1
        for index in range(1, last + 1):
            if index == last or uses[way.node_keys[index]] > 1:
                coords = way.coords[start:index + 1]
                if len(set(coords)) >= 2:
                    pieces.append(Piece(way.name, way.commune or "", way.highway, way.oneway,
                                        coords, way.osm_id, way.insee))
                start = index
    return pieces


def degrees_per_metre(lat: float) -> tuple[float, float]:
    """(longitude, latitude) degrees per metre at ``lat``: the local equirectangular scale."""
    lat_deg = 180.0 / (math.pi * EARTH_RADIUS_M)
    return lat_deg / max(math.cos(math.radians(lat)), 1e-6), lat_deg
