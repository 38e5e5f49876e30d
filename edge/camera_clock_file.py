"""The camera clock's estimate on disk, beside the outbox: it outlives the agent's restarts.

A truck loses power many times a day; the estimate (``edge.camera_clock``) was learnt afresh at
each start, and the bursts shot while the agent was down (the camera box boots faster) took the
camera's own times: the GPS fix of the wrong moment. ``<outbox>.camera-clock.json`` holds the last
window of samples and its newest sample's two times, rewritten at each burst seen being written
(a temporary file, fsync, rename: a power cut leaves the old file or the new one, never half of
one). A file absent starts afresh; one that cannot be read or makes no sense is said (a warning)
and starts afresh too: never a crash, the estimate comes back with the next live burst.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime
from pathlib import Path

from edge.camera_clock import SAMPLES, CameraClock, ClockState
from edge.state_file import replace_json

log = logging.getLogger(__name__)

VERSION = 1


def clock_file(outbox: Path) -> Path:
    """Beside the outbox (the agent's state), as its reserve file is."""
    return Path(f"{outbox}.camera-clock.json")


def read_state(path: Path) -> ClockState | None:
    """The saved state; None when there is none or it cannot be used (said)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        log.warning("camera clock: %s cannot be read (%s); learning the camera's clock afresh", path,
                    getattr(error, "strerror", None) or error)
        return None
    try:
        data = json.loads(text)
        samples = tuple(float(x) for x in data["samples"])
        state = ClockState(samples, datetime.fromisoformat(data["seen_at"]),
                           datetime.fromisoformat(data["stamped_at"]))
        if data["version"] != VERSION or not 0 < len(samples) <= SAMPLES or not all(map(math.isfinite, samples)):
            raise ValueError("no sample, too many, or not numbers")
        if state.seen_at.tzinfo is None or state.stamped_at.tzinfo is None:
            raise ValueError("times without their time zone")
    except (ValueError, TypeError, KeyError, OverflowError) as error:
        log.warning("camera clock: %s is damaged (%s); learning the camera's clock afresh", path, error)
        return None
    return state


def write_state(path: Path, state: ClockState) -> None:
    """Replace the file atomically; OSError (a full or read-only disk) is the caller's."""
    data = {"version": VERSION, "samples": list(state.samples), "seen_at": state.seen_at.isoformat(),
            "stamped_at": state.stamped_at.isoformat()}
    replace_json(path, data)


class ClockFile:
    """Writes each new state; says once, not at every burst, that it cannot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._failing = False

    def __call__(self, state: ClockState) -> None:
        try:
            write_state(self.path, state)
        except OSError as error:
            if not self._failing:
                log.warning("camera clock: %s cannot be written (%s); the estimate is learnt afresh after a "
                            "restart", self.path, error.strerror or error)
            self._failing = True
        else:
            self._failing = False


def persistent_camera_clock(outbox: Path) -> CameraClock:
    """A camera clock that starts from the estimate saved beside ``outbox`` (when recent enough) and
    saves each new one there."""
    path = clock_file(outbox)
    clock = CameraClock(on_change=ClockFile(path))
    if (state := read_state(path)) is not None:
        clock.restore(state)
    return clock
