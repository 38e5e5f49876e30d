"""The edge loop: frames -> lift boundaries -> detect -> track -> record -> deliver.

Frames outside lifts are not run through the detector (the trigger decides, cheaply). A frame
that fails is logged with its traceback and skipped: the loop never dies on one bad frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edge.camera import Frame
from edge.trigger import LiftTrigger
from vision.detection import Detections
from vision.lift import LiftRecorder
from vision.schema import Stream
from vision.tracking import Tracker

log = logging.getLogger(__name__)


@dataclass
class Meter:
    """Throughput figures for the stats heartbeat (moving averages over lifts and frames).

    ``fps`` is the rate of frames analysed while a lift is in view: a lift's frames over the time
    from its first frame taken from the source to its last frame analysed, the lifts' times joined
    where they overlap (frames of the next lift taken while the previous one is finished), averaged
    over the last lifts as a ratio of moving sums. A camera streaming at 12.5 frames/s reads 12.5,
    a burst folder read at once reads what the detector workers achieve. One over the mean time
    between two frames *handed back* read the frames two workers finish together as free: a burst of
    3 stills read 80 frames/s where 3 took 50 ms (60), and the demo's fleet page showed 101 images/s
    beside 23 ms of inference on three trucks sharing two cores. The drive to the next bin is not
    in any lift's time.
    """

    fps: float | None = None
    inference_ms: float | None = None
    frames: int = 0
    lifts: int = 0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _lift_frames: int = field(default=0, repr=False)  # frames analysed in the lift in progress
    _last_done: float | None = field(default=None, repr=False)  # when the last frame was analysed
    _covered_until: float = field(default=float("-inf"), repr=False)  # end of the lifts' time counted so far
    _sum_frames: float = field(default=0.0, repr=False)  # moving sums over lifts: fps = frames / seconds
    _sum_s: float = field(default=0.0, repr=False)

    def frame_done(self, inference_s: float) -> None:
        self.frames += 1
        self._lift_frames += 1
        self._last_done = self.clock()
        ms = inference_s * 1000
        self.inference_ms = ms if self.inference_ms is None else 0.9 * self.inference_ms + 0.1 * ms

    def lift_done(self, began_at: float | None) -> None:
        """The lift whose first frame was taken from the source at ``began_at`` (``clock``) is delivered."""
        self.lifts += 1
        frames, self._lift_frames = self._lift_frames, 0
        if began_at is None or frames == 0 or self._last_done is None:
            return
        # Only the part of this lift's time no earlier lift covered: overlapping lifts share it.
        seconds = max(0.0, self._last_done - max(began_at, self._covered_until))
        self._covered_until = max(self._covered_until, self._last_done)
        self._sum_frames = 0.9 * self._sum_frames + 0.1 * frames
        self._sum_s = 0.9 * self._sum_s + 0.1 * seconds
        if self._sum_s > 0:
            self.fps = self._sum_frames / self._sum_s

    def pause(self) -> None:
        """A lift closed without a delivery: its frames count in no lift's rate."""
        self._lift_frames = 0


class ModelSwitch(Protocol):
    """Hands the pipeline a new model between two lifts (``edge.model_update``)."""

    def take(self) -> Any | None:
        """The model to run from the lift that begins now (its ``detector.detect`` is used), or None."""

    def install(self, model: Any) -> None:
        """``model`` runs from the lift now beginning: the recorder and evidence follow it."""


class ViewCheck(Protocol):
    """Measures the camera's view on each analysed frame of a lift (``edge.view.ViewWatch``)."""

    def begin(self) -> None: ...
    def add(self, image: np.ndarray) -> None: ...


class LiftNotKept(Exception):
    """A lift's delivery failed (the outbox cannot be written: disk full, a foreign database). Not
    skipped like a bad frame: the truck stops, so that a burst folder is not marked consumed and is
    read again on restart, and the operator sees why, where it used to drop lift after lift."""


class StopRequested(BaseException):  # BaseException, like KeyboardInterrupt: no `except Exception` eats it
    """Breaks the loop's wait for a frame when a stop is requested (SIGTERM); never escapes ``run``."""


