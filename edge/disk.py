"""The outbox's disk: a reserve of space held beside the outbox, given up when the disk is full so
that the outbox can still delete photos and write lifts, made again once the disk has room; and the
outbox file giving back to the disk the pages its delivered rows held, once a backlog has drained."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

log = logging.getLogger(__name__)

# An outbox file stays at its high-water mark (400 MB after weeks offline) unless SQLite is told to
# give its free pages back (auto_vacuum=INCREMENTAL). It is, in steps of 1 MiB: a lift written by the
# camera loop waits for one step at most (2 ms median, one fsync), never for the whole file.
STEP_PAGES = 256
GIVE_BACK_FROM = 4 * 1024 * 1024  # free pages kept below this: the next rows reuse them, no churn
DRAINED = 16 * 1024 * 1024  # payload waiting at most this: the backlog is delivered, the rest goes soon
# An outbox from before auto_vacuum is rewritten once (VACUUM, at start-up: the loop waits on
# nothing), and only when what it holds is this small: weeks of backlog are never rewritten.
CONVERT_AT_MOST = 64 * 1024 * 1024


def free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:  # gone, or unreadable: as good as full
        return 0


def why_not_written(folder: Path, reserve_bytes: int) -> str:
    """Why a file could not be opened for writing in ``folder``, as a suffix for the error: SQLite says
    only "unable to open database file", whether the folder is read-only, not this user's, or full."""
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:  # gone: the error itself says so
        return ""
    unit = (
        "the systemd unit (ProtectSystem=strict) lets the agent write only /var/lib/trivue-edge and its "
        "ReadWritePaths=: put the outbox there or add its folder"
    )
    if read_only:
        return f" ({folder} is on a read-only file system; {unit})"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f" ({folder} is not writable by this user (uid {os.geteuid()}); {unit}, owned by that user)"
    free = free_bytes(folder)
    return f" ({free} bytes free on its disk)" if free < reserve_bytes else ""


def mib(amount: int) -> str:
    return f"{amount / 2**20:.1f} MiB"


def has_free(folder: Path) -> str:
    return f"{folder} has {mib(free_bytes(folder))} free"


def dropped_for_lift(folder: Path, dropped: int, reserve: int) -> str:
    """Each drop while the reserve is given up (the space freed is the reserve's: the disk is still full)."""
    return (f"disk full (reserve in use): {dropped} oldest photo(s) dropped for the next lift; {has_free(folder)}, "
            f"the reserve comes back at {mib(2 * reserve)}")


def room_again(folder: Path, reserve: int) -> str:
    return (f"disk has room again: {has_free(folder)}; the outbox's {mib(reserve)} reserve is made again and "
            "photos are no longer dropped")


def full(folder: Path, free: int, reserve: int, released: bool, dropped: int) -> str:
    """The one error a technician reads when the outbox's disk is full (ENOSPC, or no room for the
    reserve at start-up): the folder, the space free before the reserve was given up, the reserve,
    what the outbox does meanwhile, and what to do."""
    given = (f"the outbox gave up its {mib(reserve)} reserve file to go on writing"
             if released else f"no room is left for the outbox's {mib(reserve)} reserve")
    return (f"disk full: {folder} (the outbox's folder) has {mib(free)} free; {given}; the oldest evidence photos "
            f"are dropped to make room for new lifts ({dropped} so far, outbox_photos_dropped), every lift is kept. "
            f"To do: free space on {folder} (what else fills that disk?) or let the backlog be delivered; the "
            f"reserve is made again once {mib(2 * reserve)} is free. Should even a lift not fit, the agent stops "
            "(exit 2) and reads its source again from the last lift kept")


def _pragma(db: sqlite3.Connection, name: str) -> int:
    return int(db.execute(f"PRAGMA {name}").fetchone()[0])


def bound_wal(db: sqlite3.Connection, reserve_bytes: int) -> None:
    """Checkpoint the WAL at half the reserve (a full disk's checkpoint fits it; SQLite's 1,000 pages
    without one), and cut the file back to that size once a checkpoint has emptied it: SQLite keeps a
    WAL as big as it ever grew, and one receipt for a whole backlog (photos zeroed by secure_delete)
    grew it to the backlog's size, kept for as long as the agent ran."""
    page = _pragma(db, "page_size")
    if reserve_bytes > 0:
        db.execute(f"PRAGMA wal_autocheckpoint = {max(16, reserve_bytes // 2 // page)}")
    db.execute(f"PRAGMA journal_size_limit = {_pragma(db, 'wal_autocheckpoint') * page}")


