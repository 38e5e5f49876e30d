"""``trivue evaluate --lifts``: real val photos -> bursts -> the truck's pipeline -> count errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

pytest.importorskip("albumentations")

from base.paths import MODELS_DIR
from edge.config import TrackingSettings
from tests.training.shared_sources import small_source
from training.bursts import BurstStyle, burst_seed, make_burst
from training.evaluate import read_labels
from training.lifts import LabelledBoxes, LiftCounter, evaluate_lifts
from trivue.cli import main
from vision.rules import SortingRules
from vision.schema import Stream

MODEL = MODELS_DIR / "trivue-waste.onnx"
MAPPING = Path(__file__).parents[2] / "training" / "mapping.yaml"
VAL_PHOTOS = 3  # per source: keeps the whole file under ~30 s on a loaded 2-core machine


class Meta:
    name, version = "labels", "1"


@pytest.fixture(scope="module")
def mapping(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's mapping, pointed at a few real val photos of each of its sources."""
    root = tmp_path_factory.mktemp("lifts")
    spec = yaml.safe_load(MAPPING.read_text())
    for name, source in spec["sources"].items():
        source["path"] = str(small_source(shared_dir, name, root / name, {"train": 1, "val": VAL_PHOTOS},
                                               labelled_only=True))
    (root / "mapping.yaml").write_text(yaml.safe_dump(spec))
    return root / "mapping.yaml"


