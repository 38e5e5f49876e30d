"""YOLO label files (``class cx cy w h``, normalised) as pixel boxes: what evaluation and sheets draw."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class LabelError(ValueError):
    """A label row that cannot be read as a box of the data's classes; the message names file and line."""


def label_path(image: Path) -> Path:
    """The YOLO label file of ``image``: its last ``images`` folder becomes ``labels`` (Ultralytics'
    own rule), so a dataset kept under another folder named ``images`` still finds its labels."""
    parts = image.parent.parts
    if "images" not in parts:
        return image.with_suffix(".txt")
    last = len(parts) - 1 - parts[::-1].index("images")
    return Path(*parts[:last], "labels", *parts[last + 1:]) / f"{image.stem}.txt"


def label_rows(label: Path, classes: int | None = None) -> np.ndarray:
    """The rows of ``label`` (n x 5), each checked: a plain data.yaml's labels come as they are (a
    merged one's were checked by the merge), and numpy's own errors name neither file nor line."""
    if not label.is_file():
        return np.zeros((0, 5))
    rows = []
    for number, line in enumerate(label.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            values = [float(v) for v in parts]
        except ValueError:
            raise LabelError(f"{label}:{number}: not a 'class cx cy w h' row: {line.strip()[:80]!r}") from None
        # "1.0" is class 1, as Ultralytics reads it; "1.5" is no class, "nan" no coordinate
        if not np.isfinite(values).all() or not values[0].is_integer():
            raise LabelError(f"{label}:{number}: not a 'class cx cy w h' row: {line.strip()[:80]!r}")
        if len(values) != 5:
            raise LabelError(f"{label}:{number}: expected 5 numbers (class cx cy w h), got {len(values)} "
                             "(segments are not supported)")
        if classes is not None and not 0 <= values[0] < classes:
            raise LabelError(f"{label}:{number}: class id {int(values[0])} unknown (the data has {classes} names)")
        rows.append(values)
    return np.asarray(rows, dtype=float).reshape(-1, 5)


def read_labels(label: Path, width: int, height: int, classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixel boxes and class ids of ``label``; ``classes``: the data's number of names, checked."""
    rows = label_rows(label, classes)
    cls = rows[:, 0].astype(int)
    cx, cy, w, h = (rows[:, i] for i in range(1, 5))
    xyxy = np.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], 1)
    return xyxy.astype(np.float32), cls
