"""Tracker: gives each item in the hopper one id across the frames of a lift, so it is counted once.

Wraps Roboflow ``trackers``' ByteTrack (Apache-2.0, numpy + scipy, no torch): a maintained
implementation of the published algorithm rather than a home-made one. supervision, which used to
ship ByteTrack, moved it to this package. The association ignores classes on purpose: a detector
often hesitates between two labels for one item, and the lift recorder settles the label by a
majority vote over the track.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import supervision as sv
from trackers.core.bytetrack.tracker import ByteTrackTracker
from trackers.core.bytetrack.tracklet import ByteTrackTracklet

from vision.detection import Detections


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """ByteTrack's knobs, named for what they do in a hopper."""

    activation_conf: float = 0.35  # a detection this confident may start a new track
    # The first association round uses detections above this, and only those start tracks: above
    # activation_conf it would be the threshold that starts a track. It was 0.45 until 2026-12-05,
    # which made it so (bags counted 0.41 a lift short on val; docs/training.md, "Lift counting").
    high_conf: float = 0.35
    match_iou: float = 0.1  # minimum IoU between a track's prediction and a detection
    lost_frames: int = 15  # frames a track survives unseen (an item hidden under another)
    frame_rate: float = 10.0


class _ByteTrack(ByteTrackTracker):
    """ByteTrack that gives a new track its id on the frame that starts it.

    Upstream assigns ids from the second matched frame, so the first sighting of every item is
    returned with id -1. A burst camera shoots only a few frames per lift; losing one of them per
    item would make a three-frame burst useless. The minimum track length is applied later, by
    the lift recorder, where it is a documented setting.
    """

    def _spawn_new_tracks(  # type: ignore[override]
        self,
        detection_boxes: np.ndarray,
        confidences: np.ndarray,
        unmatched_high_local: list[int],
        high_indices: np.ndarray,
        out_det_indices: list[int],
        out_tracker_ids: list[int],
    ) -> None:
        for local in unmatched_high_local:
            index = int(high_indices[local])
            tracker_id = -1
            if float(confidences[index]) >= self.track_activation_threshold:
                tracklet = ByteTrackTracklet(
                    initial_bbox=detection_boxes[index], state_estimator_class=self.state_estimator_class
                )
                tracklet.tracker_id = tracker_id = self._allocate_tracker_id()
                self.tracks.append(tracklet)
            out_det_indices.append(index)
            out_tracker_ids.append(tracker_id)


class Tracker:
    """``update(detections) -> detections`` with ``tracker_id`` set (-1: too weak to track)."""

    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings or TrackerSettings()
        self._impl = self._build()

    def _build(self) -> _ByteTrack:
        s = self.settings
        return _ByteTrack(
            lost_track_buffer=max(0, round(s.lost_frames * 30.0 / s.frame_rate)),  # counted in 30 fps frames
            frame_rate=s.frame_rate,
            track_activation_threshold=s.activation_conf,
            minimum_consecutive_frames=1,
            minimum_iou_threshold=s.match_iou,
            high_conf_det_threshold=s.high_conf,
        )

    def reset(self) -> None:
        """Forget every track (a new lift starts; ids restart from 0)."""
        self._impl = self._build()

    def update(self, detections: Detections) -> Detections:
        if not len(detections):
            self._impl.update(sv.Detections.empty())  # ages the tracks: an empty frame is a frame
            return detections.with_tracker_ids(np.zeros(0, np.int64))
        inputs = sv.Detections(
            xyxy=detections.xyxy.astype(np.float32),
            confidence=detections.confidence,
            class_id=detections.class_id,
            data={"index": np.arange(len(detections))},
        )
        tracked = self._impl.update(inputs)
        # ByteTrack returns every input detection, possibly reordered; restore the input order.
        order = np.asarray(tracked.data["index"], dtype=np.int64)
        ids = np.full(len(detections), -1, np.int64)
        ids[order] = np.asarray(tracked.tracker_id, dtype=np.int64)
        return detections.with_tracker_ids(ids)
