"""The truck's devices misbehaving as hardware does: unplugged and plugged back, clocks set, two bins
on a dual lifter, the next bin read early. Each case once gave a lift a wrong position, a wrong bin,
or lost a lift; devices are played over real ptys and sockets.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from types import SimpleNamespace

import pytest

import edge.gps
from edge.gps import Gps, open_gps
from edge.rfid import RfidReader
from edge.trigger import SerialTrigger
from tests.edge.helpers import GGA, eventually, frame


class Plug:
    """A USB serial device behind a stable name (udev's /dev/serial/by-id link): unplugging removes
    the tty and the link, plugging back gives a new tty under the same name."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = self.slave = -1
        self.plug()

    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        self.link.symlink_to(os.ttyname(self.slave))

    def unplug(self) -> None:
        os.close(self.master)
        os.close(self.slave)
        self.link.unlink()
        self.master = -1

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        if self.master >= 0:
            self.unplug()


def test_a_lift_signal_box_unplugged_mid_lift_ends_the_lift_and_the_next_up_is_a_lift(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The level stayed up: the lift ran on while the truck drove away (until max_lift_s, 60 s), then
    the first UP after the box came back, seen as no change, lost the next bin's lift."""
    caplog.set_level(logging.INFO, "edge.lines")
    box = Plug(tmp_path / "usb-lift-box")
    trigger = SerialTrigger(str(box.link), 9600, max_lift_s=60, debounce_s=0.2)
    try:
        assert trigger._reader.opened.wait(5)
        # said once open, for the crew's installer and for what waits on it (a tag written before is lost)
        assert eventually(lambda: f"lift-signal line {box.link} open at 9600 baud" in caplog.text)
        box.write(b"UP\r\n")
        assert eventually(lambda: trigger.lift_of(frame()) == "signal-1")
        box.unplug()  # arm up; the box's DOWN goes nowhere
        assert eventually(lambda: trigger.lift_of(frame()) is None)
        assert "lift signal line lost during lift 1" in caplog.text
        box.plug()
        assert eventually(lambda: trigger._reader.opened.is_set(), timeout=10)
        assert eventually(lambda: f"lift-signal line {box.link} open again at 9600 baud" in caplog.text)
        box.write(b"UP\r\n")  # the next bin
        assert eventually(lambda: trigger.lift_of(frame()) == "signal-2")
    finally:
        trigger.close()
        box.close()


def test_gpsd_gone_ends_the_position_at_once_and_its_return_brings_it_back() -> None:
    """gpsd restarted (or the receiver it serves unplugged and its socket closed): the last fix was
    given to lifts for max_age_s more, while the truck drove on; the reader then reconnects alone."""
    server = socket.create_server(("127.0.0.1", 0))
    connected: list[socket.socket] = []
    hang_up = threading.Event()

    def serve() -> None:
        for _ in range(2):
            connection, _ = server.accept()
            connected.append(connection)
            connection.recv(200)  # the WATCH command, sent again on each connection
            connection.sendall((GGA + "\r\n").encode())
            if len(connected) == 1:
                hang_up.wait(10)
                connection.close()

    threading.Thread(target=serve, daemon=True).start()
    gps = open_gps(f"gpsd://127.0.0.1:{server.getsockname()[1]}", max_age_s=30)
    try:
        assert eventually(lambda: gps.latest() is not None)
        hang_up.set()
        assert eventually(lambda: gps.latest() is None, timeout=2)  # within 30 s before
        assert eventually(lambda: len(connected) == 2 and gps.latest() is not None, timeout=10)
    finally:
        gps.close()
        for connection in connected:
            connection.close()
        server.close()


def test_a_fix_ages_by_the_monotonic_clock_not_the_system_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two minutes in a tunnel while the system clock is set back an hour (NTP, or a clock set from
    GPS at boot): the two-minute-old fix looked 58 minutes in the future, so fresh, and every lift
    of the next hour was placed at the tunnel's mouth."""
    tick = [1000.0]
    real = edge.gps.datetime

    class SetBack(real):  # type: ignore[misc, valid-type]
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:
            shift = timedelta(seconds=tick[0] - 1000) - (timedelta(hours=1) if tick[0] > 1000 else timedelta(0))
            return real.now(tz) + shift

    monkeypatch.setattr(edge.gps, "time", SimpleNamespace(monotonic=lambda: tick[0]))
    monkeypatch.setattr(edge.gps, "datetime", SetBack)
    gps = Gps(max_age_s=30)
    gps.feed_nmea(GGA)
    assert gps.latest() is not None and gps.fix_age_s() == pytest.approx(0, abs=1)
    tick[0] += 10  # ten seconds later, the clock has been set back an hour
    fix = gps.latest()
    assert fix is not None and gps.fix_age_s() == pytest.approx(10, abs=1)
    # stamped in the clock the lift is stamped in now: 10 s before it, not an hour after
    assert fix.fix_at is not None and abs((SetBack.now(UTC) - fix.fix_at).total_seconds() - 10) < 1
    tick[0] += 110
    assert gps.latest() is None and gps.fix_age_s() == pytest.approx(120, abs=1)


def at(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=120) + timedelta(seconds=seconds)


def test_the_next_bin_read_as_this_one_comes_down_keeps_to_its_own_lift() -> None:
    """The crew rolls bin B up as bin A comes down; B read 0.5 s after A's lift ended (within the
    second a late read is allowed) was the latest read, so A's lift got B, and B's lift, B being
    the 'previous tag', got none."""
    reader = RfidReader(window_s=15)
    reader.feed("BIN-A", at=at(0))
    reader.feed("BIN-A", at=at(3))
    reader.feed("BIN-B", at=at(6.5))
    assert reader.tag_for(at(1), at(6)) == "BIN-A"
    assert reader.tag_for(at(10), at(15)) == "BIN-B"


def test_a_single_stray_read_does_not_take_the_lift() -> None:
    """A bin at the kerb read once as the arm came down took the lift read three times for A."""
    reader = RfidReader(window_s=15)
    for second in (0, 2, 4):
        reader.feed("BIN-A", at=at(second))
    reader.feed("BIN-KERB", at=at(5.5))
    assert reader.tag_for(at(1), at(6)) == "BIN-A"


@pytest.mark.parametrize("reads", [
    [("LEFT", 0), ("RIGHT", 0.3)],  # a reader reporting each tag once
    [("LEFT", 0), ("RIGHT", 0.2), ("LEFT", 0.5), ("RIGHT", 1), ("LEFT", 2), ("RIGHT", 2.2), ("LEFT", 3)],
])
def test_two_bins_on_a_dual_lifter_give_the_lift_no_bin(reads: list[tuple[str, float]],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Both bins emptied into the hopper as one lift: the last tag read won, so one household got
    the contents of two bins, its neighbour's among them, one time in two."""
    reader = RfidReader(window_s=15)
    for tag, second in reads:
        reader.feed(tag, at=at(second))
    with caplog.at_level(logging.WARNING):
        assert reader.tag_for(at(1), at(6)) is None
    assert "tags LEFT, RIGHT read for one lift" in caplog.text
    reader.feed("RIGHT", at=at(7))  # lowered: neither bin lingers into the next lift
    assert reader.tag_for(at(12), at(18)) is None
    reader.feed("NEXT", at=at(20))
    assert reader.tag_for(at(21), at(25)) == "NEXT"


def test_the_lift_bridge_lost_mid_lift_ends_the_lift(caplog: pytest.LogCaptureFixture) -> None:
    """The in-truck broker restarted with the arm up (CAN/GPIO bridge on MQTT): as with a serial
    box, the lift ran on for max_lift_s and the first UP after the reconnection was lost."""
    import paho.mqtt.client as mqtt

    from edge.trigger import MqttTrigger
    from tests.ports import free_port
    from trivue.broker import EmbeddedBroker

    port, topic = free_port(), "truck/lift_signal"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="lift", clean_session=True)
    client.reconnect_delay_set(min_delay=0.2, max_delay=0.5)
    trigger = MqttTrigger(client, topic, max_lift_s=60, debounce_s=0.2)
    try:
        for lift in (1, 2):
            with EmbeddedBroker("127.0.0.1", port) as handle:
                if lift == 1:
                    client.connect_async("127.0.0.1", port)
                    client.loop_start()
                assert eventually(lambda: handle.has_subscriber(topic), timeout=10)
                bridge = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bridge")
                bridge.connect("127.0.0.1", port)
                bridge.loop_start()
                bridge.publish(topic, b"UP", qos=1).wait_for_publish(5)
                assert eventually(lambda: trigger.lift_of(frame()) == f"signal-{lift}", timeout=10)  # noqa: B023
                bridge.disconnect()
                bridge.loop_stop()
            # the broker is gone with the arm up
            assert eventually(lambda: trigger.lift_of(frame()) is None, timeout=10)
        assert "lift signal line lost during lift 1" in caplog.text
    finally:
        trigger.close()
