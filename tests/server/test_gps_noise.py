"""Fixes without an accuracy: the truck's GPS error is measured from its own fixes, not assumed 10 m.

A good receiver that reports no accuracy (NMEA GGA has none in metres) was matched as if every fix
were 10 m off: the crossing street then wins lifts that a 3 m fix places plainly. Its fixes'
distances to the nearest street measure the error instead (``server.streets.gps_noise``): whole
paths from their own fixes, live ingest from each truck's latest lifts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from server.config import load_settings
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.models import Lift
from server.streets import gps_noise
from server.streets.gps_noise import MAX_ACCURACY_M, MIN_SAMPLES, RADIUS_68, accuracy_from_offsets
from server.streets.trajectory import Fix, TrackLocator
from tests.server.events import lift_event, wire
from tests.server.streets_fixture import rennes_database
from trivue.sim.rounds import StreetNetwork
from trivue.sim.scenario import ScenarioOptions, build_scenario
from trivue.sim.schedule import DrivingSettings, PlannedLift

GPS_SIGMA_M = 3.0  # a good receiver
SEED = 1  # the scenario: 10 trucks collecting 2 km each of the fixture's streets


@pytest.mark.parametrize("sigma", [2.0, 3.0, 10.0])
def test_the_error_across_the_street_gives_the_accuracy_a_receiver_would_report(sigma: float) -> None:
    rng = random.Random(int(sigma))
    offsets = [abs(rng.gauss(0, sigma)) for _ in range(2000)]
    assert accuracy_from_offsets(offsets) == pytest.approx(RADIUS_68 * sigma, rel=0.08)


def test_too_few_fixes_measure_nothing_and_fixes_off_the_map_are_capped() -> None:
    assert accuracy_from_offsets([3.0] * (MIN_SAMPLES - 1)) is None
    assert accuracy_from_offsets([3.0] * (MIN_SAMPLES - 1) + [math.nan] * 10) is None  # no street near those
    assert accuracy_from_offsets([3.0] * MIN_SAMPLES) == pytest.approx(RADIUS_68 * 3.0 / 0.6745)
    assert accuracy_from_offsets([400.0] * 20) == MAX_ACCURACY_M  # a depot off the map is not GPS error


@pytest.fixture
def city(tmp_path: Path, database_url: str) -> Iterator[tuple[sessionmaker, TrackLocator, list[PlannedLift]]]:
    engine, sessions = rennes_database(database_url)
    with sessions() as session:
        locator = TrackLocator.from_session(session)
        network = StreetNetwork.from_session(session)
    scenario = build_scenario(network, ScenarioOptions(trucks=10, round_km=2.0, seed=SEED))
    lifts = scenario.lifts(datetime(2026, 3, 2, 6, tzinfo=UTC), 1, DrivingSettings(gps_sigma_m=GPS_SIGMA_M,
                                                                                     gps_dropout=0.0))
    yield sessions, locator, sorted(lifts, key=lambda lift: lift.started_at)
    engine.dispose()


def wrong_whole_paths(locator: TrackLocator, lifts: list[PlannedLift], reported: bool) -> int:
    trucks: dict[str, list[PlannedLift]] = {}
    for lift in lifts:
        trucks.setdefault(lift.truck_id, []).append(lift)
    wrong = 0
    for truck in trucks.values():
        fixes = [Fix(lift.gps["lat"], lift.gps["lon"], lift.started_at, None,  # type: ignore[index]
                     lift.gps["accuracy_m"] if reported else None) for lift in truck]  # type: ignore[index]
        for lift, match in zip(truck, locator.match_track(fixes), strict=True):
            wrong += (match.street_id if match else None) != lift.household.street.street_id
    return wrong


def test_a_path_without_accuracies_is_matched_as_well_as_with_them(
        city: tuple[sessionmaker, TrackLocator, list[PlannedLift]], monkeypatch: pytest.MonkeyPatch) -> None:
    _, locator, lifts = city
    reported = wrong_whole_paths(locator, lifts, reported=True)
    measured = wrong_whole_paths(locator, lifts, reported=False)
    monkeypatch.setattr(gps_noise, "accuracy_from_offsets", lambda _offsets: None)
    assumed = wrong_whole_paths(locator, lifts, reported=False)  # every fix taken for 10 m off, as before
    assert assumed >= measured + 6, (assumed, measured)  # the premise: 20 against 8 when written
    assert measured <= reported + 2, (measured, reported)


def test_live_ingest_measures_each_trucks_error_from_its_latest_lifts(
        city: tuple[sessionmaker, TrackLocator, list[PlannedLift]], tmp_path: Path, database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 20 lifts from 10 trucks: two or three of a truck's lifts a batch, too few to measure
    its error on the path alone; the trucks' latest lifts measure it."""
    sessions, locator, lifts = city
    settings = load_settings(env={}, data_dir=tmp_path / "data", database_url=database_url)
    truth = {(lift.truck_id, lift.sequence): lift.household.street.street_id for lift in lifts}
    reported = wrong_whole_paths(locator, lifts, reported=True)

    def stored_wrong() -> int:
        messages = []
        for lift in lifts:  # new event ids each time: the first run's are stored as seen
            gps = lift.gps or {}
            event = lift_event(lift.truck_id, sequence=lift.sequence, at=lift.started_at, counts={})
            body = wire(event, gps={"lat": gps["lat"], "lon": gps["lon"], "accuracy_m": None, "heading_deg": None})
            messages.append(MqttMessage(f"{settings.topic_prefix}/{lift.truck_id}/lift", body,
                                        lift.ended_at + timedelta(seconds=2)))
        inbox = Inbox(settings, EvidenceStore(settings.evidence_path, 2**20), Metrics(), lambda _s: locator)
        for start in range(0, len(messages), 20):
            with sessions() as session, session.begin():
                inbox.write(session, messages[start:start + 20])
        with sessions() as session, session.begin():
            rows = session.execute(select(Lift.truck_id, Lift.sequence, Lift.street_id)).all()
            session.query(Lift).delete()
        assert len(rows) == len(lifts)
        return sum(street != truth[(truck, sequence)] for truck, sequence, street in rows)

    measured = stored_wrong()
    monkeypatch.setattr(gps_noise, "accuracy_from_offsets", lambda _offsets: None)
    assumed = stored_wrong()
    assert assumed >= measured + 6, (assumed, measured)
    assert measured <= reported + 4, (measured, reported)  # a truck's first lifts wait for its estimate
