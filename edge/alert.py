"""Crew alert: a battery or gas cylinder in the hopper is signalled in the cab at once.

Truck fires start this way, so the alert goes out locally, before the lift is even finished and
before any network: a line on a serial output (buzzer, light, GPIO box) and a message on a local
MQTT topic the cab tablet subscribes to. Each class alerts once per lift: a second battery in the
next bin is a new danger (it was silent, held back by the first one's 30 s across lifts). Within a lift
the class is held ``min_interval_s``, so that one item tracked again (a flickering track) does not
deafen the crew; the limit of one class never holds back another (a gas cylinder seconds after a
battery was silent, held back by the battery's 30 s, and compacted).

An alert the serial line could not write (the buzzer's cable shaken loose) is not heard: it holds
no limit, so the class's next detection tries again (it counted as fired and held the class's 30 s),
and the line's failures are logged once per streak, not once per detection (``LineWriter``).

paho holds a QoS 1 message published while its broker is unreachable and sends it once connected (an
alert fired while the agent is still connecting arrives), but at most ``QUEUED`` of them: it held every
one, in memory, for as long as the cab's broker stayed away, and would have played weeks of alarms to
the crew on its return. Further alerts then go to the serial line alone, said in the log.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Hashable
from datetime import UTC, datetime

import paho.mqtt.client as mqtt

from edge.lines import LineWriter

log = logging.getLogger(__name__)

QUEUED = 4  # alerts paho holds while the cab's broker is unreachable (or awaiting their PUBACK)


class CrewAlert:
    """``fire(truck_id, classes, lift)``: each class alerts once per ``lift``, and within a lift (or
    with no lift given) at most once per ``min_interval_s``; returns whether the crew was alerted."""

    def __init__(
        self,
        writer: LineWriter | None,
        client: object | None,
        topic: str,
        min_interval_s: float = 30.0,
    ) -> None:
        self.writer, self.client, self.topic, self.min_interval_s = writer, client, topic, min_interval_s
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, Hashable | None]] = {}  # class -> when and in which lift it last alerted
        self.fired = self.suppressed = self.failed = 0
        if client is not None:  # before it connects: paho refuses the setting afterwards
            client.max_queued_messages_set(QUEUED)  # type: ignore[attr-defined]

    def _heard(self, name: str, lift: Hashable | None, now: float) -> bool:
        last = self._last.get(name)
        if last is None:
            return False
        at, heard_in = last
        if lift is not None and heard_in != lift:
            return False  # another bin: another danger, whenever the last one was
        return now - at < self.min_interval_s

    def fire(self, truck_id: str, classes: tuple[str, ...], lift: Hashable | None = None) -> bool:
        """``lift``: any value naming the lift in progress (None: the time limit alone)."""
        with self._lock:
            now = time.monotonic()
            heard = [c for c in dict.fromkeys(classes) if self._heard(c, lift, now)]
            classes = tuple(c for c in dict.fromkeys(classes) if c not in heard)
            if heard:
                log.info("alert for %s suppressed (already heard in this lift, limit %.0f s)", ", ".join(heard),
                         self.min_interval_s)
            if not classes:
                self.suppressed += 1
                return False
            # held now, before the write: a second caller meanwhile does not alert twice
            before = {c: self._last.get(c) for c in classes}
            self._last.update(dict.fromkeys(classes, (now, lift)))
        log.warning("CREW ALERT: %s in the hopper", ", ".join(classes))
        sounded = self.writer is None or self.writer.write("ALERT " + " ".join(c.replace(" ", "_") for c in classes))
        if self.client is not None:
            payload = {"truck_id": truck_id, "classes": list(classes), "at": datetime.now(UTC).isoformat()}
            info = self.client.publish(self.topic, json.dumps(payload), qos=1)  # type: ignore[attr-defined]
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                log.error("crew alert not sent to the cab tablet: its broker has been unreachable for %d alerts",
                          QUEUED)
        with self._lock:
            if sounded:
                self.fired += 1
                return True
            self.failed += 1
            for name, last in before.items():  # not heard: the class's next detection tries again
                if self._last.get(name) != (now, lift):
                    continue  # heard since, from another call
                if last is None:
                    del self._last[name]
                else:
                    self._last[name] = last
        return False

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.client is not None:
            self.client.disconnect()  # type: ignore[attr-defined]
            self.client.loop_stop()  # type: ignore[attr-defined]
