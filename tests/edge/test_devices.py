"""Serial devices over real ptys: lift-arm signal, RFID reader, NMEA GPS, crew alert output."""

from __future__ import annotations

import os
import select
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.alert import CrewAlert
from edge.gps import COURSE_MAX_AGE_S, COURSE_MIN_SPEED_MPS, FixedGps, Gps, GpsError, open_gps, parse_nmea
from edge.lines import LineWriter
from edge.rfid import RfidReader, parse_tag
from edge.trigger import SerialTrigger, SignalTrigger, parse_signal
from tests.edge.helpers import GGA, RMC, TriggerClock, eventually, frame, open_gps_line


@pytest.mark.parametrize(
    ("payload", "level"),
    [("1", True), ("0", False), ("LIFT UP", True), ("down", False), ("START", True), ("END", False),
     ('{"lifting": true}', True), ('{"lifting": "yes"}', None), ("hello", None), ("", None)],
)
def test_parse_signal(payload: str, level: bool | None) -> None:
    assert parse_signal(payload) is level


def test_serial_lift_signal_over_a_pty(pty) -> None:
    master, path = pty
    trigger = SerialTrigger(path, 9600)
    assert trigger._reader.opened.wait(5)
    try:
        assert trigger.lift_of(frame()) is None
        os.write(master, b"UP\r\n")
        assert eventually(lambda: trigger.lift_of(frame()) == "signal-1")
        os.write(master, b"DOWN\r\n")
        assert eventually(lambda: trigger.lift_of(frame()) is None)
        os.write(master, b"1\n0\n")  # a lift shorter than a frame interval still gets a frame
        assert eventually(lambda: trigger._count == 2)
        assert trigger.lift_of(frame()) == "signal-2"
        time.sleep(trigger.debounce_s)  # held that long after it falls (a bounce would be the same lift)
        assert trigger.lift_of(frame()) is None
    finally:
        trigger.close()


def test_stuck_signal_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = TriggerClock(monkeypatch)
    trigger = SignalTrigger(max_lift_s=0.05)
    trigger.signal(True)
    assert trigger.lift_of(frame()) == "signal-1"
    clock.advance(0.1)
    assert trigger.lift_of(frame()) is None


def test_rfid_tag_over_a_pty(pty) -> None:
    master, path = pty
    reader = RfidReader.open(path, 9600, window_s=10)
    assert reader._reader is not None and reader._reader.opened.wait(5)
    try:
        start = datetime.now(UTC)
        os.write(master, b"TAG:E2000017221101441890ABCD\r\n")
        assert eventually(lambda: reader.tag_for(start, datetime.now(UTC)) == "E2000017221101441890ABCD")
        assert reader.tag_for(start + timedelta(seconds=60), start + timedelta(seconds=70)) is None  # too old
    finally:
        reader.close()
    assert parse_tag("bad tag!") is None


@pytest.mark.parametrize("line", ["04A1B2C3", "04a1b2c3\r", "TAG:04a1b2c3", "04:A1:B2:C3", "TAG:04:a1:b2:c3",
                                  "UID: 04 A1 B2 C3", "04 a1 b2 c3", "04-A1-B2-C3", "EPC=04A1B2C3"])
def test_a_tag_is_read_in_its_canonical_form_whatever_the_reader_prints(line: str) -> None:
    """A colon-separated tag (``04:A1:B2:C3``) used to be cut to its last byte (``C3``): another bin's."""
    assert parse_tag(line) == "04A1B2C3"


def test_nmea_parsing() -> None:
    kind, gga = parse_nmea(GGA)
    assert kind == "GGA" and gga["lat"] == pytest.approx(48.1173) and gga["lon"] == pytest.approx(11.516667)
    assert gga["accuracy_m"] == pytest.approx(4.5)
    assert parse_nmea(RMC)[1]["heading_deg"] == pytest.approx(84.4)
    assert parse_nmea(RMC)[1]["speed_mps"] == pytest.approx(22.4 * 1852 / 3600)
    assert parse_nmea(GGA.replace("*47", "*48")) is None  # bad checksum
    assert parse_nmea("$GPGGA,123519,,,,,0,00,,,M,,M,,") is None  # no fix
    assert parse_nmea("$GPRMC,123519,V,4807.038,N,01131.000,E,,,230394,,") is None  # void


