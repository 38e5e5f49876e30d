"""Trajectory matching: the street of each lift from the truck's path, not from one fix alone.

A hidden-Markov map matching over a truck's successive lifts (Newson & Krumm 2009, what OSRM's
and Valhalla's map matching do). The hidden state of a lift is the segment the truck stood on,
among the segments near its fix (``TrackLocator.segment_candidates``):

- emission: how far the fix lies from the segment (Gaussian GPS error, sigma from the fix's
  accuracy), with a heading how far the heading is from the segment's direction, and where along
  the segment the fix falls: a truck stops at the bins in front of the houses, not inside a
  crossing, so a projection within ``JUNCTION_CLEAR_M`` of a node where another street meets is
  less likely (the GPS error along the street blurs that edge). This is what tells the last lift
  of a street from a fix on the crossing street: projected on the crossing street it would lie
  inside the crossing;
- transition: the drive along the road graph between the two projections (``RoadGraph.route_m``)
  against the straight distance between the two fixes: a truck does not drive 120 m round a block
  between two bins 20 m apart; and a cost for changing street, since a round collects street by
  street.

Viterbi gives the most likely path; max-product passes both ways give, for each lift, the best
path through each candidate street, whose relative likelihood is the lift's ``confidence``. A
lift whose street stays below ``AMBIGUOUS`` is flagged, never silently trusted. Successive lifts
more than ``GAP`` apart start a new path (a break, a trip to the depot).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np

from server.streets.locator import LOCATE_CHUNK, Locator, Match, SegmentEnds
from server.streets.locator import MIN_SIGMA_M as LOCATE_MIN_SIGMA_M
from server.streets.osm import EARTH_RADIUS_M
from server.streets.roads import RoadGraph

GAP = timedelta(minutes=15)  # lifts farther apart in time are not one drive
MIN_SIGMA_M = 5.0  # GPS error never assumed smaller than this
HEADING_SIN = 0.3  # spread of |sin(heading - street)|: ~17 degrees of GPS heading error
ROUTE_BETA_M = 10.0  # |drive - straight line| of this many metres costs one unit of log-probability
# ... or more when the fixes are worse: the straight line between two fixes errs by about their
# combined error, so a fixed 10 m scale punished the true route for GPS noise at 10-20 m. Over 4
# seeds of bench/streets.py (whole day) x2 took streets exact at 10 m with heading from 135-136 to
# 135-143 and at 20 m from 73-93 to 87-108; 3 m unchanged or better. x3 did no better.
ROUTE_BETA_SIGMAS = 2.0
STREET_CHANGE = 3.0  # log-odds against changing street between two lifts (a round keeps to a street)
UNREACHABLE = 8.0  # log-odds against two segments with no drive between them within reach
FAR_M = 200.0  # lifts this far apart: the route says nothing, only the street change counts
MAX_STATES = 6  # candidate segments kept per fix, the nearest (transitions cost their square)
# ... at most this many per street: a street drawn as many short segments could fill the states
# near a crossing and push the other street out (4 seeds at 10 m with heading: +6 streets exact).
STATES_PER_STREET = 3
STATE_SIGMAS = 4.0  # and only those within this many sigmas of the nearest
AMBIGUOUS = 0.8  # below this posterior a lift's street is flagged for review
# No bin is lifted inside a crossing: half a residential carriageway (~3 m) plus the kerb's corner.
JUNCTION_CLEAR_M = 5.0


class FixLike(Protocol):
    @property
    def lat(self) -> float: ...
    @property
    def lon(self) -> float: ...
    @property
    def at(self) -> datetime: ...
    @property
    def heading_deg(self) -> float | None: ...
    @property
    def accuracy_m(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Fix:
    """A lift's GPS fix and when it was taken."""

    lat: float
    lon: float
    at: datetime
    heading_deg: float | None = None
    accuracy_m: float | None = None


@dataclass(frozen=True, slots=True)
class TrackMatch:
    street_id: int
    segment_id: int
    distance_m: float
    confidence: float  # the best path on this street against the best paths on the others (0.5: a tie)

    @property
    def ambiguous(self) -> bool:
        return self.confidence < AMBIGUOUS


@dataclass(frozen=True, slots=True)
class Candidate:
    """A segment near a fix: how far, where along it (metres from its start) and its direction there."""

    segment_id: int
    street_id: int
    distance_m: float
    along_m: float
    ux: float  # unit vector of the drawing direction, east and north
    uy: float


