"""The MQTT subscriber: persistent session, QoS 1, batched writes, acknowledged only once committed.

paho's network thread puts messages on a queue bounded in messages and in bytes
(``server.ingest.received``); one writer thread drains it in batches through
``Inbox`` and commits. Acknowledgements are manual and sent after the commit, so a server that
dies mid-batch gets the messages again from the broker (persistent session, fixed client id),
and the idempotent store makes the second delivery a no-op. Nothing is lost, nothing counted twice.

After each commit the server also publishes end-to-end receipts (QoS 1), one message per truck on
``<prefix>/<truck_id>/receipt``, naming every lift and photo it has durably dealt with: stored,
duplicate or dead letter (``vision.schema.message_digest``). The truck deletes an outbox row only
then (``uplink.delete_after: receipt``), so a broker that acknowledged a message and crashed before
saving it costs a resend, not a lift. A lost receipt costs a resend too; nothing waits on it here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from base.ids import is_truck_id
from server.config import ServerSettings, masked_url
from server.db import utcnow
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from server.ingest.received import ReceivedQueue
from vision.schema import message_digest, receipt_payload

log = logging.getLogger(__name__)

TOPIC_KINDS = ("+/lift", "+/evidence/+", "+/status", "+/stats")
RETRY_MAX_S = 30.0
WRITE_ATTEMPTS = 5  # unexpected (non-database) failures of one batch before it is left to the broker
RECEIPT_KINDS = frozenset({"lift", "evidence"})  # what a truck keeps in its outbox; status and stats are not
RECEIPT_MAX = 1000  # digests per receipt message (~18 kB): well under any broker's packet limit


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


class Ingest:
    """Subscriber + batch writer; ``start()`` and ``stop()`` from the composition root."""

    def __init__(self, settings: ServerSettings, sessions: sessionmaker[Session], inbox: Inbox,
                 metrics: Metrics) -> None:
        self.settings = settings
        self.sessions = sessions
        self.inbox = inbox
        self.metrics = metrics
        self.connected = threading.Event()
        self._queue = ReceivedQueue(20 * settings.ingest_batch_size, settings.ingest_queue_max_bytes)
        self._closing = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="trivue-ingest-writer", daemon=True)
        self._client = make_client(settings)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._unreachable = 0  # failed connection attempts since the last success
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def queue_bytes(self) -> int:
        return self._queue.bytes()

    def start(self) -> None:
        url = urlsplit(self.settings.broker_url)
        port = url.port or (8883 if url.scheme == "mqtts" else 1883)
        self._writer.start()
        v5 = self.settings.mqtt_protocol == "5"
        self._client.connect_async(url.hostname or "127.0.0.1", port, keepalive=30,
                                   clean_start=False if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                                   properties=connect_properties(self.settings))
        self._client.loop_start()
        log.info("ingest subscribing to %s as %r", masked_url(self.settings.broker_url), self.settings.mqtt_client_id)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking messages, write and acknowledge those queued, then disconnect."""
        self._closing.set()
        if self._writer.is_alive():
            self._writer.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        log.info("ingest stopped (%d messages left unacknowledged for the next start)", self.queue_depth)

    def publish_config(self, truck_id: str, config: dict[str, Any]) -> None:
        """Retained config for a truck at ``<prefix>/<truck_id>/config`` (the truck reads it at connect)."""
        topic = f"{self.settings.topic_prefix.rstrip('/')}/{truck_id}/config"
        info = self._client.publish(topic, json.dumps(config, separators=(",", ":")), qos=1, retain=True)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"broker refused the config for {truck_id}: {mqtt.error_string(info.rc)}")

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        self._unreachable = 0
        # Subscribing again on every connect: a broker that lost our session still sends to us.
        client.subscribe([(topic, 1) for topic in subscriptions(self.settings)])
        log.info("connected to the broker (session present: %s)", flags.session_present)

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        # paho retries on its own, its delay doubling up to 2 minutes: say so on the first failure
        # and then every tenth, not on every try, and never silently (a wrong broker_url ran quietly)
        self._unreachable += 1
        if self._unreachable % 10 == 1:
            log.warning("broker %s unreachable (%d tries); ingest keeps trying, trucks keep their lifts meanwhile",
                        masked_url(self.settings.broker_url), self._unreachable)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: list[Any], _p: Any) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            log.error("broker refused subscriptions %s: %s", subscriptions(self.settings), refused)
            return
        self.connected.set()  # "connected" means able to receive: subscriptions acknowledged

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected.clear()
        if not self._closing.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if self._closing.is_set():
            return  # not acknowledged: the broker delivers it again after the restart
        self._queue.put(MqttMessage(message.topic, bytes(message.payload), utcnow(), message.mid, message.qos,
                                    retained=bool(message.retain)))

    def _next_batch(self) -> list[MqttMessage]:
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.settings.ingest_batch_wait_ms / 1000
        while len(batch) < self.settings.ingest_batch_size:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _write_loop(self) -> None:
        while not (self._closing.is_set() and self._queue.empty()):
            batch = self._next_batch()
            if not batch:
                continue
            try:
                self._write(batch)
            except Exception:  # the last guard: whatever escapes, the writer thread must live on
                self.metrics.inc("trivue_ingest_errors_total")
                self.metrics.inc("trivue_ingest_unstored_total", len(batch))
                log.exception("writer: %d messages left unacknowledged to the broker", len(batch))
                self._closing.wait(1.0)

    def _write(self, batch: list[MqttMessage]) -> None:
        """Store ``batch`` and acknowledge what was stored (or dead-lettered); never ack the rest.

        The database away (``OperationalError``/``InterfaceError``): retry with back-off, forever.
        Anything else outside the per-message isolation (a bug, a disk error): retry with back-off
        up to ``WRITE_ATTEMPTS`` times, then leave the batch unacknowledged (the broker delivers it
        again after a reconnection) so that one bad batch does not stop ingest for good.
        """
        delay, attempts, outage = 0.5, 0, 0
        while True:
            started = time.perf_counter()
            try:
                stored = self._store(batch)
                break
            except (OperationalError, InterfaceError) as error:
                # The database is away (restart, full disk, lock): keep the batch, retry, never ack.
                self.metrics.inc("trivue_ingest_errors_total")
                outage += 1
                if self._closing.is_set():
                    log.error("database unavailable at shutdown: %d messages left to the broker", len(batch))
                    return
                log.error("database unavailable, retrying %d messages in %.0f s: %s", len(batch), delay, error)
            except Exception:
                self.metrics.inc("trivue_ingest_errors_total")
                attempts += 1
                if attempts >= WRITE_ATTEMPTS or self._closing.is_set():
                    self.metrics.inc("trivue_ingest_unstored_total", len(batch))
                    log.exception("batch of %d could not be stored after %d attempts: left unacknowledged",
                                  len(batch), attempts)
                    return
                log.exception("batch of %d failed (attempt %d), retrying in %.1f s", len(batch), attempts, delay)
            self._closing.wait(delay)
            delay = min(delay * 2, RETRY_MAX_S)
        if outage:  # the error lines above say when it went; this one says when it came back
            log.info("database available again: %d messages stored after %d failed attempts", len(batch), outage)
        self.metrics.inc("trivue_ingest_batches_total")
        self.metrics.inc("trivue_ingest_batch_seconds_total", time.perf_counter() - started)
        for message in stored:
            if message.qos > 0:
                self._client.ack(message.mid, message.qos)
        self._send_receipts(stored)

    def _send_receipts(self, committed: list[MqttMessage]) -> None:
        """Tell each truck which of its outbox messages are committed. Best effort by design: a
        receipt that does not arrive only makes the truck send those rows again after
        ``uplink.receipt_timeout_s``, and the duplicates are receipted in turn."""
        for truck_id, digests in receipts_for(self.inbox, committed).items():
            topic = f"{self.inbox.prefix}{truck_id}/receipt"
            for start in range(0, len(digests), RECEIPT_MAX):
                info = self._client.publish(topic, receipt_payload(digests[start:start + RECEIPT_MAX]), qos=1)
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # NO_CONN: paho sends it later
                    log.warning("receipt for %s not published: %s", truck_id, mqtt.error_string(info.rc))
            self.metrics.inc("trivue_ingest_receipted_total", len(digests))

    def _store(self, batch: list[MqttMessage]) -> list[MqttMessage]:
        """The messages stored or dead-lettered: the whole batch in one transaction, else one by one."""
        try:
            self._commit(batch, self.inbox.write)
            return batch
        except (OperationalError, InterfaceError):
            raise
        except Exception:
            self.metrics.inc("trivue_ingest_errors_total")
            log.exception("batch of %d failed; storing its messages one by one", len(batch))
            return self._write_one_by_one(batch)

    def _write_one_by_one(self, batch: list[MqttMessage]) -> list[MqttMessage]:
        """Isolate the message that breaks the store: it becomes a dead letter, the rest are stored.

        Returns the messages that are safe to acknowledge. A message that can be stored neither as
        itself nor as a dead letter is left out: unacknowledged, the broker keeps it."""
        stored = []
        for message in batch:
            try:
                self._commit([message], self.inbox.write)
            except (OperationalError, InterfaceError):
                raise
            except Exception as error:  # a poison message must not block the queue
                log.exception("message on %s could not be stored", message.topic)
                if not self._dead_letter(message, error):
                    continue
            stored.append(message)
        return stored

    def _dead_letter(self, message: MqttMessage, error: Exception) -> bool:
        """Store ``message`` as a ``store_error`` dead letter; then, if the database refuses that row
        too (a NUL in a topic, a disk error...), a plain-ASCII copy with no payload. False when
        neither could be written: the caller must not acknowledge the message."""
        detail = repr(error)
        for attempt in (message, _ascii_copy(message)):
            try:
                self._commit([attempt], lambda s, m: self.inbox.refuse(s, m[0], "store_error", detail))
                return True
            except (OperationalError, InterfaceError):
                raise
            except Exception:
                self.metrics.inc("trivue_ingest_errors_total")
                log.exception("dead letter for %r could not be stored", message.topic[:200])
        self.metrics.inc("trivue_ingest_unstored_total")
        log.error("message on %r neither stored nor dead-lettered: left unacknowledged to the broker",
                  message.topic[:200])
        return False

    def _commit(self, batch: list[MqttMessage], write: Callable[[Session, list[MqttMessage]], None]) -> None:
        with self.sessions() as session, session.begin():
            write(session, batch)


def receipts_for(inbox: Inbox, committed: list[MqttMessage]) -> dict[str, list[str]]:
    """Digests of the committed lift and photo messages, per truck (from the topic: the ACL lets a
    truck publish only under its own id, so the topic names the truck that holds the outbox row)."""
    out: dict[str, list[str]] = {}
    for message in committed:
        parts = inbox.levels(message.topic)
        if parts is None or len(parts) < 2 or parts[1] not in RECEIPT_KINDS or not is_truck_id(parts[0]):
            continue  # no truck to answer (or a truck id that must not become a topic level)
        out.setdefault(parts[0], []).append(message_digest(message.topic, message.payload))
    return out


def _ascii_copy(message: MqttMessage) -> MqttMessage:
    """The message as a dead letter any database accepts: an ASCII topic without NUL, no payload."""
    topic = message.topic.encode("ascii", "backslashreplace").decode("ascii").replace("\x00", "\\x00")
    return dataclasses.replace(message, topic=topic, payload=b"")
