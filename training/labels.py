"""YOLO label files (``class cx cy w h``, normalised) as pixel boxes: what evaluation and sheets draw."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_labels(label: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.loadtxt(label, ndmin=2) if label.is_file() and label.stat().st_size else np.zeros((0, 5))
    cls = rows[:, 0].astype(int)
    cx, cy, w, h = (rows[:, i] for i in range(1, 5))
    xyxy = np.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], 1)
    return xyxy.astype(np.float32), cls
