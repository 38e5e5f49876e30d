"""The messages received from the broker and not yet written, bounded in count and in bytes.

paho's network thread puts every message here and the writer takes them in batches
(``server.ingest.subscriber``). A full queue blocks the network thread: it stops reading its
socket, and the broker keeps the rest (unacknowledged, in its persistent session). A bound in
messages alone lets photos fill the memory: 20,000 queued evidence photos of up to 2 MiB each
(``max_evidence_bytes``) after an outage would be tens of GB, so the payload bytes are bounded too.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque

from server.ingest.inbox import MqttMessage


class ReceivedQueue:
    """FIFO of received messages, at most ``max_messages`` and ``max_bytes`` of payload. A single
    message larger than ``max_bytes`` still gets in when the queue is empty: it must not block
    ingest forever (the message size itself is bounded by ``max_evidence_bytes``)."""

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        if max_messages < 1 or max_bytes < 1:
            raise ValueError(f"bounds must be positive, got {max_messages} messages and {max_bytes} bytes")
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._items: deque[MqttMessage] = deque()
        self._bytes = 0
        self.peak_bytes = 0  # the most payload bytes held at once
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)

    def _full_for(self, size: int) -> bool:
        return bool(self._items) and (len(self._items) >= self.max_messages or self._bytes + size > self.max_bytes)

    def put(self, message: MqttMessage) -> None:
        """Append ``message``; blocks while it would go over either bound."""
        size = len(message.payload)
        with self._not_full:
            while self._full_for(size):
                self._not_full.wait()
            self._items.append(message)
            self._bytes += size
            self.peak_bytes = max(self.peak_bytes, self._bytes)
            self._not_empty.notify()

    def get(self, timeout: float) -> MqttMessage:
        """The oldest message; ``queue.Empty`` when none came within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._not_empty:
            while not self._items:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise queue.Empty
                self._not_empty.wait(left)
            message = self._items.popleft()
            self._bytes -= len(message.payload)
            self._not_full.notify_all()  # a small message may fit where a large one waits, or the reverse
            return message

    def qsize(self) -> int:
        with self._lock:
            return len(self._items)

    def bytes(self) -> int:
        with self._lock:
            return self._bytes

    def empty(self) -> bool:
        return self.qsize() == 0
