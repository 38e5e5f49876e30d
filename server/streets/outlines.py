"""Outlines of squares drawn on top of streets: one stretch of road carries one street.

A square or a pedestrian precinct is often mapped as a closed way around it (``highway=pedestrian``
with ``area=yes``, or a closed way with no ``area`` tag at all, as in extracts that keep only
``highway`` and ``name``). Its outline runs along the streets that border it, through their very
nodes or a metre beside them. Imported as a street centre line, the stretch shared with the
bordering street then exists twice, under two names, at the same place: a lift there is an exact
tie between the two, and the path matching settles it on whichever the route happens to favour
(the Rennes fixture's « Place de la Mairie » took lifts of « Rue de Brilhac »).

A truck drives the street's centre line, not the square's outline, so where a closed way runs on
(within ``OUTLINE_TOLERANCE_M`` of) another street's open way, the closed way's stretch is dropped
and the open way keeps it. The rest of the outline stays: the square keeps its own sides, its
addresses and its lifts. Two closed ways over each other, or two open ways, are left as they are:
nothing says which one the truck drove, the path matching decides and a tie is flagged as an
uncertain street (``street_confidence`` 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from server.streets.names import street_key
from server.streets.osm import Piece, Way, degrees_per_metre, split_at_junctions

# Within this distance of another street's line, an outline runs on it: OSM puts a square's outline
# on the bordering street's nodes or within a metre or two of them, while two real parallel streets,
# even a contre-allée, are several metres apart.
OUTLINE_TOLERANCE_M = 2.0
SAMPLE_M = 2.0  # an outline edge is on the line only if every point of it, every 2 m, is


@dataclass(frozen=True, slots=True)
class OutlineReport:
    """What was dropped: per square, the metres of outline that ran on another street."""

    dropped_m: dict[str, float]

    @property
    def total_m(self) -> float:
        return sum(self.dropped_m.values())


def is_outline_candidate(way: Way) -> bool:
    """A closed two-way way: a square's outline, a precinct, or a loop street (which runs on nothing).

    A one-way ring is a roundabout (``junction=roundabout`` reads as one-way): a centre line that
    trucks drive, whose entries merge into it within a metre or two over their last few metres."""
    return len(way.node_keys) >= 4 and way.node_keys[0] == way.node_keys[-1] and way.oneway == 0


def drop_outlines_on_streets(ways: list[Way]) -> tuple[list[Way], OutlineReport]:
    """``ways`` with the stretches of closed ways that run on another street's open way removed."""
    closed = [way for way in ways if is_outline_candidate(way)]
    if not closed:
        return ways, OutlineReport({})
    lines = [way for way in ways if not is_outline_candidate(way)]
    edges, edge_keys = _line_edges(lines)
    kept: list[Way] = []
    dropped: dict[str, float] = {}
    for way in ways:
        if not is_outline_candidate(way):
            kept.append(way)
            continue
        on_line = _edges_on_lines(way, edges, edge_keys)
        if not on_line.any():
            kept.append(way)
            continue
        coords = np.asarray(way.coords)
        lengths = _edge_lengths_m(coords)
        dropped[way.name] = dropped.get(way.name, 0.0) + float(lengths[on_line].sum())
        kept.extend(_remaining_runs(way, on_line))
    return kept, OutlineReport(dropped)


def _line_edges(lines: list[Way]) -> tuple[np.ndarray, list[str]]:
    """Every edge of the open ways as rows (lon1, lat1, lon2, lat2), with its street's name key."""
    rows: list[np.ndarray] = []
    keys: list[str] = []
    for way in lines:
        coords = np.asarray(way.coords)
        rows.append(np.hstack([coords[:-1], coords[1:]]))
        keys.extend([street_key(way.name)] * (len(coords) - 1))
    return (np.vstack(rows) if rows else np.zeros((0, 4))), keys