@dataclass(slots=True)
class _Admitted:
    """A frame taken from the source: its lift, decided in frame order, and its detections to come."""

    frame: Frame
    key: str | None = None
    failed: Exception | None = None  # the trigger failed on it: skipped at its turn, as when serial
    detections: Future[tuple[Detections, float]] | None = None  # in a lift, pipelined: (detections, seconds)
    detect: Callable[[object], Detections] | None = None  # the lift's model, chosen as its first frame came in
    swap: Any | None = None  # a new model that runs from this frame's lift (its first frame)
    taken_at: float | None = None  # when it was taken from the source (``Meter.clock``): a lift's rate starts there


class Pipeline:
    """Runs lifts through the detector, tracker and recorder; hands each finished lift to ``deliver``.

    With ``workers`` > 1 the detector runs on that many frames at once (``detect`` must then be
    thread-safe, as ``vision.model.Detector`` is): a tiny model does not fill two cores with
    onnxruntime's intra-op threads, two frames at a time do. Everything else stays in this thread and
    in frame order (lift boundaries, ByteTrack, the recorder, delivery), so the lifts are the same as
    with one worker; only detections are computed ahead, at most ``2 * workers`` frames.
    """

    def __init__(
        self,
        detect: Callable[[object], Detections],
        tracker: Tracker,
        recorder: LiftRecorder,
        trigger: LiftTrigger,
        deliver: Callable[[Frame], None],
        on_alert: Callable[[tuple[str, ...]], None],
        stream: Callable[[], Stream],
        workers: int = 1,
        switch: ModelSwitch | None = None,
        view: ViewCheck | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.detect, self.tracker, self.recorder, self.trigger = detect, tracker, recorder, trigger
        self.deliver, self.on_alert, self.stream = deliver, on_alert, stream
        self.workers, self.switch, self.view = workers, switch, view
        self._admitted_key: str | None = None  # lift of the last frame taken from the source
        self._to_install: Any | None = None  # a model taken at admission, installed when its lift begins
        self.meter = Meter()
        self._lift_began: float | None = None  # when the lift in progress's first frame was taken from the source
        self._stop = threading.Event()
        self._waiting = False  # True only while run() waits for the source's next frame

    def request_stop(self) -> None:
        """Finish the lift in progress, then return from ``run``; for a signal handler (the loop's thread).

        Analysing a frame, the loop stops after it (pipelined: after the frames already taken from
        the source). Waiting for a frame (a quiet video camera's lift stays open until its trigger
        ends it; a camera may be reconnecting), the wait is broken by raising StopRequested,
        which ``run`` catches; the lift is then closed with the frames seen.
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
        ready: Callable[[], bool] = getattr(iterator, "ready", lambda: True)
        pending: deque[_Admitted] = deque()
        # Two frames per worker in flight: while this thread tracks, records or delivers a lift
        # (render, encode, fsync), the workers still have a frame each to detect.
        ahead = 2 * self.workers if self.workers > 1 else 0
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="detect") if self.workers > 1 else None
        try:
            try:
                while not self._stop.is_set():
                    # Before a wait for the source (a quiet burst folder, a reconnecting camera), the
                    # frames in flight are finished: a lift's last frames and alerts never wait for
                    # the next lift. Serial (ahead 0), every frame is analysed as soon as it is taken.
                    if pending and (len(pending) > ahead or not ready()):
                        current, last = self._step(pending.popleft(), current, last)
                        continue
                    try:
                        self._waiting = True
                        if self._stop.is_set():  # requested between the loop test and the line above
                            raise StopRequested
                        frame = next(iterator, None)
                    finally:
                        self._waiting = False
                    if frame is None:
                        break
                    pending.append(self._admit(frame, pool))
            except StopRequested:
                log.info("stop requested: closing the lift in progress")
            finally:
                close = getattr(iterator, "close", None)
                if close is not None and self._stop.is_set():
                    close()  # a prefetching source stops its thread
            # Every frame taken from the source is analysed, as when serial (on a stop, up to
            # 2 x workers frames more than serial would have taken: tens of milliseconds).
            while pending:
                current, last = self._step(pending.popleft(), current, last)
        finally:
            if pool is not None:  # joins the workers: no thread outlives run()
                pool.shutdown(wait=True, cancel_futures=True)
        if current is not None and last is not None:
            self._close(last, current)
        return self.meter.lifts

    def _admit(self, frame: Frame, pool: ThreadPoolExecutor | None) -> _Admitted:
        """The frame's lift (the trigger sees every frame in order), and its detection started when pooled."""
        try:
            key = self.trigger.lift_of(frame)
        except Exception as error:  # reported, and the frame skipped, at its turn in _step
            return _Admitted(frame, failed=error)
        admitted = _Admitted(frame, key, taken_at=self.meter.clock())
        if key is not None and key != self._admitted_key and self.switch is not None:
            # A lift begins: a staged model takes over here, for every frame of this lift. The
            # frames of the previous lift, some maybe still in flight, keep the model they began with.
            admitted.swap = self.switch.take()
            if admitted.swap is not None:
                self.detect = admitted.swap.detector.detect
        self._admitted_key = key
        admitted.detect = self.detect
        if key is not None and pool is not None:
            admitted.detections = pool.submit(self._timed_detect, admitted.detect, frame.image)
        return admitted

    @staticmethod
    def _timed_detect(detect: Callable[[object], Detections], image: object) -> tuple[Detections, float]:
        started = time.perf_counter()
        detections = detect(image)
        return detections, time.perf_counter() - started

    def _step(self, admitted: _Admitted, current: str | None, last: Frame | None) -> tuple[str | None, Frame | None]:
        """One frame: lift boundaries, then analysis; returns the (lift key, last frame) now current."""
        frame, key = admitted.frame, admitted.key
        if admitted.swap is not None:
            self._to_install = admitted.swap
        try:
            if admitted.failed is not None:
                raise admitted.failed
            if key != current and current is not None and last is not None:
                self._close(last, current)
            if key != current and key is not None:
                if self._to_install is not None and self.switch is not None:
                    # the previous lift is closed: the recorder's names and version follow the new model
                    swap, self._to_install = self._to_install, None
                    self.switch.install(swap)
                self.tracker.reset()
                self.recorder.begin(frame.captured_at, self.stream())
                if self.view is not None:
                    self.view.begin()
                self._lift_began = admitted.taken_at
            current, last = key, frame
            if key is not None:
                self._analyse(admitted)
                if frame.ends_lift:
                    self._close(frame, key)
                    current, last = None, None
        except LiftNotKept:
            raise
        except Exception:  # the outermost loop: log, skip the frame, keep the truck running
            log.exception("frame %d failed; skipped", frame.index)
        return current, last

    def _analyse(self, admitted: _Admitted) -> None:
        frame = admitted.frame
        started = time.perf_counter()
        if admitted.detections is None:
            detections = (admitted.detect or self.detect)(frame.image)
        else:
            detections, inference_s = admitted.detections.result()
            started = time.perf_counter() - inference_s  # the worker's time, not this thread's wait
        detections = self.tracker.update(detections)
        self.meter.frame_done(time.perf_counter() - started)
        if self.meter.frames == 1:  # start-up ends here: bench/edge.py times process start to this line
            log.info("first frame analysed (%.0f ms)", self.meter.inference_ms)
        alerts = self.recorder.add(frame.image, detections)
        if self.view is not None:  # ~0.06 ms a frame (vision.view, bench/view.py), in this thread: frames in order
            self.view.add(frame.image)
        if alerts:
            self.on_alert(alerts)

    def _close(self, last: Frame, key: str) -> None:
        if not self.recorder.active:
            self.meter.pause()
            return
        try:
            self.deliver(last)  # the lift's last frame: its time, and where the source stands
        except Exception as error:
            raise LiftNotKept(f"lift ending at frame {last.index} could not be kept: {error}") from error
        self.meter.lift_done(self._lift_began)
