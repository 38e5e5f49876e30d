"""A burst's photos are read in the order they were shot, whatever their numbering looks like.

Camera boxes number photos without zero padding (``IMG_9.jpg``, ``IMG_10.jpg``); sorted as text,
frame 10 came before frame 2, and the tracker, seeing an item jump back and forth, gave it a new
id at each jump: one bag counted two or three times.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.camera import burst_frames


def write_burst(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True)
    for shot, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((24, 32, 3), 10 * shot, np.uint8))  # the shot's number, in grey


def shots(root: Path) -> list[int]:
    return [round(float(frame.image.mean()) / 10) for frame in burst_frames(root, consumed=lambda _key: False)]


def test_unpadded_numbers_are_read_in_shooting_order(tmp_path: Path) -> None:
    write_burst(tmp_path / "burst-1", [f"IMG_{n}.jpg" for n in range(1, 13)])
    assert shots(tmp_path) == list(range(12))


def test_padded_and_mixed_names_keep_their_order(tmp_path: Path) -> None:
    write_burst(tmp_path / "a", ["frame-008.png", "frame-009.png", "frame-010.png"])
    write_burst(tmp_path / "b", ["cam2-shot1.png", "cam2-shot2.png", "cam2-shot10.png", "zz.png"])
    assert shots(tmp_path) == [0, 1, 2, 0, 1, 2, 3]