class TrackLocator(Locator):
    """The street index that also matches a truck's path (what the server's ingest uses)."""

    _matcher: TrajectoryMatcher | None = None

    def on_street(self, street_id: int, segment_id: int, distance_m: float, street_confidence: float,
                  lat: float, lon: float, accuracy_m: float | None = None) -> Match:
        """The match of a fix to a street chosen elsewhere (trajectory matching), with its address."""
        accuracy = accuracy_m if accuracy_m is not None and accuracy_m > 0 else self.default_accuracy_m
        name, commune = self._streets.get(street_id, ("", ""))
        match = Match(street_id, name, commune, segment_id, round(distance_m, 2), None, None, None,
                      round(street_confidence, 4), round(street_confidence, 4), 0)
        return self._with_address(match, lat, lon, max(accuracy, LOCATE_MIN_SIGMA_M))

    def segment_candidates(self, lats: Sequence[float], lons: Sequence[float],
                           accuracies: Sequence[float | None]) -> list[list[Candidate]]:
        """Per fix, every segment within ``locate``'s radius, nearest first, with the projection on it.

        The states of trajectory matching (``server.streets.trajectory``): one numpy pass per chunk
        of fixes, as ``locate_many``; the nearest piece of each segment stands for the segment.
        """
        found: list[list[Candidate]] = []
        for start in range(0, len(lats), LOCATE_CHUNK):
            end = min(len(lats), start + LOCATE_CHUNK)
            found.extend(self._candidates_chunk(list(lats[start:end]), list(lons[start:end]),
                                                list(accuracies[start:end])))
        return found

    def _candidates_chunk(self, lats: list[float], lons: list[float],
                          accuracies: list[float | None]) -> list[list[Candidate]]:
        n = len(lats)
        found: list[list[Candidate]] = [[] for _ in range(n)]
        if not n or not len(self._keys):
            return found
        accuracy = [a if a is not None and a > 0 else self.default_accuracy_m for a in accuracies]
        radius = np.array([self.max_distance_m + min(a, 2 * self.max_distance_m) for a in accuracy])
        lat, lon = np.asarray(lats, dtype=float), np.asarray(lons, dtype=float)
        point, piece = self._candidate_pairs(lat, lon, radius)
        if not len(point):
            return found
        kx_fix = np.array([math.cos(math.radians(v)) * EARTH_RADIUS_M * math.pi / 180 for v in lats])
        distance, t = self._segment_projection(piece, lat[point], lon[point], kx_fix[point])
        near = distance <= radius[point]
        point, piece, distance, t = point[near], piece[near], distance[near], t[near]
        # The nearest piece of each (fix, segment): sort by fix, segment, distance and keep the first.
        segment = self._seg_id[piece]
        order = np.lexsort((distance, segment, point))
        point, piece, distance, t, segment = point[order], piece[order], distance[order], t[order], segment[order]
        first = np.r_[True, (point[1:] != point[:-1]) | (segment[1:] != segment[:-1])]
        point, piece, distance, t, segment = point[first], piece[first], distance[first], t[first], segment[first]
        piece_m = np.hypot((self._bx[piece] - self._ax[piece]) * kx_fix[point],
                           (self._by[piece] - self._ay[piece]) * EARTH_RADIUS_M * math.pi / 180)
        along = self._along[piece] + t * piece_m
        for p, seg_id, street_id, d, s, ux, uy in zip(
                point.tolist(), segment.tolist(), self._street_id[piece].tolist(), distance.tolist(),
                along.tolist(), self._ux[piece].tolist(), self._uy[piece].tolist(), strict=True):
            found[p].append(Candidate(seg_id, street_id, d, s, ux, uy))
        for row in found:
            row.sort(key=lambda c: c.distance_m)
        return found

    def match_track(self, fixes: Sequence[FixLike | None],
                    pinned: Sequence[int | None] | None = None) -> list[TrackMatch | None]:
        return self.match_tracks([(fixes, pinned)])[0]

    def match_tracks(self, paths: Sequence[tuple[Sequence[FixLike | None], Sequence[int | None] | None]]
                     ) -> list[list[TrackMatch | None]]:
        """``match_track`` for several trucks' paths at once (one index pass for all their fixes)."""
        if self._matcher is None:  # the road graph is built on first use: one-point users never pay it
            self._matcher = TrajectoryMatcher(self)
        return self._matcher.match_many(paths)


