"""Outbox: a durable SQLite queue of messages waiting for the server's receipt (or the broker's PUBACK).

Every lift is committed here before any network I/O (WAL, ``synchronous=FULL``: the commit is on
disk when ``put`` returns), so a power cut or ``kill -9`` loses nothing committed. Rows leave only
through ``delete``: once the server has receipted them (``uplink.delete_after: receipt``, the
default), or once the broker has acknowledged them (``puback``). When the file grows past its bound, the
oldest evidence photos go first; lift events are never dropped, and every drop is counted.
A photo the broker keeps refusing (``drop_refused_photo``) may go too, counted apart; a lift never.

The same transaction that stores a lift records its source key (a burst folder), so a restarted
agent neither loses nor re-counts a burst.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LIFT, EVIDENCE = "lift", "evidence"

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
"""


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


_KEEP = {"messages": "seq, kind, topic, payload, event_id, created_at", "consumed": "source_key, event_id",
         "progress": "source, position", "counters": "name, value"}


def _readable(damaged: sqlite3.Connection, table: str) -> list[tuple[object, ...]]:
    """The rows of ``table`` that can still be read, scanned from both ends: a damaged page ends a
    scan, so reading back from the other end keeps the rows behind it."""
    rows: dict[object, tuple[object, ...]] = {}
    for order in ("ASC", "DESC"):
        try:
            for rowid, *row in damaged.execute(f"SELECT rowid, {_KEEP[table]} FROM {table} ORDER BY rowid {order}"):
                rows[rowid] = tuple(row)
        except sqlite3.DatabaseError:
            continue
    return list(rows.values())


def _pad_truncated(path: Path) -> None:
    """A file cut short (its header counts more pages than it holds) reads as damaged as a whole,
    its schema included: padded back with zero pages, it reads up to the missing pages."""
    with path.open("r+b") as file:
        header = file.read(32)
        if len(header) < 32:
            return
        page_size = int.from_bytes(header[16:18], "big")
        expected = (65536 if page_size == 1 else page_size) * int.from_bytes(header[28:32], "big")
        if file.seek(0, 2) < expected:
            file.truncate(expected)


def salvage(damaged_path: Path, into: sqlite3.Connection) -> dict[str, int]:
    """Copy what a damaged outbox still gives into a new one: unsent rows (same seq, so the same order
    and digests), consumed bursts, video progress, counters. A delivered row was deleted, so it is in no
    table and is never sent again. The sequence counter never goes back: at least 1 + every sequence read."""
    _pad_truncated(damaged_path)
    damaged = sqlite3.connect(damaged_path)
    found = {}
    try:
        with into:
            into.execute("BEGIN IMMEDIATE")
            for table, columns in _KEEP.items():
                rows = _readable(damaged, table)
                marks = ",".join("?" * len(columns.split(",")))
                found[table] = into.executemany(f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({marks})",
                                                rows).rowcount
            sequences = [0]
            for (payload,) in into.execute("SELECT payload FROM messages WHERE kind = ?", (LIFT,)):
                with contextlib.suppress(ValueError, TypeError, LookupError):  # not a LiftEvent
                    sequences.append(int(json.loads(payload)["sequence"]) + 1)
            into.execute("INSERT INTO counters (name, value) VALUES ('sequence', ?) ON CONFLICT (name) DO UPDATE "
                         "SET value = MAX(value, excluded.value)", (max(sequences),))
    finally:
        damaged.close()
    return found


