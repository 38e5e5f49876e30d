"""The loop: only lift frames reach the detector, one delivery per lift, a failing frame is skipped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from edge.camera import Frame
from edge.pipeline import Pipeline
from vision.detection import Detections
from vision.lift import LiftContext, LiftRecorder
from vision.rules import SortingRules
from vision.schema import ModelInfo, Stream
from vision.tracking import Tracker

T0 = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


class KeyedTrigger:
    """Lift keys scripted per frame index."""

    def __init__(self, keys: list[str | None]) -> None:
        self.keys = keys

    def lift_of(self, frame: Frame) -> str | None:
        return self.keys[frame.index]

    def close(self) -> None:
        pass


def run(keys: list[str | None], fail_on: set[int] = frozenset()) -> tuple[list, list[int], Pipeline]:
    recorder = LiftRecorder(("bottle", "battery"), SortingRules.load(), ModelInfo(name="m", version="1"), 1)
    detected: list[int] = []
    delivered: list = []

    def detect(image: np.ndarray) -> Detections:
        index = int(image[0, 0, 0])
        detected.append(index)
        if index in fail_on:
            raise ValueError("corrupt frame")
        return Detections.from_rows([(10, 10, 50, 50, 0.9, 0)])

    def deliver(last: Frame) -> None:
        delivered.append((recorder.finish(last.captured_at, LiftContext("T", len(delivered))).event, last.index))

    pipeline = Pipeline(detect, Tracker(), recorder, KeyedTrigger(keys), deliver, lambda _a: None,
                        lambda: Stream.recyclables)
    frames = [Frame(np.full((60, 60, 3), i, np.uint8), T0 + timedelta(seconds=i), i) for i in range(len(keys))]
    assert pipeline.run(frames) == len(delivered)
    return delivered, detected, pipeline


def test_only_lift_frames_are_detected_and_each_lift_delivered_once() -> None:
    delivered, detected, pipeline = run([None, "a", "a", None, None, "b", "c", "c"])
    assert detected == [1, 2, 5, 6, 7]
    events = [event for event, _key in delivered]
    assert [e.frames for e in events] == [2, 1, 2]
    assert (events[0].started_at, events[0].ended_at) == (T0 + timedelta(seconds=1), T0 + timedelta(seconds=2))
    assert all(e.counts == {"bottle": 1} for e in events)
    assert pipeline.meter.frames == 5 and pipeline.meter.lifts == 3


@pytest.mark.parametrize("fail_on", [{2}, {1, 2}])
def test_a_failing_frame_is_skipped_not_fatal(fail_on: set[int]) -> None:
    delivered, _detected, _pipeline = run([None, "a", "a", "a", None, "b"], fail_on=fail_on)
    assert len(delivered) == 2
    assert delivered[0][0].frames == 3 - len(fail_on)
