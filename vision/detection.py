"""Detections: the one value type that flows from detector to tracker to lift recorder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True, slots=True)
class Detections:
    """A batch of boxes for one frame, in original-image pixel coordinates.

    Arrays share one length N; ``tracker_id`` is filled by the tracker (-1 = not tracked).
    Validation happens here, once, so every stage can trust the shapes.
    """

    xyxy: np.ndarray  # (N, 4) float32: x1, y1, x2, y2
    confidence: np.ndarray  # (N,) float32
    class_id: np.ndarray  # (N,) int32
    tracker_id: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ValueError(f"xyxy: expected shape (_, 4), got {self.xyxy.shape}")
        if self.confidence.shape != (n,):
            raise ValueError(f"confidence: expected shape ({n},), got {self.confidence.shape}")
        if self.class_id.shape != (n,):
            raise ValueError(f"class_id: expected shape ({n},), got {self.class_id.shape}")
        if self.tracker_id.size and self.tracker_id.shape != (n,):
            raise ValueError(f"tracker_id: expected shape ({n},), got {self.tracker_id.shape}")

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[float, float, float, float, float, int]]) -> Detections:
        """Build from ``(x1, y1, x2, y2, confidence, class_id)`` rows (tests, scripted sources)."""
        if not rows:
            return cls.empty()
        array = np.asarray(rows, dtype=np.float32)
        return cls(array[:, :4].copy(), array[:, 4].copy(), array[:, 5].astype(np.int32))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: np.ndarray | slice) -> Detections:
        return Detections(
            self.xyxy[index],
            self.confidence[index],
            self.class_id[index],
            self.tracker_id[index] if self.tracker_id.size else self.tracker_id,
        )

    def with_tracker_ids(self, tracker_id: np.ndarray) -> Detections:
        return replace(self, tracker_id=np.asarray(tracker_id, dtype=np.int64))

    @property
    def area(self) -> np.ndarray:
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes -> (N, M)."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
