"""The embedded broker speaks real MQTT: QoS 1, retained messages and persistent sessions."""

from __future__ import annotations

import queue
import time

import paho.mqtt.client as mqtt
import pytest

from tests.conftest import free_port
from trivue.broker import BrokerError, EmbeddedBroker


def connect(port: int, client_id: str, clean: bool = True) -> tuple[mqtt.Client, queue.Queue]:
    received: queue.Queue = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    client.on_message = lambda _c, _u, msg: received.put((msg.topic, msg.payload, msg.retain))
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client, received


def close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def test_retained_message_reaches_a_late_subscriber() -> None:
    port = free_port()
    with EmbeddedBroker("127.0.0.1", port):
        publisher, _ = connect(port, "pub")
        publisher.publish("t/retained", b"hello", qos=1, retain=True).wait_for_publish(5)
        close(publisher)
        subscriber, received = connect(port, "sub")
        subscriber.subscribe("t/#", qos=1)
        assert received.get(timeout=5) == ("t/retained", b"hello", True)
        close(subscriber)


def test_persistent_session_keeps_qos1_messages_while_offline() -> None:
    port = free_port()
    with EmbeddedBroker("127.0.0.1", port):
        subscriber, _ = connect(port, "server-ingest", clean=False)
        subscriber.subscribe("t/lift", qos=1)
        time.sleep(0.3)  # SUBACK: the subscription exists before the session goes offline
        close(subscriber)
        publisher, _ = connect(port, "truck")
        publisher.publish("t/lift", b"event-1", qos=1).wait_for_publish(5)
        close(publisher)
        again, received = connect(port, "server-ingest", clean=False)
        assert received.get(timeout=5)[:2] == ("t/lift", b"event-1")
        close(again)


def test_port_in_use_is_a_clear_error() -> None:
    port = free_port()
    with EmbeddedBroker("127.0.0.1", port), pytest.raises(BrokerError, match="already in use"):
        EmbeddedBroker("127.0.0.1", port).start()
