"""The simulator's parts on the committed Rennes extract: rounds, households, lifts, contents, faults."""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import random
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from base.errors import CliError
from server.streets.bins import read_bin_file
from tests.conftest import free_port
from trivue.demo.place import SAMPLE_STREETS
from trivue.sim.contents import ContentMaker
from trivue.sim.faults import FaultPlan, Window, malformed_payload
from trivue.sim.homes import (
    PLOT_M,
    SYNTHETIC_MARK,
    AddressPoint,
    ContaminationPlan,
    HouseholdBuilder,
    write_bin_registry,
)
from trivue.sim.rounds import StreetNetwork, StreetRef
from trivue.sim.schedule import DrivingSettings, TruckDay, index_by_link
from vision.rules import SortingRules
from vision.schema import SchemaError, Stream, parse_lift_event


@pytest.fixture(scope="module")
def network() -> StreetNetwork:
    return StreetNetwork.from_file(SAMPLE_STREETS)


def test_rounds_drive_connected_streets_once_and_respect_one_ways(network: StreetNetwork) -> None:
    rng, done = random.Random(4), set()
    rounds = [network.plan_round(rng, done, 1500) for _ in range(3)]
    collected = [d.link.index for drives in rounds for d in drives if d.collect]
    assert len(collected) == len(set(collected))  # no street collected twice by the fleet
    for drives in rounds:
        assert sum(d.link.length_m for d in drives if d.collect) >= 1500
        for drive in drives:
            assert drive.link.oneway == 0 or (drive.link.oneway == 1) == drive.forward
        arrivals = [(d.link.end if d.forward else d.link.start) for d in drives]
        departures = [(d.link.start if d.forward else d.link.end) for d in drives]
        joined = sum(a == b for a, b in zip(arrivals, departures[1:], strict=False))
        assert joined >= 0.8 * (len(drives) - 1)  # a few jumps where the extract's edge is a dead end
        names = [d.link.street.name for d in drives if d.collect]
        assert sum(a == b for a, b in itertools.pairwise(names)) > len(names) / 3  # street after street


def test_generated_households_line_both_sides_and_are_marked_synthetic(network: StreetNetwork) -> None:
    street = next(s for s in network.streets if s.name == "Rue de Saint-Malo")
    rates = {street: 0.5}
    households = HouseholdBuilder(network, random.Random(1), rfid_share=0.5).build(rates)
    assert households and all(h.street == street and h.synthetic and h.generated for h in households)
    assert all(SYNTHETIC_MARK in h.label for h in households)
    odd = [h for h in households if int(h.number) % 2]
    even = [h for h in households if not int(h.number) % 2]
    assert {h.side for h in odd} == {1} and {h.side for h in even} == {-1}
    by_link = sorted((h.link, h.side, h.offset_m) for h in households)
    gaps = [b[2] - a[2] for a, b in itertools.pairwise(by_link) if a[:2] == b[:2]]
    assert gaps and PLOT_M[0] <= min(gaps) and max(gaps) <= PLOT_M[1]
    assert 0.3 < sum(h.bin_id is not None for h in households) / len(households) < 0.7
    x, y = network.frame.to_xy(households[0].lon, households[0].lat)
    assert 5 < network.links[households[0].link].project(x, y)[1] < 9  # at the kerb, not on the centre line


def test_imported_addresses_are_the_households_where_present(network: StreetNetwork) -> None:
    link = network.links[0]
    street = StreetRef(1, link.street.name, "Rennes")
    streets = StreetNetwork(network.frame, [type(link)(0, street, link.xy, link.oneway, link.start, link.end)])
    lon, lat = streets.frame.to_lonlat(*link.point_at(link.length_m / 2)[:2])
    points = [AddressPoint(1, "12", f"12 {street.name} 35000 Rennes", lat + 0.00005, lon, False)]
    households = HouseholdBuilder(streets, random.Random(1)).build({street: 0.1}, points)
    assert [(h.number, h.synthetic, h.generated) for h in households] == [("12", False, False)]
    assert abs(households[0].offset_m - link.length_m / 2) < 3


def test_the_bin_registry_names_each_tagged_household_by_its_address_key(network: StreetNetwork,
                                                                         tmp_path: Path) -> None:
    """``bins.csv``, what `trivue bins import` reads: imported addresses by their BAN id,
    generated households by the key `store_synthetic` gives their address rows."""
    link = network.links[0]
    street = StreetRef(1, link.street.name, "Rennes")
    streets = StreetNetwork(network.frame, [type(link)(0, street, link.xy, link.oneway, link.start, link.end)])
    lon, lat = streets.frame.to_lonlat(*link.point_at(link.length_m / 2)[:2])
    real = [AddressPoint(1, "12", f"12 {street.name} 35000 Rennes", lat, lon, False, "35238_1010_00012")]
    households = [*HouseholdBuilder(streets, random.Random(1), rfid_share=1.0).build({street: 0.1}, real),
                  *HouseholdBuilder(streets, random.Random(2), rfid_share=0.5).build({street: 0.1})]
    assert write_bin_registry(tmp_path / "bins.csv", households) == sum(h.bin_id is not None for h in households)
    rows = [(tag, key) for _, tag, key in read_bin_file(tmp_path / "bins.csv")]
    assert rows[0] == (households[0].bin_id, "35238_1010_00012")
    assert {key for _, key in rows[1:]} == {f"sim:{h.id}" for h in households[1:] if h.bin_id}


