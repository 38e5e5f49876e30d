"""Bad input from the truck's devices: half lines, babble, lingering tags, bouncing signals, bad NMEA.

Each case once attached a wrong tag or position to a lift, split a lift in two, or said nothing in
the log; the device is played over a real pty as in test_devices.py.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from edge.gps import ESTIMATED_ACCURACY_M, Gps, parse_nmea
from edge.rfid import RfidReader
from edge.trigger import SignalTrigger
from tests.edge.helpers import GGA, RMC, TriggerClock, eventually, frame, open_gps_line

TAG = "E2000017221101441890ABCD"
PAUSE_S = 0.8  # longer than the reader's 0.5 s read timeout


def test_a_tag_arriving_in_two_halves_is_one_tag(pty) -> None:
    """readline's timeout cut it: the lift got the tag's second half, another bin's number."""
    master, path = pty
    reader = RfidReader.open(path, 9600, window_s=10)
    assert reader._reader is not None and reader._reader.opened.wait(5)
    try:
        start = datetime.now(UTC)
        os.write(master, f"TAG:{TAG[:10]}".encode())
        time.sleep(PAUSE_S)
        os.write(master, f"{TAG[10:]}\r\n".encode())
        assert eventually(lambda: reader.tag_for(start, datetime.now(UTC)) == TAG)
    finally:
        reader.close()


def test_babble_without_line_ends_is_dropped_up_to_its_end(pty, caplog: pytest.LogCaptureFixture) -> None:
    """20 kB without a line end, then its last characters and CR: they are no tag; the next line is."""
    master, path = pty
    reader = RfidReader.open(path, 9600, window_s=10)
    assert reader._reader is not None and reader._reader.opened.wait(5)
    try:
        start = datetime.now(UTC)
        os.write(master, b"%" * 20_000)
        time.sleep(PAUSE_S)
        os.write(master, b"1234\r")  # a CR-only reader's line end
        time.sleep(0.3)
        assert reader.tag_for(start, datetime.now(UTC)) is None
        assert "without a line end; dropped" in caplog.text
        os.write(master, f"{TAG}\r".encode())
        assert eventually(lambda: reader.tag_for(start, datetime.now(UTC)) == TAG)
    finally:
        reader.close()


def test_a_half_rmc_gives_no_heading_of_zero(pty, monkeypatch: pytest.MonkeyPatch) -> None:
    """An RMC cut after the course's first digit had 9 fields and no checksum: heading 0 instead of 84.4."""
    master, path = pty
    gps = open_gps_line(path, monkeypatch, max_age_s=30)  # opening the port flushes pending input
    try:
        cut = RMC.index(",084.4") + 2
        os.write(master, RMC[:cut].encode())
        time.sleep(PAUSE_S)
        assert gps.latest() is None
        os.write(master, (RMC[cut:] + "\r\n").encode())
        assert eventually(lambda: gps.latest() is not None)
        assert gps.latest().heading_deg == pytest.approx(84.4)
    finally:
        gps.close()


def at(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=120) + timedelta(seconds=seconds)


def test_the_previous_bins_tag_does_not_linger_into_the_next_lift() -> None:
    """Bin A's tag read as it is hooked and while it is lowered; bin B (tag unreadable) lifted 10 s
    later, within the 15 s window: it was given A's tag."""
    reader = RfidReader(window_s=15)
    for second in (0, 1, 2, 7, 8):  # hooked, lifted 1..6, still read while lowered
        reader.feed(f"TAG:{TAG}", at=at(second))
    assert reader.tag_for(at(1), at(6)) == TAG
    assert reader.tag_for(at(16), at(22)) is None
    for second in (31, 33):  # the same bin hooked again, read during its lift: that lift is its own
        reader.feed(f"TAG:{TAG}", at=at(second))
    assert reader.tag_for(at(32), at(36)) == TAG


def test_a_read_during_a_lift_is_not_the_next_lifts() -> None:
    """Another tag read while lift A was on (a bin on the kerb) went to the untagged lift B after it."""
    reader = RfidReader(window_s=15)
    reader.feed("BIN-A", at=at(0))
    reader.feed("BIN-KERB", at=at(3))
    reader.feed("BIN-A", at=at(4))
    assert reader.tag_for(at(1), at(6)) == "BIN-A"
    assert reader.tag_for(at(12), at(18)) is None


