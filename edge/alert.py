"""Crew alert: a battery or gas cylinder in the hopper is signalled in the cab at once.

Truck fires start this way, so the alert goes out locally, before the lift is even finished and
before any network: a line on a serial output (buzzer, light, GPIO box) and a message on a local
MQTT topic the cab tablet subscribes to. Rate-limited per class, so that one item tracked again, or
a bad round of batteries, does not deafen the crew; the limit of one class never holds back another (a
gas cylinder seconds after a battery was silent, held back by the battery's 30 s, and compacted).

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
from datetime import UTC, datetime

import paho.mqtt.client as mqtt

from edge.lines import LineWriter

log = logging.getLogger(__name__)

QUEUED = 4  # alerts paho holds while the cab's broker is unreachable (or awaiting their PUBACK)


class CrewAlert:
    """``fire(truck_id, classes)``: each class alerts at most once per ``min_interval_s``; returns
    whether it fired (for the classes not heard within the interval)."""

    def __init__(
        self,
        writer: LineWriter | None,
        client: object | None,
        topic: str,
        min_interval_s: float = 30.0,
    ) -> None:
        self.writer, self.client, self.topic, self.min_interval_s = writer, client, topic, min_interval_s
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}  # class -> when it last alerted (monotonic)
        self.fired = self.suppressed = 0
        if client is not None:  # before it connects: paho refuses the setting afterwards
            client.max_queued_messages_set(QUEUED)  # type: ignore[attr-defined]

    def fire(self, truck_id: str, classes: tuple[str, ...]) -> bool:
        with self._lock:
            now = time.monotonic()
            heard = [c for c in dict.fromkeys(classes) if now - self._last.get(c, float("-inf")) < self.min_interval_s]
            classes = tuple(c for c in dict.fromkeys(classes) if c not in heard)
            if heard:
                log.info("alert for %s suppressed (rate limit %.0f s)", ", ".join(heard), self.min_interval_s)
            if not classes:
                self.suppressed += 1
                return False
            self._last.update(dict.fromkeys(classes, now))
            self.fired += 1
        log.warning("CREW ALERT: %s in the hopper", ", ".join(classes))
        if self.writer is not None:
            self.writer.write("ALERT " + " ".join(c.replace(" ", "_") for c in classes))
        if self.client is not None:
            payload = {"truck_id": truck_id, "classes": list(classes), "at": datetime.now(UTC).isoformat()}
            info = self.client.publish(self.topic, json.dumps(payload), qos=1)  # type: ignore[attr-defined]
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                log.error("crew alert not sent to the cab tablet: its broker has been unreachable for %d alerts",
                          QUEUED)
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.client is not None:
            self.client.disconnect()  # type: ignore[attr-defined]
            self.client.loop_stop()  # type: ignore[attr-defined]
