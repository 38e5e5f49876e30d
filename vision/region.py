"""The hopper region of interest: a polygon in normalised image coordinates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class Region:
    """A polygon with vertices in 0..1 image coordinates, so it survives a change of resolution.

    Used twice: detections whose centre lies outside are not items in the hopper (a passer-by's
    bag on the pavement), and evidence photos are blurred outside it (faces, number plates).
    """

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.points) < 3:
            raise ValueError(f"hopper polygon needs at least 3 points, got {len(self.points)}")
        for x, y in self.points:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"hopper polygon point ({x}, {y}) is outside 0..1 image coordinates")

    @classmethod
    def from_points(cls, points: Sequence[Sequence[float]]) -> Region:
        return cls(tuple((float(p[0]), float(p[1])) for p in points))

    def pixels(self, width: int, height: int) -> np.ndarray:
        return np.array([(x * width, y * height) for x, y in self.points], dtype=np.float32)

    def contains(self, xy: np.ndarray, width: int, height: int) -> np.ndarray:
        """Boolean mask of which (N, 2) pixel points lie inside (even-odd ray casting)."""
        poly = self.pixels(width, height)
        x, y = xy[:, 0:1], xy[:, 1:2]
        x1, y1 = poly[:, 0], poly[:, 1]
        x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        return np.count_nonzero(crosses & (x < x_at), axis=1) % 2 == 1

    def mask(self, width: int, height: int) -> np.ndarray:
        """uint8 mask (255 inside) of the frame size."""
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [np.round(self.pixels(width, height)).astype(np.int32)], 255)
        return mask
