"""Drawing detections on a copy of a frame (``trivue detect --save``, evidence photos, demo)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vision.detection import Detections

# BGR colours by severity; ``None`` (accepted or unjudged) draws in green
COLOURS = {"alert": (0, 0, 255), "error": (0, 140, 255), "info": (255, 160, 0), None: (60, 180, 75)}


def draw(
    image: np.ndarray,
    detections: Detections,
    names: Sequence[str],
    severity_of: dict[str, str] | None = None,
) -> np.ndarray:
    """Return a copy of ``image`` with labelled boxes; ``severity_of`` colours wrong items."""
    canvas = image.copy()
    thickness = max(1, round(min(canvas.shape[:2]) / 300))
    scale = max(0.4, min(canvas.shape[:2]) / 900)
    for box, conf, cls in zip(detections.xyxy, detections.confidence, detections.class_id, strict=True):
        name = names[int(cls)] if 0 <= int(cls) < len(names) else str(int(cls))
        colour = COLOURS.get((severity_of or {}).get(name), COLOURS[None])
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        text = f"{name} {conf:.2f}"
        (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(y1 - th - baseline - 2, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + tw + 2, top + th + baseline + 2), colour, -1)
        cv2.putText(canvas, text, (x1 + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thickness, cv2.LINE_AA)
    return canvas
