"""Trajectory matching (``server.streets.trajectory``): the truck's path decides where one fix cannot."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from unittest import mock

import numpy as np
import pytest

from server.streets import trajectory
from server.streets.locator import Locator
from server.streets.roads import RoadGraph
from server.streets.states import MAX_STATES, STATES_PER_STREET, Candidates, prune
from server.streets.trajectory import AMBIGUOUS, Fix, TrackLocator
from tests.server.crossroads import STREETS, lonlat, segment_rows

T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
A, B, C = 1, 2, 3


def locator() -> TrackLocator:
    return TrackLocator(segment_rows(), STREETS)  # type: ignore[arg-type]


def fixes(points: list[tuple[float, float]], step_s: float = 30.0, heading: float | None = None) -> list[Fix]:
    result = []
    for k, (x, y) in enumerate(points):
        lon, lat = lonlat(x, y)
        result.append(Fix(lat, lon, T0 + timedelta(seconds=step_s * k), heading, 5.0))
    return result


def one_point(loc: Locator, path: list[Fix]) -> list[int | None]:
    return [m.street_id if m else None for m in (loc.locate(f.lat, f.lon, accuracy_m=f.accuracy_m) for f in path)]


def streets(path: list[Fix], loc: TrackLocator, pinned: list[int | None] | None = None) -> list[int | None]:
    return [m.street_id if m else None for m in loc.match_track(path, pinned)]


def test_a_fix_pulled_towards_a_crossing_street_stays_on_the_truck_s_street() -> None:
    loc = locator()
    # The truck drives Rue A eastwards; the lift 8 m before the crossing has a fix 2 m from Rue B.
    path = fixes([(-80, 1), (-60, -1), (-40, 0), (-20, 1), (-2, 9), (20, -1), (40, 0), (60, 1)])
    assert one_point(loc, path)[4] == B, "the premise: one fix alone lands on the crossing street"
    assert streets(path, loc) == [A] * 8


def test_a_fix_closer_to_a_parallel_street_stays_on_the_truck_s_street() -> None:
    loc = locator()
    path = fixes([(10, 0), (30, 1), (50, -1), (70, 17), (90, 0), (110, 1)])
    assert one_point(loc, path)[3] == C
    assert streets(path, loc) == [A] * 6


def test_a_turn_is_followed() -> None:
    loc = locator()
    path = fixes([(-90, 0), (-60, 0), (-30, 0), (0, -30), (0, -60), (0, -90)])
    assert streets(path, loc) == [A, A, A, B, B, B]


def test_lifts_far_apart_in_time_are_matched_alone() -> None:
    loc = locator()
    path = fixes([(-80, 1), (-60, -1), (-40, 0), (-20, 1), (-2, 9), (20, -1), (40, 0), (60, 1)], step_s=20 * 60)
    assert streets(path, loc)[4] == B, "20 minutes between lifts: the path says nothing of this lift"


def test_confidence_is_low_where_the_path_cannot_tell() -> None:
    loc = locator()
    lone = loc.match_track(fixes([(0, 0)]))[0]  # on the crossing itself, nothing before or after
    assert lone is not None and lone.confidence < AMBIGUOUS and lone.ambiguous
    along = loc.match_track(fixes([(-150, 0), (-130, 1), (-110, 0)]))
    assert all(m is not None and m.street_id == A and m.confidence > 0.99 for m in along)


def test_a_confirmed_lift_pins_its_street() -> None:
    loc = locator()
    path = fixes([(0, 1), (0, 15)])
    assert streets(path, loc, [C, None])[0] == C
    assert streets(path, loc, [None, None])[0] in (A, B)


def test_lifts_without_fix_or_street_near_are_none() -> None:
    loc = locator()
    path: list[Fix | None] = [*fixes([(-60, 0), (-40, 0)]), None, *fixes([(5000, 5000)])]
    assert streets(path, loc) == [A, A, None, None]  # type: ignore[arg-type]


def test_a_fix_out_of_reach_of_the_streets_around_it_is_none_in_its_path() -> None:
    # 40 m south of Rue A: its pieces are in the index cells around the fix, none within reach
    # (30 m + the fix's accuracy). The candidate search once failed on such a fix, and the batch
    # fell back to one-point matching.
    loc = locator()
    path = fixes([(-120, -40), (-100, 2), (-80, -1)])
    assert loc.locate(path[0].lat, path[0].lon, accuracy_m=5.0) is None
    assert streets(path, loc) == [None, A, A]
    assert streets(path[:1], loc) == [None]


def test_a_fix_past_a_corner_goes_to_the_street_whose_line_it_is_nearer() -> None:
    # An L-corner: Rue D comes from the west and ends at the origin, where Rue E starts north.
    # A fix past the corner projects on the node for both streets, at the same distance: scored by
    # that distance alone the two tied, and rounding chose. Along each street's line it is not a
    # tie: 2 m across D's line (8 m past its end) is D; 2 m across E's line (8 m behind its start)
    # is E. Both lie past their street's clearance, a bounded cost (``CORNER_STOP``), so the
    # distance across the line decides.
    rows = [(1, 4, json.dumps({"type": "LineString", "coordinates": [lonlat(-200, 0), lonlat(0, 0)]}), 0),
            (2, 5, json.dumps({"type": "LineString", "coordinates": [lonlat(0, 0), lonlat(0, 200)]}), 0)]
    loc = TrackLocator(rows, {4: ("Rue D", "Testville"), 5: ("Rue E", "Testville")})  # type: ignore[arg-type]
    assert streets(fixes([(8, -2)]), loc) == [4]
    assert streets(fixes([(2, -8)]), loc) == [5]
    assert streets(fixes([(6, -3)]), loc) == [4]  # 3 m across D's line, 6 m across E's
    assert streets(fixes([(-8, 2)]), loc) == [4]  # inside D's extent: as before
    # The truck's path agrees: coming from D, the fix past the corner nearer D's line stays on D.
    assert streets(fixes([(-40, 0), (-20, 1), (8, -2), (1, 20), (0, 40)]), loc) == [4, 4, 4, 5, 5]


def test_a_lift_at_the_corner_stays_on_the_street_the_truck_collects() -> None:
    # Rue A runs east from a crossing with Rue B (north-south). The truck comes from 500 m away and
    # lifts a bin right at the corner, then along A; the corner lift's fix strays 7 m up B and 3 m
    # behind A's start. The clearance makes a stop inside the crossing unlikely, not impossible (a
    # corner house's bin, a truck that stops short): bounded at ``CORNER_STOP``, it no longer
    # outweighs the path, which says A. Unbounded (before 2026-12-04) it put the lift on B.
    rows = [(1, 1, json.dumps({"type": "LineString", "coordinates": [lonlat(0, 0), lonlat(200, 0)]}), 0),
            (2, 2, json.dumps({"type": "LineString", "coordinates": [lonlat(0, -100), lonlat(0, 0)]}), 0),
            (3, 2, json.dumps({"type": "LineString", "coordinates": [lonlat(0, 0), lonlat(0, 100)]}), 0),
            (4, 3, json.dumps({"type": "LineString", "coordinates": [lonlat(500, -300), lonlat(700, -300)]}), 0)]
    loc = TrackLocator(rows, {1: ("Rue A", "Testville"), 2: ("Rue B", "Testville"),  # type: ignore[arg-type]
                              3: ("Rue C", "Testville")})
    path = fixes([(600, -300), (-3, 7), (6, 1), (12, -1), (18, 0), (24, 1)])
    assert streets(path, loc) == [3, 1, 1, 1, 1, 1]
    with mock.patch.object(trajectory, "CORNER_STOP", 0.0):
        assert streets(path, loc)[1] == 2


def test_road_graph_route_lengths() -> None:
    graph = RoadGraph(locator().segment_ends)
    assert math.isclose(graph.route_m(1, 100.0, 1, 160.0), 60.0)
    # From 20 m before the crossing on Rue A (segment 1) to 10 m up Rue B (segment 4).
    assert math.isclose(graph.route_m(1, 280.0, 4, 10.0), 30.0, abs_tol=0.5)
    # Rue C 100 m west of the crossing from Rue A 100 m west: via Rue B, 100 + 30 + 100.
    assert math.isclose(graph.route_m(1, 200.0, 6, 200.0), 230.0, abs_tol=0.5)
    far = RoadGraph(locator().segment_ends, reach_m=20.0)  # the junctions are 30 m apart
    assert math.isinf(far.route_m(1, 0.0, 7, 300.0))


def test_routes_of_many_pairs_come_out_as_each_alone_whatever_was_asked_before() -> None:
    """The pair cache is a sorted array that new pairs merge into: batches asking known and new
    pairs in any order, repeats and unreachable pairs included, get what a fresh graph gives."""
    ends = locator().segment_ends
    ids = sorted(ends)
    rng = np.random.default_rng(3)
    graph = RoadGraph(ends, reach_m=20.0)  # the junctions are 30 m apart: some pairs out of reach
    every: list[float] = []
    for _ in range(4):
        pairs = [(a, b) for a, b in rng.choice(ids, size=(40, 2)).tolist() if a != b]
        seg_a, seg_b = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
        along_a = rng.uniform(0, 1, len(pairs)) * np.array([ends[a].length_m for a in seg_a.tolist()])
        along_b = rng.uniform(0, 1, len(pairs)) * np.array([ends[b].length_m for b in seg_b.tolist()])
        alone = [RoadGraph(ends, reach_m=20.0).route_m(*args)
                 for args in zip(seg_a.tolist(), along_a.tolist(), seg_b.tolist(), along_b.tolist(), strict=True)]
        assert graph.routes_m(seg_a, along_a, seg_b, along_b).tolist() == alone
        every.extend(alone)
    assert any(math.isinf(route) for route in every) and not all(math.isinf(route) for route in every)


def test_a_road_graph_refuses_segment_ids_it_cannot_key() -> None:
    ends = locator().segment_ends
    first = min(ends)
    with pytest.raises(ValueError, match="segment ids"):
        RoadGraph({**{k: v for k, v in ends.items() if k != first}, -1: ends[first]})



def candidates(fix: list[int], street: list[int], distance: list[float]) -> Candidates:
    n = len(fix)
    return Candidates(np.array(fix), np.arange(n) + 100, np.array(street), np.array(distance, dtype=float),
                      np.zeros(n), np.ones(n), np.zeros(n), np.zeros(n))


def test_a_street_of_many_short_segments_leaves_room_for_the_crossing_street() -> None:
    # Street 1 drawn as many short pieces, all nearer than street 2: without a cap per street they
    # would take every state and street 2 could never be chosen, whatever the path says.
    n = MAX_STATES + 2
    found = candidates([0] * (n + 1), [1] * n + [2], [1.0 + k for k in range(n)] + [12.0])
    kept = prune(found, np.array([10.0]), np.array([-1]))
    assert int((found.street[kept] == 1).sum()) == STATES_PER_STREET
    assert kept[-1] and kept.sum() <= MAX_STATES


def test_states_are_the_nearest_within_reach_per_fix_and_a_pinned_fix_keeps_its_street() -> None:
    # Fix 0: seven streets, the farthest beyond 4 sigmas of the nearest; fix 1 pinned to street 7,
    # whose segment is not its nearest; fix 2 pinned to a street with no segment near it.
    found = candidates([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2],
                       [1, 2, 3, 4, 5, 6, 8, 5, 7, 7, 1],
                       [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 60.0, 1.0, 3.0, 4.0, 1.0])
    kept = prune(found, np.array([5.0, 5.0, 5.0]), np.array([-1, 7, 9]))
    assert kept.tolist() == [*[True] * MAX_STATES, *[False] * (7 - MAX_STATES), False, True, False, False]
    wide = prune(found, np.array([20.0, 5.0, 5.0]), np.array([-1, -1, -1]))  # 60 m is within 4 x 20 m
    assert wide[:7].sum() == MAX_STATES and wide[7:].tolist() == [True, True, True, True]
