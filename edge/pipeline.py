"""The edge loop: frames -> lift boundaries -> detect -> track -> record -> deliver. One screen long.

Frames outside lifts are not run through the detector (the trigger decides, cheaply). A frame
that fails is logged with its traceback and skipped: the loop never dies on one bad frame.
"""

from __future__ import annotations

import logging
import threading
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


class StopRequested(BaseException):  # BaseException, like KeyboardInterrupt: no `except Exception` eats it
    """Breaks the loop's wait for a frame when a stop is requested (SIGTERM); never escapes ``run``."""


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
        self._stop = threading.Event()
        self._waiting = False  # True only while run() waits for the source's next frame

    def request_stop(self) -> None:
        """Finish the lift in progress, then return from ``run``; for a signal handler (the loop's thread).

        Analysing a frame, the loop stops after it. Waiting for a frame (a quiet burst folder keeps
        its lift open until the next burst; a camera may be reconnecting), the wait is broken by
        raising StopRequested, which ``run`` catches; the lift is then closed with the frames seen.
        """
        self._stop.set()
        if self._waiting:
            self._waiting = False
            raise StopRequested

    def run(self, frames: Iterable[Frame]) -> int:
        """Process frames until the source ends; returns the number of lifts delivered."""
        current: str | None = None
        last: Frame | None = None
        iterator = iter(frames)
        try:
            while not self._stop.is_set():
                try:
                    self._waiting = True
                    if self._stop.is_set():  # requested between the loop test and the line above
                        raise StopRequested
                    frame = next(iterator, None)
                finally:
                    self._waiting = False
                if frame is None:
                    break
                current, last = self._step(frame, current, last)
        except StopRequested:
            log.info("stop requested: closing the lift in progress")
        finally:
            close = getattr(iterator, "close", None)
            if close is not None and self._stop.is_set():
                close()  # a prefetching source stops its thread
        if current is not None and last is not None:
            self._close(last, current)
        return self.meter.lifts

    def _step(self, frame: Frame, current: str | None, last: Frame | None) -> tuple[str | None, Frame | None]:
        """One frame: lift boundaries, then analysis; returns the (lift key, last frame) now current."""
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
        return current, last

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
