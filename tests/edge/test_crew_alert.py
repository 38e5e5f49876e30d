"""The crew alert as the cab hears it: the serial line (buzzer, light) and the cab tablet's topic on a
real broker. The rate limit keeps one recurring item from deafening the crew; it must never hide
another danger."""

from __future__ import annotations

import json
import os
import select

import paho.mqtt.client as mqtt

from edge.alert import CrewAlert
from edge.lines import LineWriter
from tests.conftest import BrokerAddress
from tests.edge.helpers import Subscriber, unique_truck


def read_lines(master: int, count: int) -> list[bytes]:
    data = b""
    while data.count(b"\r\n") < count:
        ready, _, _ = select.select([master], [], [], 2)
        if not ready:
            break
        data += os.read(master, 200)
    return data.splitlines()


def test_a_gas_cylinder_right_after_a_battery_still_alerts_the_crew(
    pty: tuple[int, str], mqtt_broker: BrokerAddress
) -> None:
    """A battery alerts; the crew stops, takes it out, starts the compactor again. A gas cylinder
    seen seconds later (the same lift or the next bin) was held back by the battery's 30 s limit:
    no buzzer, no message, and the cylinder was compacted."""
    master, path = pty
    truck = unique_truck()
    topic = f"trivue/v1/{truck}/alert"
    cab = Subscriber(mqtt_broker.host, mqtt_broker.port, topic)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{truck}-alert")
    alert = CrewAlert(LineWriter(path, 9600), client, topic, min_interval_s=30)
    client.connect(mqtt_broker.host, mqtt_broker.port)
    client.loop_start()
    try:
        assert alert.fire(truck, ("battery",)) is True
        assert alert.fire(truck, ("battery",)) is False  # the same item tracked again: once
        assert alert.fire(truck, ("gas_cylinder",)) is True  # another danger: always heard
        assert alert.fire(truck, ("battery", "gas_cylinder")) is False
        assert read_lines(master, 2) == [b"ALERT battery", b"ALERT gas_cylinder"]
        assert cab.wait_for(lambda: len(cab.on("/alert")) >= 2, timeout=10)
        assert [json.loads(p)["classes"] for p in cab.on("/alert")] == [["battery"], ["gas_cylinder"]]
        assert (alert.fired, alert.suppressed) == (2, 2)
    finally:
        alert.close()
        cab.close()


def test_an_alert_lists_only_the_classes_not_heard_within_the_interval(pty: tuple[int, str]) -> None:
    master, path = pty
    alert = CrewAlert(LineWriter(path, 9600), None, "t/alert", min_interval_s=60)
    try:
        assert alert.fire("T1", ("battery",)) is True
        assert alert.fire("T1", ("battery", "gas_cylinder")) is True
        assert read_lines(master, 2) == [b"ALERT battery", b"ALERT gas_cylinder"]
    finally:
        alert.close()
