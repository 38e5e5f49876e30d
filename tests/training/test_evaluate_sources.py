"""Each source is scored on the classes it labels: a detection of a class its photos never box
(an unboxed bottle in a hopper photo) is neither a hit nor a false alarm, and is counted apart."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from training.evaluate import LabelledImage, Tally, run_images, summarise, summarise_source
from vision.detection import Detections

NAMES = ("bag", "bottle")
LABELLED = {"hopper": ["bag"], "litter": ["bottle"]}


class ScriptedDetector:
    """Answers each photo with the rows scripted for it, as the truck's detector would."""

    names = NAMES

    def __init__(self, rows: dict[int, list[tuple[float, float, float, float, float, int]]]) -> None:
        self.rows, self.calls = rows, 0

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float, tuple[int, int]]:
        return image, 1.0, (0, 0)

    def infer(self, blob: np.ndarray) -> int:
        self.calls += 1
        return self.calls - 1

    def postprocess(self, output: int, ratio: float, pad: tuple[int, int], shape: tuple[int, int]) -> Detections:
        return Detections.from_rows(self.rows[output])


def photo(folder: Path, name: str, label_row: str) -> LabelledImage:
    image, label = folder / f"{name}.jpg", folder / f"{name}.txt"
    cv2.imwrite(str(image), np.zeros((100, 100, 3), np.uint8))
    label.write_text(label_row + "\n")
    return LabelledImage(image, label, name.split("-")[0])


def test_an_unboxed_object_of_a_class_the_source_does_not_label_is_not_a_false_alarm(tmp_path: Path) -> None:
    items = [photo(tmp_path, "hopper-1", "0 0.3 0.3 0.2 0.2"),   # a boxed bag at (20, 20, 40, 40)
             photo(tmp_path, "litter-1", "1 0.7 0.7 0.2 0.2")]   # a boxed bottle at (60, 60, 80, 80)
    # each photo: its own object found (0.8), and an object of the other source's class, unboxed, found
    # with more confidence (0.9): scored as a false alarm, it would rank first and halve each AP
    rows = {0: [(20, 20, 40, 40, 0.8, 0), (60, 60, 80, 80, 0.9, 1)],
            1: [(60, 60, 80, 80, 0.8, 1), (20, 20, 40, 40, 0.9, 0)]}
    tallies = {"all": Tally.new()}
    run_images(items, ScriptedDetector(rows), ScriptedDetector(rows), LABELLED, tallies)

    everything = summarise(tallies["all"], list(NAMES), None)
    # 0.995 is a perfect ranking under the 101-point interpolation (Ultralytics' too)
    assert everything["per_class"]["bag"]["ap50"] > 0.99 and everything["per_class"]["bottle"]["ap50"] > 0.99
    assert everything["precision"] == 1.0 and everything["map50"] > 0.99
    hopper = summarise_source(tallies["hopper"], list(NAMES), LABELLED["hopper"])
    assert hopper["map50"] > 0.99 and hopper["unlabelled_class_detections"] == {"bottle": 1}
    litter = summarise_source(tallies["litter"], list(NAMES), LABELLED["litter"])
    assert litter["unlabelled_class_detections"] == {"bag": 1}
    # the count error covers the labelled class only, and is exact here
    assert hopper["count_error"] == {"bag": {"images": 1, "mae": 0.0, "bias": 0.0, "within_1": 1.0}}


def test_without_source_labels_every_detection_is_scored(tmp_path: Path) -> None:
    items = [photo(tmp_path, "plain", "0 0.3 0.3 0.2 0.2")]
    rows = {0: [(20, 20, 40, 40, 0.8, 0), (60, 60, 80, 80, 0.9, 0)]}  # a bag found, and a bag where none is
    tallies = {"all": Tally.new()}
    run_images(items, ScriptedDetector(rows), ScriptedDetector(rows), {}, tallies)
    report = summarise(tallies["all"], list(NAMES), None)
    assert report["per_class"]["bag"]["ap50"] < 1.0 and report["precision"] == 0.5
    assert Counter(tallies["all"].detected) == Counter({"bag": 2})