def test_lifts_follow_the_round_in_time_with_gps_noise_and_dropouts(network: StreetNetwork) -> None:
    rng = random.Random(2)
    drives = network.plan_round(rng, set(), 3000)
    streets = sorted({d.link.street for d in drives}, key=lambda s: s.name)
    households = HouseholdBuilder(network, rng).build(dict.fromkeys(streets, 0.3))
    settings = DrivingSettings(gps_sigma_m=4.0, gps_dropout=0.1)
    lifts = TruckDay(network, index_by_link(households), settings, rng).lifts("t-1", drives, datetime.now(UTC))
    assert len(lifts) > 50
    assert all(a.ended_at <= b.started_at for a, b in itertools.pairwise(lifts))
    assert [x.sequence for x in lifts] == list(range(len(lifts)))
    assert 0.03 < sum(x.gps is None for x in lifts) / len(lifts) < 0.2
    errors = [math.dist(network.frame.to_xy(x.gps["lon"], x.gps["lat"]), network.frame.to_xy(x.lon, x.lat))
              for x in lifts if x.gps]
    assert 2 < statistics.mean(errors) < 8 and max(errors) < 25
    assert 0.15 < sum(x.contaminated for x in lifts) / len(lifts) < 0.45


def test_households_at_one_spot_are_all_lifted(network: StreetNetwork) -> None:
    """Imported addresses projected on a link's end share one offset: both bins are lifted there."""
    rng = random.Random(4)
    drives = network.plan_round(rng, set(), 500)
    first = next(d for d in drives if d.collect)
    built = HouseholdBuilder(network, rng).build({first.link.street: 0.1})
    twins = [dataclasses.replace(h, link=first.link.index, offset_m=first.link.length_m) for h in built[:2]]
    settings = DrivingSettings(setout=1.0, gps_dropout=0.0)
    lifts = TruckDay(network, index_by_link(twins), settings, rng).lifts("t-1", [first], datetime.now(UTC))
    assert [lift.household.id for lift in lifts] == [h.id for h in twins]


def test_bad_streets_get_the_bad_rate(network: StreetNetwork) -> None:
    plan = ContaminationPlan(base_rate=0.05, bad_rate=0.7, bad_share=0.2, overrides={"Rue de Brest": 0.9})
    rates = plan.street_rates(network.streets, random.Random(3))
    assert sum(r == 0.7 for r in rates.values()) == round(0.2 * (len(rates) - 1))
    assert [r for s, r in rates.items() if s.name == "Rue de Brest"] == [0.9]


@pytest.mark.parametrize("stream", list(Stream))
def test_contents_are_judged_as_drawn(stream: Stream) -> None:
    maker, rng = ContentMaker(SortingRules.load(), stream), random.Random(5)
    for contaminated in (True, False) * 50:
        drawn = maker.draw(contaminated, rng)
        assert drawn.verdict.contaminated is contaminated and all(v > 0 for v in drawn.counts.values())


def test_faults_windows_and_malformed_payloads() -> None:
    assert Window.parse("600+300").holds(700) and not Window.parse("600+300").holds(900)
    with pytest.raises(CliError, match="START\\+DURATION"):
        Window.parse("soon")
    plan = FaultPlan(outages=(Window(0, 100),), outage_share=0.5)
    hit = [t for t in (f"t{i}" for i in range(200)) if plan.offline(t, 50)]
    assert 60 < len(hit) < 140 and all(plan.offline(t, 50) for t in hit) and not plan.offline(hit[0], 150)
    good = ('{"event_id":"6a1f0c52-8f4e-4a55-9f55-0e7c2b0d9a10",'
            '"truck_id":"t1","sequence":1,"stream":"glass","started_at":"2026-01-01T08:00:00Z",'
            '"ended_at":"2026-01-01T08:00:05Z","contaminated":false,"score":0,'
            '"model":{"name":"m","version":"1"},"frames":0}')
    assert parse_lift_event(good).truck_id == "t1"
    for kind in (0, 1):
        with pytest.raises(SchemaError):
            parse_lift_event(malformed_payload(kind, "t1", good))
    assert parse_lift_event(malformed_payload(2, "t1", good)).truck_id == "t1-impostor"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--outage", "soon"], "expected START+DURATION"),
        (["--trucks", "0"], "at least one truck"),
        (["--bad-rate", "1.5"], "between 0 and 1"),
        (["--stream", "compost"], "is not one of"),
        (["--mode", "full", "--duplicates", "0.1", "--embedded-broker"], "events-mode faults"),
    ],
)
def test_simulate_bad_options_are_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    out = subprocess.run([sys.executable, "-m", "trivue", "simulate", "--streets", str(SAMPLE_STREETS),
                          "--round-km", "0.2", "--broker", f"mqtt://127.0.0.1:{free_port()}", *args],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={**os.environ, "TRIVUE_DATA_DIR": str(tmp_path)})
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_empty_database_says_to_import_streets(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "trivue", "simulate", "--database-url",
                          f"sqlite:///{tmp_path / 'empty.db'}"], capture_output=True, text=True, cwd=tmp_path,
                         timeout=120, env={**os.environ, "TRIVUE_DATA_DIR": str(tmp_path)})
    assert out.returncode == 2 and "import streets first" in out.stderr, out.stderr
