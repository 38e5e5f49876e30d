"""The outbox's space: what a lift costs in a big outbox, and the disk given back after a drain."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from types import TracebackType

from edge.outbox import EVIDENCE, LIFT, SCHEMA, Outbox

PHOTO = bytes(range(256)) * 400  # 100 kB, a photo's usual size
LIFT_JSON = b'{"sequence": 0, "counts": {}}' * 30


def put(outbox: Outbox, n: int, photo: bytes | None = PHOTO) -> None:
    outbox.put_lift(f"event-{n}", ("t/lift", LIFT_JSON), ("t/evidence", photo) if photo else None, f"burst-{n}@1")


def work_of_a_lift(outbox: Outbox, n: int) -> int:
    """SQLite's virtual-machine steps (in hundreds) that storing one lift and its photo takes."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    outbox._db.set_progress_handler(count, 100)
    try:
        put(outbox, n, b"\xff" * 1000)
    finally:
        outbox._db.set_progress_handler(None, 0)
    return steps


def test_a_lift_costs_no_more_in_a_full_outbox(tmp_path: Path) -> None:
    """Each lift summed the size of every row waiting (~31 ms a lift once weeks offline had queued
    443 MB): the camera loop slowed as the backlog grew. Over the bound, each lift also read the
    size of every photo waiting to pick the oldest."""
    for bound in (False, True):  # under the bound; at it (9 photos in 10 kept), a photo dropped each lift
        small, big = (Outbox(tmp_path / f"{lifts}-{bound}.sqlite3",
                             lifts * (len(LIFT_JSON) + 900) if bound else 500 * 1024 * 1024) for lifts in (30, 1000))
        for outbox in (small, big):
            outbox._db.execute("PRAGMA synchronous = OFF")  # built fast; SQLite's work per lift is the same
        for n in range(1000):
            if n < 30:
                put(small, n, b"\xff" * 1000)
            put(big, n, b"\xff" * 1000)
        assert big.depth() > 1000 > 60 >= small.depth()
        assert work_of_a_lift(big, 5000) <= work_of_a_lift(small, 5000) + 5, f"over the bound: {bound}"


def test_the_size_bound_holds_as_rows_come_and_go(tmp_path: Path) -> None:
    """The size kept as rows come and go is the size the rows make, whatever gave way on the way; a
    row another program wrote is counted by the hourly pass."""
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=250_000)
    for n in range(3):
        put(outbox, n)
    outbox._db.execute("BEGIN IMMEDIATE")  # a write that failed half-way (a full disk) and was undone
    outbox._db.execute("DELETE FROM messages WHERE kind = ?", (EVIDENCE,))
    outbox._db.execute("ROLLBACK")
    put(outbox, 3)
    assert [r.event_id for r in outbox.oldest() if r.kind == EVIDENCE] == ["event-2", "event-3"]
    outbox.expire_photos(7 * 86_400)
    outbox.drop_refused_photo(outbox.oldest()[-1].seq)
    put(outbox, 4)
    assert [r.event_id for r in outbox.oldest() if r.kind == EVIDENCE] == ["event-2", "event-4"]
    with sqlite3.connect(tmp_path / "o.sqlite3") as other:  # an operator's repair, say
        other.execute("INSERT INTO messages (kind, topic, payload, event_id) VALUES (?, 't/evidence', ?, 'other')",
                      (EVIDENCE, PHOTO))
    outbox.expire_photos(7 * 86_400)
    put(outbox, 5)
    assert [r.event_id for r in outbox.oldest() if r.kind == EVIDENCE] == ["other", "event-5"]


def drain(outbox: Outbox) -> None:
    """The uplink delivers every row, one receipt per 20 rows."""
    while rows := outbox.oldest(limit=20):
        outbox.delete_many([row.seq for row in rows])


def commits_in_wal(path: Path) -> int:
    """Transactions committed in the outbox's WAL since it was last emptied (frames that end one)."""
    wal = Path(f"{path}-wal").read_bytes()
    page, salt = int.from_bytes(wal[8:12], "big"), wal[16:24]
    frames = (wal[at:at + 24] for at in range(32, len(wal) - 24 - page + 1, 24 + page))
    return sum(1 for frame in frames if frame[8:16] == salt and int.from_bytes(frame[4:8], "big"))


def test_a_receipt_is_one_transaction(tmp_path: Path) -> None:
    """A receipt for 20 rows deleted them one transaction (one fsync) each: a drain after weeks
    offline paid 20 fsyncs a receipt on the truck's flash."""
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    for n in range(40):
        put(outbox, n, None)
    outbox._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    outbox.delete_many([row.seq for row in outbox.oldest(limit=20)])
    assert commits_in_wal(path) == 1 and outbox.depth() == 20


