"""YOLO label files (``class cx cy w h``, normalised) as pixel boxes: what evaluation and sheets draw."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def label_path(image: Path) -> Path:
    """The YOLO label file of ``image``: its last ``images`` folder becomes ``labels`` (Ultralytics'
    own rule), so a dataset kept under another folder named ``images`` still finds its labels."""
    parts = image.parent.parts
    if "images" not in parts:
        return image.with_suffix(".txt")
    last = len(parts) - 1 - parts[::-1].index("images")
    return Path(*parts[:last], "labels", *parts[last + 1:]) / f"{image.stem}.txt"


def read_labels(label: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.loadtxt(label, ndmin=2) if label.is_file() and label.stat().st_size else np.zeros((0, 5))
    cls = rows[:, 0].astype(int)
    cx, cy, w, h = (rows[:, i] for i in range(1, 5))
    xyxy = np.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], 1)
    return xyxy.astype(np.float32), cls
