"""RFID bin tags: a reader on a serial line prints one tag per line; a lift takes the one read for it.

Readers on bin lifters read the tag as the bin is hooked, just before the lift, and often again
and again while the bin hangs in front of them: a tag read within ``window_s`` before the lift
started, or during it (and up to a second after it ended), belongs to that lift. Two rules keep a
tag to its own bin:

- a read made before the previous lift ended belongs to that lift (or to none), never to the next;
- the previous lift's tag, still read as its bin is lowered and unhooked, goes to the next lift only
  when read again once that lift has started (the same bin lifted twice): a bin whose tag is not
  read (damaged, missing) gets no tag rather than its neighbour's.

The recent reads are kept (a lift whose end is handled a little late still finds its own read
behind the next bin's), repeats of one tag folded into one entry, at most ``MAX_READS``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from edge.lines import LineReader, Throttled

log = logging.getLogger(__name__)

TAG = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_READS = 256  # recent reads kept: far more than the bins of one window, bounded whatever the reader does
LATE = timedelta(seconds=1)  # a read this long after the lift's end still belongs to it


def parse_tag(line: str) -> str | None:
    """The tag of a reader line: ``E2000017221101441890ABCD`` or ``TAG:E200...``; None if invalid."""
    text = line.strip().split(":")[-1].strip()
    return text if TAG.match(text) else None


@dataclass(slots=True)
class Read:
    """One tag read once or repeatedly without another tag in between."""

    tag: str
    first: datetime
    last: datetime


class RfidReader:
    """Recent tag reads; ``tag_for(start, end)`` gives each lift, in order, the tag read for it."""

    def __init__(self, window_s: float = 15.0) -> None:
        self.window = timedelta(seconds=window_s)
        self._lock = threading.Lock()
        self._reads: deque[Read] = deque(maxlen=MAX_READS)
        self._previous: tuple[str | None, datetime] | None = None  # the last lift's tag and end
        # the last lift asked about (its start) and the state before it: asked again, the same answer
        self._asked: tuple[datetime, tuple[str | None, datetime] | None] | None = None
        self._reader: LineReader | None = None
        self._warnings = Throttled(log)

    @classmethod
    def open(cls, port: str | None, baud: int, window_s: float) -> RfidReader:
        reader = cls(window_s)
        if port:
            reader._reader = LineReader(port, baud, reader.feed, name="rfid").start()
        return reader

    def feed(self, line: str, at: datetime | None = None) -> None:
        tag = parse_tag(line)
        if tag is None:
            self._warnings.warning("unreadable", "rfid: ignored unreadable line %r", line[:80])
            return
        at = at or datetime.now(UTC)
        with self._lock:
            if self._reads and self._reads[-1].tag == tag:
                self._reads[-1].last = max(self._reads[-1].last, at)  # the same bin still in front of the reader
            else:
                self._reads.append(Read(tag, at, at))

    def tag_for(self, started_at: datetime, ended_at: datetime) -> str | None:
        """The tag of the lift from ``started_at`` to ``ended_at``, or None; the lift claims it, so
        ask in lift order (the agent does, as it finishes each lift); asked again for the same lift
        (same start), the answer is worked out as the first time."""
        earliest, latest = started_at - self.window, ended_at + LATE
        with self._lock:
            before = self._asked[1] if self._asked and self._asked[0] == started_at else self._previous
            self._asked = (started_at, before)
            previous_tag, previous_end = before or (None, None)
            best: tuple[datetime, str] | None = None
            for read in self._reads:
                if read.first > latest or read.last < earliest:
                    continue
                if previous_end is not None and read.last <= previous_end:
                    continue  # read while the previous lift was on: its bin, not this one
                if read.tag == previous_tag and read.last < started_at:
                    continue  # the previous bin's tag lingering as it is lowered
                seen = min(read.last, latest)
                if best is None or seen > best[0]:
                    best = (seen, read.tag)
            tag = best[1] if best else None
            # reads are stamped with this clock: a lift ending "later" (a camera box whose clock runs
            # ahead stamps burst photos) must not hide every read until then
            ended = min(max(ended_at, previous_end) if previous_end else ended_at, datetime.now(UTC))
            self._previous = (tag if tag is not None else previous_tag, ended)
        return tag

    def close(self) -> None:
        if self._reader is not None:
            self._reader.stop()
