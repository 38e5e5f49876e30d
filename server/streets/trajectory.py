"""Trajectory matching: the street of each lift from the truck's path, not from one fix alone.

A hidden-Markov map matching over a truck's successive lifts (Newson & Krumm 2009, what OSRM's
and Valhalla's map matching do). The hidden state of a lift is the segment the truck stood on,
among the segments near its fix (``TrackLocator.segment_candidates``):

- emission: how far the fix lies from the segment (Gaussian GPS error, sigma from the fix's
  accuracy), with a heading how far the heading is from the segment's direction, and where along
  the segment the fix falls: a truck stops at the bins in front of the houses, not inside a
  crossing, so a projection within ``JUNCTION_CLEAR_M`` of a node where another street meets is
  less likely (the GPS error along the street blurs that edge; never less than ``CORNER_STOP``,
  since a corner house's bin is lifted there too). This is what tells the last lift
  of a street from a fix on the crossing street: projected on the crossing street it would lie
  inside the crossing;
- transition: the drive along the road graph between the two projections (``RoadGraph.routes_m``)
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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np

from server.streets import gps_noise
from server.streets.locator import LOCATE_CHUNK, Locator, Match, SegmentEnds
from server.streets.locator import MIN_SIGMA_M as LOCATE_MIN_SIGMA_M
from server.streets.osm import EARTH_RADIUS_M
from server.streets.roads import RoadGraph
from server.streets.states import Candidates, prune, rank_in_runs
from server.streets.viterbi import decode, group_confidence, identity_steps, settled

GAP = timedelta(minutes=15)  # lifts farther apart in time are not one drive
MIN_SIGMA_M = 5.0  # GPS error never assumed smaller than this
UNKNOWN_SIGMA_M = 10.0  # a fix without accuracy, on a path too short to measure it (``gps_noise``)
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
AMBIGUOUS = 0.8  # below this posterior a lift's street is flagged for review
# No bin is lifted inside a crossing: half a residential carriageway (~3 m) plus the kerb's corner.
JUNCTION_CLEAR_M = 5.0
# ... yet some are (a corner house's bin, a truck stopping short) and fixes have outliers: the
# clearance's factor is bounded below. Unbounded, a corner lift whose fix strayed up the crossing
# street went there against the whole path (docs/streets.md: 108 of 120 streets exact, 118 bounded).
CORNER_STOP = 0.1
NODE_M = 0.5  # a projection this close to a segment's end lies on its end node


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
    settled: bool  # no later lift can change the street (the best paths into every candidate agree)

    @property
    def ambiguous(self) -> bool:
        return self.confidence < AMBIGUOUS


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
                           accuracies: Sequence[float | None]) -> Candidates:
        """Every segment within ``locate``'s radius of each fix, with the projection on it.

        The states of trajectory matching (``server.streets.trajectory``): one numpy pass per chunk
        of fixes, as ``locate_many``; the nearest piece of each segment stands for the segment.
        """
        chunks = [self._candidates_chunk(list(lats[start:start + LOCATE_CHUNK]), list(lons[start:start + LOCATE_CHUNK]),
                                         list(accuracies[start:start + LOCATE_CHUNK]), start)
                  for start in range(0, len(lats), LOCATE_CHUNK)]
        if not chunks:
            return self._as_candidates(*(np.zeros(0, dtype=np.int64),) * 2, *(np.zeros(0),) * 3)
        return self._as_candidates(*(np.concatenate(column) for column in zip(*chunks, strict=True)))

    def _as_candidates(self, fix: np.ndarray, piece: np.ndarray, distance: np.ndarray, along: np.ndarray,
                       beyond: np.ndarray) -> Candidates:
        return Candidates(fix, self._seg_id[piece], self._street_id[piece], distance, along, self._ux[piece],
                          self._uy[piece], beyond)

    def _candidates_chunk(self, lats: list[float], lons: list[float], accuracies: list[float | None],
                          offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(fix, piece, distance, along, beyond) of the chunk's candidates, fixes numbered from ``offset``."""
        empty = (np.zeros(0, dtype=np.int64),) * 2 + (np.zeros(0),) * 3
        if not lats or not len(self._keys):
            return empty
        accuracy = [a if a is not None and a > 0 else self.default_accuracy_m for a in accuracies]
        radius = np.array([self.max_distance_m + min(a, 2 * self.max_distance_m) for a in accuracy])
        lat, lon = np.asarray(lats, dtype=float), np.asarray(lons, dtype=float)
        point, piece = self._candidate_pairs(lat, lon, radius)
        if not len(point):
            return empty
        kx_fix = np.array([math.cos(math.radians(v)) * EARTH_RADIUS_M * math.pi / 180 for v in lats])
        distance, t, raw = self._segment_projection(piece, lat[point], lon[point], kx_fix[point])
        near = distance <= radius[point]
        if not near.any():  # pieces in the cells around, none within reach (a fix in a park)
            return empty
        point, piece, distance, t, raw = point[near], piece[near], distance[near], t[near], raw[near]
        # The nearest piece of each (fix, segment): sort by fix, segment, distance and keep the first.
        segment = self._seg_id[piece]
        order = np.lexsort((distance, segment, point))
        point, piece, distance, t, raw, segment = (point[order], piece[order], distance[order], t[order], raw[order],
                                                   segment[order])
        first = np.r_[True, (point[1:] != point[:-1]) | (segment[1:] != segment[:-1])]
        point, piece, distance, t, raw, segment = (point[first], piece[first], distance[first], t[first], raw[first],
                                                   segment[first])
        piece_m = np.hypot((self._bx[piece] - self._ax[piece]) * kx_fix[point],
                           (self._by[piece] - self._ay[piece]) * EARTH_RADIUS_M * math.pi / 180)
        along = self._along[piece] + t * piece_m
        beyond = np.abs(raw - t) * piece_m
        nearest = np.lexsort((segment, distance, point))  # then by fix, nearest first (equals by segment)
        return point[nearest] + offset, piece[nearest], distance[nearest], along[nearest], beyond[nearest]

    @staticmethod
    def gps_accuracy(offsets: Sequence[float]) -> float | None:
        """The accuracy a truck's receiver would report, measured from its latest fixes' distances to
        their streets (``gps_noise``), for ingest; None from too few. Only ever below the default
        ``UNKNOWN_SIGMA_M``: it tells a good receiver from the default, while a truck publishing
        live with a poor one lost lifts with the larger figure (lift by lift at 10 m without
        heading, seed 8: 90 wrong lifts against 80 capped). A whole path measures its own,
        uncapped (``fix_sigmas``)."""
        measured = gps_noise.accuracy_from_offsets(offsets)
        return None if measured is None else min(measured, UNKNOWN_SIGMA_M)

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
        # Per segment, by sorted id: its length and whether another street meets it at its start and
        # end. Arrays, because every state of a batch looks them up (``_emissions``); a last entry
        # past every id stands for a segment the index lacks: no length, no crossing.
        ends, crossing = locator.segment_ends, _crossing_ends(locator.segment_ends)
        ids = sorted(ends)
        self._segment_ids = np.array([*ids, np.iinfo(np.int64).max], dtype=np.int64)
        self._length = np.array([*(ends[s].length_m for s in ids), 0.0])
        self._crosses = np.array([*(crossing[s] for s in ids), (False, False)], dtype=bool).reshape(-1, 2)

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
        """``match`` for several paths: the candidates of all their fixes come from one index pass,
        and their uninterrupted runs are decoded together (``_decode``)."""
        present = [(p, i) for p, (fixes, _) in enumerate(paths) for i, f in enumerate(fixes) if f is not None]
        fixes_of: list[FixLike] = [paths[p][0][i] for p, i in present]  # type: ignore[misc]
        found = self.locator.segment_candidates([f.lat for f in fixes_of], [f.lon for f in fixes_of],
                                                [f.accuracy_m for f in fixes_of])
        sigma = gps_noise.fix_sigmas([p for p, _ in present], [f.accuracy_m for f in fixes_of], found,
                                     MIN_SIGMA_M, UNKNOWN_SIGMA_M)
        pins = [paths[p][1][i] if paths[p][1] is not None else None for p, i in present]  # type: ignore[index]
        states = found.take(prune(found, np.array(sigma), np.array([-1 if s is None else s for s in pins],
                                                                      dtype=np.int64)))
        counts = np.bincount(states.fix, minlength=len(fixes_of)).tolist()
        where: list[tuple[int, list[int]]] = []  # (path, the positions in ``present`` of one run's fixes)
        start = 0
        for p, (fixes, _) in enumerate(paths):
            end = start + sum(f is not None for f in fixes)
            known = [q for q in range(start, end) if counts[q]]
            where.extend((p, run) for run in _runs(known, fixes_of))
            start = end
        results: list[list[TrackMatch | None]] = [[None] * len(fixes) for fixes, _ in paths]
        # Runs of about the same length (within a factor of 2) are decoded together: padding a
        # 3-lift run to the length of a 300-lift one would waste the passes.
        buckets: dict[int, list[int]] = {}
        for r, (_, run) in enumerate(where):
            buckets.setdefault(len(run).bit_length(), []).append(r)
        for members in buckets.values():
            runs = [where[r][1] for r in members]
            for r, matches in zip(members, self._decode(runs, fixes_of, sigma, states), strict=True):
                p, run = where[r]
                for q, match in zip(run, matches, strict=True):
                    results[p][present[q][1]] = match
        return results

    def _decode(self, runs: list[list[int]], fixes: list[FixLike], sigma: list[float],
                states: Candidates) -> list[list[TrackMatch]]:
        """Viterbi path and each lift's street confidence over uninterrupted runs of fixes, all at
        once (``server.streets.viterbi``). The confidence of the chosen street is its best whole
        path's share against the best path through each other street, ``1 / sum(exp(other -
        best))``: 0.5 when another street explains the path as well."""
        lengths = [len(run) for run in runs]
        n_runs, n_lifts = len(runs), max(lengths)
        run_of = np.full(len(fixes), -1, dtype=np.intp)
        step_of = np.full(len(fixes), -1, dtype=np.intp)
        for r, run in enumerate(runs):
            run_of[run] = r
            step_of[run] = np.arange(len(run))
        mine = states.take(run_of[states.fix] >= 0)
        rank = rank_in_runs(np.r_[True, mine.fix[1:] != mine.fix[:-1]])  # the state's number within its fix
        n_states = int(rank.max()) + 1
        at = (run_of[mine.fix], step_of[mine.fix], rank)
        shape = (n_runs, n_lifts, n_states)
        emit = np.full(shape, -math.inf)
        emit[at] = self._emissions(mine, fixes, sigma)
        done = np.arange(n_lifts)[None, :] >= np.array(lengths)[:, None]  # identity steps after a run's end
        emit[done] = 0.0
        segment, street = np.full(shape, -1, dtype=np.int64), np.full(shape, -1, dtype=np.int64)
        along = np.zeros(shape)
        segment[at], street[at], along[at] = mine.segment, mine.street, mine.along
        trans = self._transitions(runs, fixes, sigma, segment, street, along, done)
        path, score, pointer = decode(emit, trans)
        confidence = group_confidence(score, street, path)
        final = settled(pointer, score[:, -1] > -math.inf, street).tolist()
        index = np.full(shape, -1, dtype=np.intp)
        index[at] = np.arange(len(mine.fix))
        chosen = np.take_along_axis(index, path[:, :, None], axis=2)[:, :, 0].tolist()
        streets, segments, distances = mine.street.tolist(), mine.segment.tolist(), mine.distance.tolist()
        return [[TrackMatch(streets[c], segments[c], round(distances[c], 2), round(confidence[r][k], 4), final[r][k])
                 for k, c in enumerate(chosen[r][:n])] for r, n in enumerate(lengths)]

    def _emissions(self, states: Candidates, fixes: list[FixLike], sigma_of: list[float]) -> np.ndarray:
        """Per state: how far the fix lies from the segment, how far its heading is from the
        segment's direction, and the crossing clearance: a truck stands where the fix projects
        only if that spot keeps ``JUNCTION_CLEAR_M`` clear of crossings; the true spot lies beyond
        the clearance, the fix strays from it by the GPS error, so the factor is a normal CDF of
        the projection's margin, bounded below by ``CORNER_STOP``."""
        sigma = np.array(sigma_of)[states.fix]
        pos = np.searchsorted(self._segment_ids, states.segment)
        pos[self._segment_ids[pos] != states.segment] = len(self._segment_ids) - 1
        length, at_start, at_end = self._length[pos], self._crosses[pos, 0], self._crosses[pos, 1]
        # A fix past a crossing end projects on the node itself, for this street and for the one
        # across alike. Its likelihood is that of the street's line, extended: the distance across
        # the line, and the clearance from the node counted past it (the truck stood at least
        # JUNCTION_CLEAR_M back, the fix strayed beyond). The distance to the node alone scored
        # both streets the same there, and the tie went to whichever rounding came out ahead.
        # (``along`` is measured in the fix's local projection, ``length`` at import: they differ by
        # millimetres at the segment's end node)
        past_start = at_start & (states.beyond > 0) & (states.along <= NODE_M)
        past_end = at_end & (states.beyond > 0) & (states.along >= length - NODE_M)
        across = np.where(past_start | past_end, np.sqrt(np.maximum(states.distance ** 2 - states.beyond ** 2, 0.0)),
                          states.distance)
        value = -0.5 * (across / sigma) ** 2
        radians = [math.radians(f.heading_deg) if f.heading_deg is not None else math.nan for f in fixes]
        hx = np.array([math.sin(v) for v in radians])[states.fix]
        hy = np.array([math.cos(v) for v in radians])[states.fix]
        value = np.where(np.isnan(hx), value,
                         value - 0.5 * (np.abs(states.ux * hy - states.uy * hx) / HEADING_SIN) ** 2)
        # Metres from the node into the segment, negative past it.
        from_start = np.where(past_start, -states.beyond, states.along)
        from_end = np.where(past_end, -states.beyond, length - states.along)
        clear = np.zeros(len(states.segment))
        clear[at_start] = _clearance((from_start[at_start] - JUNCTION_CLEAR_M) / sigma[at_start])
        clear[at_end] += _clearance((from_end[at_end] - JUNCTION_CLEAR_M) / sigma[at_end])
        return value + clear

    def _transitions(self, runs: list[list[int]], fixes: list[FixLike], sigma: list[float], segment: np.ndarray,
                     street: np.ndarray, along: np.ndarray, done: np.ndarray) -> np.ndarray:
        """(run, lift k, state at k, state at k+1): the drive between the two projections against
        the straight line between the fixes, and the cost of a change of street."""
        n_runs, n_lifts, n_states = segment.shape
        straight = np.zeros((n_runs, max(n_lifts - 1, 0)))
        beta = np.ones_like(straight)
        step = [(r, k - 1, run[k - 1], run[k]) for r, run in enumerate(runs) for k in range(1, len(run))]
        if step:
            r, k, a, b = (np.array(column) for column in zip(*step, strict=True))
            lat = np.array([f.lat for f in fixes])
            lon = np.array([f.lon for f in fixes])
            straight[r, k] = _metres(lat[a], lon[a], lat[b], lon[b])
            sigmas = np.asarray(sigma)
            beta[r, k] = np.maximum(ROUTE_BETA_M, ROUTE_BETA_SIGMAS * np.hypot(sigmas[a], sigmas[b]))
        far = (straight >= FAR_M)[:, :, None, None]
        straight, beta = straight[:, :, None, None], beta[:, :, None, None]
        seg_a, seg_b = segment[:, :-1, :, None], segment[:, 1:, None, :]
        real = (seg_a >= 0) & (seg_b >= 0)
        same = seg_a == seg_b
        value = np.where(same, -np.abs(np.abs(along[:, 1:, None, :] - along[:, :-1, :, None]) - straight) / beta, 0.0)
        routed = real & ~same & ~far
        if routed.any():
            where = np.nonzero(routed)
            full = routed.shape

            def pick(array: np.ndarray) -> np.ndarray:
                return np.broadcast_to(array, full)[where]

            route = self.graph.routes_m(pick(seg_a), pick(along[:, :-1, :, None]), pick(seg_b),
                                        pick(along[:, 1:, None, :]))
            value[where] = np.where(np.isinf(route), -UNREACHABLE, -np.abs(route - pick(straight)) / pick(beta))
        value = np.where(far, 0.0, value)
        value = np.where(street[:, :-1, :, None] != street[:, 1:, None, :], value - STREET_CHANGE, value)
        value[~real] = -math.inf
        value[done[:, 1:]] = identity_steps(n_states)
        return value


