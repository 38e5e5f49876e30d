"""The edge loop: frames -> lift boundaries -> detect -> track -> record -> deliver. One screen long.

Frames outside lifts are not run through the detector (the trigger decides, cheaply). A frame
that fails is logged with its traceback and skipped: the loop never dies on one bad frame.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from edge.camera import Frame
from edge.trigger import LiftTrigger
from vision.detection import Detections
from vision.lift import LiftRecorder
from vision.schema import Stream
from vision.tracking import Tracker

log = logging.getLogger(__name__)


@dataclass
class Meter:
    """Throughput figures for the stats heartbeat (exponential moving averages)."""

    fps: float | None = None
    inference_ms: float | None = None
    frames: int = 0
    lifts: int = 0
    _last: float | None = field(default=None, repr=False)

    def frame_done(self, inference_s: float) -> None:
        now, self.frames = time.monotonic(), self.frames + 1
        ms = inference_s * 1000
        self.inference_ms = ms if self.inference_ms is None else 0.9 * self.inference_ms + 0.1 * ms
        if self._last is not None and now > self._last:
            rate = 1.0 / (now - self._last)
            self.fps = rate if self.fps is None else 0.9 * self.fps + 0.1 * rate
        self._last = now


class Pipeline:
    """Runs lifts through the detector, tracker and recorder; hands each finished lift to ``deliver``."""

    def __init__(
        self,
        detect: Callable[[object], Detections],
        tracker: Tracker,
        recorder: LiftRecorder,
        trigger: LiftTrigger,
        deliver: Callable[[Frame], None],
        on_alert: Callable[[tuple[str, ...]], None],
        stream: Callable[[], Stream],
    ) -> None:
        self.detect, self.tracker, self.recorder, self.trigger = detect, tracker, recorder, trigger
        self.deliver, self.on_alert, self.stream = deliver, on_alert, stream
        self.meter = Meter()

    def run(self, frames: Iterable[Frame]) -> int:
        """Process frames until the source ends; returns the number of lifts delivered."""
        current: str | None = None
        last: Frame | None = None
        for frame in frames:
            try:
                key = self.trigger.lift_of(frame)
                if key != current and current is not None and last is not None:
                    self._close(last, current)
                if key != current and key is not None:
                    self.tracker.reset()
                    self.recorder.begin(frame.captured_at, self.stream())
                current, last = key, frame
                if key is not None:
                    self._analyse(frame)
            except Exception:  # the outermost loop: log, skip the frame, keep the truck running
                log.exception("frame %d failed; skipped", frame.index)
        if current is not None and last is not None:
            self._close(last, current)
        return self.meter.lifts

    def _analyse(self, frame: Frame) -> None:
        started = time.perf_counter()
        detections = self.tracker.update(self.detect(frame.image))
        self.meter.frame_done(time.perf_counter() - started)
        if self.meter.frames == 1:  # start-up ends here: bench/edge.py times process start to this line
            log.info("first frame analysed (%.0f ms)", self.meter.inference_ms)
        alerts = self.recorder.add(frame.image, detections)
        if alerts:
            self.on_alert(alerts)

    def _close(self, last: Frame, key: str) -> None:
        if not self.recorder.active:
            return
        self.deliver(last)  # the lift's last frame: its time, and where the source stands
        self.meter.lifts += 1
