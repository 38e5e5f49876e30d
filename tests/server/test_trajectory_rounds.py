"""Trajectory matching on real Rennes rounds: ``trivue simulate``'s fleet with its ground truth.

The whole-day match of each truck (no provisional window) at the hidden check's setting, 3 m of
GPS noise and no heading, and the crossing-clearance term of the emission measured by taking it
out: the lifts it puts back on their street are the first and last of a street, whose fix projects
inside a crossing onto the neighbouring street.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session

from base.paths import SHARED_DIR
from server.db import make_engine
from server.migrate import upgrade_database
from server.streets import trajectory
from server.streets.importer import import_street_file
from server.streets.trajectory import Fix, TrackLocator, TrajectoryMatcher
from trivue.sim.rounds import StreetNetwork
from trivue.sim.scenario import Scenario, ScenarioOptions, build_scenario
from trivue.sim.schedule import DrivingSettings

RENNES = SHARED_DIR / "geodata" / "rennes-streets.osm.geojson"


@pytest.fixture(scope="module")
def rennes_fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrackLocator, Scenario]:
    if not RENNES.is_file():
        pytest.skip(f"{RENNES} is absent")
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('rounds') / 'streets.db'}")
    upgrade_database(engine)
    with Session(engine) as session:
        import_street_file(session, Path(RENNES), "Rennes")
        session.commit()
    with Session(engine) as session:
        network = StreetNetwork.from_session(session)
        locator = TrackLocator.from_session(session)
    return locator, build_scenario(network, ScenarioOptions(trucks=20, round_km=3.0, seed=7))


def day_of_lifts(scenario: Scenario, sigma_m: float) -> list:
    driving = DrivingSettings(gps_sigma_m=sigma_m, gps_dropout=0.0)
    lifts = scenario.lifts(datetime(2026, 3, 2, 6, tzinfo=UTC), 1, driving)
    return sorted(lifts, key=lambda lift: lift.started_at)


@pytest.fixture(scope="module")
def rennes_rounds(rennes_fleet: tuple[TrackLocator, Scenario]) -> tuple[TrackLocator, list]:
    locator, scenario = rennes_fleet
    return locator, day_of_lifts(scenario, 3.0)


def score(matcher: TrajectoryMatcher, lifts: list, heading: bool = False) -> tuple[float, float]:
    """(share of lifts on their street, share of streets whose lift count is exact)."""
    by_truck: dict[str, list] = {}
    for lift in lifts:
        by_truck.setdefault(lift.truck_id, []).append(lift)
    truth, got, right = Counter(), Counter(), 0
    for truck_lifts in by_truck.values():
        fixes = [Fix(lift.gps["lat"], lift.gps["lon"], lift.started_at, lift.gps["heading_deg"] if heading else None,
                     lift.gps["accuracy_m"])
                 for lift in truck_lifts]
        for lift, match in zip(truck_lifts, matcher.match(fixes), strict=True):
            street = lift.household.street.street_id
            truth[street] += 1
            got[match.street_id if match else None] += 1
            right += match is not None and match.street_id == street
    return right / len(lifts), sum(got[street] == n for street, n in truth.items()) / len(truth)


def test_rounds_at_3_m_without_heading_land_on_their_streets(rennes_rounds: tuple[TrackLocator, list]) -> None:
    locator, lifts = rennes_rounds
    assert len(lifts) > 3000
    lifts_right, streets_exact = score(TrajectoryMatcher(locator), lifts)
    assert lifts_right >= 0.998 and streets_exact >= 0.95, (lifts_right, streets_exact)


def test_the_crossing_clearance_puts_corner_lifts_back_on_their_street(
        rennes_rounds: tuple[TrackLocator, list]) -> None:
    locator, lifts = rennes_rounds
    with_clearance = TrajectoryMatcher(locator)
    without = TrajectoryMatcher(locator, with_clearance.graph)
    without._crosses = np.zeros_like(without._crosses)  # every segment end a dead end: no crossing to keep clear of
    lifts_with, exact_with = score(with_clearance, lifts)
    lifts_without, exact_without = score(without, lifts)
    assert lifts_with > lifts_without and exact_with > exact_without, (lifts_with, exact_with, lifts_without,
                                                                        exact_without)


def test_the_route_scale_grows_with_the_gps_error(rennes_fleet: tuple[TrackLocator, Scenario],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """At 20 m of noise the straight line between two fixes errs by some 30 m: a route scale fixed
    at 10 m makes the true drive look like a detour. Scaled with the fixes' error, the truck's path
    keeps more streets whole."""
    locator, scenario = rennes_fleet
    lifts = day_of_lifts(scenario, 20.0)
    scaled = score(TrajectoryMatcher(locator), lifts, heading=True)
    monkeypatch.setattr(trajectory, "ROUTE_BETA_SIGMAS", 0.0)
    fixed = score(TrajectoryMatcher(locator), lifts, heading=True)
    assert scaled[0] > fixed[0] and scaled[1] > fixed[1], (scaled, fixed)


def test_paths_matched_together_match_as_they_do_alone(rennes_fleet: tuple[TrackLocator, Scenario]) -> None:
    """The decoder stacks every run of a batch into one array, padding the shorter ones: what a
    truck's lifts get must not depend on which other trucks' lifts shared its batch. Paths of 1 to
    ~200 lifts, with a missing fix, a 20-minute break (two runs) and pinned anchors."""
    locator, scenario = rennes_fleet
    lifts = day_of_lifts(scenario, 10.0)
    by_truck: dict[str, list] = {}
    for lift in lifts:
        by_truck.setdefault(lift.truck_id, []).append(lift)
    paths: list[tuple[list[Fix | None], list[int | None]]] = []
    for n, truck_lifts in enumerate(by_truck.values()):
        chosen = truck_lifts[: [1, 2, 3, 9, 40, 55, 10_000][n % 7]]
        fixes: list[Fix | None] = [Fix(lift.gps["lat"], lift.gps["lon"], lift.started_at, lift.gps["heading_deg"]
                                       if n % 2 else None, lift.gps["accuracy_m"]) for lift in chosen]
        if len(fixes) > 5:
            fixes[3] = None
            late = fixes[4]
            assert late is not None
            fixes[4] = Fix(late.lat, late.lon, late.at + timedelta(minutes=20), late.heading_deg, late.accuracy_m)
            fixes[5:] = [Fix(f.lat, f.lon, f.at + timedelta(minutes=20), f.heading_deg, f.accuracy_m)
                         for f in fixes[5:] if f is not None]
        pinned = [chosen[0].household.street.street_id if n % 3 == 0 else None] + [None] * (len(fixes) - 1)
        paths.append((fixes, pinned))
    together = locator.match_tracks(paths)
    alone = [TrajectoryMatcher(locator).match(fixes, pinned) for fixes, pinned in paths]
    assert sum(len(p) for p in together) > 600
    assert together == alone
    assert any(m is None for p in together for m in p)  # the missing fix
