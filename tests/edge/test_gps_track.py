"""A lift is placed where the truck was when it happened, not where the truck is when the lift is
processed: burst folders processed minutes late (a backlog after a restart, a camera box's card put
back) all landed on the street the truck was driving on at the time. The receiver is played over a
real pty; the monotonic clock fixes age by is the module's seam, driven by the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

import edge.gps
from edge.app import Agent
from edge.config import load_settings
from edge.gps import LIVE_LAG_S, FixedGps, Gps, open_gps
from edge.track import HISTORY_S, STEP_S, Track
from tests.edge.helpers import ScriptedDetector, Subscriber, eventually, make_bursts, unique_truck
from vision.schema import GpsFix, parse_lift_event

A = (47.9000, 1.9000)  # the bin the backlog's lift emptied
BOTTLE = (20, 20, 120, 160, 0.9, 0)


def _angle(degrees: float, width: int) -> str:
    whole = int(degrees)
    return f"{whole:0{width}d}{(degrees - whole) * 60:07.4f}"


def rmc(lat: float, lon: float, knots: float, course: float, status: str = "A") -> str:
    """An RMC sentence (position, speed, course) at this place, its checksum computed."""
    body = (f"GPRMC,120000,{status},{_angle(lat, 2)},N,{_angle(lon, 3)},E,{knots:05.1f},{course:05.1f},"
            "230394,003.1,W")
    checksum = 0
    for char in body:
        checksum ^= ord(char)
    return f"${body}*{checksum:02X}"


class Receiver:
    """A GPS receiver on a pty; each sentence lands at the monotonic tick the test sets."""

    def __init__(self, master: int, gps: Gps, tick: list[float]) -> None:
        self.master, self.gps, self.tick = master, gps, tick

    def play(self, at: float, sentence: str) -> None:
        self.tick[0] = at
        for _ in range(10):  # the first lines may be flushed by the port's opening
            os.write(self.master, (sentence + "\r\n").encode())
            if eventually(lambda: self.gps.fix_age_s() == 0 or (",V," in sentence and self.gps.fix_age_s() is None),
                          timeout=0.5):
                return
        raise AssertionError(f"{sentence} never reached the GPS")


@pytest.fixture
def tick(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The monotonic clock of edge.gps, set by the test (the system clock runs as it does)."""
    now = [1000.0]
    monkeypatch.setattr(edge.gps, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


@pytest.fixture
def receiver(pty: tuple[int, str], tick: list[float]) -> Iterator[Receiver]:
    master, path = pty
    gps = open_gps(path, max_age_s=30)
    try:
        yield Receiver(master, gps, tick)
    finally:
        gps.close()


def position(t: float) -> tuple[float, float, float, float]:
    """(lat, lon, knots, course) of a round: east to the bin A (at 2150-2210 s), north to the next
    bin B (from 2470 s on); 5e-5 degree a second is about 4 m/s."""
    if t < 2150:
        return A[0], A[1] - (2150 - t) * 5e-5, 7.0, 90.0
    if t <= 2210:
        return A[0], A[1], 0.0, 0.0  # stopped: the course a still receiver gives is noise
    moving = min(t, 2470) - 2210
    return A[0] + moving * 5e-5, A[1], 7.0 if t < 2470 else 0.0, 0.0


def drive(receiver: Receiver, start: float, end: float, step: float = 10.0) -> None:
    at = start
    while at <= end:
        receiver.play(at, rmc(*position(at)))
        at += step


def same(one: GpsFix | None, other: GpsFix | None) -> bool:
    """The same fix, read at two moments (``fix_at`` is stamped at each read)."""
    return one is not None and other is not None and one.model_dump(exclude={"fix_at"}) == other.model_dump(
        exclude={"fix_at"}) and abs((one.fix_at - other.fix_at).total_seconds()) < 1


def shoot(folder: Path, taken: datetime) -> None:
    """Stamp a burst's photos as a camera box does: its own clock, half a second apart."""
    photos = sorted(folder.iterdir())
    for k, photo in enumerate(photos):
        stamp = taken.timestamp() - (len(photos) - 1 - k) * 0.5
        os.utime(photo, (stamp, stamp))


def test_bursts_processed_late_are_placed_where_the_truck_was_when_they_happened(
        tmp_path: Path, pty: tuple[int, str], tick: list[float], mqtt_broker, litter_val_images) -> None:
    """Four bursts read at 2500 s of the round: one shot 20 minutes before (older than the track),
    one 5 minutes before at bin A, one just now at bin B, one whose camera clock runs 8 s ahead."""
    master, path = pty
    truck = unique_truck()
    folders = make_bursts(tmp_path / "bursts", litter_val_images, lifts=4, frames=2)
    settings = load_settings(None, {
        "truck_id": truck, "source": str(tmp_path / "bursts"), "stream": "recyclables",
        "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        "evidence": {"dir": str(tmp_path / "evidence"), "sample_clean_rate": 0},
        "uplink": {"broker": mqtt_broker.url, "flush_timeout_s": 30, "delete_after": "puback"},
        "gps": {"source": path, "max_age_s": 30},
    }, environ={})
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, f"trivue/v1/{truck}/lift")
    agent = Agent.create(settings, detector=ScriptedDetector([[BOTTLE]] * 8))
    try:
        drive(Receiver(master, agent.gps, tick), 1000, 2500)
        now = datetime.now(UTC)
        for folder, late_s in zip(folders, (1200, 300, 3, -8), strict=True):
            shoot(folder, now - timedelta(seconds=late_s))
        assert agent.run(once=True) == 0
        assert subscriber.wait_for(lambda: len(subscriber.on("/lift")) >= 4)
        events = sorted((parse_lift_event(p) for p in subscriber.on("/lift")), key=lambda e: e.sequence)
    finally:
        agent.close()
        subscriber.close()
    old, backlog, live, ahead = (event.gps for event in events)
    assert backlog is not None and (backlog.lat, backlog.lon) == pytest.approx(A)  # was B: 1.3 km north
    assert backlog.heading_deg == pytest.approx(90.0)  # the course it drove up to A with, not north
    assert backlog.fix_at is not None and abs((now - backlog.fix_at).total_seconds() - 300) < 15
    assert old is None  # not the street the truck drives on 20 minutes later
    b = position(2500)
    for fix in (live, ahead):  # live, the latest fix as before, a camera clock ahead included
        assert fix is not None and (fix.lat, fix.lon) == pytest.approx(b[:2]) and fix.heading_deg == 0.0