def _edges_on_lines(way: Way, edges: np.ndarray, edge_keys: list[str]) -> np.ndarray:
    """For each edge of the closed ``way``: does it run on an open way of another street?"""
    coords = np.asarray(way.coords)
    on_line = np.zeros(len(coords) - 1, dtype=bool)
    if not len(edges):
        return on_line
    lat0 = float(coords[:, 1].mean())
    dlon, dlat = degrees_per_metre(lat0)
    pad_lon, pad_lat = OUTLINE_TOLERANCE_M * dlon, OUTLINE_TOLERANCE_M * dlat
    near = (
        (np.minimum(edges[:, 0], edges[:, 2]) <= coords[:, 0].max() + pad_lon)
        & (np.maximum(edges[:, 0], edges[:, 2]) >= coords[:, 0].min() - pad_lon)
        & (np.minimum(edges[:, 1], edges[:, 3]) <= coords[:, 1].max() + pad_lat)
        & (np.maximum(edges[:, 1], edges[:, 3]) >= coords[:, 1].min() - pad_lat)
    )
    own = street_key(way.name)
    index = [i for i in np.flatnonzero(near) if edge_keys[i] != own]
    if not index:
        return on_line
    scale = np.array([1.0 / dlon, 1.0 / dlat])
    a = (edges[index, :2] - coords[0]) * scale  # other streets' edges, metres from the way's start
    b = (edges[index, 2:] - coords[0]) * scale
    local = (coords - coords[0]) * scale
    for i in range(len(local) - 1):
        steps = max(1, math.ceil(float(np.hypot(*(local[i + 1] - local[i]))) / SAMPLE_M))
        t = np.linspace(0.0, 1.0, steps + 1)[:, None]
        points = local[i] + t * (local[i + 1] - local[i])
        on_line[i] = bool((_distances(points, a, b).min(axis=1) <= OUTLINE_TOLERANCE_M).all())
    return on_line


def _distances(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance (metres) of each of ``points`` (P x 2) to each edge ``a``-``b`` (E x 2): P x E."""
    ab = b - a
    length2 = np.maximum((ab * ab).sum(axis=1), 1e-12)
    rel = points[:, None, :] - a[None, :, :]
    t = np.clip((rel * ab[None]).sum(axis=2) / length2, 0.0, 1.0)
    foot = a[None] + t[..., None] * ab[None]
    return np.hypot(*(points[:, None, :] - foot).transpose(2, 0, 1))


def _edge_lengths_m(coords: np.ndarray) -> np.ndarray:
    dlon, dlat = degrees_per_metre(float(coords[:, 1].mean()))
    return np.hypot(np.diff(coords[:, 0]) / dlon, np.diff(coords[:, 1]) / dlat)


def _remaining_runs(way: Way, on_line: np.ndarray) -> list[Way]:
    """The closed ``way`` without its edges ``on_line``, as open ways (one per run of kept edges).

    The ring is first turned to start at a dropped edge, so that a run of kept edges across the
    ring's first node stays one way instead of two."""
    count = len(on_line)
    first_dropped = int(np.flatnonzero(on_line)[0])
    order = [(first_dropped + k) % count for k in range(count)]
    runs: list[list[int]] = []
    for edge in order:
        if on_line[edge]:
            if runs and runs[-1]:
                runs.append([])
            continue
        if not runs:
            runs.append([])
        runs[-1].append(edge)
    pieces: list[Way] = []
    for run in (r for r in runs if r):
        vertices = [run[0]] + [edge + 1 for edge in run]
        pieces.append(
            replace(
                way, coords=tuple(way.coords[v] for v in vertices), node_keys=tuple(way.node_keys[v] for v in vertices)
            )
        )
    return pieces


def street_pieces(ways: list[Way]) -> tuple[list[Piece], OutlineReport]:
    """The segments a street file gives: outlines on streets dropped, then cut at junctions.

    ``trivue streets import`` and the simulator's network both read a file through this, so the
    simulated truth and the imported streets are the same lines."""
    kept, report = drop_outlines_on_streets(ways)
    return split_at_junctions(kept), report
