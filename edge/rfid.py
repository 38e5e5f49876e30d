"""RFID bin tags: a reader on a serial line prints one tag per line; the lift takes the latest one.

Readers on bin lifters read the tag as the bin is hooked, just before the lift: a tag read within
``window_s`` before the lift started, or during it, belongs to that lift.
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, datetime, timedelta

from edge.lines import LineReader

log = logging.getLogger(__name__)

TAG = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def parse_tag(line: str) -> str | None:
    """The tag of a reader line: ``E2000017221101441890ABCD`` or ``TAG:E200...``; None if invalid."""
    text = line.strip().split(":")[-1].strip()
    return text if TAG.match(text) else None


class RfidReader:
    """Latest tag with its reading time; ``tag_for(start, end)`` picks the tag of a lift."""

    def __init__(self, window_s: float = 15.0) -> None:
        self.window = timedelta(seconds=window_s)
        self._lock = threading.Lock()
        self._last: tuple[str, datetime] | None = None
        self._reader: LineReader | None = None

    @classmethod
    def open(cls, port: str | None, baud: int, window_s: float) -> RfidReader:
        reader = cls(window_s)
        if port:
            reader._reader = LineReader(port, baud, reader.feed, name="rfid").start()
        return reader

    def feed(self, line: str, at: datetime | None = None) -> None:
        tag = parse_tag(line)
        if tag is None:
            log.warning("rfid: ignored unreadable line %r", line[:80])
            return
        with self._lock:
            self._last = (tag, at or datetime.now(UTC))

    def tag_for(self, started_at: datetime, ended_at: datetime) -> str | None:
        with self._lock:
            last = self._last
        if last is None:
            return None
        tag, read_at = last
        return tag if started_at - self.window <= read_at <= ended_at + timedelta(seconds=1) else None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.stop()