def _crossing_ends(segments: dict[int, SegmentEnds]) -> dict[int, tuple[bool, bool]]:
    """Per segment, whether another street meets it at its start and at its end node."""
    streets_at: dict[tuple[int, int], set[int]] = {}
    for seg in segments.values():
        streets_at.setdefault(seg.start, set()).add(seg.street_id)
        streets_at.setdefault(seg.end, set()).add(seg.street_id)
    return {seg_id: (bool(streets_at[seg.start] - {seg.street_id}), bool(streets_at[seg.end] - {seg.street_id}))
            for seg_id, seg in segments.items()}


def _clearance(z: np.ndarray) -> np.ndarray:
    """log of the clearance factor for margins ``z`` (in sigmas): a stop beyond it, or at the corner.
    (``math.erfc`` per value: numpy has none; the bound keeps the log finite)"""
    cdf = 0.5 * _erfc(-z / math.sqrt(2.0)).astype(float)
    return np.log(CORNER_STOP + (1 - CORNER_STOP) * cdf)


_erfc = np.frompyfunc(math.erfc, 1, 1)


def _runs(indices: list[int], fixes: Sequence[FixLike | None]) -> list[list[int]]:
    """Split the lifts into uninterrupted drives (no gap longer than ``GAP``)."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and fixes[i].at - fixes[runs[-1][-1]].at <= GAP:  # type: ignore[union-attr]
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _metres(lat_a: np.ndarray, lon_a: np.ndarray, lat_b: np.ndarray, lon_b: np.ndarray) -> np.ndarray:
    ky = 111_195.0
    kx = ky * np.cos(np.radians((lat_a + lat_b) / 2))
    return np.hypot((lon_b - lon_a) * kx, (lat_b - lat_a) * ky)
