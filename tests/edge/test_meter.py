"""The heartbeat's frames/s: what the loop analyses per second while a lift is in view."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from edge.camera import Frame
from edge.pipeline import Meter, Pipeline
from edge.prefetch import prefetch
from vision.detection import Detections
from vision.lift import LiftContext, LiftRecorder
from vision.rules import SortingRules
from vision.schema import ModelInfo, Stream
from vision.tracking import Tracker

T0 = datetime(2026, 12, 6, 6, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_streaming_camera_reads_its_own_rate() -> None:
    """12.5 frames/s for 3 s a lift, each frame analysed 40 ms after it came: ~12.5 (its last
    frame's 40 ms are the only excess)."""
    clock = Clock()
    meter = Meter(clock=clock)
    for _ in range(5):
        began = clock.now
        for i in range(38):
            clock.now = began + i * 0.08 + 0.04
            meter.frame_done(0.04)
        meter.lift_done(began)
        clock.now += 20.0  # the truck drives to the next bin
    assert meter.lifts == 5
    assert meter.fps == pytest.approx(12.5, rel=0.02)
    assert meter.inference_ms == pytest.approx(40.0)


def test_two_workers_finishing_together_are_not_free() -> None:
    """A burst of 3 stills read at once, two workers of 25 ms: frames 1 and 2 come back together,
    frame 3 25 ms later; 3 frames in 50 ms are 60 frames/s. One over the mean time between two
    frames handed back read 80 (the pair's second frame counted as taking no time)."""
    clock = Clock()
    meter = Meter(clock=clock)
    for _ in range(10):
        began = clock.now
        for done in (0.025, 0.0251, 0.050):
            clock.now = began + done
            meter.frame_done(0.025)
        meter.lift_done(began)
        clock.now += 2.0
    assert meter.fps == pytest.approx(60.0, rel=0.01)


def test_overlapping_lifts_share_their_time() -> None:
    """Bursts back to back: the next lift's frames are taken while the previous one is finished.
    Each second counts once: 6 frames every 100 ms are 60 frames/s, not the 6 / 0.15 s = 40 of
    two lifts' times added."""
    clock = Clock()
    meter = Meter(clock=clock)
    start = clock.now
    for k in range(20):
        began = start + k * 0.1 - 0.05 if k else start  # taken 50 ms before the previous lift ends
        for j in range(6):
            clock.now = start + k * 0.1 + (j + 1) * 0.1 / 6
            meter.frame_done(0.01)
        meter.lift_done(began)
    assert meter.fps == pytest.approx(60.0, rel=0.02)


def test_no_rate_before_a_lift_is_delivered() -> None:
    clock = Clock()
    meter = Meter(clock=clock)
    clock.now += 0.04
    meter.frame_done(0.04)
    assert meter.fps is None and meter.frames == 1
    meter.pause()  # a lift closed without a delivery: its frame counts nowhere
    meter.lift_done(clock.now)
    assert meter.fps is None


def test_the_loop_with_two_workers_reads_no_more_than_it_can_do() -> None:
    """The real loop, two workers, a 30 ms detector, bursts of 3 frames read at once: whatever the
    machine's load, 3 frames need two rounds of the workers, so at most 3 / 60 ms = 50 frames/s.
    One over the mean time between two frames handed back read ~66 here (frames 1 and 2 come back
    together)."""
    detect_s = 0.03
    recorder = LiftRecorder(("bottle",), SortingRules.load(), ModelInfo(name="m", version="1"), 1)

    def detect(_image: np.ndarray) -> Detections:
        time.sleep(detect_s)  # releases the GIL, as onnxruntime does
        return Detections.from_rows([(10, 10, 50, 50, 0.9, 0)])

    def deliver(last: Frame) -> None:
        recorder.finish(last.captured_at, LiftContext("T", last.index))

    keys = [f"lift-{i // 3}" for i in range(24)]

    class Trigger:
        def lift_of(self, frame: Frame) -> str | None:
            return keys[frame.index]

        def close(self) -> None:
            pass

    def source() -> Iterator[Frame]:
        for i in range(len(keys)):
            if i and i % 3 == 0:
                time.sleep(0.1)  # the next bin
            yield Frame(np.zeros((60, 60, 3), np.uint8), T0 + timedelta(seconds=i), i, ends_lift=i % 3 == 2)

    pipeline = Pipeline(
        detect, Tracker(), recorder, Trigger(), deliver, lambda _a: None, lambda: Stream.recyclables, workers=2
    )
    assert pipeline.run(prefetch(source())) == 8  # as the agent reads a burst folder
    assert pipeline.meter.fps is not None
    assert 5 < pipeline.meter.fps <= 3 / (2 * detect_s) * 1.001
