"""The simulator's dark camera (``trivue.sim.faults.DarkCamera``): one truck's hopper lights go out
for a stretch of lifts, so that the fleet page's « Vue de caméra inutilisable » and the data-quality
page's lifts not judged have something to show (docs/demo.md), with the ground truth kept apart."""

from __future__ import annotations

import json
import random
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from trivue.demo.place import SAMPLE_STREETS
from trivue.sim.contents import ContentMaker
from trivue.sim.faults import DarkCamera, FaultPlan
from trivue.sim.fleet import EventsRun
from trivue.sim.homes import HouseholdBuilder
from trivue.sim.rounds import StreetNetwork
from trivue.sim.schedule import DrivingSettings, TruckDay, index_by_link
from trivue.sim.trucks import SAMPLE_IMAGES, write_burst
from trivue.sim.truth import Truth
from vision.rules import SortingRules
from vision.schema import Stream, TruckStats, parse_lift_event


class RecordingLink:
    """The fleet's MQTT link as EventsRun uses it, keeping what would be published."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes | str]] = []

    def publish(self, truck_id: str, suffix: str, payload: bytes | str, retain: bool = False,
                tracked: bool = True) -> None:
        self.sent.append((truck_id, suffix, payload))


def test_simulate_names_a_dark_camera_truck_it_does_not_simulate(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from trivue.cli import main

    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path))
    code = main(["simulate", "--streets", str(SAMPLE_STREETS), "--round-km", "0.2", "--broker", "mqtt://127.0.0.1:1",
                 "--camera-dark", "sim-09:5+10"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == ("trivue simulate: error: --camera-dark sim-09: no such truck "
                                            "(simulated: sim-01, sim-02, sim-03)"), err


def test_the_dark_stretch_is_the_lifts_asked_for() -> None:
    dark = DarkCamera("t-1", first=8, lifts=3)
    assert [s for s in range(20) if dark.holds("t-1", s)] == [8, 9, 10]
    assert not any(dark.holds("t-2", s) for s in range(20))
    with pytest.raises(ValueError, match="lifts 0"):
        DarkCamera("t-1", first=0, lifts=0)


@pytest.mark.parametrize("photo", sorted((SAMPLE_IMAGES / "clean").glob("*.jpg"))[:3]
                         + sorted((SAMPLE_IMAGES / "contaminated").glob("*.jpg"))[:3], ids=lambda p: p.name)
def test_a_dark_burst_reads_dark_to_the_agents_view_check(photo: Path, tmp_path: Path) -> None:
    """Full mode: the agent must find the view unusable by itself, from the frames (edge/view.py's measure)."""
    import cv2

    from vision.view import LiftView

    verdicts = {}
    for dark in (False, True):
        burst = tmp_path / f"burst-{dark}"
        write_burst(burst, photo, datetime.now(UTC), dark=dark)
        view = LiftView()
        view.begin()
        for frame in sorted(burst.glob("*.jpg")):
            view.add(cv2.imread(str(frame)))
        verdicts[dark] = view.verdict()
        shutil.rmtree(burst)
    assert verdicts == {False: None, True: "dark"}  # dark, neither frozen nor usable


def test_events_mode_sends_the_dark_lifts_as_a_truck_does_and_the_truth_keeps_them_apart() -> None:
    network = StreetNetwork.from_file(SAMPLE_STREETS)
    rng = random.Random(3)
    drives = network.plan_round(rng, set(), 3000)
    households = HouseholdBuilder(network, rng).build(dict.fromkeys({d.link.street for d in drives}, 0.3))
    lifts = TruckDay(network, index_by_link(households), DrivingSettings(), rng).lifts("t-1", drives,
                                                                                       datetime.now(UTC))
    assert len(lifts) > 40
    link, truth = RecordingLink(), Truth({}, {})
    faults = FaultPlan(dark=DarkCamera("t-1", first=10, lifts=5))
    EventsRun(link, ContentMaker(SortingRules.load(), Stream("recyclables")), faults, truth,  # type: ignore[arg-type]
              random.Random(4)).run(lifts, 0.0)

    events = [parse_lift_event(payload) for _, suffix, payload in link.sent if suffix == "lift"]
    assert len(events) == len(lifts)
    dark = [e for e in events if e.view_unusable is not None]
    assert [e.sequence for e in dark] == [10, 11, 12, 13, 14]
    assert all(e.view_unusable == "dark" and not e.counts and not e.errors and not e.contaminated for e in dark)

    beats = [TruckStats.model_validate_json(payload) for _, suffix, payload in link.sent if suffix == "stats"]
    views = [(b.lifts_total, b.camera_view.problem if b.camera_view else None) for b in beats]
    assert (11, "dark") in views  # said at the first dark lift, the fleet page flags it at once
    assert views[-1][1] is None  # the lights are back: the next heartbeat says so

    summary = truth.summary()
    assert summary["view_unusable"] == 5 and summary["faults"]["camera_dark_lifts"] == 5
    assert sum(s["lifts"] for s in summary["streets"]) == len(lifts) - 5  # judged by nobody
    rows = {r["sequence"]: r for r in truth.rows}
    assert rows[12]["view_unusable"] == "dark" and rows[20]["view_unusable"] == ""
    assert json.loads(rows[12]["counts"])  # what truly was in the bin, which the camera did not see