class TrajectoryMatcher:
    """Matches a truck's lifts, in time order, to streets."""

    def __init__(self, locator: TrackLocator, graph: RoadGraph | None = None) -> None:
        self.locator = locator
        self.graph = graph or RoadGraph(locator.segment_ends)
        self._crossing_ends = _crossing_ends(locator.segment_ends)

    def match(self, fixes: Sequence[FixLike | None],
              pinned: Sequence[int | None] | None = None) -> list[TrackMatch | None]:
        """One match per fix (None without a fix or without a street near it).

        ``fixes`` are one truck's lifts sorted by time. ``pinned[i]``, when set, is the street of
        a lift already confirmed: its states are restricted to that street's segments, so later
        lifts are matched consistently with what was confirmed.
        """
        return self.match_many([(fixes, pinned)])[0]

    def match_many(self, paths: Sequence[tuple[Sequence[FixLike | None], Sequence[int | None] | None]]
                   ) -> list[list[TrackMatch | None]]:
        """``match`` for several paths; the candidates of all their fixes come from one index pass."""
        present = [(p, i) for p, (fixes, _) in enumerate(paths) for i, f in enumerate(fixes) if f is not None]
        fixes_of = [paths[p][0][i] for p, i in present]
        candidates = self.locator.segment_candidates([f.lat for f in fixes_of], [f.lon for f in fixes_of],  # type: ignore[union-attr]
                                                     [f.accuracy_m for f in fixes_of])  # type: ignore[union-attr]
        states: list[dict[int, list[Candidate]]] = [{} for _ in paths]
        for (p, i), fix, found in zip(present, fixes_of, candidates, strict=True):
            pinned = paths[p][1]
            kept = _prune(found, fix, pinned[i] if pinned is not None else None)  # type: ignore[arg-type]
            if kept:
                states[p][i] = kept
        results: list[list[TrackMatch | None]] = []
        for (fixes, _), known in zip(paths, states, strict=True):
            result: list[TrackMatch | None] = [None] * len(fixes)
            for run in _runs(sorted(known), fixes):
                decoded = self._decode([fixes[i] for i in run], [known[i] for i in run])  # type: ignore[misc]
                for i, match in zip(run, decoded, strict=True):
                    result[i] = match
            results.append(result)
        return results

    def _decode(self, fixes: list[FixLike], states: list[list[Candidate]]) -> list[TrackMatch]:
        """Viterbi path and each lift's street confidence over one uninterrupted run.

        Max-product forward and backward passes: ``forward[k][j] + backward[k][j]`` is the score of
        the best whole path through state j at lift k (its max-marginal). The confidence of the
        chosen street is its best path's share against the best path through each other street,
        ``1 / sum(exp(other - best))``: 0.5 when another street explains the path as well.
        """
        emit = [self._emissions(cs, f) for cs, f in zip(states, fixes, strict=True)]
        trans = [self._transitions(fixes[k - 1], fixes[k], states[k - 1], states[k]) for k in range(1, len(fixes))]
        # The two passes below are most of the matching time after the transitions: lists and
        # builtins (zip, max, index) rather than indexed loops; the same sums in the same order.
        forward, back = [emit[0]], []
        for k in range(1, len(fixes)):
            previous = forward[-1]
            scores, pointers = [], []
            for column, e in zip(zip(*trans[k - 1], strict=True), emit[k], strict=True):
                values = [f + m for f, m in zip(previous, column, strict=True)]
                best = max(values)
                pointers.append(values.index(best))  # the first of equals, as a strict > scan
                scores.append(best + e)
            forward.append(scores)
            back.append(pointers)
        backward = [[0.0] * len(states[-1])]
        for k in range(len(fixes) - 1, 0, -1):
            after, e = backward[-1], emit[k]
            backward.append([max([m + x + y for m, x, y in zip(row, e, after, strict=True)])
                             for row in trans[k - 1]])
        backward.reverse()
        path = [max(range(len(forward[-1])), key=forward[-1].__getitem__)]
        for pointers in reversed(back):
            path.append(pointers[path[-1]])
        path.reverse()
        matches = []
        for k, chosen in enumerate(path):
            best_of: dict[int, float] = {}
            for c, f, b in zip(states[k], forward[k], backward[k], strict=True):
                if f + b > best_of.get(c.street_id, -math.inf):
                    best_of[c.street_id] = f + b
            c = states[k][chosen]
            top = best_of[c.street_id]
            confidence = 1.0 / sum(math.exp(v - top) for v in best_of.values())
            matches.append(TrackMatch(c.street_id, c.segment_id, round(c.distance_m, 2), round(confidence, 4)))
        return matches

    def _clearance(self, c: Candidate, fix: FixLike) -> float:
        """Log-likelihood that the truck stood where the fix projects, given that lifts keep
        ``JUNCTION_CLEAR_M`` clear of crossings: the true spot lies beyond the clearance, the fix
        strays from it by the GPS error, so the factor is a normal CDF of the projection's margin."""
        at_start, at_end = self._crossing_ends.get(c.segment_id, (False, False))
        if not (at_start or at_end):
            return 0.0
        sigma = _sigma(fix)
        value = 0.0
        if at_start:
            value += _log_cdf((c.along_m - JUNCTION_CLEAR_M) / sigma)
        if at_end:
            value += _log_cdf((self.locator.segment_ends[c.segment_id].length_m - c.along_m - JUNCTION_CLEAR_M) / sigma)
        return value

    def _emissions(self, states: list[Candidate], fix: FixLike) -> list[float]:
        """``_emission`` + ``_clearance`` of each state of one fix (what depends on the fix, once)."""
        sigma = _sigma(fix)
        heading = fix.heading_deg
        hx = hy = 0.0
        if heading is not None:
            hx, hy = math.sin(math.radians(heading)), math.cos(math.radians(heading))
        out = []
        for c in states:
            value = -0.5 * (c.distance_m / sigma) ** 2
            if heading is not None:
                value -= 0.5 * (abs(c.ux * hy - c.uy * hx) / HEADING_SIN) ** 2
            out.append(value + self._clearance(c, fix))
        return out

    def _transitions(self, a: FixLike, b: FixLike, from_states: list[Candidate],
                     to_states: list[Candidate]) -> list[list[float]]:
        straight = _metres(a, b)
        if straight >= FAR_M:  # the route says nothing: only a change of street costs
            return [[-STREET_CHANGE if s.street_id != t.street_id else 0.0 for t in to_states] for s in from_states]
        beta = max(ROUTE_BETA_M, ROUTE_BETA_SIGMAS * math.hypot(_sigma(a), _sigma(b)))
        # ``RoadGraph.route_m`` inlined, with what depends on one state only computed once: this
        # loop is most of the matching time (~18 pairs per lift on a fleet's rounds).
        ends_of = self.graph.segment_pair
        segments = self.locator.segment_ends
        targets = [(t.street_id, t.segment_id, t.along_m, max(0.0, t.along_m),
                    max(0.0, segments[t.segment_id].length_m - t.along_m) if t.segment_id in segments else 0.0)
                   for t in to_states]
        rows = []
        for s in from_states:
            row = []
            seg_a, along_a, street_a = s.segment_id, s.along_m, s.street_id
            head_a = max(0.0, along_a)
            tail_a = max(0.0, segments[seg_a].length_m - along_a) if seg_a in segments else 0.0
            for street, seg_b, along_b, head_b, tail_b in targets:
                if seg_a == seg_b:
                    value = -abs(abs(along_b - along_a) - straight) / beta
                else:
                    ends = ends_of(seg_a, seg_b)
                    if ends:
                        ss, se, es, ee = ends[2:]
                        route = min(head_a + ss + head_b, head_a + se + tail_b, tail_a + es + head_b,
                                    tail_a + ee + tail_b)
                        value = -abs(route - straight) / beta
                    else:
                        value = -UNREACHABLE
                row.append(value - STREET_CHANGE if street_a != street else value)
            rows.append(row)
        return rows

