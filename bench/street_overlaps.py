"""Streets drawn on top of each other in a street file: pairs sharing a stretch of vertices, and pairs
running within a few metres of each other, before and after the import drops squares' outlines
(``server.streets.outlines``).

    .venv/bin/python bench/street_overlaps.py tests/fixtures/geodata/rennes-centre.geojson --commune Rennes
    .venv/bin/python bench/street_overlaps.py ../shared/geodata/rennes-streets.osm.geojson --commune Rennes
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections import Counter, defaultdict
from pathlib import Path

from server.streets.names import street_key
from server.streets.osm import StreetFileError, Way, polyline_length_m, read_ways
from server.streets.outlines import drop_outlines_on_streets

CELL_M = 20.0


def shared_stretches(ways: list[Way]) -> Counter[tuple[str, str]]:
    """Metres of identical vertex pairs (the same OSM nodes) per pair of streets."""
    streets: dict[frozenset, set[str]] = defaultdict(set)
    length: dict[frozenset, float] = {}
    for way in ways:
        for i in range(len(way.coords) - 1):
            edge = frozenset(way.node_keys[i : i + 2])
            if len(edge) == 2:
                streets[edge].add(way.name)
                length[edge] = polyline_length_m(way.coords[i : i + 2])
    pairs: Counter[tuple[str, str]] = Counter()
    for edge, names in streets.items():
        by_key = {street_key(name): name for name in sorted(names)}
        for a, b in itertools.combinations(sorted(by_key.values()), 2):
            pairs[(a, b)] += length[edge]
    return pairs


def running_close(ways: list[Way], tolerance_m: float) -> dict[tuple[str, str], float]:
    """Per pair of streets, metres of one within ``tolerance_m`` of the other (sampled every metre)."""
    lat0 = sum(c[1] for w in ways for c in w.coords) / sum(len(w.coords) for w in ways)
    kx, ky = math.cos(math.radians(lat0)) * 111_195.0, 111_195.0
    edges = [
        (street_key(w.name), w.name, a[0] * kx, a[1] * ky, b[0] * kx, b[1] * ky)
        for w in ways
        for a, b in itertools.pairwise(w.coords)
    ]
    grid: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, (_k, _n, x1, y1, x2, y2) in enumerate(edges):
        for cx in range(int(min(x1, x2) // CELL_M) - 1, int(max(x1, x2) // CELL_M) + 2):
            for cy in range(int(min(y1, y2) // CELL_M) - 1, int(max(y1, y2) // CELL_M) + 2):
                grid[(cx, cy)].append(i)
    close: Counter[tuple[str, str]] = Counter()
    for key, name, x1, y1, x2, y2 in edges:
        steps = max(1, int(math.hypot(x2 - x1, y2 - y1)))
        for s in range(steps):
            t = (s + 0.5) / steps
            px, py = x1 + t * (x2 - x1), y1 + t * (y2 - y1)
            near = {
                edges[j][1]
                for j in grid[(int(px // CELL_M), int(py // CELL_M))]
                if edges[j][0] != key and _distance(px, py, *edges[j][2:]) <= tolerance_m
            }
            for other in near:
                close[(name, other)] += math.hypot(x2 - x1, y2 - y1) / steps
    pairs: dict[tuple[str, str], float] = {}
    for (a, b), metres in close.items():
        pair = (min(a, b), max(a, b))
        pairs[pair] = max(pairs.get(pair, 0.0), metres)
    return pairs


def _distance(px: float, py: float, x1: float, y1: float, x2: float, y2: float) -> float:
    dx, dy = x2 - x1, y2 - y1
    t = max(0.0, min(1.0, ((px - x1) * dx + (py - y1) * dy) / (dx * dx + dy * dy or 1.0)))
    return math.hypot(px - x1 - t * dx, py - y1 - t * dy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--commune", help="commune of a GeoJSON's ways without one (as trivue streets import)")
    parser.add_argument("--tolerance", type=float, default=2.0, help="metres between two streets' lines")
    parser.add_argument("--min-length", type=float, default=10.0, help="metres of overlap to count a pair")
    args = parser.parse_args()
    try:
        ways = read_ways(args.file, args.commune)
    except StreetFileError as error:  # e.g. a GeoJSON without communes and no --commune
        parser.error(str(error))
    kept, report = drop_outlines_on_streets(ways)
    for label, network in (("as drawn", ways), ("after dropping outlines", kept)):
        shared = shared_stretches(network)
        close = running_close(network, args.tolerance)
        long_close = sorted(((m, p) for p, m in close.items() if m > args.min_length), reverse=True)
        print(
            f"{args.file.name}, {label}: {len(shared)} pairs of streets share a stretch of vertices "
            f"({sum(m > args.min_length for m in shared.values())} over {args.min_length:g} m); "
            f"{len(long_close)} pairs run within {args.tolerance:g} m of each other over {args.min_length:g} m"
        )
        for (a, b), metres in shared.most_common():
            print(f"   shared {metres:6.1f} m  {a} / {b}")
    print(
        f"dropped: {report.total_m:.0f} m of {len(report.dropped_m)} closed ways' outlines: "
        + ", ".join(f"{name} {m:.0f} m" for name, m in sorted(report.dropped_m.items(), key=lambda i: -i[1]))
    )


if __name__ == "__main__":
    main()