def test_a_lift_handled_late_still_finds_its_own_tag() -> None:
    """Only the latest read was kept: the next bin's read, arriving before the lift was finished,
    hid the lift's own tag."""
    reader = RfidReader(window_s=15)
    reader.feed("BIN-A", at=at(0))
    reader.feed("BIN-B", at=at(10))
    assert reader.tag_for(at(1), at(6)) == "BIN-A"
    assert reader.tag_for(at(11), at(16)) == "BIN-B"


def test_repeated_reads_keep_memory_bounded() -> None:
    reader = RfidReader(window_s=15)
    for index in range(10_000):
        reader.feed(f"TAG-{index % 3}", at=at(index / 1000))
        reader.feed(f"TAG-{index % 3}", at=at(index / 1000))
    assert len(reader._reads) <= 256


def test_unreadable_lines_are_logged_not_flooded(caplog: pytest.LogCaptureFixture) -> None:
    reader = RfidReader()
    with caplog.at_level(logging.WARNING):
        for _ in range(100):
            reader.feed("bad tag!")
    assert caplog.text.count("ignored unreadable line") == 1


def nmea(body: str) -> str:
    checksum = 0
    for char in body:
        checksum ^= ord(char)
    return f"${body}*{checksum:02X}"


def test_a_receiver_saying_no_fix_ends_the_position_at_once() -> None:
    """RMC status V (a tunnel, a canyon of buildings): the last fix was still given to lifts for
    max_age_s, 30 s or 200 m of driving later, as if the receiver had not said it was lost."""
    for void in ("$GPRMC,123520,V,4807.038,N,01131.000,E,,,230394,,", "$GPGGA,123520,,,,,0,00,,,M,,M,,",
                 nmea("GPRMC,123520,A,4807.038,N,01131.000,E,000.0,000.0,230394,003.1,W,N")):  # mode N
        gps = Gps(max_age_s=30)
        gps.feed_nmea(GGA)
        assert gps.latest() is not None
        gps.feed_nmea(void)
        assert gps.latest() is None, void
        gps.feed_nmea(GGA)
        assert gps.latest() is not None


@pytest.mark.parametrize("body", [
    "GPGGA,123520,4807.038,X,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",  # no such hemisphere: was north
    "GPGGA,123520,4875.000,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",  # 75 minutes: was 49.25 degrees
    "GPGGA,123520,-4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",  # a sign NMEA never writes
    "GPRMC,123520,A,4807.038,N,1e1,E,022.4,084.4,230394,003.1,W",  # an exponent: 0.1 degree east
    "GPGGA,123520,4807.038,N,01131.000,,1,08,0.9,545.4,M,46.9,M,,",  # no hemisphere: was east
])
def test_a_malformed_position_is_logged_and_the_last_fix_stays(body: str, caplog: pytest.LogCaptureFixture) -> None:
    """Each of these carries a right checksum and was taken as a position somewhere else."""
    gps = Gps(max_age_s=30)
    gps.feed_nmea(GGA)
    gps.feed_nmea(nmea(body))
    fix = gps.latest()
    assert fix is not None and (fix.lat, fix.lon) == (pytest.approx(48.1173), pytest.approx(11.516667))
    assert "GPS line ignored (malformed" in caplog.text


def test_garbage_and_bad_checksums_are_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    """They were dropped without a word: a receiver on the wrong baud rate looked like no receiver."""
    gps = Gps(max_age_s=30)
    with caplog.at_level(logging.WARNING):
        for _ in range(50):
            gps.feed_nmea(GGA.replace("*47", "*48"))
            gps.feed_nmea("\ufffd\ufffd$GP\ufffdGA,1")  # wrong baud rate: bytes that are no ASCII
    assert caplog.text.count("bad checksum") == 1 and caplog.text.count("not an NMEA sentence") == 1
    assert gps.latest() is None


