"""Outbox: a durable SQLite queue of messages waiting for the server's receipt (or the broker's PUBACK).

Every lift is committed here before any network I/O (WAL, ``synchronous=FULL``: the commit is on
disk when ``put`` returns), so a power cut or ``kill -9`` loses nothing committed. Rows leave only
through ``delete``: once the server has receipted them (``uplink.delete_after: receipt``, the
default), or once the broker has acknowledged them (``puback``). When the file grows past its bound, the
oldest evidence photos go first; lift events are never dropped, and every drop is counted.
A photo the broker keeps refusing (``drop_refused_photo``) may go too, counted apart; a lift never.

A full disk (ENOSPC: weeks without signal, or another program's logs) must not cost a lift either.
A reserve file beside the outbox holds ``reserve_bytes`` of the disk: when a write fails for want
of space, the reserve is given up, the oldest photos are dropped (their pages hold the next rows)
and the write is tried again, with its photo, then without it; the reserve comes back once the disk
has room. An unsent photo older than the retention period is dropped too (``expire_photos``):
photos are personal data, kept on the truck for that long at most, delivered or not.

The size of what waits is kept as rows come and go (temporary triggers, undone with a rolled-back
write), not summed at every lift. A drained backlog's pages go back to the disk (``edge.disk``).

The same transaction that stores a lift records its source key (a burst folder), so a restarted
agent neither loses nor re-counts a burst; a mark goes once its burst is gone for good (``edge.consumed``).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from edge import disk
from edge.consumed import add_gone_column, forget_gone, is_consumed
from edge.disk import Reserve, bound_wal, convert, free_bytes, give_back, room_inside, why_not_written
from edge.salvage import salvage, set_aside

log = logging.getLogger(__name__)

LIFT, EVIDENCE = "lift", "evidence"
# Held beside the outbox and given up when the disk is full: room for the WAL to delete photos and
# write the lift (a WAL checkpoint is 1000 pages, 4 MiB; a photo at most 2 MiB).
RESERVE_BYTES = 8 * 1024 * 1024
FUTURE_S = 86_400.0  # a row dated further ahead than this was written by a clock set wrong
_STAMP = "%Y-%m-%dT%H:%M:%S"  # created_at, as SQLite writes it (then fractions of a second and Z)
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('lift', 'evidence')),
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    event_id TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS consumed (source_key TEXT PRIMARY KEY, event_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS progress (source TEXT PRIMARY KEY, position INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS messages_by_kind ON messages (kind, seq);
"""
# The bytes of payload waiting, in this connection's memory, moved by the writes that move them.
SIZE = """
CREATE TEMP TABLE outbox_size AS SELECT COALESCE(SUM(LENGTH(payload)), 0) AS bytes FROM messages;
CREATE TEMP TRIGGER outbox_size_in AFTER INSERT ON main.messages
    BEGIN UPDATE outbox_size SET bytes = bytes + LENGTH(new.payload); END;
CREATE TEMP TRIGGER outbox_size_out AFTER DELETE ON main.messages
    BEGIN UPDATE outbox_size SET bytes = bytes - LENGTH(old.payload); END;
"""
RECOUNT = "UPDATE outbox_size SET bytes = (SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM messages)"
# 1 MiB steps given back after each receipt and by the hourly pass (a stop waits 5 s for its thread)
GIVE_BACK_STEPS_PER_DELETE, GIVE_BACK_STEPS_PER_PASS = 8, 128


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    seq: int
    kind: str
    topic: str
    payload: bytes
    event_id: str


class OutboxError(Exception):
    """The outbox file cannot be opened (a folder or another file is there, no permission): the
    truck must not start without somewhere durable to keep its lifts."""


class _Damaged(Exception):
    """The outbox file is an SQLite database with damaged pages (a power cut mid-write on cheap flash)."""


def _is_full(error: sqlite3.Error) -> bool:
    return getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL


class Outbox:
    """Thread-safe: the pipeline puts, the uplink thread reads and deletes."""

    def __init__(self, path: Path | str, max_bytes: int = 500 * 1024 * 1024,
                 reserve_bytes: int = RESERVE_BYTES) -> None:
        self.path, self.max_bytes, self.reserve_bytes = Path(path), max_bytes, reserve_bytes
        self.reserve = Reserve(Path(f"{self.path}.reserve"), reserve_bytes)
        self._lock, self._full_said = threading.Lock(), False  # said: the disk-full error, until the reserve is back
        for attempt in (1, 2):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    self._db = self._open()
                except _Damaged as damage:
                    self._db = self._recover(str(damage))
                break
            except (OSError, sqlite3.Error) as error:
                if attempt == 1 and self.reserve.release():  # a full disk: the WAL and its index need room
                    continue
                reason = getattr(error, "strerror", None) or str(error)
                full = why_not_written(self.path.parent, self.reserve_bytes)  # read-only, not ours, or full
                raise OutboxError(f"outbox.path: {str(self.path)!r} cannot be opened as the outbox: "
                                  f"{reason}{full}") from None
        if not self.reserve.hold():
            log.error(disk.full(self.path.parent, free_bytes(self.path.parent), self.reserve_bytes, False, 0))

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            # Cheap flash and power cuts damage pages: found now, not at the first lift (which
            # stopped the truck) or in the uplink (a traceback a second). ~0.4 s for 200 MB.
            check = str(db.execute("PRAGMA quick_check").fetchone()[0])
            if check != "ok":
                raise _Damaged(check.strip().splitlines()[-1])
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # a new file only: an older one is converted below
            db.execute("PRAGMA temp_store = MEMORY")  # the size count, and a VACUUM's copy: no temp files on disk
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # fsync at every commit, not only at checkpoints
            bound_wal(db, self.reserve_bytes)  # checkpointed at half the reserve, and cut back to that
            db.executescript(SCHEMA)
            add_gone_column(db)
            db.executescript(SIZE)
            payload = int(db.execute("SELECT bytes FROM outbox_size").fetchone()[0])
            if convert(db, self.path.parent, payload, self.reserve_bytes):
                log.warning("outbox %s converted to give the space of delivered rows back to the disk", self.path)
        except sqlite3.DatabaseError as error:
            db.close()
            if getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_CORRUPT:
                raise _Damaged(str(error)) from None
            raise  # not a database at all (another program's file): the operator must look
        except _Damaged:
            db.close()
            raise
        return db

    def _recover(self, damage: str) -> sqlite3.Connection:
        """Set the damaged file aside (kept, with its WAL) and start anew with every row it still gives."""
        aside = set_aside(self.path)
        db = self._open()
        found = salvage(aside, db)
        log.error("outbox %s was damaged (%s); set aside as %s. Read from it into a new outbox: %s. Rows and "
                  "marks on its damaged pages are lost: a lift among them is not sent, and a burst among them "
                  "is counted again", self.path, damage, aside, ", ".join(f"{n} {t}" for t, n in found.items()))
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, name: str, by: int = 1) -> int:
        value = self._counter(name) + by
        self._db.execute("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)", (name, value))
        return value

    def next_sequence(self) -> int:
        """The next lift sequence number, durable: never reused after a restart (gaps are possible)."""
        def bump() -> int:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                return self._bump("sequence") - 1

        with self._lock:
            return self._roomy(bump, 0)

    def _roomy(self, write: Callable[[], T], need: int, fallback: Callable[[], T] | None = None) -> T:
        """``write`` (a transaction); when the disk is full, make room and try again, then ``fallback``
        (the lift without its photo). A failure after that goes up: nothing else may give way."""
        try:
            return write()
        except sqlite3.OperationalError as error:
            if not _is_full(error):
                raise
        self._make_room(need)
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        try:
            return write()
        except sqlite3.OperationalError as error:
            if fallback is None or not _is_full(error):
                raise
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        return fallback()

    def _make_room(self, need: int) -> None:
        """The disk is full: give up the reserve, then the oldest photos (never a lift)."""
        if self._db.in_transaction:  # the failed write's transaction, if SQLite left it open
            self._db.execute("ROLLBACK")
        free = free_bytes(self.path.parent)  # before the reserve goes back to the disk: what others left
        released = self.reserve.release()
        if not released:  # the WAL's disk back, for the deletes
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with contextlib.suppress(sqlite3.OperationalError):  # no room even to drop photos: the lift alone may fit
            self._room_inside(need, quiet=True)
        if released or not self._full_said:  # once per full disk, not at every failed write
            log.error(disk.full(self.path.parent, free, self.reserve_bytes, released, self._counter("photos_dropped")))
        self._full_said = True

    def _room_inside(self, need: int, quiet: bool = False) -> int:
        """With no reserve the outbox lives within its file (``edge.disk.room_inside``)."""
        dropped = room_inside(self._db, need, lambda amount: self._drop_photos(amount, "photos_dropped"))
        if dropped and not quiet:
            log.warning(disk.dropped_for_lift(self.path.parent, dropped, self.reserve_bytes))
        return dropped

    def _drop_photos(self, amount: int, counter: str) -> int:
        """Delete the oldest photos until ``amount`` bytes of payload are gone; count them under ``counter``."""
        dropped = freed = 0
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            # A few at a time, oldest first (by index): not every photo waiting read at every lift
            while freed < amount and (photos := self._db.execute(
                    "SELECT seq, LENGTH(payload) FROM messages WHERE kind = ? ORDER BY seq LIMIT 16",
                    (EVIDENCE,)).fetchall()):
                for seq, length in photos:
                    if freed < amount:
                        self._db.execute("DELETE FROM messages WHERE seq = ?", (seq,))
                        freed, dropped = freed + length, dropped + 1
            if dropped:
                self._bump(counter, dropped)
        return dropped

    def put_lift(
        self,
        event_id: str,
        lift: tuple[str, bytes],
        evidence: tuple[str, bytes] | None = None,
        source_key: str | None = None,
        position: tuple[str, int] | None = None,
        counters: tuple[str, ...] = (),
    ) -> None:
        """Store a lift (topic, JSON) and its photo atomically.

        ``source_key`` marks its input (a burst folder) consumed; ``position`` records how far a
        video file has been turned into committed lifts, so a restart resumes after it.
        ``counters`` are bumped in the same transaction (``photos_too_large``: counted once, with its lift).
        """
        def write(photo: tuple[str, bytes] | None, bumps: tuple[str, ...]) -> None:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                rows = [(LIFT, *lift, event_id)] + ([(EVIDENCE, *photo, event_id)] if photo else [])
                self._db.executemany(
                    "INSERT INTO messages (kind, topic, payload, event_id) VALUES (?, ?, ?, ?)", rows)
                if source_key is not None:
                    self._db.execute("INSERT OR REPLACE INTO consumed VALUES (?, ?, NULL)", (source_key, event_id))
                if position is not None:
                    self._db.execute("INSERT OR REPLACE INTO progress VALUES (?, ?)", position)
                for name in bumps:
                    self._bump(name)

        def without_photo() -> None:  # the disk is full even now: the lift goes, its photo gives way
            write(None, (*counters, "photos_dropped") if evidence else counters)
            if evidence:
                log.warning("disk full: lift %s kept without its photo (%s)", event_id, disk.has_free(self.path.parent))

        with self._lock:
            need = len(lift[1]) + (len(evidence[1]) if evidence else 0)
            if not self.reserve.held:
                if self.reserve.hold():
                    self._full_said = False
                    log.warning(disk.room_again(self.path.parent, self.reserve_bytes))
                else:
                    with contextlib.suppress(sqlite3.OperationalError):  # no room even to drop: made below
                        self._room_inside(need)
            self._roomy(lambda: write(evidence, counters), need, without_photo)
            self._enforce_bound()

    def _size(self) -> int:
        return int(self._db.execute("SELECT bytes FROM outbox_size").fetchone()[0])

    def _enforce_bound(self) -> None:
        size = self._size()
        if size <= self.max_bytes:
            return
        dropped = self._drop_photos(size - self.max_bytes, "photos_dropped")
        size = self._size()
        if dropped:
            log.warning("outbox over %d bytes: dropped the %d oldest evidence photo(s)", self.max_bytes, dropped)
        if size > self.max_bytes:
            log.error("outbox holds %d bytes of lift events alone (bound %d): keeping them all", size, self.max_bytes)

    def oldest(self, limit: int = 50, after: int = -1) -> list[OutboxEntry]:
        """Messages in sequence order (replay order), starting after ``after``."""
        with self._lock:
            rows = self._db.execute("SELECT seq, kind, topic, payload, event_id FROM messages WHERE seq > ? "
                                    "ORDER BY seq LIMIT ?", (after, limit)).fetchall()
        return [OutboxEntry(seq, kind, topic, bytes(payload), event_id) for seq, kind, topic, payload, event_id in rows]

    def get(self, seqs: list[int]) -> list[OutboxEntry]:
        """The rows ``seqs`` still in the outbox, in sequence order (a photo may have been dropped meanwhile)."""
        with self._lock:
            rows = self._db.execute("SELECT seq, kind, topic, payload, event_id FROM messages WHERE seq IN "
                                    f"({','.join('?' * len(seqs))}) ORDER BY seq", seqs).fetchall() if seqs else []
        return [OutboxEntry(seq, kind, topic, bytes(payload), event_id) for seq, kind, topic, payload, event_id in rows]

    def present(self, seqs: list[int]) -> set[int]:
        """Which of ``seqs`` are still here (their payloads not read): the uplink forgets the others."""
        with self._lock:
            return {row[0] for row in self._db.execute(
                f"SELECT seq FROM messages WHERE seq IN ({','.join('?' * len(seqs))})", seqs)} if seqs else set()

    def delete(self, seq: int) -> None:
        """Called on the server's receipt (or on PUBACK with ``delete_after: puback``) only."""
        self.delete_many([seq])

    def delete_many(self, seqs: list[int]) -> None:
        """One transaction (one fsync) for all the rows a receipt covers; then a little of the space
        they held given back to the disk, if the backlog has drained."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")  # autocommit otherwise: one fsync a row
            self._db.executemany("DELETE FROM messages WHERE seq = ?", [(seq,) for seq in seqs])
        give_back(self._db, self._lock, self._size, GIVE_BACK_STEPS_PER_DELETE)

    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    def photos_dropped(self) -> int:
        """Photos the outbox gave up: over ``max_bytes`` or a full disk, and unsent past their retention."""
        with self._lock:
            return self._counter("photos_dropped") + self._counter("photos_expired")

    def expire_photos(self, max_age_s: float, now: float | None = None) -> int:
        """Drop the unsent photos stored more than ``max_age_s`` ago (privacy retention: a truck weeks
        without signal keeps no photo longer than a delivered one's local copy); lifts stay. A row dated
        more than a day ahead (a clock set wrong, since corrected) has its age counted from now."""
        now = time.time() if now is None else now
        cutoff = time.strftime(_STAMP, time.gmtime(now - max_age_s))
        ahead = time.strftime(_STAMP, time.gmtime(now + FUTURE_S))
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE messages SET created_at = ? WHERE created_at > ?",
                             (time.strftime(_STAMP, time.gmtime(now)) + ".000Z", ahead))
            gone = self._db.execute("DELETE FROM messages WHERE kind = ? AND created_at < ?",
                                    (EVIDENCE, cutoff)).rowcount
            if gone:
                self._bump("photos_expired", gone)
            self._db.execute(RECOUNT)  # the size the triggers keep, summed afresh (a row another program wrote)
        if gone:
            log.warning("dropped %d unsent evidence photo(s) older than %.0f days (retention; their lifts are "
                        "kept)", gone, max_age_s / 86_400)
        give_back(self._db, self._lock, self._size, GIVE_BACK_STEPS_PER_PASS)
        return gone

    def counter(self, name: str) -> int:
        """A durable counter: ``photos_dropped``, ``photos_expired``, ``photos_too_large``, ``photos_refused``."""
        with self._lock:
            return self._counter(name)

    def drop_refused_photo(self, seq: int) -> bool:
        """Delete evidence row ``seq`` (the broker keeps refusing it) and count it; lift rows are never
        deleted here. False when ``seq`` is not an evidence row (anymore)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            gone = self._db.execute("DELETE FROM messages WHERE seq = ? AND kind = ?", (seq, EVIDENCE)).rowcount
            if gone:
                self._bump("photos_refused")
        return bool(gone)

    def resume_after(self, source: str) -> int:
        """Index of the last frame of a video file already turned into a committed lift (-1: none)."""
        with self._lock:
            row = self._db.execute("SELECT position FROM progress WHERE source = ?", (source,)).fetchone()
        return int(row[0]) if row else -1

    def is_consumed(self, source_key: str, exact: bool = False) -> bool:
        """Whether a lift from burst ``source_key`` (``NAME@BEGUN``) is stored (``edge.consumed``)."""
        with self._lock:
            return is_consumed(self._db, source_key, exact)

    def forget_consumed(self, on_disk: Callable[[str], bool]) -> int:
        """The hourly check of the consumed marks against the camera's disk (``edge.consumed``)."""
        return forget_gone(self._db, self._lock, on_disk)
