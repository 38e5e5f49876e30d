"""Uplink: drains the outbox to the broker over MQTT QoS 1; a row leaves it once the server receipts it.

paho-mqtt keeps unacknowledged QoS 1 messages in memory and resends them after a reconnection;
the outbox is what survives a power cut. Rows are published in sequence order, a bounded window at
a time; paho reports the PUBACK (``MessageInfo.is_published``). Polling the MessageInfo instead of
mapping ``on_publish`` mids avoids a race: the PUBACK can arrive before ``publish()`` has returned
the mid.

End-to-end receipts (``uplink.delete_after: receipt``, the default). A PUBACK only means the broker
has the message in memory: Mosquitto saves it every ``autosave_interval``, so a broker crash loses
what it acknowledged since. A PUBACKed row therefore stays in the outbox, "sent, awaiting receipt",
until the server, after committing it (stored, duplicate or dead letter), names it in a receipt on
``<prefix>/<truck_id>/receipt`` (``vision.schema.message_digest``: a digest of topic and payload).
A row still unreceipted ``uplink.receipt_timeout_s`` after its PUBACK is sent again (the server's
idempotent store makes that a no-op, and it receipts the duplicate), then after 2x, 4x, 8x that
while the server stays silent, so that a server down for hours is not flooded with copies. Which
rows await a receipt is kept in memory only: after a restart every row is sent again, which costs
duplicates, never a loss. ``delete_after: puback`` keeps the old behaviour (no server needed).

Availability follows the usual MQTT pattern: ``online`` retained on connect, ``offline`` retained
as last will (power loss, crash), ``stopped`` on a clean exit.

A message the broker refuses by closing the connection (Mosquitto does so for a packet over its
max_packet_size) must not block the queue forever. paho would resend it first after every
reconnection, so at each connect paho's own copies are dropped and the uplink resends from the
outbox itself: rows that were in flight when a connection died go one at a time, so a failure is
pinned on one row. A photo that ends the connection ``uplink.max_photo_attempts`` times while alone
in flight is dropped and counted (``photos_refused``); a lift is never dropped, it stays first in
line (a truck on another truck's account delivers nothing until its account is fixed, and loses
nothing either). A network cut while a photo is alone in flight counts as an attempt too: the
default of 5 leaves room for bad coverage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from edge.broker import make_client
from edge.config import EdgeSettings
from edge.config_refusal import unreadable_config
from edge.outbox import EVIDENCE, Outbox, OutboxEntry
from vision.schema import TruckConfig, TruckStats, message_digest, parse_receipt

log = logging.getLogger(__name__)

WINDOW = 20  # messages in flight at once: enough to fill a 4G link, small enough to bound resends
MAX_BACKOFF = 8  # an unreceipted row is resent after timeout x 1, 2, 4, 8, 8...: a silent server is not flooded


@dataclass(slots=True)
class _Sent:
    """A row published in receipt mode and not yet receipted."""

    digest: str
    sent_at: float  # time.monotonic() of its last publish
    acked: bool = False  # the broker PUBACKed its last publish: now it only waits for the receipt
    resends: int = 0


def _acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    try:
        return info.is_published()
    except (RuntimeError, ValueError):  # paho raises for a message that failed to go out: not acknowledged
        return False


class Uplink:
    """Owns the truck's MQTT session; ``start``, then ``flush`` (optional) and ``stop``."""

    def __init__(
        self,
        settings: EdgeSettings,
        outbox: Outbox,
        stats: Callable[[], TruckStats],
        on_config: Callable[[TruckConfig], None],
        on_config_refused: Callable[[str], None] = lambda _reason: None,
    ) -> None:
        self.settings, self.outbox, self._stats, self._on_config = settings, outbox, stats, on_config
        self._on_config_refused = on_config_refused  # a config this truck cannot read: said in its heartbeat
        # Persistent session (clean_session=False) under a fixed client id: the broker keeps our
        # config subscription and its queued messages across reconnections.
        self.client, self.url = make_client(settings, settings.client_id, clean=False)
        self.client.max_inflight_messages_set(WINDOW)
        self.client.will_set(settings.topic("status"), b"offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = lambda *_args: self._wake.set()
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self._wake, self._stopping = threading.Event(), threading.Event()
        self._inflight: list[tuple[mqtt.MQTTMessageInfo, int, str]] = []  # (info, seq, kind), oldest first
        self._sent_up_to = -1
        self._session = 0  # bumped at every CONNACK (paho thread); the drain thread resyncs on a change
        self._seen_session = 0
        self._careful_until = -1  # rows up to this seq are sent alone: they were in flight when a connection died
        self.attempts: dict[int, int] = {}  # seq -> connections that died while that row alone was in flight
        self.receipts = settings.uplink.delete_after == "receipt"
        self._sent: dict[int, _Sent] = {}  # receipt mode: seq -> rows published, not yet receipted
        self._by_digest: dict[str, set[int]] = {}
        # Receipts arrive on paho's thread; the drain thread alone touches the state above.
        self._receipt_queue: deque[list[str]] = deque()
        self._next_stats = 0.0
        self._thread = threading.Thread(target=self._drain_loop, name="uplink", daemon=True)

    def start(self) -> None:
        log.info("uplink to %s as %s", self.url, self.settings.client_id)
        self.client.connect_async(self.url.host, self.url.port, keepalive=self.settings.uplink.keepalive_s)
        self.client.loop_start()
        self._thread.start()

    def wake(self) -> None:
        """New rows in the outbox: send them now rather than at the next poll."""
        self._wake.set()

    def send_stats_soon(self) -> None:
        """Something the server should know now (a model installed or refused): a heartbeat at the next poll."""
        self._next_stats = 0.0
        self._wake.set()

    def _on_connect(self, client: mqtt.Client, _u: object, flags: object, reason: mqtt.ReasonCode, _p: object) -> None:
        if reason.is_failure:
            log.warning("broker %s refused the connection: %s", self.url, reason)
            return
        log.info("connected to %s (session present: %s)", self.url, getattr(flags, "session_present", "?"))
        # paho would now resend its unacknowledged copies, in their old order: a message the broker
        # refuses would come first again, forever. Drop them; the drain thread resends from the outbox.
        client.drop_out_messages()
        self._session += 1  # before connected.set(): the drain thread resyncs before it sends again
        client.publish(self.settings.topic("status"), b"online", qos=1, retain=True)
        client.subscribe(self.settings.topic("config"), qos=1)  # restored on every connect
        if self.receipts:
            client.subscribe(self.settings.topic("receipt"), qos=1)
        self.connected.set()
        self._next_stats = 0.0
        self._wake.set()

    def _on_connect_fail(self, _client: mqtt.Client, _u: object) -> None:
        log.warning("broker %s unreachable; lifts wait in the outbox (depth %d)", self.url, self.outbox.depth())

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        self.connected.clear()
        if not self._stopping.is_set():
            log.warning("disconnected from %s (%s); reconnecting with back-off", self.url, reason)

    def _on_message(self, _client: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        # paho's network thread runs this: an exception escaping it would stop the truck receiving
        # anything (receipts, configs) while its stats kept flowing, so the server saw it healthy
        try:
            self._handle_message(message)
        except Exception:
            log.exception("ignored a message on %s that could not be handled", message.topic)

    def _handle_message(self, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.settings.topic("receipt"):
            try:
                self._receipt_queue.append(parse_receipt(message.payload))
            except ValueError as error:
                log.warning("ignored a receipt: %s (payload %r)", error, message.payload[:200])
            self._wake.set()
            return
        if message.topic != self.settings.topic("config"):
            # The embedded broker (amqtt) sometimes hands a new subscriber retained messages of
            # sibling topics, such as our own status: not a config, not worth a warning.
            log.debug("ignored a message on %s (not our config topic)", message.topic)
            return
        if not message.payload:  # the server cleared the retained config: keep the current settings
            return
        try:
            config = TruckConfig.model_validate_json(message.payload)
        except ValidationError as error:
            reason = unreadable_config(message.payload, error)
            log.warning("ignored config on %s: %s (payload %r)", message.topic, reason, message.payload[:200])
            self._on_config_refused(reason)
            return
        log.info("config %s received from the server", config.config_version)
        self._on_config(config)

    def _drain_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._collect_acks()
                self._apply_receipts()
                self._resync()
                if self.connected.is_set():
                    self._send_more()
                    self._maybe_send_stats()
            except Exception:  # the uplink thread must outlive any one bad row or broken socket
                log.exception("uplink drain failed; retrying")
                time.sleep(1)

    def _collect_acks(self) -> None:
        still = []
        for info, seq, kind in self._inflight:
            if _acknowledged(info):
                self.attempts.pop(seq, None)
                if not self.receipts:
                    self.outbox.delete(seq)
                elif (sent := self._sent.get(seq)) is not None:  # None: receipted before its PUBACK was seen
                    sent.acked = True
            else:
                still.append((info, seq, kind))
        self._inflight = still

    def _apply_receipts(self) -> None:
        """Delete the rows the server has committed. A digest we do not track (a receipt for a row of
        an earlier run, or one already deleted) is ignored: at worst that row is sent once more."""
        while self._receipt_queue:
            done = []
            for digest in self._receipt_queue.popleft():
                for seq in self._by_digest.pop(digest, ()):
                    self._sent.pop(seq, None)
                    self.attempts.pop(seq, None)
                    done.append(seq)
            if done:
                self.outbox.delete_many(done)

    def _track(self, message: OutboxEntry, resend: bool) -> None:
        sent = self._sent.get(message.seq)
        if sent is None:
            digest = message_digest(message.topic, message.payload)
            self._sent[message.seq] = _Sent(digest, time.monotonic())
            self._by_digest.setdefault(digest, set()).add(message.seq)
            return
        sent.sent_at, sent.acked = time.monotonic(), False
        sent.resends += resend

    def _untrack(self, seq: int) -> None:
        sent = self._sent.pop(seq, None)
        if sent is not None:
            seqs = self._by_digest.get(sent.digest, set())
            seqs.discard(seq)
            if not seqs:
                self._by_digest.pop(sent.digest, None)

    def _resync(self) -> None:
        """After a reconnection paho holds nothing unacknowledged (``_on_connect``): resend from the outbox,
        and charge a failure to a row that was alone in flight when the connection died."""
        if self._session == self._seen_session:
            return
        self._seen_session = self._session
        lost, self._inflight, self._sent_up_to = self._inflight, [], -1
        for _info, seq, _kind in lost:  # not PUBACKed on any live connection: to be sent again at once
            if (sent := self._sent.get(seq)) is not None:
                sent.acked = False
        if len(lost) == 1:
            _info, seq, kind = lost[0]
            self._failed_alone(seq, kind)
        if lost:
            self._careful_until = max(self._careful_until, max(seq for _i, seq, _k in lost))
        self._forget_dropped()

    def _forget_dropped(self) -> None:
        """Forget the rows the outbox dropped (a photo past retention or over ``max_mb``) while they were
        neither in flight nor awaiting a receipt: those in flight when a connection died, and those
        counted in ``attempts``. Nothing else ever removed them: an entry each, for as long as the agent
        ran. (Rows awaiting a receipt are looked for when it is overdue, in ``_next_rows``.)"""
        busy = {seq for _i, seq, _k in self._inflight}
        loose = ({seq for seq, sent in list(self._sent.items()) if not sent.acked} | set(self.attempts)) - busy
        for seq in loose - self.outbox.present(sorted(loose)):
            self._untrack(seq)
            self.attempts.pop(seq, None)

    def _failed_alone(self, seq: int, kind: str) -> None:
        tries = self.attempts[seq] = self.attempts.get(seq, 0) + 1
        limit = self.settings.uplink.max_photo_attempts
        if kind != EVIDENCE:
            if tries >= limit:  # never dropped: the queue waits (wrong account, broker misconfigured)
                log.error("outbox row %d (a lift) ended the connection %d times; it stays first in line", seq, tries)
            return
        if tries < limit:
            log.warning("outbox row %d (a photo) ended the connection (%d/%d)", seq, tries, limit)
            return
        self._untrack(seq)
        if self.outbox.drop_refused_photo(seq):
            log.error("outbox row %d (a photo) ended the connection %d times: dropped, counted in "
                      "photos_refused; its lift is kept", seq, tries)
        self.attempts.pop(seq, None)

    def _send_more(self) -> None:
        room = WINDOW - len(self._inflight)
        if room <= 0 or any(seq <= self._careful_until for _i, seq, _k in self._inflight):
            return  # a suspect row travels alone: wait for its PUBACK (or the connection's end)
        for message, resend in self._next_rows(room):
            suspect = message.seq <= self._careful_until
            if suspect and self._inflight:
                return  # let the rows ahead of it be acknowledged first
            info = self.client.publish(message.topic, message.payload, qos=1)
            if info.rc == mqtt.MQTT_ERR_NO_CONN:
                # The connection died meanwhile: paho's queued copy is dropped at the next connect,
                # and the row is sent again from the outbox then. Not in flight on any connection.
                return
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                log.warning("publish of outbox row %d refused (%s); will retry", message.seq, info.rc)
                return
            self._inflight.append((info, message.seq, message.kind))
            if self.receipts:
                self._track(message, resend)
            if not resend:  # a resend is behind the cursor of new rows: it must not move it
                self._sent_up_to = message.seq
            if suspect:
                return

    def _next_rows(self, room: int) -> list[tuple[OutboxEntry, bool]]:
        """Up to ``room`` rows to publish, as (row, is a resend): first the rows whose receipt is
        overdue, then rows not yet published on this connection, in sequence order. Rows PUBACKed and
        awaiting their receipt are skipped (and the cursor moves past them, so that a long queue of
        them, while the server is down, is not read again at every turn)."""
        picked: list[tuple[OutboxEntry, bool]] = []
        if self.receipts:
            now, timeout = time.monotonic(), self.settings.uplink.receipt_timeout_s
            due = sorted(seq for seq, sent in list(self._sent.items())
                         if sent.acked and now >= sent.sent_at + timeout * min(2 ** sent.resends, MAX_BACKOFF))
            rows = self.outbox.get(due[:room])
            for gone in set(due[:room]) - {m.seq for m in rows}:
                self._untrack(gone)  # an awaited photo dropped by the outbox bound: nothing to resend
            if rows:
                log.warning("%d outbox row(s) acknowledged by the broker but not receipted by the server "
                            "in time: sending them again (first seq %d)", len(rows), rows[0].seq)
            picked = [(m, True) for m in rows]
        busy = {seq for _i, seq, _k in self._inflight} | {m.seq for m, _r in picked}
        cursor = self._sent_up_to
        while len(picked) < room:
            rows = self.outbox.oldest(limit=max(room, 100), after=cursor)
            if not rows:
                break
            for message in rows:
                cursor = message.seq
                sent = self._sent.get(message.seq)
                if sent is not None and (sent.acked or message.seq in busy):
                    if not any(not r for _m, r in picked):
                        self._sent_up_to = message.seq  # nothing new before it: skip it for good
                    continue
                picked.append((message, False))
                if len(picked) >= room:
                    break
        return picked

    def _maybe_send_stats(self) -> None:
        now = time.monotonic()
        if now < self._next_stats:
            return
        self._next_stats = now + self.settings.uplink.stats_interval_s
        self._forget_dropped()  # also a row dropped between a reconnection and its resend
        self.client.publish(self.settings.topic("stats"), self._stats().model_dump_json(), qos=0)

    def pending(self) -> int:
        """Rows still in the outbox: not yet receipted by the server (or PUBACKed, in puback mode)."""
        return self.outbox.depth()

    def awaiting_receipt(self) -> int:
        """Rows the broker has acknowledged whose receipt has not come yet (0 in puback mode)."""
        return sum(1 for sent in list(self._sent.values()) if sent.acked)

    def flush(self, timeout_s: float) -> bool:
        """Wait until every row is receipted (or PUBACKed, in puback mode); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._wake.set()
            if self.pending() == 0:
                return True
            time.sleep(0.1)
        return self.pending() == 0

    def stop(self) -> None:
        """Clean exit: retained ``stopped`` (no last will), disconnect; unsent rows stay on disk."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.connected.is_set():
            info = self.client.publish(self.settings.topic("status"), b"stopped", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=5)
            except RuntimeError:
                log.warning("could not publish status 'stopped'")
        self.client.disconnect()
        self.client.loop_stop()

