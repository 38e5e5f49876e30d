"""Every command that takes a folder of photos reads the same formats (``base.paths.images_in``).

Before, the merge and ``trivue detect`` read WebP and BMP while evaluation and the INT8
calibration read only JPEG and PNG, and the COCO initialisation only ``*.jpg``: a dataset of WebP
photos trained, then was evaluated on none of its photos without a word.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from base.paths import IMAGE_SUFFIXES, images_in
from training.evaluate import read_split
from training.export import calibration_images

SUFFIXES = (".jpg", ".JPEG", ".png", ".bmp", ".webp")


def photos(folder: Path, prefix: str = "") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, suffix in enumerate(SUFFIXES):
        path = folder / f"{prefix}photo{i}{suffix}"
        assert cv2.imwrite(str(path.with_suffix(suffix.lower())), np.full((8, 8, 3), 40 * i, np.uint8))
        path.with_suffix(suffix.lower()).rename(path)
        written.append(path)
    return written


def test_images_in_takes_every_format_any_case_and_nothing_else(tmp_path: Path) -> None:
    written = photos(tmp_path)
    (tmp_path / "notes.txt").write_text("not a photo")
    (tmp_path / "album.jpg").mkdir()  # a folder named like a photo
    below = photos(tmp_path / "day2")
    assert {p.suffix.lower() for p in written} == IMAGE_SUFFIXES
    assert images_in(tmp_path) == sorted(written)
    assert images_in(tmp_path, recursive=True) == sorted(written + below)


def test_evaluation_reads_every_format_of_a_split(tmp_path: Path) -> None:
    images = photos(tmp_path / "images" / "val")
    (tmp_path / "labels" / "val").mkdir(parents=True)
    data = tmp_path / "data.yaml"
    data.write_text("path: .\nval: images/val\nnames: {0: bag}\n")
    items, names = read_split(data, "val")
    assert names == ["bag"]
    assert sorted(item.image for item in items) == sorted(images)
    assert {item.label.parent for item in items} == {tmp_path / "labels" / "val"}


def test_int8_calibration_reads_every_format(tmp_path: Path) -> None:
    images = photos(tmp_path / "calib", prefix="hopper-bags__")
    assert sorted(calibration_images(tmp_path / "calib")) == sorted(images)


def test_a_warm_start_measures_on_the_training_photos_of_any_data_yaml(tmp_path: Path) -> None:
    """BatchNorm statistics come from the data.yaml the run trains on (a merge copied from another
    machine has no RUN/data), listed once each however often the list repeats them."""
    import pytest

    from training.train import TrainError, stats_images

    images = photos(tmp_path / "images" / "train") + photos(tmp_path / "images" / "train", prefix="b")
    (tmp_path / "train.txt").write_text("".join(f"./images/train/{p.name}\n" for p in images + images[:3]))
    data = tmp_path / "data.yaml"
    data.write_text(f"path: {tmp_path}\ntrain: train.txt\nval: train.txt\nnames: {{0: bag}}\n")
    assert stats_images(data) == sorted(images)  # 10 photos: all of them, once each
    data.write_text(f"path: {tmp_path}\ntrain: nowhere.txt\nnames: {{0: bag}}\n")
    with pytest.raises(TrainError, match="no training photos to start from"):
        stats_images(data)
