"""The street network as a graph of segments: how far a truck drives from one point to another.

Trajectory matching (``server.streets.trajectory``) asks, for two consecutive lifts, how long the
drive is between a point on one candidate segment and a point on another. Segments meet at
junction nodes (the importer cut the OSM ways there, ``server.streets.osm.split_at_junctions``);
distances between nodes come from a Dijkstra bounded to ``reach_m`` and are cached per node, and
each pair of segments asked once is kept in a sorted array, so a truck's round, which keeps to a
neighbourhood, costs a few searches and then array look-ups.

One-way streets are not enforced: a collection truck reverses into dead ends and the data's
``oneway`` tags are not always right; the heading term of the match covers the direction.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict

import numpy as np

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
        # Segment pairs already asked (consecutive lifts ask the same ones) as a sorted array of keys
        # (a << 32 | b) beside their rows (lengths and end-to-end node distances): a batch's ~100,000
        # pairs are looked up in numpy, and only the new ones computed in Python.
        if segments and not 0 <= min(segments) <= max(segments) < 1 << 31:
            raise ValueError(f"segment ids must lie in [0, 2**31), got {min(segments)}..{max(segments)}")
        self._keys = np.zeros(0, dtype=np.int64)
        self._rows = np.zeros((0, 6))

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
        return float(self.routes_m(np.array([seg_a]), np.array([along_a]), np.array([seg_b]), np.array([along_b]))[0])

    def routes_m(self, seg_a: np.ndarray, along_a: np.ndarray, seg_b: np.ndarray, along_b: np.ndarray) -> np.ndarray:
        """``route_m`` for many pairs of points on two different segments at once (trajectory
        matching asks ~20 pairs per lift): the pairs' node distances from the cache, the rest in numpy."""
        length_a, length_b, ss, se, es, ee = self._pair_rows(np.asarray(seg_a, dtype=np.int64),
                                                             np.asarray(seg_b, dtype=np.int64)).T
        head_a, head_b = np.maximum(0.0, along_a), np.maximum(0.0, along_b)
        tail_a, tail_b = np.maximum(0.0, length_a - along_a), np.maximum(0.0, length_b - along_b)
        return np.minimum(np.minimum(head_a + ss + head_b, head_a + se + tail_b),
                          np.minimum(tail_a + es + head_b, tail_a + ee + tail_b))

    def _pair_rows(self, seg_a: np.ndarray, seg_b: np.ndarray) -> np.ndarray:
        """(length a, length b, node distances start-start, start-end, end-start, end-end) per pair;
        all inf when no end of one segment is within reach of an end of the other."""
        key = (seg_a << 32) | seg_b
        at = np.searchsorted(self._keys, key)
        known = at < len(self._keys)
        known[known] = self._keys[at[known]] == key[known]
        if not known.all():
            new = np.unique(key[~known])
            rows = [self._between(int(k >> 32), int(k & 0xFFFFFFFF)) or (math.inf,) * 6 for k in new.tolist()]
            into = np.searchsorted(self._keys, new)  # a merge, not a sort: the cache grows all day
            self._keys = np.insert(self._keys, into, new)
            self._rows = np.insert(self._rows, into, np.array(rows, dtype=float).reshape(-1, 6), axis=0)
            at = np.searchsorted(self._keys, key)
        return self._rows[at]

    def _between(self, seg_a: int, seg_b: int) -> tuple[float, ...]:
        """(length a, length b, then node distances start-start, start-end, end-start, end-end), or ()."""
        a, b = self.segments.get(seg_a), self.segments.get(seg_b)
        if a is None or b is None:
            return ()
        from_start, from_end = self.node_distances(a.start), self.node_distances(a.end)
        ends = (from_start.get(b.start, math.inf), from_start.get(b.end, math.inf),
                from_end.get(b.start, math.inf), from_end.get(b.end, math.inf))
        return (a.length_m, b.length_m, *ends) if min(ends) < math.inf else ()
