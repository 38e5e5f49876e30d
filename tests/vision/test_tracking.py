"""Tracker: the same item keeps its id across frames; distinct items get distinct ids."""

from __future__ import annotations

import numpy as np
import pytest

from vision.detection import Detections
from vision.tracking import Tracker


def frame(*boxes: tuple[float, float, float, float, float, int]) -> Detections:
    return Detections.from_rows(list(boxes))


def moving(step: int, x: float, y: float, conf: float = 0.9, cls: int = 0) -> tuple:
    return (x + 8 * step, y + 5 * step, x + 8 * step + 60, y + 5 * step + 80, conf, cls)


def test_item_keeps_its_id_from_the_first_frame() -> None:
    tracker = Tracker()
    ids = [tracker.update(frame(moving(step, 100, 100))).tracker_id for step in range(6)]
    assert all(len(i) == 1 for i in ids)
    assert {int(i[0]) for i in ids} == {int(ids[0][0])}
    assert ids[0][0] >= 0  # counted from its first sighting, not from the second frame


def test_two_items_two_ids_in_input_order() -> None:
    tracker = Tracker()
    seen = []
    for step in range(5):
        dets = frame(moving(step, 400, 50, cls=3), moving(step, 50, 300, cls=1))
        out = tracker.update(dets)
        np.testing.assert_array_equal(out.class_id, dets.class_id)  # order preserved
        seen.append(tuple(int(t) for t in out.tracker_id))
    assert len(set(seen)) == 1 and len(set(seen[0])) == 2


def test_class_flicker_does_not_split_the_track() -> None:
    tracker = Tracker()
    ids = {int(tracker.update(frame(moving(s, 100, 100, cls=s % 2))).tracker_id[0]) for s in range(6)}
    assert len(ids) == 1


@pytest.mark.parametrize(("conf", "tracked"), [(0.2, False), (0.34, False), (0.36, True), (0.4, True), (0.9, True)])
def test_detections_start_tracks_from_activation_conf(conf: float, tracked: bool) -> None:
    """The default settings start a track at activation_conf, not above it: with ByteTrack's high_conf
    at 0.45 a 0.4 bag never became an item (bags counted 0.41 a lift short)."""
    out = Tracker().update(frame(moving(0, 10, 10, conf=conf)))
    assert bool(out.tracker_id[0] >= 0) == tracked


def test_a_weak_detection_extends_a_track_it_could_not_start() -> None:
    """ByteTrack's second round: below high_conf a detection keeps an item's track alive."""
    tracker = Tracker()
    first = tracker.update(frame(moving(0, 10, 10, conf=0.9))).tracker_id[0]
    assert [int(tracker.update(frame(moving(s, 10, 10, conf=0.3))).tracker_id[0]) for s in (1, 2)] == [first] * 2


def test_empty_frames_and_reset() -> None:
    tracker = Tracker()
    first = tracker.update(frame(moving(0, 10, 10))).tracker_id[0]
    assert len(tracker.update(Detections.empty())) == 0
    tracker.reset()
    assert tracker.update(frame(moving(0, 300, 300))).tracker_id[0] == first  # ids restart per lift
