"""Outbox: durable across reopen, sequence order, bounded by dropping photos only, consumed keys."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from edge.outbox import EVIDENCE, LIFT, Outbox


def put(outbox: Outbox, n: int, photo_bytes: int = 0, key: str | None = None) -> None:
    photo = ("t/evidence", b"\xff" * photo_bytes) if photo_bytes else None
    outbox.put_lift(f"event-{n}", ("t/lift", f'{{"n":{n}}}'.encode()), photo, key)


def test_rows_survive_reopen_in_sequence_order(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    for n in range(3):
        put(outbox, n, photo_bytes=10 if n == 1 else 0)
    outbox.close()
    again = Outbox(tmp_path / "o.sqlite3")
    rows = again.oldest()
    assert [(r.kind, r.event_id) for r in rows] == [
        (LIFT, "event-0"), (LIFT, "event-1"), (EVIDENCE, "event-1"), (LIFT, "event-2")]
    assert [r.seq for r in rows] == sorted(r.seq for r in rows)
    again.delete(rows[0].seq)
    assert [r.event_id for r in again.oldest(limit=1)] == ["event-1"]
    assert [r.event_id for r in again.oldest(after=rows[2].seq)] == ["event-2"]
    assert again.depth() == 3


def test_wal_and_full_sync(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    assert outbox._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert outbox._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_sequence_is_durable_and_monotonic(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    assert [outbox.next_sequence() for _ in range(3)] == [0, 1, 2]
    outbox.close()
    assert Outbox(tmp_path / "o.sqlite3").next_sequence() == 3


def test_full_outbox_drops_oldest_photos_never_lifts(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=2500)
    for n in range(4):
        put(outbox, n, photo_bytes=1000)
    kinds = [(r.kind, r.event_id) for r in outbox.oldest()]
    assert [k for k in kinds if k[0] == LIFT] == [(LIFT, f"event-{n}") for n in range(4)]
    assert [k for k in kinds if k[0] == EVIDENCE] == [(EVIDENCE, "event-2"), (EVIDENCE, "event-3")]
    assert outbox.photos_dropped() == 2
    # lifts alone over the bound: all kept
    tiny = Outbox(tmp_path / "tiny.sqlite3", max_bytes=5)
    for n in range(3):
        put(tiny, n)
    assert tiny.depth() == 3


def test_consumed_key_is_committed_with_the_lift(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    put(outbox, 0, key="burst-001")
    assert outbox.is_consumed("burst-001") and not outbox.is_consumed("burst-002")
    # Keys are NAME@BEGUN since a burst name may come again; a mark by name alone (an outbox
    # written before) still holds for that name, so an upgrade does not recount the folder.
    assert outbox.is_consumed("burst-001@1796440194363833986")
    put(outbox, 1, key="burst-003@100")
    assert outbox.is_consumed("burst-003@100") and not outbox.is_consumed("burst-003@200")
    with sqlite3.connect(tmp_path / "o.sqlite3") as db:  # another process sees the committed row
        assert sorted(db.execute("SELECT event_id FROM consumed").fetchall()) == [("event-0",), ("event-1",)]


def test_video_progress_is_committed_with_the_lift(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3")
    assert outbox.resume_after("/videos/round.mp4") == -1
    outbox.put_lift("e1", ("t/lift", b"{}"), position=("/videos/round.mp4", 120))
    outbox.put_lift("e2", ("t/lift", b"{}"), position=("/videos/round.mp4", 410))
    outbox.close()
    assert Outbox(tmp_path / "o.sqlite3").resume_after("/videos/round.mp4") == 410


def _damaged_outbox(path: Path) -> tuple[set[str], set[str], int]:
    """An outbox of 200 lifts whose first 50 were delivered, then a leaf page of its messages in the
    middle overwritten with garbage (a power cut mid-write on cheap flash). Returns the event ids
    still unsent, those on the damaged page, and the highest sequence taken."""
    outbox = Outbox(path)
    for n in range(200):
        put(outbox, outbox.next_sequence(), key=f"burst-{n:03d}@1")
    outbox.delete_many([row.seq for row in outbox.oldest(limit=50)])
    unsent = {row.event_id for row in outbox.oldest(limit=1000)}
    outbox.close()
    with sqlite3.connect(path) as db:
        leaves = [page for (page,) in db.execute(
            "SELECT pageno FROM dbstat WHERE name = 'messages' AND pagetype = 'leaf' ORDER BY pageno")]
        page = leaves[len(leaves) // 2]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    with sqlite3.connect(path) as db:  # the ids on that page, read before it is damaged
        ids = {row[0] for row in db.execute("SELECT event_id FROM messages")}
    with path.open("r+b") as file:
        file.seek((page - 1) * size)
        file.write(b"\x5a" * size)
    with sqlite3.connect(path) as db:
        readable: set[str] = set()
        for order in ("ASC", "DESC"):  # each scan up to the damaged page
            with contextlib.suppress(sqlite3.DatabaseError):
                for (event_id,) in db.execute(f"SELECT event_id FROM messages ORDER BY seq {order}"):
                    readable.add(event_id)
    return unsent, ids - readable, 199


def test_a_damaged_outbox_is_set_aside_and_its_readable_rows_kept(tmp_path: Path, caplog) -> None:
    """A damaged outbox stopped the truck at its first lift ('database disk image is malformed')
    and filled the log with the uplink's tracebacks, at every restart. Now start-up finds the damage,
    keeps the file aside and carries on with what it still gives: unsent rows, consumed bursts and a
    sequence that never goes back; delivered rows stay delivered."""
    path = tmp_path / "outbox.sqlite3"
    unsent, lost, last_sequence = _damaged_outbox(path)
    assert lost and lost < unsent  # one page of rows is really gone
    outbox = Outbox(path)
    kept = {row.event_id for row in outbox.oldest(limit=1000)}
    assert kept == unsent - lost  # every readable unsent row, none of the 50 delivered
    assert [r.seq for r in outbox.oldest(limit=1000)] == sorted(r.seq for r in outbox.oldest(limit=1000))
    assert all(outbox.is_consumed(f"burst-{n:03d}@1") for n in range(200))
    assert outbox.next_sequence() > last_sequence
    aside = list(tmp_path.glob("outbox.sqlite3.damaged-*Z"))
    assert len(aside) == 1  # kept for whoever wants to look at it
    assert "was damaged" in caplog.text and str(aside[0]) in caplog.text
    outbox.close()
    assert Outbox(path).depth() == len(kept)  # the new file is sound: no second salvage


def test_an_outbox_cut_short_keeps_what_it_holds(tmp_path: Path) -> None:
    """A file cut short (the flash lost its tail) read as damaged as a whole, its schema included."""
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    for n in range(300):
        put(outbox, outbox.next_sequence(), photo_bytes=3000 if n % 3 == 0 else 0)
    outbox.close()
    os.truncate(path, path.stat().st_size // 2)
    again = Outbox(path)
    assert 0 < again.depth() < 400 and again.next_sequence() >= 300
