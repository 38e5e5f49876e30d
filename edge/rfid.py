"""RFID bin tags: a reader on a serial line prints one tag per line; a lift takes the one read for it.

Readers on bin lifters read the tag as the bin is hooked, just before the lift, and often again
and again while the bin hangs in front of them: a tag read within ``window_s`` before the lift
started, or during it (and up to a second after it ended), belongs to that lift. These rules keep
a tag to its own bin:

- a read made before the previous lift ended belongs to that lift (or to none), never to the next;
- the previous lift's tags, still read as its bin is lowered and unhooked, go to the next lift only
  when read again once that lift has started (the same bin lifted twice): a bin whose tag is not
  read (damaged, missing) gets no tag rather than its neighbour's;
- a read that began before the lift ended (the hook, the lift) beats one that began after it: the
  next bin, rolled up and read as this one comes down, took this lift (the latest read won) and
  left its own lift without a tag;
- the tag read most often wins; a second tag read as often, or read repeatedly too, means two bins
  were on the lifter (a dual lifter, or a bin left in the reader's field): one lift holds both
  bins' contents and cannot be put on one household, so it gets no tag (logged), where the last
  read won, the neighbour's household one time in two.

The recent reads are kept (a lift whose end is handled a little late still finds its own read
behind the next bin's), repeats of one tag folded into one entry, at most ``MAX_READS``. With
``persist`` (the agent's ``<outbox>.rfid.json``, ``edge.rfid_file``) those a lift may still claim
are on disk too: a tag read just before a lift survives a ``kill -9`` or a power cut mid-lift.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from base.bin_tags import canonical_tag
from edge.lines import LineReader, Throttled
from edge.rfid_file import RfidState, SavedRead, read_state, write_state

log = logging.getLogger(__name__)

TAG = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# A reader's label before the tag (``TAG:``, ``UID:``, ``EPC=``): a word with a letter past ``F``, so
# never the first byte of a tag written ``04:A1:B2:C3``.
LABEL = re.compile(r"^\s*[A-Za-z]*[G-Zg-z][A-Za-z]*\s*[:=]")
MAX_READS = 256  # recent reads kept: far more than the bins of one window, bounded whatever the reader does
LATE = timedelta(seconds=1)  # a read this long after the lift's end still belongs to it
SAVE_REPEATS_S = 1.0  # repeats of the tag last read are written at most this often (a new tag at once)


def parse_tag(line: str) -> str | None:
    """The tag of a reader line (``E2000017221101441890ABCD``, ``TAG:E200...``, ``04:a1:b2:c3``) in
    its canonical form (``base.bin_tags``: the registry's); None if invalid. The text after the last
    colon was taken: ``04:A1:B2:C3`` was read ``C3``, another bin's tag or none."""
    text = canonical_tag(LABEL.sub("", line, count=1))
    return text if TAG.match(text) else None


@dataclass(slots=True)
class Read:
    """One tag read once or repeatedly without another tag in between."""

    tag: str
    first: datetime
    last: datetime
    count: int = 1  # reads folded into this one


class RfidReader:
    """Recent tag reads; ``tag_for(start, end)`` gives each lift, in order, the tag read for it."""

    def __init__(self, window_s: float = 15.0) -> None:
        self.window = timedelta(seconds=window_s)
        self._lock = threading.Lock()
        self._reads: deque[Read] = deque(maxlen=MAX_READS)
        # the last lift's tags (its own, or both of an ambiguous lift) and its end
        self._previous: tuple[frozenset[str], datetime] | None = None
        # the last lift asked about (its start) and the state before it: asked again, the same answer
        self._asked: tuple[datetime, tuple[frozenset[str], datetime] | None] | None = None
        self._reader: LineReader | None = None
        self._warnings = Throttled(log)
        # On disk (``persist``): the previous lift as of the last one committed, not the last one asked
        # about: killed before its commit, that lift is counted again and must find its tag again.
        self._committed: tuple[frozenset[str], datetime] | None = None
        self._file: Path | None = None
        self._save_lock = threading.Lock()  # one writer at a time, each writing the newest state
        self._saved_at = -SAVE_REPEATS_S
        self._dirty = self._failing = False

    @classmethod
    def open(cls, port: str | None, baud: int, window_s: float, state: Path | None = None) -> RfidReader:
        reader = cls(window_s)
        if port:
            if state is not None:  # before the line opens: the reads saved come first
                reader.persist(state)
            reader._reader = LineReader(port, baud, reader.feed, name="rfid").start()
        return reader

    def persist(self, path: Path) -> None:
        """Start from the reads saved in ``path`` (when any) and keep it up to date from now on."""
        saved = read_state(path)
        with self._lock:
            self._file = path
            if saved is not None:
                end = saved.previous[1] if saved.previous else None
                self._reads.extend(Read(r.tag, r.first, r.last, r.count) for r in saved.reads
                                   if end is None or r.last > end)
                self._previous = self._committed = saved.previous

    def committed(self) -> None:
        """The lift last asked about (``tag_for``) is in the outbox: a restart no longer counts it again."""
        with self._lock:
            self._committed = self._previous
            self._dirty = True
        self._save()

    def _save(self) -> None:
        if self._file is None:
            return
        with self._save_lock:
            with self._lock:
                if not self._dirty:
                    return
                end = self._committed[1] if self._committed else None
                state = RfidState(tuple(SavedRead(r.tag, r.first, r.last, r.count) for r in self._reads
                                        if end is None or r.last > end), self._committed)
                self._dirty, self._saved_at = False, time.monotonic()
            try:
                write_state(self._file, state)
            except OSError as error:
                if not self._failing:
                    log.warning("rfid: %s cannot be written (%s); a lift cut by a restart gets no bin", self._file,
                                error.strerror or error)
                self._failing = True
            else:
                self._failing = False

    def feed(self, line: str, at: datetime | None = None) -> None:
        tag = parse_tag(line)
        if tag is None:
            self._warnings.warning("unreadable", "rfid: ignored unreadable line %r", line[:80])
            return
        at = at or datetime.now(UTC)
        with self._lock:
            repeat = bool(self._reads) and self._reads[-1].tag == tag
            if repeat:
                self._reads[-1].last = max(self._reads[-1].last, at)  # the same bin still in front of the reader
                self._reads[-1].count += 1
            else:
                self._reads.append(Read(tag, at, at))
            self._dirty = True
            due = not repeat or time.monotonic() - self._saved_at >= SAVE_REPEATS_S
        if due:
            self._save()

    def tag_for(self, started_at: datetime, ended_at: datetime) -> str | None:
        """The tag of the lift from ``started_at`` to ``ended_at``, or None; the lift claims it, so
        ask in lift order (the agent does, as it finishes each lift); asked again for the same lift
        (same start), the answer is worked out as the first time."""
        earliest, latest = started_at - self.window, ended_at + LATE
        with self._lock:
            before = self._asked[1] if self._asked and self._asked[0] == started_at else self._previous
            self._asked = (started_at, before)
            previous_tags, previous_end = before or (frozenset(), None)
            counts: tuple[dict[str, int], dict[str, int]] = ({}, {})  # reads begun by the lift's end, after it
            for read in self._reads:
                if read.first > latest or read.last < earliest:
                    continue
                if previous_end is not None and read.last <= previous_end:
                    continue  # read while the previous lift was on: its bin, not this one
                if read.tag in previous_tags and read.last < started_at:
                    continue  # the previous bin's tag lingering as it is lowered
                tier = counts[read.first > ended_at]
                tier[read.tag] = tier.get(read.tag, 0) + read.count
            reads = counts[0] or counts[1]
            ranked = sorted(reads.items(), key=lambda item: -item[1])
            tag = ranked[0][0] if ranked else None
            if len(ranked) > 1 and (ranked[1][1] == ranked[0][1] or ranked[1][1] > 1):
                self._warnings.warning("two bins", "rfid: tags %s read for one lift (two bins on the lifter?); "
                                       "the lift gets no bin", ", ".join(sorted(reads)))
                tag = None
            # reads are stamped with this clock: a lift ending "later" (a camera box whose clock runs
            # ahead stamps burst photos) must not hide every read until then
            ended = min(max(ended_at, previous_end) if previous_end else ended_at, datetime.now(UTC))
            # this lift's bins linger as they are lowered; a lift with none leaves the previous ones
            self._previous = (frozenset(reads) or previous_tags, ended)
        return tag

    def close(self) -> None:
        if self._reader is not None:
            self._reader.stop()
        self._save()  # the repeats not written yet