def test_a_lift_ended_a_second_ago_gets_the_latest_fix(receiver: Receiver) -> None:
    """A live camera: the lift ended a second ago; the newest fix, not the one of a second before."""
    for k in range(9):
        receiver.play(2000 + k * 0.5, rmc(A[0] + k * 1e-5, A[1], 3.0, 0.0))
    fix = receiver.gps.at(datetime.now(UTC) - timedelta(seconds=1))
    assert fix is not None and fix.lat == pytest.approx(A[0] + 8e-5)
    assert same(fix, receiver.gps.latest())


@pytest.mark.parametrize("off_s", [-8.0, 5.0, 30.0])
def test_a_camera_clock_off_still_gets_a_fix(receiver: Receiver, off_s: float) -> None:
    """Bin A emptied from 2150 s to 2210 s and read at once, but the camera box's clock is off:
    8 s ahead (the lift ends "in the future"), 5 s behind, or 30 s behind (past the live lag)."""
    drive(receiver, 2100, 2210)
    fix = receiver.gps.at(datetime.now(UTC) - timedelta(seconds=off_s))
    assert fix is not None and (fix.lat, fix.lon) == pytest.approx(A)


def test_no_fix_is_carried_across_a_loss_nor_out_of_the_track(receiver: Receiver) -> None:
    """The receiver says it has no fix from 2300 s (a tunnel): a lift of 2310 s gets no position
    from the fix before; one of 2290 s gets that fix. Nothing is kept past the track's length."""
    drive(receiver, 2100, 2290)
    receiver.play(2300, rmc(*position(2300)[:2], 7.0, 0.0, status="V"))
    receiver.tick[0] = 2400
    ago = datetime.now(UTC) - timedelta(seconds=2400 - 2310)
    assert receiver.gps.at(ago) == receiver.gps.latest() is None
    fix = receiver.gps.at(ago - timedelta(seconds=20))
    assert fix is not None and fix.lat == pytest.approx(position(2290)[0])
    drive(receiver, 2410, 2410 + HISTORY_S, step=30)  # now 3310 s: the fix of 2290 s is 17 minutes old
    assert receiver.gps.at(datetime.now(UTC) - timedelta(seconds=HISTORY_S)) is not None
    assert receiver.gps.at(datetime.now(UTC) - timedelta(seconds=3310 - 2290)) is None


def test_the_track_stays_bounded_at_ten_fixes_a_second(tick: list[float]) -> None:
    """A 10 Hz receiver for an hour: one fix a second of the last quarter of an hour is kept."""
    gps = Gps(max_age_s=30)
    for k in range(36_000):
        tick[0] = k / 10
        gps.update(A[0] + (k % 100) * 1e-6, A[1])
    assert len(gps._track) <= HISTORY_S / STEP_S + 1


def test_a_truck_without_a_receiver_is_not_warned_of_old_lifts(caplog: pytest.LogCaptureFixture) -> None:
    """No GPS configured: an old burst has no position, as every lift, and no warning of a track that
    never was ("older than the GPS track kept" was logged for every backlog lift of such a truck)."""
    with caplog.at_level("WARNING", logger="edge.gps"):
        assert open_gps(None).at(datetime.now(UTC) - timedelta(hours=1)) is None
    assert "track" not in caplog.text


def test_fixed_positions_do_not_age() -> None:
    """A depot camera's ``fixed:`` place holds for a lift of any time."""
    fix = FixedGps(47.9, 1.9).at(datetime.now(UTC) - timedelta(hours=2))
    assert fix is not None and fix.lat == 47.9


def test_a_replayed_drive_gives_lifts_their_fix(tmp_path: Path) -> None:
    """A recording replayed at 100x: a live lift gets the replay's latest fix, one from before the
    replay started none."""
    nmea = tmp_path / "drive.nmea"
    nmea.write_text("\n".join(rmc(*position(t)) for t in range(2100, 2220, 10)) + "\n")
    replay = open_gps(str(nmea), speed=100)
    try:
        assert eventually(lambda: replay.latest() is not None and replay.latest().lon == pytest.approx(A[1]))
        assert same(replay.at(datetime.now(UTC)), replay.latest())
        assert replay.at(datetime.now(UTC) - timedelta(seconds=LIVE_LAG_S + 60)) is None
    finally:
        replay.close()


def test_a_track_point_a_second() -> None:
    """Sentences of one second (GGA then RMC) are one point, the newer; a loss ends the fix before it."""
    track = Track()
    first, second = GpsFix(lat=1.0, lon=1.0), GpsFix(lat=2.0, lon=2.0)
    track.add(10.1, first)
    track.add(10.6, second)
    assert len(track) == 1 and track.near(10.1, 5) == (second, 10.6)
    track.add(11.2, None)
    assert track.near(11.5, 5) is None and track.near(10.9, 5) == (second, 10.6)