def test_gpsd_errors_and_junk_json_are_logged_never_fatal(caplog: pytest.LogCaptureFixture) -> None:
    gps = Gps(max_age_s=30)
    for line in ('{"class":"VERSION","release":"3.25"}', '{"class":"ERROR","message":"unrecognized request"}',
                 '{"class":', '[1, 2]', '{"a":' * 10_000):
        gps.feed_nmea(line)
    gps.feed_nmea(GGA)
    assert gps.latest() is not None
    assert "gpsd error: unrecognized request" in caplog.text and "not JSON" in caplog.text
    assert "VERSION" not in caplog.text  # gpsd's usual reports are no error


def test_a_bouncing_lift_signal_is_one_lift(monkeypatch: pytest.MonkeyPatch) -> None:
    """A contact bouncing at the start, mid-lift and at the end: each drop and rise started a new
    lift (one bin counted twice, then a phantom one-frame lift after it)."""
    clock = TriggerClock(monkeypatch)
    trigger = SignalTrigger(max_lift_s=60, debounce_s=0.2)
    seen = []
    for level in (True, False, True, False, True):  # bouncing as the arm starts
        trigger.signal(level)
    seen.append(trigger.lift_of(frame()))
    trigger.signal(False)
    trigger.signal(True)  # a flicker mid-lift
    seen.append(trigger.lift_of(frame()))
    for level in (False, True, False):  # bouncing as it comes down
        trigger.signal(level)
    seen.append(trigger.lift_of(frame()))
    clock.advance(0.25)
    seen.append(trigger.lift_of(frame()))
    assert seen == ["signal-1", "signal-1", "signal-1", None]
    trigger.signal(True)  # the next bin, after a real pause
    assert trigger.lift_of(frame()) == "signal-2"


def test_a_stuck_signal_is_logged_once(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = TriggerClock(monkeypatch)
    trigger = SignalTrigger(max_lift_s=0.05, debounce_s=0.2)
    trigger.signal(True)
    assert trigger.lift_of(frame()) == "signal-1"
    clock.advance(0.1)
    assert [trigger.lift_of(frame()) for _ in range(20)] == [None] * 20
    assert caplog.text.count("stuck sensor") == 1


@pytest.mark.parametrize("quality", ["7", "8"])
def test_a_position_typed_in_or_simulated_is_no_fix(quality: str) -> None:
    """GGA quality 7 (manual input) and 8 (simulator), RMC modes M and S: a receiver left in its
    demo mode placed every lift at one made-up point, as if measured."""
    assert parse_nmea(nmea(f"GPGGA,123519,4807.038,N,01131.000,E,{quality},08,0.9,545.4,M,46.9,M,,")) is None
    mode = {"7": "M", "8": "S"}[quality]
    assert parse_nmea(nmea(f"GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W,{mode}")) is None


def test_a_dead_reckoned_position_is_kept_as_a_weak_one() -> None:
    """GGA quality 6 / RMC mode E (estimated through a tunnel): a position, but its HDOP still
    describes the last satellite fix; the server must weigh it as metres off, not as 4.5 m."""
    kind, values = parse_nmea(nmea("GPGGA,123519,4807.038,N,01131.000,E,6,08,0.9,545.4,M,46.9,M,,"))
    assert kind == "GGA" and values["accuracy_m"] == ESTIMATED_ACCURACY_M and values["lat"] == pytest.approx(48.1173)
    bad_dop = parse_nmea(nmea("GPGGA,123519,4807.038,N,01131.000,E,6,08,9.0,545.4,M,46.9,M,,"))
    assert bad_dop[1]["accuracy_m"] == pytest.approx(45.0)  # a worse HDOP still says more
    _, rmc = parse_nmea(nmea("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W,E"))
    assert rmc["accuracy_m"] == ESTIMATED_ACCURACY_M and rmc["heading_deg"] == pytest.approx(84.4)
    _, plain = parse_nmea(nmea("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W,A"))
    assert "accuracy_m" not in plain
    assert parse_nmea(GGA)[1]["accuracy_m"] == pytest.approx(4.5)
    assert "accuracy_m" not in parse_nmea(RMC)[1]
