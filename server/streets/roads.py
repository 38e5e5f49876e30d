"""The street network as a graph of segments: how far a truck drives from one point to another.

Trajectory matching (``server.streets.trajectory``) asks, for two consecutive lifts, how long the
drive is between a point on one candidate segment and a point on another. Segments meet at
junction nodes (the importer cut the OSM ways there, ``server.streets.osm.split_at_junctions``);
distances between nodes come from a Dijkstra bounded to ``reach_m`` and are cached per node, so
a truck's round, which keeps to a neighbourhood, costs a few searches and then dictionary reads.

One-way streets are not enforced: a collection truck reverses into dead ends and the data's
``oneway`` tags are not always right; the heading term of the match covers the direction.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict

from server.streets.locator import SegmentEnds

Node = tuple[int, int]
REACH_M = 300.0  # farther than this between two lifts, the route no longer tells streets apart


class RoadGraph:
    """Segments between junction nodes; ``route_m`` is the drive between points on two segments."""

    def __init__(self, segments: dict[int, SegmentEnds], reach_m: float = REACH_M) -> None:
        self.segments = segments
        self.reach_m = reach_m
        self._out: dict[Node, list[tuple[Node, float]]] = defaultdict(list)
        for seg in segments.values():
            self._out[seg.start].append((seg.end, seg.length_m))
            self._out[seg.end].append((seg.start, seg.length_m))
        self._from_node: dict[Node, dict[Node, float]] = {}

    def node_distances(self, origin: Node) -> dict[Node, float]:
        """Shortest drive from ``origin`` to every node within ``reach_m`` (cached)."""
        known = self._from_node.get(origin)
        if known is not None:
            return known
        best: dict[Node, float] = {origin: 0.0}
        queue: list[tuple[float, Node]] = [(0.0, origin)]
        while queue:
            cost, node = heapq.heappop(queue)
            if cost > best[node]:
                continue
            for nxt, length in self._out.get(node, ()):
                new = cost + length
                if new <= self.reach_m and new < best.get(nxt, math.inf):
                    best[nxt] = new
                    heapq.heappush(queue, (new, nxt))
        self._from_node[origin] = best
        return best

    def route_m(self, seg_a: int, along_a: float, seg_b: int, along_b: float) -> float:
        """Metres driven from ``along_a`` on ``seg_a`` to ``along_b`` on ``seg_b``; inf when no end
        of ``seg_b`` is within ``reach_m`` of an end of ``seg_a``."""
        if seg_a == seg_b:
            return abs(along_b - along_a)
        a, b = self.segments.get(seg_a), self.segments.get(seg_b)
        if a is None or b is None:
            return math.inf
        best = math.inf
        for exit_node, to_exit in ((a.start, along_a), (a.end, a.length_m - along_a)):
            reached = self.node_distances(exit_node)
            for entry_node, from_entry in ((b.start, along_b), (b.end, b.length_m - along_b)):
                between = reached.get(entry_node)
                if between is not None:
                    best = min(best, max(0.0, to_exit) + between + max(0.0, from_entry))
        return best
