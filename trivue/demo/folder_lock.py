"""One demo per data folder: a second one on the same folder shared its database and its trucks'
outboxes (the second's trucks read "stopped" on the fleet page when the first stopped)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from base.errors import CliError


class FolderLock:
    """An exclusive ``flock`` on ``<folder>/demo.lock`` for as long as the demo runs.

    The kernel drops it when the process ends, however it ends: a demo killed with SIGKILL leaves no
    stale lock to clean by hand. The file holds the holder's pid, for the message.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "demo.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        file = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip()
            file.close()
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise CliError(
                f"data folder {self.folder}: another trivue demo is using it{pid}; stop it first, "
                f"or give this one its own folder: TRIVUE_DATA_DIR=<folder> trivue demo"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._file = file

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
