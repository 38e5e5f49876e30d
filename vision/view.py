"""Is the hopper camera's view usable? Cheap measures of each frame of a lift, and the lift's verdict.

A dirty or covered lens, a camera knocked out of aim, failed hopper lights or a frozen USB camera
leave the detector seeing nothing, and a lift that sees nothing reads as clean. Each frame of a
lift is measured on a grey copy about ``SIDE`` pixels wide, taken by nearest-neighbour sampling
(0.06 ms a 1280 x 720 frame, beside ~6 ms of INT8 inference: ``bench/view.py``, docs/edge.md):

- brightness: the mean grey level (0-255);
- contrast: the grey levels' standard deviation over their mean, so that a dim frame (an infrared
  night light, a low exposure) keeps the contrast of the same scene lit brightly;
- sharpness: the standard deviation of the Laplacian over that of the grey levels, which does not
  change with the exposure either (the raw variance of the Laplacian falls tenfold on a dim frame);
- change: the mean absolute difference from the frame before, in grey levels.

Grey-scale frames (infrared at night) are measured like colour ones: the measures read grey only.
A lift is unusable when more than half of its frames are (a bag flapping over the lens now and then
spoils a few frames, not the lift); its problem is the commonest among them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import cv2
import numpy as np

from vision.camera_view import ViewProblem

SIDE = 160  # the grey copy's longest side: enough for focus and contrast, 1 % of the frame's pixels


@dataclass(frozen=True, slots=True)
class ViewLimits:
    """The thresholds of an unusable frame (``edge.view_settings.ViewSettings`` gives the truck's)."""

    dark_below: float = 18.0  # mean grey level
    bright_above: float = 215.0  # mean grey level
    flat_below: float = 0.15  # contrast: standard deviation over mean
    blurred_below: float = 0.18  # sharpness: Laplacian's standard deviation over the grey levels'
    frozen_below: float = 0.5  # change: mean absolute difference from the frame before, grey levels
    unusable_share: float = 0.5  # a lift is unusable when more than this share of its frames is


@dataclass(frozen=True, slots=True)
class FrameView:
    """One frame's measures (see the module's docstring)."""

    brightness: float
    contrast: float
    sharpness: float
    change: float | None  # None for the first frame seen

    def problem(self, limits: ViewLimits) -> ViewProblem | None:
        """What makes this frame unusable, if anything: a frozen picture first (whatever it shows,
        it is old), then light, then contrast (a dark or over-exposed frame is flat too), then focus."""
        if self.change is not None and self.change < limits.frozen_below:
            return ViewProblem.frozen
        if self.brightness < limits.dark_below:
            return ViewProblem.dark
        if self.brightness > limits.bright_above:
            return ViewProblem.bright
        if self.contrast < limits.flat_below:
            return ViewProblem.flat
        if self.sharpness < limits.blurred_below:
            return ViewProblem.blurred
        return None


def small_grey(image: np.ndarray) -> np.ndarray:
    """A grey copy of at most ``SIDE`` pixels a side, by nearest-neighbour sampling (cheap)."""
    height, width = image.shape[:2]
    scale = SIDE / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image[:, :, 0]
    return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)


def measure(grey: np.ndarray, previous: np.ndarray | None = None) -> FrameView:
    """The measures of a ``small_grey`` copy; ``previous`` is the frame before's copy."""
    mean, std = (float(v[0, 0]) for v in cv2.meanStdDev(grey))
    _mean, laplacian = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_16S))
    change = None
    if previous is not None and previous.shape == grey.shape:
        change = float(cv2.norm(grey, previous, cv2.NORM_L1)) / grey.size
    # floors of 1 grey level: a black frame has no contrast to divide by
    return FrameView(mean, std / max(mean, 1.0), float(laplacian[0, 0]) / max(std, 1.0), change)


class LiftView:
    """The frames of one lift -> whether its view was usable: ``begin``, ``add`` per frame, ``verdict``.

    The last frame of a lift stays the reference of the next lift's first: a camera frozen between
    two one-frame lifts (two bursts of the same still) is seen too.
    """

    def __init__(self, limits: ViewLimits | None = None) -> None:
        self.limits = limits or ViewLimits()
        self._previous: np.ndarray | None = None
        self._problems: Counter[ViewProblem | None] = Counter()
        self.last: FrameView | None = None

    def begin(self) -> None:
        self._problems = Counter()

    def add(self, image: np.ndarray) -> FrameView:
        grey = small_grey(image)
        view = measure(grey, self._previous)
        self._previous, self.last = grey, view
        self._problems[view.problem(self.limits)] += 1
        return view

    @property
    def frames(self) -> int:
        return sum(self._problems.values())

    def verdict(self) -> ViewProblem | None:
        """The lift's problem, or None when its view was usable (or it had no frame)."""
        frames = self.frames
        bad = Counter({problem: n for problem, n in self._problems.items() if problem is not None})
        if not frames or sum(bad.values()) <= self.limits.unusable_share * frames:
            return None
        return bad.most_common(1)[0][0]
