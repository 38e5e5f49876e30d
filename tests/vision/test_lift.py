"""LiftRecorder: one item per track, majority label, minimum track length, rules verdict, evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest

from vision.detection import Detections
from vision.lift import LiftContext, LiftRecorder, sharpness
from vision.rules import SortingRules
from vision.schema import ModelInfo, Stream, parse_lift_event

NAMES = ("bottle", "glass", "battery", "bag")
T0 = datetime(2026, 11, 25, 7, 30, tzinfo=UTC)
CTX = LiftContext(truck_id="truck-7", sequence=4)


def tracked(*rows: tuple[int, int, float]) -> Detections:
    """(track id, class id, confidence) rows with distinct boxes."""
    if not rows:
        return Detections.empty().with_tracker_ids(np.zeros(0, np.int64))
    boxes = [(10 + 50 * i, 10, 40 + 50 * i, 40, conf, cls) for i, (_t, cls, conf) in enumerate(rows)]
    return Detections.from_rows(boxes).with_tracker_ids(np.array([t for t, _c, _f in rows]))


def image(seed: int = 0, blur: int = 0) -> np.ndarray:
    img = np.random.default_rng(seed).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    return cv2.GaussianBlur(img, (0, 0), blur) if blur else img


def record(frames: list[Detections], stream: Stream = Stream.recyclables, min_track: int = 2):
    recorder = LiftRecorder(NAMES, SortingRules.load(), ModelInfo(name="m", version="1"), min_track)
    recorder.begin(T0, stream)
    alerts = [recorder.add(image(i, blur=3 if i else 0), dets) for i, dets in enumerate(frames)]
    return recorder.finish(T0 + timedelta(seconds=4), CTX), alerts


@pytest.mark.parametrize(
    ("frames", "min_track", "counts"),
    [
        # one bottle seen in three frames is one bottle
        ([tracked((0, 0, 0.9))] * 3, 2, {"bottle": 1}),
        # label by confidence-weighted majority: bottle twice beats glass once
        ([tracked((0, 0, 0.8)), tracked((0, 1, 0.6)), tracked((0, 0, 0.7))], 2, {"bottle": 1}),
        # a track seen once among three frames is a flicker
        ([tracked((0, 0, 0.9), (1, 3, 0.9)), tracked((0, 0, 0.9)), tracked((0, 0, 0.9))], 2, {"bottle": 1}),
        # ... unless the lift is a one-frame burst
        ([tracked((0, 0, 0.9), (1, 3, 0.9))], 2, {"bottle": 1, "bag": 1}),
        # untracked detections (-1) are not items
        ([tracked((-1, 2, 0.3))] * 3, 1, {}),
        ([tracked()] * 2, 2, {}),
    ],
)
def test_counts(frames: list[Detections], min_track: int, counts: dict[str, int]) -> None:
    lift, _ = record(frames, min_track=min_track)
    assert lift.event.counts == counts
    assert lift.event.frames == len(frames)


def test_verdict_event_and_evidence() -> None:
    frames = [tracked((0, 0, 0.9), (1, 2, 0.9), (2, 1, 0.8))] * 3
    lift, alerts = record(frames, Stream.recyclables)
    event = parse_lift_event(lift.event.to_json())  # valid on the wire
    assert event.counts == {"bottle": 1, "battery": 1, "glass": 1}
    assert event.contaminated and event.has_alert
    assert event.score == 4.0  # battery 3 + glass 1
    assert (event.truck_id, event.sequence, event.stream) == ("truck-7", 4, Stream.recyclables)
    assert alerts == [("battery",), (), ()]  # once per track, on its first frame
    assert lift.evidence is not None
    # every item on the frame travels with the photo (labelling needs the accepted ones too)
    assert sorted(NAMES[c] for c in lift.evidence.detections.class_id) == ["battery", "bottle", "glass"]
    np.testing.assert_array_equal(lift.evidence.image, image(0))  # the sharp frame, not the blurred ones
    assert lift.item_confidences == pytest.approx((0.9, 0.9, 0.8))


def test_clean_lift_has_a_best_frame_too() -> None:
    # the truck may keep it as a sample; the frame with most wrong items, then most items, wins
    frames = [tracked((0, 0, 0.9)), tracked((0, 0, 0.9), (1, 0, 0.4)), tracked((0, 0, 0.9))]
    lift, _ = record(frames)
    assert not lift.event.contaminated and lift.event.score == 0
    assert lift.evidence is not None and len(lift.evidence.detections) == 2
    np.testing.assert_array_equal(lift.evidence.image, image(1, blur=3))
    assert lift.item_confidences == pytest.approx((0.9,))  # items only: the one-frame track is a flicker


def test_wrong_items_beat_more_items() -> None:
    frames = [tracked((0, 0, 0.9), (1, 0, 0.9), (2, 0, 0.9)), tracked((3, 2, 0.9))]
    lift, _ = record(frames, min_track=1)
    assert [NAMES[c] for c in lift.evidence.detections.class_id] == ["battery"]


def test_an_empty_lift_keeps_its_first_frame() -> None:
    lift, _ = record([tracked(), tracked()])
    assert lift.evidence is not None and len(lift.evidence.detections) == 0 and lift.item_confidences == ()


def test_sharpness_ranks_blur_lower() -> None:
    assert sharpness(image(1)) > sharpness(image(1, blur=2)) > sharpness(image(1, blur=6))


def test_add_outside_lift_is_refused() -> None:
    recorder = LiftRecorder(NAMES, SortingRules.load(), ModelInfo(name="m", version="1"))
    with pytest.raises(RuntimeError, match="begin"):
        recorder.add(image(), tracked())
