"""An outbox whose folder cannot be written says why, not only SQLite's "unable to open database file".

Seen installing a truck: an outbox on a read-only file system (a card mounted read-only, a disk
remounted read-only after an error, a folder outside the systemd unit's ``ReadWritePaths=``) stopped
start-up with ``cannot be opened as the outbox: unable to open database file``, which names neither
the cause nor the fix. The folder's state is told apart from its free space.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from edge.outbox import Outbox, OutboxError


def _unopenable(monkeypatch: pytest.MonkeyPatch) -> None:
    """What SQLite answers in a folder it cannot write in (measured on a read-only tmpfs)."""

    def refuse(_self: Outbox) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(Outbox, "_open", refuse)


def test_a_read_only_file_system_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.statvfs

    def read_only(path: object) -> os.statvfs_result:  # the file system mounted ro (tests cannot mount)
        got = real(path)
        return os.statvfs_result((*got[:8], got.f_flag | os.ST_RDONLY, got.f_namemax))

    monkeypatch.setattr(os, "statvfs", read_only)
    _unopenable(monkeypatch)
    with pytest.raises(OutboxError) as refused:
        Outbox(tmp_path / "outbox.sqlite3")
    message = str(refused.value)
    assert message.startswith(f"outbox.path: '{tmp_path / 'outbox.sqlite3'}' cannot be opened")
    assert f"{tmp_path} is on a read-only file system" in message, message
    assert "ReadWritePaths=" in message  # the unit's ProtectSystem=strict makes every other folder read-only
    assert "bytes free" not in message  # not a full disk


def test_a_folder_this_user_cannot_write_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "access", lambda _path, _mode: False)  # as the unit's user trivue, not root
    _unopenable(monkeypatch)
    with pytest.raises(OutboxError, match=r"is not writable by this user \(uid \d+\)"):
        Outbox(tmp_path / "outbox.sqlite3")
