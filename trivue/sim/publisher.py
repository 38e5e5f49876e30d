"""MQTT connections of a simulated fleet: QoS 1, persistent sessions, every PUBACK counted.

For a few trucks each has its own connection (fixed client id, ``online`` retained on connect,
``offline`` as last will), exactly like the edge agent. For load tests with thousands of trucks a
pool of connections publishes on their behalf (topics still carry each truck's id). paho keeps
unacknowledged QoS 1 messages in memory and sends them again after a reconnection (a broker
restart), which the server must absorb as duplicates of the same event id.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import time
import zlib
from collections.abc import Sequence
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)

MAX_INFLIGHT = 200


class PublishError(RuntimeError):
    """The broker could not be reached or did not acknowledge in time."""


def check_reachable(broker_url: str, timeout_s: float = 15.0) -> None:
    """Full mode's agents retry an absent broker for ever: say so at once, as events mode does,
    rather than after every lift was played and a minute per truck of waiting for acknowledgements."""
    parts = urlsplit(broker_url)
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:  # a port out of range
        port = -1
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or port < 0:
        raise PublishError(f"broker {broker_url!r}: expected mqtt://host:port")
    try:
        socket.create_connection((parts.hostname or "", port), timeout=timeout_s).close()
    except OSError as error:
        raise PublishError(f"MQTT broker {parts.hostname}:{port} not reachable ({error.strerror or error})") from None


def prefix_tag(prefix: str) -> str:
    """A short, fixed tag of a topic prefix for the simulated trucks' MQTT client ids: the ids are fixed
    (persistent sessions) and were the same for every server, so two simulations on one broker, each for
    its own server and ``topic_prefix``, kept taking each other's connection."""
    return hashlib.sha1(prefix.encode()).hexdigest()[:8]


class FleetLink:
    """``publish(truck_id, suffix, payload)`` over one connection per truck or a shared pool."""

    def __init__(self, broker_url: str, prefix: str, trucks: Sequence[str], connections: int = 0,
                 client_prefix: str = "trivue-sim", status: bool = True) -> None:
        parts = urlsplit(broker_url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise PublishError(f"broker {broker_url!r}: expected mqtt://host:port")
        self.host, self.port = parts.hostname, parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.tls, self.user, self.password = parts.scheme == "mqtts", parts.username, parts.password
        self.prefix, self.trucks = prefix, list(trucks)
        self._ids = {truck: i for i, truck in enumerate(self.trucks)}
        self.per_truck = connections <= 0 or connections >= len(self.trucks)
        self.status = status and self.per_truck  # retained online/stopped and last will, per truck
        count = len(self.trucks) if self.per_truck else connections
        names = self.trucks if self.per_truck else [f"pool-{i}" for i in range(count)]
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, int], bool] = {}  # (connection, mid) -> counted in sent/acked
        self._early: set[tuple[int, int]] = set()  # acknowledged before publish() returned the mid
        self.sent = self.acked = 0
        self._connected = [threading.Event() for _ in range(count)]
        tag = prefix_tag(prefix)  # simulations for two servers on one broker must not take over each other
        self.clients = [self._client(i, f"{client_prefix}-{tag}-{name}") for i, name in enumerate(names)]

    def _client(self, index: int, client_id: str) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id[:64], clean_session=False,
                             protocol=mqtt.MQTTv311)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(0.2, 2)
        if self.user:
            client.username_pw_set(self.user, self.password)
        if self.tls:
            client.tls_set()
        if self.status:
            client.will_set(self.topic(self.trucks[index], "status"), "offline", qos=1, retain=True)
        client.on_connect = lambda c, _u, _f, reason, _p: self._on_connect(index, reason)
        client.on_disconnect = lambda c, _u, _f, reason, _p: self._connected[index].clear()
        client.on_publish = lambda c, _u, mid, _r, _p: self._on_publish(index, mid)
        return client

    def topic(self, truck_id: str, suffix: str) -> str:
        return f"{self.prefix}/{truck_id}/{suffix}"

    def _on_connect(self, index: int, reason: mqtt.ReasonCode) -> None:
        if reason.is_failure:
            log.warning("connection %d refused: %s", index, reason)
            return
        self._connected[index].set()
        if self.status:
            info = self.clients[index].publish(self.topic(self.trucks[index], "status"), "online", qos=1, retain=True)
            self._register(index, info.mid, tracked=False)

    def _on_publish(self, index: int, mid: int) -> None:
        with self._lock:
            if (index, mid) in self._pending:
                self.acked += self._pending.pop((index, mid))
            else:
                self._early.add((index, mid))

    def _register(self, index: int, mid: int, tracked: bool) -> None:
        # Never call paho while holding our lock: its network thread holds its own lock when it
        # calls _on_publish, which takes ours (a lock-order deadlock otherwise).
        with self._lock:
            if (index, mid) in self._early:
                self._early.discard((index, mid))
                self.acked += tracked
            else:
                self._pending[(index, mid)] = tracked
            self.sent += tracked

    def start(self, timeout_s: float = 15.0) -> FleetLink:
        for client in self.clients:
            client.connect_async(self.host, self.port, keepalive=30)
            client.loop_start()
        if not self.wait_connected(timeout_s):
            self.stop(clean=False)
            raise PublishError(f"MQTT broker {self.host}:{self.port} not reachable within {timeout_s:g} s")
        return self

    def wait_connected(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        return all(event.wait(max(0.0, deadline - time.monotonic())) for event in self._connected)

    def _index(self, truck_id: str) -> int:
        if self.per_truck:
            return self._ids[truck_id]
        return zlib.crc32(truck_id.encode()) % len(self.clients)

    def publish(self, truck_id: str, suffix: str, payload: bytes | str, retain: bool = False,
                tracked: bool = True) -> None:
        """Queue a QoS 1 message; paho sends it now or after the next reconnection."""
        index = self._index(truck_id)
        info = self.clients[index].publish(self.topic(truck_id, suffix), payload, qos=1, retain=retain)
        self._register(index, info.mid, tracked)

    @property
    def unacked(self) -> int:
        with self._lock:
            return sum(self._pending.values())

    def flush(self, timeout_s: float) -> bool:
        """Wait until every tracked message is acknowledged by the broker."""
        deadline = time.monotonic() + timeout_s
        while self.unacked and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.unacked

    def stop(self, clean: bool = True) -> None:
        if clean and self.status:
            for index, client in enumerate(self.clients):
                if self._connected[index].is_set():
                    client.publish(self.topic(self.trucks[index], "status"), "stopped", qos=1, retain=True)
            time.sleep(0.2)
        for client in self.clients:
            client.disconnect()
            client.loop_stop()
