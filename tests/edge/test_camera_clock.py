"""A camera box whose clock is off (minutes behind, or 1970 without a battery) stamps its burst
photos with it. A lift took its times from them, so every live lift looked minutes old: it took the
GPS fix of minutes ago (another street; the truck had driven on), and a box in 1970 had every lift
refused by the server as past retention. The agent learns the camera's clock from bursts it sees
being written and corrects every burst's times by it; a genuine backlog keeps the fix of its own time.

The scanner's monotonic clock and its sleeps are this test's (``CameraTime``): each pass of the
scanner is one step of the camera box's script, so which listing sees what is fixed, not raced.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

import edge.camera
import edge.gps
from edge.app import Agent
from edge.camera import burst_frames
from edge.camera_clock import CORRECT_FROM_S, CameraClock
from edge.outbox import LIFT
from tests.edge.helpers import ScriptedDetector, unique_truck
from tests.edge.test_agent import settings_for
from vision.schema import LiftEvent, TruckStats, parse_lift_event

NOWHERE = "mqtt://127.0.0.1:9"  # no broker: the lifts stay in the outbox, where this test reads them
BOTTLE = (20, 20, 120, 160, 0.9, 0)
# The scanner's passes a test may take: far more than any needs (15-40 here), so a wrong one fails,
# not hangs. After the script has played, passes also run while the pipeline drains the last frames.
PASSES = 2000
NOW_TICK = 1300.0  # the GPS's monotonic clock when the bursts are processed
SPEED = 5e-5  # degrees of latitude a second: about 20 km/h north


class Stopped(Exception):
    """The test is over: the scanner's thread ends at its next sleep."""


class CameraTime:
    """``edge.camera``'s clocks: the wall clock real, the monotonic one moved by the scanner's sleeps;
    the camera box's action ``k`` runs at the scanner's ``k``-th sleep (after its ``k``-th listing).

    ``end`` stops the scanner threads it served before the next test's takes ``edge.camera.time``:
    a scanner with nothing left to hand out never sees its source closed, and one left running took
    the next test's passes and played its script before that test's own scanner listed anything."""

    def __init__(self, actions: dict[int, Callable[[], None]]) -> None:
        self.tick, self.sleeps, self.actions, self.over = 0.0, 0, actions, False
        self.threads: set[threading.Thread] = set()  # the scanners that slept here

    def monotonic(self) -> float:
        return self.tick

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if self.over or self.sleeps >= PASSES:
            raise Stopped(f"the scanner's pass {self.sleeps}: it never handed out what the test waits for")
        self.threads.add(threading.current_thread())
        self.sleeps += 1
        if (action := self.actions.pop(self.sleeps, None)) is not None:
            action()
        self.tick += seconds
        time.sleep(0.002)  # let the loop's thread run; the scanner's time is the tick

    def end(self) -> None:
        """The test is over: its scanner threads stop at their next sleep here, and are waited for."""
        self.over = True
        for thread in self.threads - {threading.current_thread()}:
            thread.join(timeout=10)
            assert not thread.is_alive(), f"{thread.name}: a scanner still running after its test"


def shoot(root: Path, name: str, photo: Path, stamped: datetime, frames: int = 3) -> Path:
    """A burst written elsewhere and moved in whole, its photos stamped by the camera box's clock."""
    spool = root.parent / "spool" / name
    spool.mkdir(parents=True)
    for k in range(frames):
        path = spool / f"IMG_{k}.jpg"
        shutil.copy(photo, path)
        stamp = stamped.timestamp() - (frames - 1 - k) * 0.4
        os.utime(path, (stamp, stamp))
    return spool.rename(root / name)


def place(tick: float) -> tuple[float, float]:
    """Where the truck was at ``tick`` of the GPS's clock: driving north."""
    return 47.9 + (tick - 700) * SPEED, 1.9


def lifts_of(agent: Agent, lifts: int) -> list[LiftEvent]:
    """Run the agent on its live source (follow) until ``lifts`` lifts are committed; read them back."""
    source = agent.frame_source(once=False)

    def until_done() -> Iterator[edge.camera.Frame]:
        ended = 0
        for frame in source:
            yield frame
            ended += frame.ends_lift
            if ended == lifts:
                return

    agent.pipeline.run(until_done())
    source.close()
    rows = agent.outbox.oldest(limit=100)
    return sorted((parse_lift_event(row.payload) for row in rows if row.kind == LIFT), key=lambda e: e.sequence)


