"""ViewWatch: the camera's view of each lift judged (``vision.view``), said once when it turns.

The pipeline hands it every analysed frame of a lift; ``finish`` gives the lift's verdict for its
event (``LiftEvent.view_unusable``) and keeps the run of unusable lifts for the heartbeat
(``TruckStats.camera_view``). One WARNING when the view becomes unusable (or its problem changes),
one when it is back: a dark hopper for a night shift is two lines in the log, not one a frame.
"""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np

from edge.view_settings import ViewSettings
from vision.camera_view import CameraView, ViewProblem
from vision.view import LiftView

log = logging.getLogger(__name__)

# The words of the log, for the crew and the installer reading it.
EXPLAINED = {
    ViewProblem.dark: "the hopper is dark (lights out?)",
    ViewProblem.bright: "the picture is over-exposed",
    ViewProblem.flat: "the picture has no contrast (lens covered or dirty?)",
    ViewProblem.blurred: "the picture is blurred (lens dirty, out of focus?)",
    ViewProblem.frozen: "the camera sends the same picture again (frozen?)",
}


class ViewWatch:
    """``begin`` at a lift's first frame, ``add`` per frame, ``finish`` at its end; ``state`` any time."""

    def __init__(self, settings: ViewSettings) -> None:
        self.enabled = settings.enabled
        self._lift = LiftView(settings.limits())
        self._state: CameraView | None = None  # None until a lift was judged
        # The lift's first unusable frame (one copy a lift at most, 0.19 ms at 1080p), and the frame of the lift that
        # just turned the view unusable: what the technician is shown (evidence reason ``view``).
        self._frame: np.ndarray | None = None
        self._turned: np.ndarray | None = None

    def begin(self) -> None:
        self._lift.begin()
        self._frame = None

    def add(self, image: np.ndarray) -> None:
        if self.enabled:
            view = self._lift.add(image)
            if self._frame is None and view.problem(self._lift.limits) is not None:
                self._frame = image.copy()  # the source may reuse its buffer for the next frame

    def finish(self, sequence: int, started_at: datetime) -> ViewProblem | None:
        """The lift's verdict; logs a change of the view's state."""
        problem = self._lift.verdict() if self.enabled else None
        before = self._state or CameraView()
        self._turned = self._frame if problem is not None and problem != before.problem else None
        self._state = before.after(problem, started_at)
        if problem is None:
            if before.problem is not None:
                log.warning("camera view usable again at lift %d, after %d unusable lift(s) (%s)",
                            sequence, before.lifts, before.problem.value)
        elif problem != before.problem:
            last = self._lift.last
            log.warning("camera view unusable from lift %d: %s [%s; last frame: brightness %.0f, contrast %.2f, "
                        "sharpness %.2f]; its lifts are sent as not judged", sequence, EXPLAINED[problem],
                        problem.value, last.brightness if last else 0, last.contrast if last else 0,
                        last.sharpness if last else 0)
        return problem

    def turned_photo(self) -> np.ndarray | None:
        """An unusable frame of the lift just finished when it turned the view unusable (or changed its
        problem); None for the next lifts of the run, and for a usable view."""
        return self._turned

    def state(self) -> CameraView | None:
        """For the heartbeat: None until a lift was judged (or when the watch is off)."""
        return self._state if self.enabled else None
