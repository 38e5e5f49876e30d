"""A new model runs from the start of a lift, never in its middle, with one or two detector workers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from edge.camera import Frame
from edge.pipeline import Pipeline
from tests.edge.test_pipeline import T0, KeyedTrigger
from vision.detection import Detections
from vision.lift import LiftContext, LiftRecorder
from vision.rules import SortingRules
from vision.schema import ModelInfo, Stream
from vision.tracking import Tracker


@dataclass
class Model:
    """A detector that writes down which frames it saw; ``info`` is what lifts name."""

    version: str
    seen: list[int] = field(default_factory=list)

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(name="m", version=self.version)

    @property
    def detector(self) -> Model:
        return self

    def detect(self, image: np.ndarray) -> Detections:
        self.seen.append(int(image[0, 0, 0]))
        return Detections.from_rows([(10, 10, 50, 50, 0.9, 0)])


class Switch:
    """``take`` hands over what the test staged; ``install`` makes lifts name the new model."""

    def __init__(self, recorder: LiftRecorder) -> None:
        self.recorder, self.staged = recorder, None

    def take(self) -> Any:
        staged, self.staged = self.staged, None
        return staged

    def install(self, model: Model) -> None:
        self.recorder.model = model.info


@pytest.mark.parametrize("workers", [1, 2])
def test_a_model_staged_mid_lift_runs_from_the_next_lift(workers: int) -> None:
    old, new = Model("old"), Model("new")
    recorder = LiftRecorder(("bottle",), SortingRules.load(), old.info, 1)
    switch = Switch(recorder)
    keys = ["a", "a", "a", "a", None, "b", "b", "c"]
    delivered: list[str] = []

    def deliver(last: Frame) -> None:
        delivered.append(recorder.finish(last.captured_at, LiftContext("T", len(delivered))).event.model.version)

    def detect(image: np.ndarray) -> Detections:
        # The update thread finishes while lift "a" is in progress (its first frame: with two workers,
        # frame 0 is surely analysed before lift "b" comes in; a later frame might not be).
        if int(image[0, 0, 0]) == 0:
            switch.staged = new
        return old.detect(image)

    pipeline = Pipeline(detect, Tracker(), recorder, KeyedTrigger(keys), deliver, lambda _a: None,
                        lambda: Stream.recyclables, workers, switch=switch)
    frames = [Frame(np.full((60, 60, 3), i, np.uint8), T0 + timedelta(seconds=i), i) for i in range(len(keys))]

    def source() -> Iterator[Frame]:
        yield from frames

    assert pipeline.run(source()) == 3
    assert sorted(old.seen) == [0, 1, 2, 3]  # every frame of lift "a", though staged at its first
    assert sorted(new.seen) == [5, 6, 7]
    assert delivered == ["old", "new", "new"]
