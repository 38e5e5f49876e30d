"""Salvage of a damaged outbox (a power cut mid-write on cheap flash, a file cut short): every row
it still gives, copied into a new outbox (``edge.outbox.Outbox`` sets the damaged file aside)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path

_KEEP = {"messages": "seq, kind, topic, payload, event_id, created_at", "consumed": "source_key, event_id",
         "progress": "source, position", "counters": "name, value"}


def set_aside(path: Path) -> Path:
    """Rename a damaged outbox and its WAL (which holds committed lifts too) out of the way, kept for
    whoever wants to look at them; returns the name it was given."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    for suffix in ("", "-wal"):
        if Path(f"{path}{suffix}").exists():
            Path(f"{path}{suffix}").rename(f"{aside}{suffix}")
    Path(f"{path}-shm").unlink(missing_ok=True)
    return aside


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
            for (payload,) in into.execute("SELECT payload FROM messages WHERE kind = 'lift'"):
                with contextlib.suppress(ValueError, TypeError, LookupError):  # not a LiftEvent
                    sequences.append(int(json.loads(payload)["sequence"]) + 1)
            into.execute("INSERT INTO counters (name, value) VALUES ('sequence', ?) ON CONFLICT (name) DO UPDATE "
                         "SET value = MAX(value, excluded.value)", (max(sequences),))
    finally:
        damaged.close()
    return found
