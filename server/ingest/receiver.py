"""The broker side of ingest, in a process of its own: it receives, the server stores.

Ingest does two things with every message: receive it (paho reads the socket and parses the
packet) and store it (validation, street matching, insert, commit). In one interpreter they take
turns on one GIL, so a server's live rate was 1 / (receive + store): with trajectory matching
0.38x a bare subscriber (docs/performance.md). Here the paho client runs in a child process
(``BrokerLink``) that only moves bytes: it forwards messages to the server in chunks over a
pipe, and sends the acknowledgements and publications (receipts, truck configs) the server asks
for. The server's writer thread and its API then have the server's interpreter to themselves,
and paho's keepalive never waits behind a long batch.

Exactly-once does not change. The acknowledgement still follows the commit: the child acks a
message only when the server tells it to, after storing it. A message the child received but the
server never stored (the child or the server died, the server stopped) is never acknowledged,
and the broker delivers it again to the next connection with the same client id (persistent
session). A child that dies is started again; the server goes on with the messages it holds.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from server.config import ServerSettings

log = logging.getLogger(__name__)

TOPIC_KINDS = ("+/lift", "+/evidence/+", "+/status", "+/stats")
CHUNK = 500  # messages per pipe write at most: one pickle for many messages, and no long wait
START_TIMEOUT_S = 60.0  # spawning the child: a fresh interpreter importing paho and pydantic
STOP_TIMEOUT_S = 10.0
RESTART_DELAY_S = 1.0  # after the child died, before the next one starts
PUBLISH_TIMEOUT_S = 10.0  # a publication whose result the caller waits for (a truck's config)


@dataclass(frozen=True, slots=True)
class MqttMessage:
    """What ingest keeps of an MQTT message; ``mid`` and ``qos`` are needed to acknowledge it."""

    topic: str
    payload: bytes
    received_at: datetime
    mid: int = 0
    qos: int = 0


def subscriptions(settings: ServerSettings) -> list[str]:
    """Topic filters, as ``$share/<group>/...`` when several servers split the load."""
    prefix = settings.topic_prefix.rstrip("/")
    share = f"$share/{settings.mqtt_shared_group}/" if settings.mqtt_shared_group else ""
    return [f"{share}{prefix}/{kind}" for kind in TOPIC_KINDS]


def make_client(settings: ServerSettings, client_id: str | None = None, manual_ack: bool = True) -> mqtt.Client:
    """A paho client for ``settings.broker_url`` with credentials and TLS; not yet connected."""
    url = urlsplit(settings.broker_url)
    v5 = settings.mqtt_protocol == "5"
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or settings.mqtt_client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else False, manual_ack=manual_ack,
    )
    if url.username:
        client.username_pw_set(unquote(url.username), unquote(url.password) if url.password else None)
    if url.scheme == "mqtts":
        client.tls_set()
    client.reconnect_delay_set(1, 30)
    return client


def connect_properties(settings: ServerSettings) -> Properties | None:
    if settings.mqtt_protocol != "5":
        return None
    properties = Properties(PacketTypes.CONNECT)
    # MQTT 5 ends a session at disconnect unless told otherwise: keep our queue while we restart.
    properties.SessionExpiryInterval = settings.mqtt_session_expiry_s
    # We acknowledge after the commit, so the broker must be allowed several batches in flight.
    # Beyond them Mosquitto queues only max_queued_messages (default 1000) and drops the rest.
    properties.ReceiveMaximum = min(65535, max(100, 10 * settings.ingest_batch_size))
    return properties


class BrokerLink:
    """The server's end of the receiving process: start, stop, ack, publish.

    ``on_messages`` is called from the link's reader thread with each chunk of received messages
    (it may block: the pipe, then the child's queue, then the socket fill up and the broker holds
    the rest). ``connected`` is set while the child is subscribed.
    """

    def __init__(self, settings: ServerSettings, on_messages: Callable[[list[MqttMessage]], None]) -> None:
        self.settings = settings
        self.on_messages = on_messages
        self.connected = threading.Event()
        self._send_lock = threading.Lock()
        self._conn: Connection | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._stopping = threading.Event()
        self._replies: dict[int, tuple[threading.Event, list[int]]] = {}
        self._next_request = 0
        self.restarts = 0

    @property
    def child_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self._stopping.clear()
        self._spawn()
        self._reader = threading.Thread(target=self._read_loop, name="trivue-ingest-link", daemon=True)
        self._reader.start()

    def close_intake(self) -> None:
        """Stop forwarding new messages (they stay unacknowledged, for the next start)."""
        self._send(("closing",))

    def stop(self) -> None:
        """Disconnect after the acknowledgements already sent, and end the child."""
        self._stopping.set()
        self._send(("stop",))
        process = self._process
        if process is not None:
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.error("the ingest receiver (pid %s) did not stop in %.0f s: killed", process.pid, STOP_TIMEOUT_S)
                process.kill()
                process.wait(STOP_TIMEOUT_S)
        with self._send_lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()  # the reader thread, if still waiting on it, ends
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT_S)
        self.connected.clear()

    def ack(self, messages: list[MqttMessage]) -> None:
        """Acknowledge ``messages`` to the broker (after their commit)."""
        pairs = [(m.mid, m.qos) for m in messages if m.qos > 0]
        if pairs:
            self._send(("ack", pairs))

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        """Publish without waiting: paho sends it when connected (a receipt: best effort by design)."""
        self._send(("publish", 0, topic, payload, qos, retain))

    def publish_and_wait(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> int:
        """Publish and return paho's result code (``MQTT_ERR_SUCCESS`` once handed to the socket)."""
        with self._send_lock:
            self._next_request += 1
            request = self._next_request
        done, result = threading.Event(), [mqtt.MQTT_ERR_NO_CONN]
        self._replies[request] = (done, result)
        try:
            if not self._send(("publish", request, topic, payload, qos, retain)) or not done.wait(PUBLISH_TIMEOUT_S):
                return mqtt.MQTT_ERR_NO_CONN
            return result[0]
        finally:
            self._replies.pop(request, None)

    def _send(self, command: tuple[Any, ...]) -> bool:
        """False when the child is not there to take it (not started, dead or restarting): an ack
        lost that way costs a redelivery, never a message."""
        with self._send_lock:
            if self._conn is None:
                return False
            try:
                self._conn.send(command)
                return True
            except (OSError, EOFError, ValueError):
                return False

    def _spawn(self) -> None:
        # A plain ``python -m server.ingest.receiver`` rather than multiprocessing's spawn, which
        # would import the server's main module (the whole server) in the child first.
        ours, theirs = socket.socketpair()
        with theirs:
            process = subprocess.Popen([sys.executable, "-m", "server.ingest.receiver", str(theirs.fileno())],
                                       pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        conn = Connection(ours.detach())
        conn.send((self.settings, log.getEffectiveLevel()))  # what this module would log here
        with self._send_lock:
            self._conn, self._process = conn, process
        log.info("ingest receiver started (pid %s)", process.pid)

    def _read_loop(self) -> None:
        while True:
            conn = self._conn
            try:
                if conn is None:
                    raise EOFError
                event = conn.recv()
            except (EOFError, OSError):
                if self._stopping.is_set():
                    return
                self._restart()
                continue
            kind = event[0]
            if kind == "messages":
                if not self._stopping.is_set():
                    self.on_messages([MqttMessage(*fields) for fields in event[1]])
            elif kind == "connected":
                (self.connected.set if event[1] else self.connected.clear)()
            elif kind == "published":
                waiting = self._replies.get(event[1])
                if waiting is not None:
                    waiting[1][0] = event[2]
                    waiting[0].set()
            elif kind == "log":
                logging.getLogger(event[1]).log(event[2], "%s", event[3])

    def _restart(self) -> None:
        """The child died (killed, out of memory): what it forwarded stays with the server, what it
        held unforwarded was never acknowledged, so the broker sends it to the next child."""
        self.connected.clear()
        code = None
        if self._process is not None:
            try:
                code = self._process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:  # it closed the pipe but lingers: end it
                self._process.kill()
                code = self._process.wait()
        log.error("the ingest receiver died (exit code %s); starting another in %.0f s", code, RESTART_DELAY_S)
        with self._send_lock:
            self._conn = None
        if self._stopping.wait(RESTART_DELAY_S):
            return
        self.restarts += 1
        try:
            self._spawn()
        except OSError:  # no process to be had now (out of memory, pids): the reader tries again
            log.exception("the ingest receiver could not be started again")


# The child process. Everything below runs in the receiver, never in the server.


class _PipeLog(logging.Handler):
    """The child's log records, sent to the server's logging (one log, one configuration)."""

    def __init__(self, send: Callable[[tuple[Any, ...]], None]) -> None:
        super().__init__()
        self._send_event = send

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # the server is gone: nobody to tell
            self._send_event(("log", record.name, record.levelno, self.format(record)))


def serve(conn: Connection) -> None:
    """The receiving process: connect, forward messages, obey the server's commands until told
    to stop or until the server is gone (its end of the pipe closed)."""
    # Ctrl-C and a service manager's SIGTERM reach the whole process group: the server decides
    # when its receiver stops (after its last acknowledgements), or the pipe closes when it dies.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settings, log_level = conn.recv()
    send_lock = threading.Lock()

    def send(event: tuple[Any, ...]) -> None:
        with send_lock:
            conn.send(event)

    root = logging.getLogger()
    root.handlers[:] = [_PipeLog(send)]
    root.setLevel(log_level)
    Receiver(settings, send).run(conn)


class Receiver:
    """paho in the child: messages out in chunks, commands in."""

    def __init__(self, settings: ServerSettings, send: Callable[[tuple[Any, ...]], None]) -> None:
        self.settings = settings
        self.send = send
        self.closing = threading.Event()
        # Bounded: a server that falls behind blocks paho's thread here, paho stops reading the
        # socket and the broker holds the rest (its in-flight window is ReceiveMaximum).
        self.inbox: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=20 * settings.ingest_batch_size)
        self.client = make_client(settings)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def run(self, conn: Any) -> None:
        forwarder = threading.Thread(target=self._forward, name="trivue-receiver-forward", daemon=True)
        forwarder.start()
        url = urlsplit(self.settings.broker_url)
        port = url.port or (8883 if url.scheme == "mqtts" else 1883)
        v5 = self.settings.mqtt_protocol == "5"
        self.client.connect_async(url.hostname or "127.0.0.1", port, keepalive=30,
                                  clean_start=False if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                                  properties=connect_properties(self.settings))
        self.client.loop_start()
        log.info("ingest subscribing to %s as %r", self.settings.broker_url, self.settings.mqtt_client_id)
        try:
            self._obey(conn)
        finally:
            self.closing.set()
            self.client.disconnect()
            self.client.loop_stop()
            self.inbox.put(None)
            forwarder.join(STOP_TIMEOUT_S)

    def _obey(self, conn: Any) -> None:
        while True:
            try:
                command = conn.recv()
            except (EOFError, OSError):
                return  # the server is gone: what it did not acknowledge comes again
            kind = command[0]
            if kind == "ack":
                for mid, qos in command[1]:
                    self.client.ack(mid, qos)
            elif kind == "publish":
                _, request, topic, payload, qos, retain = command
                info = self.client.publish(topic, payload, qos=qos, retain=retain)
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # NO_CONN: paho sends it later
                    log.warning("not published on %s: %s", topic, mqtt.error_string(info.rc))
                if request:
                    self.send(("published", request, info.rc))
            elif kind == "closing":
                self.closing.set()
            elif kind == "stop":
                return

    def _forward(self) -> None:
        """Move received messages to the server: one pipe write per chunk, never waiting to fill it."""
        while True:
            first = self.inbox.get()
            if first is None:
                return
            chunk = [first]
            while len(chunk) < CHUNK:
                try:
                    item = self.inbox.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._send_chunk(chunk)
                    return
                chunk.append(item)
            self._send_chunk(chunk)

    def _send_chunk(self, chunk: list[tuple[Any, ...]]) -> None:
        try:
            self.send(("messages", chunk))
        except (OSError, ValueError):
            self.closing.set()  # the server is gone; nothing forwarded from here on is acknowledged

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        # Subscribing again on every connect: a broker that lost our session still sends to us.
        client.subscribe([(topic, 1) for topic in subscriptions(self.settings)])
        log.info("connected to the broker (session present: %s)", flags.session_present)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: list[Any], _p: Any) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            log.error("broker refused subscriptions %s: %s", subscriptions(self.settings), refused)
            return
        self.send(("connected", True))  # "connected" means able to receive: subscriptions acknowledged

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.send(("connected", False))
        if not self.closing.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if self.closing.is_set():
            return  # not acknowledged: the broker delivers it again after the restart
        self.inbox.put((message.topic, bytes(message.payload), datetime.now(UTC), message.mid, message.qos))


if __name__ == "__main__":
    # Run from the imported module, not from ``__main__``: its loggers then carry their real name.
    from server.ingest import receiver

    receiver.serve(Connection(int(sys.argv[1])))