@pytest.mark.parametrize("camera_clock", ["3 min behind", "1970"])
def test_a_camera_clock_off_gives_live_lifts_the_live_fix_and_a_backlog_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, camera_time, litter_val_images, camera_clock: str) -> None:
    # the camera box's clock: 3 minutes behind, or a box without a battery booted 20 minutes ago (1970)
    booted = datetime(1970, 1, 1, 0, 20, tzinfo=UTC)
    behind = timedelta(minutes=3) if camera_clock == "3 min behind" else datetime.now(UTC) - booted

    def camera(ago_s: float) -> datetime:
        return datetime.now(UTC) - behind - timedelta(seconds=ago_s)

    root = tmp_path / "bursts"
    root.mkdir()
    photo = litter_val_images[0]
    shoot(root, "burst-000", photo, camera(600))  # there at start: a backlog, before any burst was seen live

    def backlog() -> None:  # the card pulled and put back: two bursts of 5 and 4 minutes ago appear at once
        staging = tmp_path / "card"
        staging.mkdir()
        shoot(staging, "burst-002", photo, camera(300))
        shoot(staging, "burst-003", photo, camera(240))
        root.rename(tmp_path / "old")
        staging.rename(root)

    # sleep 1: after the first listing, the camera box writes a burst now; sleep 8: it has been
    # handed out (2 s to settle at 0.5 s a pass), the backlog comes
    camera_time({1: lambda: shoot(root, "burst-001", photo, camera(0)), 8: backlog})
    tick = [0.0]  # the GPS's monotonic clock, set by the test
    monkeypatch.setattr(edge.gps, "time", SimpleNamespace(monotonic=lambda: tick[0]))
    settings = settings_for(tmp_path, root, NOWHERE, unique_truck(), alert={"broker": None}, gps={"source": None})
    agent = Agent.create(settings, detector=ScriptedDetector([[BOTTLE]] * 12))
    try:
        for step in range(61):  # the last 10 minutes of the drive, a fix every 10 s
            tick[0] = 700 + step * 10
            agent.gps.update(*place(tick[0]), speed_mps=5.5, heading_deg=0.0)
        assert tick[0] == NOW_TICK
        first, live, old, older = lifts_of(agent, 4)
        heartbeat = TruckStats.model_validate_json(agent.stats().model_dump_json())
    finally:
        agent.close()
    assert [e.frames for e in (first, live, old, older)] == [3, 3, 3, 3]
    # live: where the truck is now (before: the fix of 3 minutes ago, 1 km south; or none at all)
    assert live.gps is not None and (live.gps.lat, live.gps.lon) == pytest.approx(place(NOW_TICK), abs=5e-4)
    assert abs((live.ended_at - datetime.now(UTC)).total_seconds()) < 30  # dated today, not 1970
    # the backlog, whose times are now the agent's: the fix of its own time
    for event, ago in ((old, 300), (older, 240)):
        assert event.gps is not None and (event.gps.lat, event.gps.lon) == pytest.approx(
            place(NOW_TICK - ago), abs=5e-4)
        assert abs((datetime.now(UTC) - event.ended_at).total_seconds() - ago) < 30
    # before any burst was seen being written the camera's times stand: older than the track, no position
    assert first.gps is None
    assert agent.camera_clock.offset_s() == pytest.approx(behind.total_seconds(), abs=5)
    # the heartbeat says it (wire 1.3): the fleet page shows "horloge caméra décalée"
    assert heartbeat.camera_clock_offset_s == pytest.approx(behind.total_seconds(), abs=5)


def test_the_heartbeat_carries_the_camera_clock_offset_once_known(tmp_path: Path) -> None:
    """Wire 1.3: the offset was only logged, on the truck; the heartbeat now carries it (none before a
    burst was seen being written), for the fleet page."""
    (tmp_path / "bursts").mkdir()
    settings = settings_for(tmp_path, tmp_path / "bursts", NOWHERE, unique_truck(), alert={"broker": None},
                            gps={"source": None})
    agent = Agent.create(settings, detector=ScriptedDetector([]))
    try:
        unknown = TruckStats.model_validate_json(agent.stats().model_dump_json())
        boot = datetime(1970, 1, 1, 0, 5, tzinfo=UTC)  # a box without a battery: decades behind
        agent.camera_clock.observe(boot + timedelta(seconds=1e9 + 0.43), boot)
        far = TruckStats.model_validate_json(agent.stats().model_dump_json())
        agent.camera_clock.observe(_at(100), _at(280.04))  # set by hand, 3 minutes ahead this time
        ahead = TruckStats.model_validate_json(agent.stats().model_dump_json())
    finally:
        agent.close()
    assert unknown.camera_clock_offset_s is None
    assert far.camera_clock_offset_s == 1e9 + 0.4
    assert ahead.camera_clock_offset_s == -180.0


