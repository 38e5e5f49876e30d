"""LiftRecorder: one item per track, majority label, minimum track length, rules verdict, evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest

from vision.detection import Detections
from vision.lift import LiftContext, LiftRecorder, PhotoPolicy, sharpness
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
    assert lift.reason == "contaminated"


def record_with(frames: list[Detections], photos: PhotoPolicy, min_track: int = 2):
    recorder = LiftRecorder(NAMES, SortingRules.load(), ModelInfo(name="m", version="1"), min_track, photos)
    recorder.begin(T0, Stream.recyclables)
    for i, dets in enumerate(frames):
        recorder.add(image(i, blur=3 if i else 0), dets)
    return recorder.finish(T0 + timedelta(seconds=4), CTX)


SAMPLED = PhotoPolicy(sample_rate=0.02, draw=lambda: 0.01)  # drawn: 0.01 < 0.02
NOT_SAMPLED = PhotoPolicy(sample_rate=0.02, draw=lambda: 0.5)
UNSURE = PhotoPolicy(uncertain=(0.25, 0.5))


@pytest.mark.parametrize(("photos", "frames", "reason"), [
    (PhotoPolicy(), [tracked((0, 0, 0.9))] * 2, None),  # the default: contaminated lifts only
    (NOT_SAMPLED, [tracked((0, 0, 0.9))] * 2, None),
    (SAMPLED, [tracked((0, 0, 0.9))] * 2, "sample"),
    (UNSURE, [tracked((0, 0, 0.9))] * 2, None),
    (UNSURE, [tracked((0, 0, 0.4))] * 2, "uncertain"),
    # an item unsure in one frame but sure at its best is not uncertain
    (UNSURE, [tracked((0, 0, 0.4)), tracked((0, 0, 0.7))], None),
    # a one-frame flicker in the band is not an item
    (UNSURE, [tracked((0, 0, 0.9)), tracked((0, 0, 0.9), (1, 0, 0.3)), tracked((0, 0, 0.9))], None),
    # a detection in the band that never became a track (below activation_conf), seen in two frames
    (UNSURE, [tracked((0, 0, 0.9), (-1, 3, 0.3))] * 2, "uncertain"),
    # ... in one frame only: a flicker
    (UNSURE, [tracked((0, 0, 0.9), (-1, 3, 0.3)), tracked((0, 0, 0.9))], None),
    # contaminated wins over both
    (SAMPLED, [tracked((0, 3, 0.4))] * 2, "contaminated"),
])
def test_which_clean_lifts_keep_a_photo(photos: PhotoPolicy, frames: list[Detections], reason: str | None) -> None:
    lift = record_with(frames, photos)
    assert lift.reason == reason
    assert (lift.evidence is not None) == (reason is not None)


def test_a_kept_clean_lift_shows_its_best_frame_with_every_box() -> None:
    frames = [tracked((0, 0, 0.9)), tracked((0, 0, 0.9), (1, 0, 0.9)), tracked((0, 0, 0.9), (1, 0, 0.9))]
    lift = record_with(frames, SAMPLED)
    assert len(lift.evidence.detections) == 2
    np.testing.assert_array_equal(lift.evidence.image, image(1, blur=3))  # most items; then the sharper one


def test_an_uncertain_photo_shows_the_hesitant_detection() -> None:
    lift = record_with([tracked((0, 0, 0.9), (-1, 3, 0.3), (-1, 1, 0.1))] * 2, UNSURE)
    assert lift.reason == "uncertain"
    assert sorted(NAMES[c] for c in lift.evidence.detections.class_id) == ["bag", "bottle"]  # not the 0.1 glass


def test_wrong_items_beat_more_items() -> None:
    frames = [tracked((0, 0, 0.9), (1, 0, 0.9), (2, 0, 0.9)), tracked((3, 2, 0.9))]
    lift, _ = record(frames, min_track=1)
    assert [NAMES[c] for c in lift.evidence.detections.class_id] == ["battery"]


def test_an_empty_sampled_lift_keeps_its_first_frame() -> None:
    lift = record_with([tracked(), tracked()], SAMPLED)
    assert lift.reason == "sample" and len(lift.evidence.detections) == 0


def test_sharpness_ranks_blur_lower() -> None:
    assert sharpness(image(1)) > sharpness(image(1, blur=2)) > sharpness(image(1, blur=6))


def test_add_outside_lift_is_refused() -> None:
    recorder = LiftRecorder(NAMES, SortingRules.load(), ModelInfo(name="m", version="1"))
    with pytest.raises(RuntimeError, match="begin"):
        recorder.add(image(), tracked())


def test_the_lift_counts_what_its_errors_name_whatever_the_aliases() -> None:
    """An alias onto a class that is itself aliased (a deployment's copy of the rules): the counts were
    merged once and the rules merged them again, so an error item could count more items than the
    lift's counts, which the reader refuses (and the truck stopped on the refusal). One merge now."""
    from vision.rules import RulesFile

    spec = RulesFile.model_validate({
        "name": "alias onto an alias", "aliases": {"glass": "bag", "bottle": "glass"},
        "classes": {name: {"label": name, "category": name} for name in NAMES},
        "streams": {"recyclables": {"label": "bac jaune", "accepted": ["bottle"], "error": ["glass", "bag"],
                                    "alert": ["battery"]}}})
    recorder = LiftRecorder(NAMES, SortingRules(spec), ModelInfo(name="m", version="1"), 1)
    recorder.begin(T0, Stream.recyclables)
    recorder.add(image(), tracked((0, 0, 0.9), (1, 1, 0.9)))  # a bottle (read as glass) and a glass (as a bag)
    event = recorder.finish(T0 + timedelta(seconds=4), CTX).event
    assert event.counts == {"glass": 1, "bag": 1}
    assert {e.class_: e.count for e in event.errors} == event.counts
    assert parse_lift_event(event.to_json()) == event
