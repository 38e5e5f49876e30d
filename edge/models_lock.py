"""One edge agent per ``models.dir``: a second one is refused at start-up, naming the setting.

Two agents given the same ``models.dir`` (two cameras on one computer, a copied config, the
simulator's trucks) downloaded into the same files: the second download of a model opened the
first one's ``<sha256>.onnx.part`` anew (truncating it) while the first still wrote there, the
first renamed the file into place once its own bytes had the right hash, and loaded it while the
other was still filling the hole it had made: a model file with the wrong hash, checked and run
(the other download then failed on the rename). Each agent also deleted the other's
``.part`` files and pruned the other's running and previous models.

An agent that may download (``models.server`` set) holds an exclusive ``flock`` on
``<models.dir>.lock`` beside the folder (its real path: a link or a relative path to the same
folder finds the same lock; inside, it would be one more file among the models) for its whole
life; the kernel lets it go when the process ends, however it ends (a power cut leaves no stale
lock). The file names the holder for the message.
An agent without ``models.server`` never downloads: it takes no lock. A folder that cannot be
created or locked (a read-only disk, a file system without locks) is said and the agent starts,
as before: its downloads say what fails.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import TextIO

from edge.config import ConfigError, EdgeSettings

log = logging.getLogger(__name__)


def lock_file(folder: Path) -> Path:
    real = folder.resolve()
    return real.with_name(f"{real.name}.lock")


class ModelsLock:
    """The held lock; ``close`` lets it go (the agent's ``close``)."""

    def __init__(self, handle: TextIO) -> None:
        self._handle: TextIO | None = handle

    def close(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def lock_models_dir(settings: EdgeSettings) -> ModelsLock | None:
    """Hold ``models.dir`` for this agent; ConfigError when another agent holds it."""
    if settings.models.server is None:
        return None
    folder = settings.models.dir
    path = lock_file(folder)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held for the agent's life)
    except OSError as error:
        log.warning("models.dir %s cannot be locked (%s): another agent using it would not be noticed", folder,
                    error.strerror or error)
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read(200).strip() or "another process"
        handle.close()
        raise ConfigError(f"models.dir: {folder} is used by another running edge agent ({holder}, holding "
                          f"{path}); two agents downloading into one folder corrupt each other's models: give "
                          "each its own models.dir") from None
    except OSError as error:  # a file system without locks
        handle.close()
        log.warning("models.dir %s cannot be locked (%s): another agent using it would not be noticed", folder,
                    error.strerror or error)
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"truck {settings.truck_id}, pid {os.getpid()}\n")
    handle.flush()
    return ModelsLock(handle)