def test_the_outbox_file_shrinks_after_a_drain(tmp_path: Path) -> None:
    """A week offline left a 30 MB outbox file; delivered, it stayed 30 MB on the truck's small disk."""
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    for n in range(300):
        put(outbox, n)
    outbox._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    peak = path.stat().st_size
    assert peak > 30_000_000
    drain(outbox)
    put(outbox, 300)  # the truck counts on
    assert path.stat().st_size < 8 * 1024 * 1024  # the uplink's receipts gave it back
    for n in range(301, 600):
        put(outbox, n)
    assert path.stat().st_size > 25_000_000  # offline again: the file grows as it must
    outbox.delete_many([row.seq for row in outbox.oldest(limit=1000)])  # one receipt for it all
    assert path.stat().st_size > 20_000_000  # a receipt gives back only a few megabytes
    outbox.expire_photos(7 * 86_400)  # the hourly pass, more
    assert path.stat().st_size < 8 * 1024 * 1024 and outbox.depth() == 0
    outbox.close()
    again = Outbox(path)
    assert again._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert again.is_consumed("burst-0@1") and again.is_consumed("burst-599@1") and again.next_sequence() == 0


def test_a_receipt_for_a_whole_backlog_leaves_no_big_wal(tmp_path: Path) -> None:
    """The server receipts a whole ingest batch at once (up to 1,000 rows): one transaction deleting
    30 MB of photos (zeroed where SQLite runs with secure_delete, Debian's default) wrote 34 MB to
    the WAL, and SQLite kept the WAL file that size for as long as the agent ran (months), beside an
    outbox file given back to 4 MB: the largest receipt ever, squatting the truck's disk."""
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    outbox._db.execute("PRAGMA secure_delete = ON")  # as on Debian, whatever this SQLite's default
    for n in range(300):
        put(outbox, n)
    outbox.delete_many([row.seq for row in outbox.oldest(limit=1000)])  # one receipt for it all
    outbox.expire_photos(7 * 86_400)  # the hourly pass
    put(outbox, 300)  # the truck counts on
    wal = Path(f"{path}-wal").stat().st_size
    checkpoint = outbox._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] * 4096
    assert wal <= checkpoint < 8 * 1024 * 1024  # the WAL back to its checkpoint size
    assert path.stat().st_size + wal < 12 * 1024 * 1024


def test_an_outbox_from_before_is_converted_once_drained(tmp_path: Path) -> None:
    """An outbox created by an earlier agent (no auto_vacuum) could never give space back. It is
    converted at the first start after its rows are delivered, never while weeks of them wait (a
    rewrite of 400 MB)."""
    path = tmp_path / "outbox.sqlite3"
    with sqlite3.connect(path) as db:  # as the earlier agent wrote it: weeks of lifts and photos
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
        for n in range(300):
            db.executemany("INSERT INTO messages (kind, topic, payload, event_id) VALUES (?, ?, ?, ?)",
                           [(LIFT, "t/lift", LIFT_JSON, f"event-{n}"), (EVIDENCE, "t/evidence", PHOTO, f"event-{n}")])
            db.execute("INSERT INTO consumed VALUES (?, ?)", (f"burst-{n}@1", f"event-{n}"))
    outbox = Outbox(path)  # restarted with its backlog: not rewritten
    assert outbox._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    outbox.expire_photos(7 * 86_400)
    assert outbox._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    peak = path.stat().st_size
    drain(outbox)
    put(outbox, 300)
    outbox.close()
    outbox = Outbox(path)  # the next start, with little waiting: rewritten once
    assert outbox._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental from now on
    assert path.stat().st_size < 8 * 1024 * 1024 < peak
    assert [(r.kind, r.event_id) for r in outbox.oldest()] == [(LIFT, "event-300"), (EVIDENCE, "event-300")]
    assert outbox.is_consumed("burst-0@1") and outbox.next_sequence() == 0


class _Holds:
    """The outbox's lock, noting how many pages the file lost while each hold lasted."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox, self.lock, self.shrinks = outbox, threading.Lock(), [0]
        self._pages = 0

    def _page_count(self) -> int:
        return int(self.outbox._db.execute("PRAGMA page_count").fetchone()[0])

    def __enter__(self) -> None:
        self.lock.acquire()
        self._pages = self._page_count()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.shrinks.append(self._pages - self._page_count())
        self.lock.release()


def test_giving_space_back_holds_the_outbox_only_in_short_steps(tmp_path: Path) -> None:
    """The camera loop writes each lift to the outbox: it must not wait for 400 MB to be given back
    (the uplink and the hourly pass give it back, a megabyte at a time, letting lifts in between)."""
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    for n in range(300):
        put(outbox, n)
    holds = _Holds(outbox)
    outbox._lock = holds  # type: ignore[assignment]
    drain(outbox)
    outbox.expire_photos(7 * 86_400)
    assert sum(holds.shrinks) * 4096 > 25_000_000  # given back
    assert max(holds.shrinks) <= 260  # 1 MiB of 4 KiB pages (and their pointer map) while a lift would wait
