"""Evidence photos of contaminated lifts: privacy first, then small, then annotated.

Order matters: downscale (cheaper blur, smaller file), hide everything outside the hopper polygon
(pavement, people, number plates never leave the truck recognisable), then draw the wrong items'
boxes on that copy so the boxes stay crisp. A copy is kept on the device for ``retention_days``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.config import EvidenceSettings
from vision.annotate import draw
from vision.detection import Detections
from vision.lift import EvidenceFrame
from vision.region import Region
from vision.schema import Evidence

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True, slots=True)
class Photo:
    jpeg: bytes
    evidence: Evidence


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    scale = min(1.0, max_side / max(image.shape[:2]))
    if scale < 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return image, scale


def hide_outside(image: np.ndarray, region: Region, mode: str) -> np.ndarray:
    """Blur (strongly: faces must not be recognisable) or black out everything outside ``region``."""
    height, width = image.shape[:2]
    inside = region.mask(width, height)[:, :, None] > 0
    if mode == "black":
        hidden = np.zeros_like(image)
    else:
        sigma = max(width, height) / 40
        hidden = cv2.GaussianBlur(cv2.resize(image, None, fx=0.25, fy=0.25), (0, 0), sigma / 4)
        hidden = cv2.resize(hidden, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.where(inside, image, hidden)


def _scaled(detections: Detections, scale: float) -> Detections:
    return Detections(detections.xyxy * scale, detections.confidence, detections.class_id, detections.tracker_id)


class EvidenceStore:
    """Renders evidence photos and keeps local copies for a limited time."""

    def __init__(self, settings: EvidenceSettings, region: Region, names: tuple[str, ...]) -> None:
        self.settings, self.region, self.names = settings, region, names
        self.settings.dir.mkdir(parents=True, exist_ok=True)
        self._pruned_at = float("-inf")

    def render(self, frame: EvidenceFrame, severity_of: dict[str, str]) -> Photo:
        image, scale = downscale(frame.image, self.settings.max_side)
        image = hide_outside(image, self.region, self.settings.outside)
        image = draw(image, _scaled(frame.detections, scale), self.names, severity_of)
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.settings.jpeg_quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        jpeg = buffer.tobytes()
        evidence = Evidence(sha256=hashlib.sha256(jpeg).hexdigest(), width=image.shape[1], height=image.shape[0])
        return Photo(jpeg, evidence)

    def keep(self, event_id: str, photo: Photo) -> Path:
        """Local copy under ``<dir>/<YYYY-MM-DD>/<event_id>.jpg``."""
        folder = self.settings.dir / time.strftime("%Y-%m-%d", time.gmtime())
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{event_id}.jpg"
        path.write_bytes(photo.jpeg)
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:  # trucks run for weeks without a restart
            self.prune()
        return path

    def prune(self, now: float | None = None) -> int:
        """Delete local photos older than the retention period; returns how many."""
        self._pruned_at = time.monotonic()
        limit = (now or time.time()) - self.settings.retention_days * 86_400
        removed = 0
        for path in self.settings.dir.glob("*/*.jpg"):
            if path.stat().st_mtime < limit:
                path.unlink(missing_ok=True)
                removed += 1
        for folder in self.settings.dir.iterdir():
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if removed:
            log.info("deleted %d evidence photo(s) older than %d days", removed, self.settings.retention_days)
        return removed
