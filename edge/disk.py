"""A reserve of disk space held beside the outbox: given up when the disk is full, so that the
outbox can still delete photos and write lifts; made again once the disk has room."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:  # gone, or unreadable: as good as full
        return 0


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