def room_inside(db: sqlite3.Connection, need: int, drop_oldest_photos: Callable[[int], int]) -> int:
    """With no reserve the outbox lives within its file: free pages there for ``need`` bytes and as
    much again, by dropping the oldest photos (``drop_oldest_photos(bytes)``, returns how many);
    rows written into them need no more disk, nor does the WAL's checkpoint of them (a file that had
    to grow could not be checkpointed). Returns the photos dropped."""
    page = _pragma(db, "page_size")
    free = _pragma(db, "freelist_count") * page
    want = 2 * need + 16 * page
    if free >= want:
        return 0
    # Where SQLite zeroes deleted rows (secure_delete, Debian's default), a dropped photo would be
    # written again to the WAL: no room for that. Its pages are overwritten by the rows that reuse them.
    secure = _pragma(db, "secure_delete")
    db.execute("PRAGMA secure_delete = FAST")
    try:
        return drop_oldest_photos(want - free)
    finally:
        db.execute(f"PRAGMA secure_delete = {secure}")


def give_back_step(db: sqlite3.Connection, payload: int) -> bool:
    """Give one step of the file's free pages back to the disk when the backlog has drained
    (``payload``: bytes of rows waiting); False when there is nothing (more) worth giving back."""
    free = _pragma(db, "freelist_count")
    if _pragma(db, "auto_vacuum") != 2 or payload > DRAINED or free * _pragma(db, "page_size") < GIVE_BACK_FROM:
        return False
    # One transaction (a power cut keeps the file as before the step or after it). A free page at the
    # end of the file is cut off, a used one moved into a hole: the step writes little but the pages it
    # moves, as long as it fits SQLite's page cache (2 MiB; a bigger one spills the cut pages to the
    # WAL). executescript, because execute() stops an incremental_vacuum after its first page.
    db.executescript(f"PRAGMA incremental_vacuum({min(free, STEP_PAGES)});")
    return True


def give_back(db: sqlite3.Connection, lock: AbstractContextManager[object], payload: Callable[[], int],
              steps: int) -> int:
    """At most ``steps`` of ``give_back_step``, each under ``lock``, let go between them so that a
    lift waits for one step at most. Returns the steps taken."""
    taken = 0
    try:
        while taken < steps:
            with lock:
                if not give_back_step(db, payload()):
                    break
            taken += 1
        if taken:
            with lock:  # the file is cut to its new size when the WAL is copied back into it
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.OperationalError as error:  # a full disk (the step's WAL needs a few pages): later
        log.warning("the outbox could not give space back to its disk (%s); tried again later", error)
    return taken


def convert(db: sqlite3.Connection, folder: Path, payload: int, keep_free: int) -> bool:
    """Make an outbox created without auto_vacuum one that can give space back: VACUUM it (in WAL
    mode one transaction, safe under a power cut) when it holds little (``payload`` bytes waiting)
    and its disk has room for the copy and its WAL, ``keep_free`` to spare. True when converted."""
    if _pragma(db, "auto_vacuum") != 0:
        return False
    used = (_pragma(db, "page_count") - _pragma(db, "freelist_count")) * _pragma(db, "page_size")
    if payload > DRAINED or used > CONVERT_AT_MOST or free_bytes(folder) < 2 * used + keep_free:
        return False
    try:
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        db.execute("VACUUM")  # the copy is made in memory (temp_store): the WAL alone takes disk
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file cut to its new size, the WAL emptied
    except sqlite3.OperationalError as error:  # a disk that filled meanwhile: as it was, tried at the next start
        log.warning("the outbox could not be made to give space back (%s); tried again at the next start", error)
        return False
    return _pragma(db, "auto_vacuum") == 2


class Reserve:
    """``size`` bytes really allocated (not a sparse file) at ``path``."""

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size = path, size

    @property
    def held(self) -> bool:
        return self.size <= 0 or self.path.exists()

    def hold(self) -> bool:
        """Make the reserve when it is missing and the disk has room for it and as much again (so that
        it is not given up again at once); True when it is held."""
        if self.held:
            return True
        if free_bytes(self.path.parent) < 2 * self.size:
            return False
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
        except OSError:
            self.path.unlink(missing_ok=True)
            return False
        return True

    def release(self) -> bool:
        """Give the space back to the disk; True when there was a reserve to give."""
        if self.size <= 0 or not self.path.exists():
            return False
        self.path.unlink(missing_ok=True)
        return True
