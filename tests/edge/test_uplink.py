"""Uplink availability and the MQTT lift-signal bridge, against a real broker."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import paho.mqtt.client as mqtt

from edge.config import load_settings
from edge.outbox import Outbox
from edge.trigger import MqttTrigger
from edge.uplink import Uplink, make_client
from tests.edge.helpers import Subscriber, unique_truck
from tests.edge.test_devices import frame
from vision.schema import TruckStats


def test_last_will_offline_then_online_again(tmp_path, mqtt_broker) -> None:
    truck = unique_truck()
    settings = load_settings(None, {"truck_id": truck, "source": "x", "uplink": {"broker": mqtt_broker.url}},
                             environ={})
    stats = TruckStats(truck_id=truck, sent_at=datetime.now(UTC), uptime_s=0)
    uplink = Uplink(settings, Outbox(tmp_path / "o.sqlite3"), lambda: stats, lambda _c: None)
    subscriber = Subscriber(mqtt_broker.host, mqtt_broker.port, f"trivue/v1/{truck}/status")
    try:
        uplink.start()
        assert subscriber.wait_for(lambda: subscriber.on("/status") == [b"online"], timeout=10)
        uplink.client.socket().close()  # the link dies without DISCONNECT (tunnel, power): the will fires
        assert subscriber.wait_for(lambda: subscriber.on("/status")[:3] == [b"online", b"offline", b"online"],
                                   timeout=15)
    finally:
        uplink.stop()
        time.sleep(0.3)
        subscriber.close()
    late = Subscriber(mqtt_broker.host, mqtt_broker.port, f"trivue/v1/{truck}/status")
    try:
        assert late.wait_for(lambda: late.messages == [(f"trivue/v1/{truck}/status", b"stopped", True)])
    finally:
        late.client.publish(f"trivue/v1/{truck}/status", b"", qos=1, retain=True).wait_for_publish(5)
        late.close()


def test_mqtt_bridge_lift_signal(mqtt_broker) -> None:
    truck = unique_truck()
    settings = load_settings(None, {"truck_id": truck, "source": "x", "uplink": {"broker": mqtt_broker.url}},
                             environ={})
    client, url = make_client(settings, f"{truck}-lift", clean=True)
    trigger = MqttTrigger(client, f"can/{truck}/lift", max_lift_s=60)
    subscribed = Subscriber(mqtt_broker.host, mqtt_broker.port, f"can/{truck}/#")  # waits for a SUBACK
    client.connect_async(url.host, url.port)
    client.loop_start()
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    publisher.connect(mqtt_broker.host, mqtt_broker.port)
    publisher.loop_start()
    try:
        time.sleep(0.5)  # the trigger's client subscribes in on_connect
        publisher.publish(f"can/{truck}/lift", b'{"lifting": true}', qos=1).wait_for_publish(5)
        assert subscribed.wait_for(lambda: trigger.lift_of(frame()) == "signal-1", timeout=5)
        publisher.publish(f"can/{truck}/lift", b"0", qos=1).wait_for_publish(5)
        assert subscribed.wait_for(lambda: trigger.lift_of(frame()) is None, timeout=5)
    finally:
        trigger.close()
        subscribed.close()
        publisher.disconnect()
        publisher.loop_stop()


def test_bad_config_is_ignored_good_config_applied(tmp_path, mqtt_broker) -> None:
    truck = unique_truck()
    settings = load_settings(None, {"truck_id": truck, "source": "x", "uplink": {"broker": mqtt_broker.url}},
                             environ={})
    applied = []
    stats = TruckStats(truck_id=truck, sent_at=datetime.now(UTC), uptime_s=0)
    uplink = Uplink(settings, Outbox(tmp_path / "o.sqlite3"), lambda: stats, applied.append)
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    publisher.connect(mqtt_broker.host, mqtt_broker.port)
    publisher.loop_start()
    topic = f"trivue/v1/{truck}/config"
    try:
        publisher.publish(topic, b'{"config_version": "v1", "stream": "plastic"}', qos=1).wait_for_publish(5)
        uplink.start()
        assert uplink.connected.wait(10)
        time.sleep(0.3)
        for payload in (b"not json", b'{"stream": "glass"}', b'{"config_version": "v2", "stream": "glass"}'):
            publisher.publish(topic, payload, qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while not applied and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        uplink.stop()
        publisher.disconnect()
        publisher.loop_stop()
    assert [(c.config_version, c.stream.value) for c in applied] == [("v2", "glass")]