class Outbox:
    """Thread-safe: the pipeline puts, the uplink thread reads and deletes."""

    def __init__(self, path: Path | str, max_bytes: int = 500 * 1024 * 1024) -> None:
        self.path, self.max_bytes = Path(path), max_bytes
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._open()
            except _Damaged as damage:
                self._db = self._recover(str(damage))
        except (OSError, sqlite3.Error) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise OutboxError(f"outbox.path: {str(self.path)!r} cannot be opened as the outbox: {reason}") from None

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            # Cheap flash and power cuts damage pages: found now, not at the first lift (which
            # stopped the truck) or in the uplink (a traceback a second). ~0.4 s for 200 MB.
            check = str(db.execute("PRAGMA quick_check").fetchone()[0])
            if check != "ok":
                raise _Damaged(check.strip().splitlines()[-1])
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # fsync at every commit, not only at checkpoints
            db.executescript(SCHEMA)
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
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
        for suffix in ("", "-wal"):  # the WAL holds committed lifts too
            if Path(f"{self.path}{suffix}").exists():
                Path(f"{self.path}{suffix}").rename(f"{aside}{suffix}")
        Path(f"{self.path}-shm").unlink(missing_ok=True)
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
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            return self._bump("sequence") - 1

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
        with self._lock:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                rows = [(LIFT, *lift, event_id)] + ([(EVIDENCE, *evidence, event_id)] if evidence else [])
                self._db.executemany(
                    "INSERT INTO messages (kind, topic, payload, event_id) VALUES (?, ?, ?, ?)", rows)
                if source_key is not None:
                    self._db.execute("INSERT OR REPLACE INTO consumed VALUES (?, ?)", (source_key, event_id))
                if position is not None:
                    self._db.execute("INSERT OR REPLACE INTO progress VALUES (?, ?)", position)
                for name in counters:
                    self._bump(name)
            self._enforce_bound()

    def _size(self) -> int:
        return int(self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM messages").fetchone()[0])

    def _enforce_bound(self) -> None:
        size = self._size()
        if size <= self.max_bytes:
            return
        dropped = 0
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            photos = self._db.execute(
                "SELECT seq, LENGTH(payload) FROM messages WHERE kind = ? ORDER BY seq", (EVIDENCE,))
            for seq, length in photos.fetchall():
                if size <= self.max_bytes:
                    break
                self._db.execute("DELETE FROM messages WHERE seq = ?", (seq,))
                size, dropped = size - length, dropped + 1
            if dropped:
                self._bump("photos_dropped", dropped)
        if dropped:
            log.warning("outbox over %d bytes: dropped the %d oldest evidence photo(s)", self.max_bytes, dropped)
        if size > self.max_bytes:
            log.error("outbox holds %d bytes of lift events alone (bound %d): keeping them all", size, self.max_bytes)

    def oldest(self, limit: int = 50, after: int = -1) -> list[OutboxEntry]:
        """Messages in sequence order (replay order), starting after ``after``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, topic, payload, event_id FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [OutboxEntry(seq, kind, topic, bytes(payload), event_id) for seq, kind, topic, payload, event_id in rows]

    def get(self, seqs: list[int]) -> list[OutboxEntry]:
        """The rows ``seqs`` still in the outbox, in sequence order (a photo may have been dropped meanwhile)."""
        if not seqs:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, topic, payload, event_id FROM messages WHERE seq IN "
                f"({','.join('?' * len(seqs))}) ORDER BY seq", seqs).fetchall()
        return [OutboxEntry(seq, kind, topic, bytes(payload), event_id) for seq, kind, topic, payload, event_id in rows]

    def delete(self, seq: int) -> None:
        """Called on the server's receipt (or on PUBACK with ``delete_after: puback``) only."""
        self.delete_many([seq])

    def delete_many(self, seqs: list[int]) -> None:
        """One transaction (one fsync) for all the rows a receipt covers."""
        with self._lock, self._db:
            self._db.executemany("DELETE FROM messages WHERE seq = ?", [(seq,) for seq in seqs])

    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    def photos_dropped(self) -> int:
        with self._lock:
            return self._counter("photos_dropped")

    def counter(self, name: str) -> int:
        """A durable counter: ``photos_dropped``, ``photos_too_large``, ``photos_refused``."""
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

    def is_consumed(self, source_key: str) -> bool:
        """Whether a lift from ``source_key`` is stored. A burst's key is ``NAME@BEGUN``
        (``edge.camera.burst_key``); outboxes written before keyed bursts by folder name alone, and
        those marks still hold for their names."""
        legacy = source_key.rpartition("@")[0] or source_key
        with self._lock:
            row = self._db.execute("SELECT 1 FROM consumed WHERE source_key IN (?, ?)", (source_key, legacy)).fetchone()
        return row is not None
