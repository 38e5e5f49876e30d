"""The loop: only lift frames reach the detector, one delivery per lift, a failing frame is skipped;
the same with several detector workers; a stop finishes the lift."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from edge.camera import Frame
from edge.pipeline import Pipeline
from edge.prefetch import prefetch
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


def run(keys: list[str | None], fail_on: set[int] = frozenset(), workers: int = 1,
        stop_at: int | None = None) -> tuple[list, list[int], Pipeline]:
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
                        lambda: Stream.recyclables, workers)
    frames = [Frame(np.full((60, 60, 3), i, np.uint8), T0 + timedelta(seconds=i), i) for i in range(len(keys))]

    def source() -> Iterator[Frame]:
        for frame in frames:
            if frame.index == stop_at:  # SIGTERM while the loop waits for this frame
                pipeline.request_stop()
            yield frame

    assert pipeline.run(source()) == len(delivered)
    return delivered, detected, pipeline


@pytest.mark.parametrize("workers", [1, 2])
def test_only_lift_frames_are_detected_and_each_lift_delivered_once(workers: int) -> None:
    delivered, detected, pipeline = run([None, "a", "a", None, None, "b", "c", "c"], workers=workers)
    assert sorted(detected) == [1, 2, 5, 6, 7]  # pipelined, workers may start them in any order
    events = [event for event, _key in delivered]
    assert [e.frames for e in events] == [2, 1, 2]
    assert (events[0].started_at, events[0].ended_at) == (T0 + timedelta(seconds=1), T0 + timedelta(seconds=2))
    assert all(e.counts == {"bottle": 1} for e in events)
    assert pipeline.meter.frames == 5 and pipeline.meter.lifts == 3


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("fail_on", [{2}, {1, 2}])
def test_a_failing_frame_is_skipped_not_fatal(fail_on: set[int], workers: int) -> None:
    delivered, _detected, _pipeline = run([None, "a", "a", "a", None, "b"], fail_on=fail_on, workers=workers)
    assert len(delivered) == 2
    assert delivered[0][0].frames == 3 - len(fail_on)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_a_stop_finishes_the_lift_with_every_frame_taken(workers: int) -> None:
    keys = ["a", "a", "a", "a", "b", "b"]
    delivered, detected, _pipeline = run(keys, workers=workers, stop_at=3)
    assert sorted(detected) == [0, 1, 2]  # frame 3 was never taken: the stop broke the wait for it
    assert [(event.frames, index) for event, index in delivered] == [(3, 2)]


def test_frames_in_flight_are_analysed_before_the_source_waits() -> None:
    """Pipelined, a lift's last frames (and their alerts) never wait for the next lift's frames."""
    recorder = LiftRecorder(("bottle", "battery"), SortingRules.load(), ModelInfo(name="m", version="1"), 1)
    pipeline = Pipeline(lambda _image: Detections.from_rows([(10, 10, 50, 50, 0.9, 0)]), Tracker(), recorder,
                        KeyedTrigger(["a"] * 4 + ["b"]), lambda _last: None, lambda _a: None,
                        lambda: Stream.recyclables, workers=2)
    quiet = threading.Event()

    def burst_then_quiet() -> Iterator[Frame]:
        for i in range(5):
            if i == 4:
                quiet.wait(10)  # a burst folder with nothing new yet
            yield Frame(np.zeros((60, 60, 3), np.uint8), T0 + timedelta(seconds=i), i, burst="a" if i < 4 else "b")

    before = set(threading.enumerate())  # other tests' readers, still on a source that never yields
    loop = threading.Thread(target=pipeline.run, args=(prefetch(burst_then_quiet()),))
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while pipeline.meter.frames < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pipeline.meter.frames == 4
    finally:
        quiet.set()
        loop.join(10)
    assert pipeline.meter.frames == 5 and pipeline.meter.lifts == 2
    assert not [t.name for t in set(threading.enumerate()) - before if t.name.startswith(("detect", "frame-prefetch"))]


def test_a_lift_the_outbox_cannot_keep_stops_the_loop() -> None:
    """A full disk made every lift's delivery fail, each skipped like a bad frame: the truck read on
    and dropped lift after lift. Now the loop stops at the first (and the agent says why)."""
    from edge.pipeline import LiftNotKept

    recorder = LiftRecorder(("bottle", "battery"), SortingRules.load(), ModelInfo(name="m", version="1"), 1)
    taken: list[int] = []

    def deliver(_last: Frame) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    pipeline = Pipeline(lambda _image: Detections.from_rows([(10, 10, 50, 50, 0.9, 0)]), Tracker(), recorder,
                        KeyedTrigger(["a", "a", "b", "b", "c"]), deliver, lambda _a: None,
                        lambda: Stream.recyclables, 1)

    def source() -> Iterator[Frame]:
        for i in range(5):
            taken.append(i)
            yield Frame(np.full((60, 60, 3), i, np.uint8), T0 + timedelta(seconds=i), i)

    with pytest.raises(LiftNotKept, match="lift ending at frame 1 could not be kept: database or disk is full"):
        pipeline.run(source())
    assert taken == [0, 1, 2]  # stopped at the first lift it could not keep


@pytest.mark.parametrize("workers", [1, 2])
def test_a_lift_the_source_says_is_complete_is_delivered_before_the_next_frame(workers: int) -> None:
    """A burst folder's last photo ends its lift: the round's last lift used to wait for the next
    burst (hours on a real round) or the agent's stop."""
    recorder = LiftRecorder(("bottle", "battery"), SortingRules.load(), ModelInfo(name="m", version="1"), 1)
    delivered: list[int] = []
    asked_with: list[int] = []  # lifts delivered when the loop asked the source for each frame

    def deliver(last: Frame) -> None:
        recorder.finish(last.captured_at, LiftContext("T", len(delivered)))
        delivered.append(last.index)

    pipeline = Pipeline(lambda _image: Detections.from_rows([(10, 10, 50, 50, 0.9, 0)]), Tracker(), recorder,
                        KeyedTrigger(["a", "a", "b"]), deliver, lambda _a: None, lambda: Stream.recyclables,
                        workers)

    class Quiet:
        """A burst source: the first burst, then nothing ready for a while (``ready``: the folder is quiet)."""

        def __init__(self) -> None:
            self.frames = [Frame(np.full((60, 60, 3), i, np.uint8), T0 + timedelta(seconds=i), i, "a" if i < 2 else "b",
                                 ends_lift=i in (1, 2)) for i in range(3)]

        def __iter__(self) -> Quiet:
            return self

        def __next__(self) -> Frame:
            asked_with.append(len(delivered))
            if not self.frames:
                raise StopIteration
            return self.frames.pop(0)

        def ready(self) -> bool:
            return bool(self.frames) and self.frames[0].index != 2  # burst b is not there yet

    assert pipeline.run(Quiet()) == 2
    assert delivered == [1, 2]
    assert asked_with[2] == 1  # burst a's lift was delivered before the loop waited for burst b
