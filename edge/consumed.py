"""Consumed bursts: the outbox's marks of the burst folders already turned into lifts (``NAME@BEGUN``,
``edge.camera.burst_key``), written in the lift's own transaction so that a restarted agent never
counts a burst twice; and their forgetting, so that the table does not grow by a mark a lift forever
(~100 bytes each: 40 MB a year at 1,000 lifts a day, and an outbox that size is never converted to
give space back, ``edge.disk.CONVERT_AT_MOST``).

A mark matters only while its burst can still be read. The photos' times are the camera box's clock
(a box without a battery starts again in 1970), so no age of a burst says it cannot come back; its
absence does. An hourly check (``forget_gone``) looks for every marked burst on the camera's disk: a
mark whose burst it does not find is stamped with the check's number, one found again is unstamped,
and a mark stamped ``GONE_CHECKS`` checks ago goes. Checks are counted in hours of the agent running
(the pass at start-up counts none), so a clock set wrong, a restart or a truck parked for a week
shortens nothing. Deleted with ``trigger.burst_delete``, a burst is gone from the next check; kept
on the camera's disk (``burst_delete`` off, a read-only card), its mark stays as long as it does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

# A burst must stay gone this many hourly checks in a row before its mark is deleted: a card or
# USB disk out of the camera box for a week of the agent's running hours, then put back with its
# counted bursts still on it, is not counted again. What stays: the marks of the lifts of the last
# 168 running hours (~17 days of 10-hour shifts: 17,000 marks, ~2 MB, at 1,000 lifts a day).
GONE_CHECKS = 168
CHECKS = "burst_checks"  # the durable count of checks (``counters``)
BATCH = 1000  # rows written per transaction: a lift waits for one batch at most


def add_gone_column(db: sqlite3.Connection) -> None:
    """``consumed.gone``: the check that first missed the burst (NULL: on the disk, or not checked
    yet). An outbox from before it gets the column (SQLite adds it without rewriting the table)."""
    if "gone" not in {row[1] for row in db.execute("PRAGMA table_info(consumed)")}:
        db.execute("ALTER TABLE consumed ADD COLUMN gone INTEGER")


def is_consumed(db: sqlite3.Connection, key: str, exact: bool = False) -> bool:
    """Whether burst ``key`` is marked; unless ``exact``, a mark written by an outbox from before keyed
    bursts (the folder's name alone) holds for its name too."""
    legacy = key if exact else key.rpartition("@")[0] or key
    return db.execute("SELECT 1 FROM consumed WHERE source_key IN (?, ?)", (key, legacy)).fetchone() is not None


def forget_gone(db: sqlite3.Connection, lock: AbstractContextManager[object], on_disk: Callable[[str], bool]) -> int:
    """One check: stamp the marks whose burst ``on_disk`` does not find, unstamp those it finds again,
    delete those stamped ``GONE_CHECKS`` checks ago. The disk is looked at outside ``lock``; writes go
    in batches. Returns the marks deleted."""
    with lock:
        marks = db.execute("SELECT source_key, gone FROM consumed").fetchall()
    back = [key for key, gone in marks if gone is not None and on_disk(key)]
    lost = [key for key, gone in marks if gone is None and not on_disk(key)]
    with lock, db:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE "
                   "SET value = value + 1", (CHECKS,))
        check = int(db.execute("SELECT value FROM counters WHERE name = ?", (CHECKS,)).fetchone()[0])
    for keys, sql, stamp in ((back, "UPDATE consumed SET gone = NULL WHERE source_key = ?", ()),
                             (lost, "UPDATE consumed SET gone = ? WHERE source_key = ? AND gone IS NULL", (check,))):
        for start in range(0, len(keys), BATCH):
            with lock, db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(sql, [(*stamp, key) for key in keys[start:start + BATCH]])
    deleted, total = BATCH, 0
    while deleted == BATCH:
        with lock, db:
            db.execute("BEGIN IMMEDIATE")
            deleted = db.execute("DELETE FROM consumed WHERE rowid IN (SELECT rowid FROM consumed WHERE gone <= ? "
                                 "LIMIT ?)", (check - GONE_CHECKS, BATCH)).rowcount
        total += deleted
    return total
