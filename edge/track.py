"""The truck's recent track: its fixes of the last minutes, so that a lift processed late is placed
where the truck was when the lift happened, not where it is when the lift is processed.

A burst folder is often processed minutes after it was shot (a backlog after a restart, a camera
box's card put back, a slow computer): given the truck's position of the moment, each such lift
landed on whatever street the truck had driven on to. ``Track`` keeps the fixes by the monotonic
tick at which they arrived (never set back nor forward, as the system clock is), thinned to one per
``step_s`` and kept for ``history_s``: memory stays flat however long the agent runs and however
fast the receiver talks (900 fixes at most by default). A receiver that says it lost its fix is a
point too, so that no fix is ever carried across a loss.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_right
from collections import deque

from vision.schema import GpsFix

HISTORY_S = 15 * 60.0  # a backlog of a quarter of an hour still gets its positions; older: none
STEP_S = 1.0  # one fix a second: 3 m at the 10 km/h of a truck between bins


class Track:
    """Fixes (or losses, ``None``) by their monotonic tick; written by the reader thread, read by the loop."""

    def __init__(self, history_s: float = HISTORY_S, step_s: float = STEP_S) -> None:
        self.history_s, self.step_s = history_s, step_s
        self._lock = threading.Lock()
        # at most one point a step, so bounded whatever the ticks (a clock seam, a receiver at 10 Hz)
        self._points: deque[tuple[float, GpsFix | None]] = deque(maxlen=math.ceil(history_s / step_s) + 1)

    def add(self, tick: float, fix: GpsFix | None) -> None:
        """The fix that arrived at ``tick``, or None: the receiver said from then on it had none."""
        with self._lock:
            points = self._points
            if points and math.floor(points[-1][0] / self.step_s) == math.floor(tick / self.step_s):
                points.pop()  # the same second: the newer sentence (an RMC after its GGA) says it all
            points.append((tick, fix))
            while points[0][0] < tick - self.history_s:
                points.popleft()

    def near(self, tick: float, within_s: float) -> tuple[GpsFix, float] | None:
        """The fix nearest ``tick`` (the one then in force, or the next one), at most ``within_s``
        away and with no loss between it and ``tick``, and the tick it arrived at; else None."""
        with self._lock:
            points = list(self._points)
        index = bisect_right([point[0] for point in points], tick)
        # only these two can qualify: any other has one of them between it and tick, a fix nearer
        # or a loss in the way
        candidates = [points[i] for i in (index - 1, index) if 0 <= i < len(points)]
        found = [(abs(at - tick), at, fix) for at, fix in candidates if fix is not None and abs(at - tick) <= within_s]
        if not found:
            return None
        _, at, fix = min(found, key=lambda item: item[0])
        return fix, at

    def __len__(self) -> int:
        with self._lock:
            return len(self._points)