@pytest.fixture(scope="module")
def photo(shared_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A real hopper photo with many labelled bags."""
    root = shared_dir / "datasets" / "hopper-bags"
    best = max(sorted((root / "labels" / "val").glob("*.txt"))[:20], key=lambda p: len(p.read_text().splitlines()))
    image = cv2.imread(str(root / "images" / "val" / f"{best.stem}.jpg"))
    xyxy, classes = read_labels(best, image.shape[1], image.shape[0])
    return image, xyxy, ["bag"] * len(classes)


def test_burst_truth_is_the_photo_labels_less_what_the_camera_cannot_see(photo: tuple) -> None:
    image, xyxy, labels = photo
    style = BurstStyle()
    burst = make_burst(image, xyxy, labels, "p.jpg", "hopper-bags", style, burst_seed(0, "p.jpg"))
    assert style.min_frames <= len(burst.frames) <= style.max_frames
    assert all(f.shape == image.shape for f in burst.frames)
    truth, hidden = burst.truth.counts(TrackingSettings().min_track_frames)
    assert truth + hidden == Counter(labels)  # every labelled object is in the truth or stated hidden
    assert truth["bag"] >= len(labels) - 2  # a default burst hides little of a photo
    for boxes, objects in zip(burst.truth.boxes, burst.truth.visible, strict=True):
        assert len(boxes) == len(objects) and len(set(objects.tolist())) == len(objects)
        h, w = image.shape[:2]
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= w).all() and (boxes[:, [1, 3]] <= h).all()
    # seeded: the same seed makes the same frames; another seed other frames
    again = make_burst(image, xyxy, labels, "p.jpg", "hopper-bags", style, burst_seed(0, "p.jpg"))
    assert all(np.array_equal(a, b) for a, b in zip(burst.frames, again.frames, strict=True))
    other = make_burst(image, xyxy, labels, "p.jpg", "hopper-bags", style, burst_seed(1, "p.jpg"))
    assert not np.array_equal(burst.frames[-1], other.frames[-1])


def test_boxes_move_with_the_pixels() -> None:
    """A bright square on black: after shake and zoom its box still encloses exactly its pixels."""
    image = np.zeros((400, 400, 3), np.uint8)
    image[150:230, 170:260] = 255
    style = BurstStyle(occlusion=0.0, blur=0.0)
    burst = make_burst(image, np.array([[170, 150, 260, 230]], np.float32), ["can"], "s.jpg", "x", style, 7)
    for frame, boxes in zip(burst.frames, burst.truth.boxes, strict=True):
        ys, xs = np.nonzero(frame[:, :, 0] > 127)
        drawn = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        assert np.abs(boxes[0] - drawn).max() <= 3  # rotation of <= 2 degrees widens a box by a pixel or two
    assert burst.frames[-1][:, :, 0].astype(bool).sum() > burst.frames[0][:, :, 0].astype(bool).sum()  # zoomed in


def test_objects_cut_away_by_zoom_or_occlusion_are_hidden_not_true(photo: tuple) -> None:
    image, xyxy, labels = photo
    h, w = image.shape[:2]
    corner = np.array([[0, 0, 0.05 * w, 0.05 * h]], np.float32)  # leaves the view as soon as the zoom grows
    zoomed = make_burst(image, np.vstack([corner, [[0.4 * w, 0.4 * h, 0.6 * w, 0.6 * h]]]), ["can", "bag"], "z.jpg",
                        "x", BurstStyle(zoom=(3.0, 3.0), occlusion=0.0), 3)
    truth, hidden = zoomed.truth.counts(2)
    assert truth == Counter({"bag": 1}) and hidden == Counter({"can": 1})
    covered = make_burst(image, xyxy, labels, "c.jpg", "x", BurstStyle(occlusion=1.0, occluder=(0.99, 0.99)), 3)
    truth, hidden = covered.truth.counts(2)
    assert not truth and hidden == Counter(labels)
    assert all((frame == 40).mean() > 0.97 for frame in covered.frames)  # the occluder is really drawn
    with pytest.raises(ValueError, match="occluder"):
        BurstStyle(occluder=(0.5, 1.0))


def test_labelled_boxes_through_the_truck_pipeline_count_the_truth(photo: tuple) -> None:
    """The truth's rule (seen in min_track_frames frames) is the recorder's: with the labelled boxes
    as detections and a steady camera, tracker and recorder count every lift exactly."""
    image, xyxy, labels = photo
    boxes = LabelledBoxes(["bag"], Meta())
    counter = LiftCounter(boxes, SortingRules.load(), Stream.recyclables, TrackingSettings(), 10.0, 1)  # type: ignore[arg-type]
    steady = BurstStyle(shake=0.0, tilt_deg=0.0)  # zoom and occluder kept: objects come and go
    for seed in range(3):
        burst = make_burst(image, xyxy, labels, f"{seed}.jpg", "hopper-bags", steady, seed)
        boxes.load(burst)
        result, tracked = counter.count(burst)
        assert len(tracked) == len(burst.frames)
        truth, hidden = burst.truth.counts(2)
        assert result.counted == dict(truth), (seed, hidden)


def test_evaluate_lifts_runs_the_shipped_model_and_compares_counts(mapping: Path, tmp_path: Path) -> None:
    if not MODEL.is_file():
        pytest.skip(f"{MODEL} is absent")
    sheet = tmp_path / "sheet.png"
    report = evaluate_lifts(mapping, MODEL, seed=0, sheet=sheet)
    assert report["lifts"] == 3 * VAL_PHOTOS and len(report["per_lift"]) == report["lifts"]  # three sources
    assert set(report["per_source"]) == {"hopper-bags", "litter-items", "glass-ewaste"}
    assert report["per_source"]["hopper-bags"]["classes"] == ["bag"]
    for lift in report["per_lift"]:
        assert 5 <= lift["frames"] <= 8
        assert Counter(lift["truth"]) + Counter(lift["hidden"]) == Counter(lift["labelled"])
        classes = report["per_source"][lift["source"]]["classes"]
        assert lift["error"] == sum(lift["counted"].get(c, 0) - lift["truth"].get(c, 0) for c in classes)
    errors = np.array([lift["error"] for lift in report["per_lift"]])
    assert report["count"]["mae"] == pytest.approx(np.abs(errors).mean(), abs=1e-3)
    assert report["count"]["within_1"] == pytest.approx((np.abs(errors) <= 1).mean(), abs=1e-3)
    # the shipped model does see bags: the hopper lifts' counts are far from zero and near the truth
    assert report["tracking_only"]["lifts"] == report["lifts"]
    bags = report["per_class"]["bag"]
    assert bags["counted"] >= 0.5 * bags["truth"] > 0
    assert cv2.imread(str(sheet)) is not None and report["sheet"]["path"] == str(sheet)
    # reproducible: the same seed gives the same lifts, through the CLI's --json
    assert report["per_lift"] == evaluate_lifts(mapping, MODEL, seed=0)["per_lift"]


def test_cli_lifts_json_and_bad_input(mapping: Path, capsys: pytest.CaptureFixture) -> None:
    if not MODEL.is_file():
        pytest.skip(f"{MODEL} is absent")
    assert main(["evaluate", "--lifts", "--data", str(mapping), "--model", str(MODEL), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["lifts"] == 3 * VAL_PHOTOS and "bag" in report["per_class"]
    assert main(["evaluate", "--lifts", "--data", str(mapping), "--model", str(MODEL), "--stream", "nope"]) == 2
    assert "--stream nope" in capsys.readouterr().err