def test_a_burst_seen_appearing_is_read_whole_whatever_its_stamps(tmp_path: Path, camera_time,
                                                                   litter_val_images) -> None:
    """A camera box 3 minutes behind writes its photos one by one: the burst looked settled at first
    sight (its newest photo 3 minutes old) and was counted with its first photo only."""
    photo, folder = litter_val_images[0], tmp_path / "burst-000"

    def write(k: int) -> None:
        folder.mkdir(exist_ok=True)
        path = folder / f"IMG_{k}.jpg"
        shutil.copy(photo, path)
        stamp = time.time() - 180
        os.utime(path, (stamp, stamp))

    camera_time({1: lambda: write(0), 2: lambda: write(1), 3: lambda: write(2)})
    clock = CameraClock()
    stream = burst_frames(tmp_path, consumed=lambda _key: False, follow=True, settle_s=2.0, clock=clock)
    seen = [next(stream)]
    while not seen[-1].ends_lift:
        seen.append(next(stream))
    assert len(seen) == 3  # was 1: the first photo of three, the lift closed on it
    assert clock.offset_s() == pytest.approx(180, abs=5)
    assert abs((seen[-1].captured_at - datetime.now(UTC)).total_seconds()) < 10


def test_bursts_there_at_start_or_appearing_together_teach_nothing(tmp_path: Path, camera_time,
                                                                    litter_val_images) -> None:
    """A backlog (there at start, or a card's folders appearing at once) is no live burst: its photos'
    age is not the camera's clock."""
    photo, root = litter_val_images[0], tmp_path / "bursts"
    root.mkdir()
    shoot(root, "burst-000", photo, datetime.now(UTC) - timedelta(minutes=30))

    def two() -> None:
        staging = tmp_path / "card"
        staging.mkdir()
        for name in ("burst-001", "burst-002"):
            shoot(staging, name, photo, datetime.now(UTC) - timedelta(minutes=20))
        root.rename(tmp_path / "old")
        staging.rename(root)

    camera_time({1: two})
    clock = CameraClock()
    stream = burst_frames(root, consumed=lambda _key: False, follow=True, settle_s=2.0, clock=clock)
    taken = [next(stream) for _ in range(9)]
    assert sum(f.ends_lift for f in taken) == 3 and clock.offset_s() is None
    assert all((datetime.now(UTC) - f.captured_at).total_seconds() > 1000 for f in taken)  # as stamped


def _at(seconds: float) -> datetime:
    return datetime(2026, 12, 5, 8, 0, tzinfo=UTC) + timedelta(seconds=seconds)


def test_late_bursts_do_not_move_the_estimate() -> None:
    """A burst is seen late (a camera box emptying its upload queue), never early: the smallest
    sample of the window stands, however many late ones come."""
    clock = CameraClock()
    clock.observe(_at(180.4), _at(0))
    for late in (300, 270, 240, 210, 60, 30):  # the queue's bursts, each 30 s newer
        clock.observe(_at(1000 + 180 + late), _at(1000))
    assert clock.offset_s() == pytest.approx(180.4)
    assert clock.correct(_at(0)) == _at(180.4)


def test_a_camera_clock_set_back_or_forward_is_followed() -> None:
    clock = CameraClock()
    for k in range(5):
        clock.observe(_at(k * 30 + 0.5), _at(k * 30))
    assert clock.offset_s() == pytest.approx(0.5)
    assert clock.correct(_at(7)) == _at(7)  # within the poll: not corrected
    assert CORRECT_FROM_S > 0.5
    boot = datetime(1970, 1, 1, 0, 5, tzinfo=UTC)  # the box rebooted without a battery
    clock.observe(_at(200.7), boot)
    assert clock.offset_s() == pytest.approx(0.5)  # one burst: maybe a backlog's
    clock.observe(_at(230.4), boot + timedelta(seconds=30))
    assert clock.offset_s() == pytest.approx((_at(230.4) - boot - timedelta(seconds=30)).total_seconds())
    clock.observe(_at(260.6), _at(260))  # NTP sets it right again: followed at once
    assert clock.offset_s() == pytest.approx(0.6)


def test_no_live_burst_no_correction() -> None:
    assert CameraClock().correct(_at(5)) == _at(5)


def test_a_test_s_scanner_thread_ends_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scanner that found nothing more never hands a frame over, so closing its source left its
    thread listing on; it took the next test's ``CameraTime`` (a module global), its passes and its
    script (that test's bursts moved away before its own scanner's first listing: never counted)."""
    fake = CameraTime({})
    monkeypatch.setattr(edge.camera, "time", fake)

    def scan() -> None:  # the scanner's loop: it sleeps on whatever ``edge.camera.time`` is now
        with contextlib.suppress(Stopped):
            while True:
                edge.camera.time.sleep(0.5)

    thread = threading.Thread(target=scan, daemon=True)
    thread.start()
    while not fake.sleeps:
        time.sleep(0.001)
    fake.end()
    assert not thread.is_alive()