def _crossing_ends(segments: dict[int, SegmentEnds]) -> dict[int, tuple[bool, bool]]:
    """Per segment, whether another street meets it at its start and at its end node."""
    streets_at: dict[tuple[int, int], set[int]] = {}
    for seg in segments.values():
        streets_at.setdefault(seg.start, set()).add(seg.street_id)
        streets_at.setdefault(seg.end, set()).add(seg.street_id)
    return {seg_id: (bool(streets_at[seg.start] - {seg.street_id}), bool(streets_at[seg.end] - {seg.street_id}))
            for seg_id, seg in segments.items()}


def _log_cdf(z: float) -> float:
    """log of the standard normal CDF, finite far into the tail."""
    return math.log(max(0.5 * math.erfc(-z / math.sqrt(2.0)), 1e-300))


def _prune(found: list[Candidate], fix: FixLike, street: int | None) -> list[Candidate]:
    if street is not None:
        mine = [c for c in found if c.street_id == street]
        return mine[:1] if mine else []
    if not found:
        return []
    sigma = _sigma(fix)
    limit = found[0].distance_m + STATE_SIGMAS * sigma
    kept: list[Candidate] = []
    per_street: Counter[int] = Counter()
    for c in found:
        if c.distance_m > limit or len(kept) >= MAX_STATES:
            break
        if per_street[c.street_id] < STATES_PER_STREET:
            per_street[c.street_id] += 1
            kept.append(c)
    return kept


def _runs(indices: list[int], fixes: Sequence[FixLike | None]) -> list[list[int]]:
    """Split the lifts into uninterrupted drives (no gap longer than ``GAP``)."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and fixes[i].at - fixes[runs[-1][-1]].at <= GAP:  # type: ignore[union-attr]
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _sigma(fix: FixLike) -> float:
    return max(fix.accuracy_m or 10.0, MIN_SIGMA_M)


def _metres(a: FixLike, b: FixLike) -> float:
    ky = 111_195.0
    kx = ky * math.cos(math.radians((a.lat + b.lat) / 2))
    return math.hypot((b.lon - a.lon) * kx, (b.lat - a.lat) * ky)
