"""A photo's label file is found beside it the way Ultralytics finds it (the last ``images`` folder
of its path becomes ``labels``), wherever the run or dataset lives.

Before, evaluation replaced the *first* ``/images`` of the path: a run under ``/srv/images/...`` or
``~/images-metropole/...`` looked for its labels in a folder that does not exist, found none, and
scored every photo as unlabelled (mAP50 0, the card and the INT8 gate with it) without a word.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from training.evaluate import read_split
from training.labels import label_path


@pytest.mark.parametrize("parent", ["images", "images-metropole", "data/images/2026"])
def test_evaluation_finds_the_labels_of_a_dataset_under_an_images_folder(tmp_path: Path, parent: str) -> None:
    root = tmp_path / parent / "run" / "data"
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "val" / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    (root / "labels" / "val" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text(f"path: {root}\nval: images/val\nnames: {{0: bag}}\n")
    items, _ = read_split(root / "data.yaml", "val")
    assert [item.label for item in items] == [root / "labels" / "val" / "a.txt"]
    assert items[0].label.is_file()


def test_label_path_follows_ultralytics() -> None:
    assert label_path(Path("/srv/images/run/data/images/val/x.jpg")) == Path("/srv/images/run/data/labels/val/x.txt")
    assert label_path(Path("/d/images/train/sub/x.png")) == Path("/d/labels/train/sub/x.txt")
    assert label_path(Path("/d/valid/images/x.jpg")) == Path("/d/valid/labels/x.txt")
