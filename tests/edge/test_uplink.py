"""Uplink availability and the MQTT lift-signal bridge, against a real broker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge.broker import make_client
from edge.config import load_settings
from edge.outbox import Outbox
from edge.trigger import MqttTrigger
from edge.uplink import Uplink
from tests.edge.helpers import Subscriber, suback_seen, unique_truck
from tests.edge.test_devices import frame
from tests.security.secured_mosquitto import SERVER_USER, Probe, SecuredMosquitto, tools_missing
from vision.schema import TruckStats, message_digest, receipt_payload


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
    trigger_subscribed = suback_seen(client)
    subscribed = Subscriber(mqtt_broker.host, mqtt_broker.port, f"can/{truck}/#")  # waits for a SUBACK
    client.connect_async(url.host, url.port)
    client.loop_start()
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    publisher.connect(mqtt_broker.host, mqtt_broker.port)
    publisher.loop_start()
    try:
        assert trigger_subscribed.wait(10), "the trigger's client never subscribed"  # it does in on_connect
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
    refused: list[str] = []
    uplink = Uplink(settings, Outbox(tmp_path / "o.sqlite3"), lambda: stats, applied.append, refused.append)
    config_subscribed = suback_seen(uplink.client)
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    publisher.connect(mqtt_broker.host, mqtt_broker.port)
    publisher.loop_start()
    topic = f"trivue/v1/{truck}/config"
    try:
        publisher.publish(topic, b'{"config_version": "v1", "stream": "plastic"}', qos=1).wait_for_publish(5)
        uplink.start()
        assert uplink.connected.wait(10)
        assert config_subscribed.wait(10), "the uplink never subscribed to its config"
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
    # ... and the two it could not read are said, for the heartbeat
    assert [r.split(":")[:2] for r in refused] == [["?", " config"], ["?", " config_version"]], refused


@pytest.fixture(scope="module")
def limited_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredMosquitto]:
    """Mosquitto on the shipped config: max_packet_size 3,000,000, a bigger packet ends the connection."""
    if tools_missing():
        pytest.skip(str(tools_missing()))
    secured = SecuredMosquitto(tmp_path_factory.mktemp("mosquitto"), trucks=("truck-a",))
    secured.start()
    yield secured
    secured.stop()


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def lift_rows(outbox: Outbox, photos: list[bytes | None]) -> list[str]:
    """One lift per entry, with that photo (or none); returns the event ids."""
    ids = []
    for photo in photos:
        event_id = str(uuid.uuid4())
        evidence = (f"trivue/v1/truck-a/evidence/{event_id}", photo) if photo is not None else None
        outbox.put_lift(event_id, ("trivue/v1/truck-a/lift", json.dumps({"id": event_id}).encode()), evidence)
        ids.append(event_id)
    return ids


def truck_uplink(tmp_path: Path, broker: SecuredMosquitto, outbox: Outbox, attempts: int) -> Uplink:
    # A probe plays the server and sends no receipts: rows go on PUBACK (the refusal logic is the same).
    settings = load_settings(None, {"truck_id": "truck-a", "source": "x", "uplink": {
        "broker": broker.url("truck-a"), "reconnect_max_s": 1, "max_photo_attempts": attempts,
        "delete_after": "puback"}}, environ={})
    stats = TruckStats(truck_id="truck-a", sent_at=datetime.now(UTC), uptime_s=0)
    return Uplink(settings, outbox, lambda: stats, lambda _c: None)


def test_a_photo_the_broker_refuses_is_dropped_after_n_tries_and_the_queue_moves_on(
        tmp_path: Path, limited_broker: SecuredMosquitto) -> None:
    """A 3.5 MB photo (from an older agent, or a broker with a lower limit) ends the connection at
    every try; paho alone would resend it first forever and nothing behind it would ever leave."""
    server = Probe()
    server.connect(limited_broker.port, SERVER_USER, limited_broker.passwords[SERVER_USER])
    server.subscribe("trivue/v1/truck-a/#")
    outbox = Outbox(tmp_path / "o.sqlite3")
    small = b"\xff\xd8" + b"j" * 50_000
    ids = lift_rows(outbox, [b"\xff" * 3_500_000, small, None, small])
    uplink = truck_uplink(tmp_path, limited_broker, outbox, attempts=3)
    try:
        uplink.start()
        assert wait_until(lambda: outbox.depth() == 0, timeout=90), \
            f"queue stuck behind the refused photo: {outbox.depth()} rows left"
        received = server.messages(1.0)
    finally:
        uplink.stop()
        server.close()
    lifts = [json.loads(p)["id"] for t, p in received if t.endswith("/lift")]
    photos = [t.rsplit("/", 1)[1] for t, _p in received if "/evidence/" in t]
    assert set(lifts) == set(ids), "every lift is delivered, the one whose photo was refused too"
    assert set(photos) == {ids[1], ids[3]}
    assert outbox.counter("photos_refused") == 1 and outbox.photos_dropped() == 0
    outbox.close()


def test_a_lift_the_broker_refuses_is_never_dropped(tmp_path: Path, limited_broker: SecuredMosquitto) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    event_id = str(uuid.uuid4())
    outbox.put_lift(event_id, ("trivue/v1/truck-a/lift", b"{" + b" " * 3_500_000 + b"}"))
    uplink = truck_uplink(tmp_path, limited_broker, outbox, attempts=2)
    try:
        uplink.start()
        # well past the photo limit: a photo would have been dropped by now
        assert wait_until(lambda: max(uplink.attempts.values(), default=0) >= 4, timeout=90)
    finally:
        uplink.stop()
    assert [m.event_id for m in outbox.oldest()] == [event_id]
    assert outbox.counter("photos_refused") == 0
    outbox.close()


def receipt_uplink(broker: SecuredMosquitto, outbox: Outbox, timeout_s: float) -> Uplink:
    settings = load_settings(None, {"truck_id": "truck-a", "source": "x", "uplink": {
        "broker": broker.url("truck-a"), "reconnect_max_s": 1, "receipt_timeout_s": timeout_s}}, environ={})
    assert settings.uplink.delete_after == "receipt"  # the default
    stats = TruckStats(truck_id="truck-a", sent_at=datetime.now(UTC), uptime_s=0)
    return Uplink(settings, outbox, lambda: stats, lambda _c: None)


def test_receipt_mode_keeps_acknowledged_rows_until_the_servers_receipt(
        tmp_path: Path, limited_broker: SecuredMosquitto) -> None:
    server = Probe()
    server.connect(limited_broker.port, SERVER_USER, limited_broker.passwords[SERVER_USER])
    server.subscribe("trivue/v1/truck-a/+")
    server.subscribe("trivue/v1/truck-a/evidence/+")
    outbox = Outbox(tmp_path / "o.sqlite3")
    lift_rows(outbox, [b"\xff\xd8photo", None, None])
    rows = outbox.oldest()
    uplink = receipt_uplink(limited_broker, outbox, timeout_s=600)
    try:
        uplink.start()
        assert wait_until(lambda: uplink.awaiting_receipt() == 4, timeout=10), "PUBACKs not seen"
        received = [(t, p) for t, p in server.messages(0.5) if t.endswith("/lift") or "/evidence/" in t]
        assert sorted(received) == sorted((m.topic, m.payload) for m in rows)
        assert outbox.depth() == 4, "a PUBACK alone must not delete a row"
        topic = "trivue/v1/truck-a/receipt"
        server.publish(topic, b"not a receipt")  # ignored, with a warning
        server.publish(topic, receipt_payload(["0123456789abcdef"]))  # a digest we never sent: ignored
        server.publish(topic, receipt_payload([message_digest(m.topic, m.payload) for m in rows[:2]]))
        assert wait_until(lambda: outbox.depth() == 2, timeout=10)
        assert [m.seq for m in outbox.oldest()] == [m.seq for m in rows[2:]]
        server.publish(topic, receipt_payload([message_digest(m.topic, m.payload) for m in rows[2:]]))
        assert uplink.flush(10), "flush waits for the receipts"
    finally:
        uplink.stop()
        server.close()
        outbox.close()


def test_receipt_mode_resends_unreceipted_rows_after_the_timeout(
        tmp_path: Path, limited_broker: SecuredMosquitto) -> None:
    """The broker acknowledged, then (say) crashed before saving: no receipt ever comes for that
    copy, so the row goes again after receipt_timeout_s, and again, until the receipt comes."""
    server = Probe()
    server.connect(limited_broker.port, SERVER_USER, limited_broker.passwords[SERVER_USER])
    server.subscribe("trivue/v1/truck-a/lift")
    outbox = Outbox(tmp_path / "o.sqlite3")
    lift_rows(outbox, [None, None])
    rows = outbox.oldest()
    assert len(rows) == 2
    uplink = receipt_uplink(limited_broker, outbox, timeout_s=0.5)
    try:
        uplink.start()
        # timeout x1 then x2: at least two copies of each within ~2 s
        received = server.messages(2.5)
        for message in rows:
            assert received.count((message.topic, message.payload)) >= 2, received
        server.publish("trivue/v1/truck-a/receipt",
                       receipt_payload([message_digest(m.topic, m.payload) for m in rows]))
        assert wait_until(lambda: outbox.depth() == 0, timeout=10)
        server.messages(0.3)
        assert server.messages(2.0) == [], "a receipted row must not be sent again"
    finally:
        uplink.stop()
        server.close()
        outbox.close()


def test_delete_after_accepts_receipt_or_puback_only() -> None:
    base = {"truck_id": "T", "source": "x"}
    assert load_settings(None, base, environ={}).uplink.delete_after == "receipt"
    puback = load_settings(None, {**base, "uplink": {"delete_after": "puback"}}, environ={})
    assert puback.uplink.delete_after == "puback"
    with pytest.raises(Exception, match="delete_after"):
        load_settings(None, {**base, "uplink": {"delete_after": "never"}}, environ={})