def test_gps_from_nmea_device_and_replays(pty, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    master, path = pty
    gps = open_gps_line(path, monkeypatch, max_age_s=5)  # opening a serial port flushes pending input
    try:
        assert gps.latest() is None
        os.write(master, (GGA + "\r\n" + RMC + "\r\n").encode())
        assert eventually(lambda: gps.latest() is not None and gps.latest().heading_deg is not None)
        assert gps.latest().lat == pytest.approx(48.1173) and gps.fix_age_s() < 5
    finally:
        gps.close()
    gpx = tmp_path / "route.gpx"
    gpx.write_text('<gpx xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
                   '<trkpt lat="47.90" lon="1.90"><time>2026-01-01T08:00:00Z</time></trkpt>'
                   '<trkpt lat="47.91" lon="1.91"><time>2026-01-01T08:00:10Z</time></trkpt>'
                   '</trkseg></trk></gpx>')
    replay = open_gps(str(gpx), speed=100)
    assert eventually(lambda: replay.latest() is not None and replay.latest().lat == 47.91)
    replay.close()
    nmea = tmp_path / "drive.nmea"
    nmea.write_text(f"{GGA}\n{RMC}\n")
    replay = open_gps(str(nmea), speed=100)
    assert eventually(lambda: replay.latest() is not None)
    replay.close()


def rmc(knots: str, course: str) -> str:
    """An RMC sentence at RMC's place with this speed and course, its checksum computed."""
    body = f"GPRMC,123520,A,4807.038,N,01131.000,E,{knots},{course},230394,003.1,W"
    checksum = 0
    for char in body:
        checksum ^= ord(char)
    return f"${body}*{checksum:02X}"


def test_a_stopped_truck_keeps_the_course_it_drove_up_with() -> None:
    """At a lift the truck stands still and the receiver's course spins: the lift carries the
    course of the last fix at driving speed, for ``course_max_age_s`` of the drive, then none."""
    clock = [0.0]
    gps = Gps(clock=lambda: clock[0])
    gps.feed_nmea(rmc("012.0", "084.4"))  # driving east at 22 km/h
    assert gps.latest().heading_deg == pytest.approx(84.4)
    for knots, noise in (("000.1", "213.7"), ("000.0", "002.0"), ("000.4", "")):  # stopped for the lift
        clock[0] += 30
        gps.feed_nmea(rmc(knots, noise))
        gps.feed_nmea(GGA)
        assert gps.latest().heading_deg == pytest.approx(84.4)
    assert COURSE_MIN_SPEED_MPS > 0.4 * 1852 / 3600
    clock[0] += COURSE_MAX_AGE_S - 90 + 1  # a halt longer than a lift: the course no longer says where it faces
    gps.feed_nmea(rmc("000.0", "150.0"))
    assert gps.latest() is not None and gps.latest().heading_deg is None
    gps.feed_nmea(rmc("008.0", "271.0"))  # driving again
    assert gps.latest().heading_deg == pytest.approx(271.0)
    no_speed = Gps()
    no_speed.update(47.9, 1.9, heading_deg=33.0)  # a source without speed vouches for its heading
    assert no_speed.latest().heading_deg == pytest.approx(33.0)


def test_a_gpx_replay_gives_the_bearing_between_points(tmp_path: Path) -> None:
    """North 11 m in 2 s, then standing (under 2 m moved) for 10 s, then for 3 minutes of the
    recording: the bearing is kept through the short halt and dropped after the long one, at 100x."""
    gpx = tmp_path / "north-then-stop.gpx"
    points = [(47.9000, 1.9000, "08:00:00"), (47.9001, 1.9000, "08:00:02"), (47.9002, 1.9000, "08:00:04"),
              (47.90020, 1.90001, "08:00:14"), (47.90021, 1.90001, "08:03:20")]
    gpx.write_text('<gpx xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>' + "".join(
        f'<trkpt lat="{lat}" lon="{lon}"><time>2026-01-01T{at}Z</time></trkpt>' for lat, lon, at in points)
        + "</trkseg></trk></gpx>")
    replay = open_gps(str(gpx), speed=100)
    try:
        assert eventually(lambda: replay.latest() is not None and replay.latest().lat == 47.9002)
        heading = replay.latest().heading_deg
        assert heading is not None and min(heading, 360 - heading) < 1  # due north
        assert eventually(lambda: replay.latest().lon == 1.90001)
        assert replay.latest().heading_deg == heading  # 0.75 m in 10 s: standing, the course kept
        assert eventually(lambda: replay.latest().lat == 47.90021, timeout=10)
        assert replay.latest().heading_deg is None  # 196 s of the recording since it last moved
    finally:
        replay.close()


@pytest.mark.parametrize(("source", "message"), [
    ("fixed:abc", "expected fixed:LAT,LON in degrees"), ("fixed:1", "expected fixed:LAT,LON in degrees"),
    ("fixed:999,999", "latitude is -90..90 and longitude -180..180"), ("nowhere.txt", "no such file to replay"),
    ("COM", "not fixed:LAT,LON"),
    ("nowhere.nmea", "no such file to replay"),
])
def test_bad_gps_sources(source: str, message: str) -> None:
    with pytest.raises(GpsError, match=f"gps.source: '{source}': {message}") as raised:
        open_gps(source)
    assert "\n" not in str(raised.value)


def test_fixed_gps_is_always_fresh() -> None:
    fix = FixedGps(47.9, 1.9).latest()
    assert fix and fix.lat == 47.9 and fix.fix_at and (datetime.now(UTC) - fix.fix_at).total_seconds() < 1


def test_crew_alert_on_serial_line_rate_limited(pty) -> None:
    master, path = pty
    alert = CrewAlert(LineWriter(path, 9600), None, "t/alert", min_interval_s=60)
    try:
        assert alert.fire("T1", ("battery",)) is True
        assert alert.fire("T1", ("battery",)) is False  # within the interval (another class is not: test_crew_alert)
        ready, _, _ = select.select([master], [], [], 2)
        assert ready and os.read(master, 100) == b"ALERT battery\r\n"
        assert (alert.fired, alert.suppressed) == (1, 1)
    finally:
        alert.close()


def test_gps_through_gpsd() -> None:
    """A gpsd stand-in: answers the WATCH command with NMEA, as gpsd does in nmea mode."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    asked: list[bytes] = []

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            asked.append(connection.recv(200))
            connection.sendall((GGA + "\r\n").encode())
            time.sleep(2)

    threading.Thread(target=serve, daemon=True).start()
    gps = open_gps(f"gpsd://127.0.0.1:{port}")
    try:
        assert eventually(lambda: gps.latest() is not None)
        assert asked[0].startswith(b'?WATCH={"enable":true,"nmea":true}')
    finally:
        gps.close()
        server.close()


def _with_checksum(body: str) -> str:
    checksum = 0
    for char in body:
        checksum ^= ord(char)
    return f"${body}*{checksum:02X}"


def test_a_fix_out_of_range_is_skipped_and_the_next_ones_still_count(caplog: pytest.LogCaptureFixture) -> None:
    """A recording's GGA at 99 degrees (its checksum right) or an RMC course of nan raised in the
    replay's thread: every later fix was lost for the rest of the run."""
    gps = Gps(max_age_s=30)
    gps.feed_nmea(GGA)
    gps.feed_nmea(_with_checksum("GPGGA,123521,9912.000,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"))
    gps.feed_nmea(rmc("022.4", "nan"))
    assert "GPS fix ignored" in caplog.text
    gps.feed_nmea(rmc("022.4", "090.0"))
    fix = gps.latest()
    assert fix is not None and fix.lat == pytest.approx(48.1173) and fix.heading_deg == pytest.approx(90.0)


@pytest.mark.parametrize(("point", "says"), [('<trkpt lat="abc" lon="1.9"/>', "point 1: could not convert"),
                                             ('<trkpt lon="1.9"/>', "point 1 has no lat attribute"),
                                             ('<trkpt lat="47.9" lon="1.9"><time>yesterday</time></trkpt>',
                                              "point 1: Invalid isoformat")])
def test_a_bad_gpx_point_is_a_gps_error(tmp_path: Path, point: str, says: str) -> None:
    path = tmp_path / "drive.gpx"
    path.write_text(f'<gpx><trk><trkseg>{point}</trkseg></trk></gpx>', encoding="utf-8")
    with pytest.raises(GpsError, match=says):
        open_gps(str(path))
