"""INT8 self-check: the disagreement measure, the shipped pair, and a deliberately broken INT8 model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from base.paths import MODELS_DIR
from vision.detection import Detections
from vision.selfcheck import (
    CALIBRATION_DIR,
    SelfCheckError,
    calibration_photos,
    check_int8,
    compare_detections,
    fp32_sibling,
)

FP32 = MODELS_DIR / "trivue-waste.onnx"
INT8 = MODELS_DIR / "trivue-waste-int8.onnx"
THRESHOLD = 0.15  # edge.config.SelfCheckSettings' default


def dets(*rows: tuple[float, float, float, float, float, int]) -> Detections:
    return Detections.from_rows(list(rows))


def test_disagreement_weighs_confidence_differences_and_unmatched_boxes() -> None:
    a = (0, 0, 100, 100, 0.8, 0)
    assert compare_detections(dets(a), dets(a)).disagreement == 0.0
    assert compare_detections(dets(), dets()).disagreement == 0.0
    # the same box, a little less confident: |0.8 - 0.6| / (0.8 + 0.6)
    moved = compare_detections(dets(a), dets((5, 5, 105, 105, 0.6, 0)))
    assert moved.matched == 1 and moved.disagreement == pytest.approx(0.2 / 1.4)
    # another class, or too little overlap: nothing matched, everything differs
    assert compare_detections(dets(a), dets((0, 0, 100, 100, 0.8, 1))).disagreement == pytest.approx(1.0)
    assert compare_detections(dets(a), dets((60, 60, 160, 160, 0.8, 0))).matched == 0
    # a faint extra box costs little, a confident missed one a lot
    faint = compare_detections(dets(a), dets(a, (200, 200, 260, 260, 0.12, 0)))
    missed = compare_detections(dets(a, (200, 200, 260, 260, 0.9, 0)), dets(a))
    assert faint.disagreement == pytest.approx(0.12 / 1.72) and missed.disagreement == pytest.approx(0.9 / 2.5)
    # one-to-one: two candidate boxes on one reference box leave one unmatched
    double = compare_detections(dets(a), dets(a, (2, 2, 100, 100, 0.5, 0)))
    assert double.matched == 1 and double.disagreement == pytest.approx(0.5 / 2.1)


def test_fp32_sibling_and_calibration_photos(tmp_path: Path) -> None:
    (tmp_path / "m-int8.onnx").write_bytes(b"x")
    assert fp32_sibling(tmp_path / "m-int8.onnx") is None  # no m.onnx beside it
    (tmp_path / "m.onnx").write_bytes(b"x")
    assert fp32_sibling(tmp_path / "m-int8.onnx") == tmp_path / "m.onnx"
    assert fp32_sibling(tmp_path / "m.onnx") is None  # not named as an INT8 model
    photos = calibration_photos()
    assert len(photos) == 8 and {p.name.split("__")[0] for p in photos} == {"hopper-bags", "litter-items",
                                                                             "glass-ewaste"}
    assert sum(p.stat().st_size for p in photos) < 300_000  # they ship in the package
    with pytest.raises(SelfCheckError, match=r"no \.jpg/\.png"):
        calibration_photos(tmp_path)
    assert (CALIBRATION_DIR / "ATTRIBUTION.md").is_file()


@pytest.fixture(scope="module")
def shipped() -> tuple[Path, Path]:
    if not (FP32.is_file() and INT8.is_file()):
        pytest.skip("the shipped FP32/INT8 pair is absent")
    return FP32, INT8


def broken_int8(fp32: Path, folder: Path, noise: float = 0.2) -> Path:
    """An "INT8" model that no longer sees what its FP32 original sees: every conv weight of the
    FP32 model scaled by 1 + 20 % Gaussian noise (seeded), saved as <name>-int8.onnx beside a copy."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    model = onnx.load(str(fp32))
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        weights = numpy_helper.to_array(init)
        if weights.ndim == 4 and weights.dtype == np.float32:
            noisy = weights * (1 + noise * rng.standard_normal(weights.shape))
            init.CopyFrom(numpy_helper.from_array(noisy.astype(np.float32), init.name))
    shutil.copy(fp32, folder / "model.onnx")
    onnx.save(model, str(folder / "model-int8.onnx"))
    return folder / "model-int8.onnx"


def test_the_shipped_int8_model_agrees_with_its_fp32_original(shipped: tuple[Path, Path]) -> None:
    fp32, int8 = shipped
    check = check_int8(int8, THRESHOLD)
    assert check is not None and check.reference == fp32
    report = check.to_json()
    assert report["reference_boxes"] > 20  # the photos hold things the model sees: a real comparison
    assert check.passed and check.chosen == int8, report
    assert check_int8(fp32, THRESHOLD) is None  # an FP32 model is not checked


def test_a_broken_int8_model_fails_the_check(shipped: tuple[Path, Path], tmp_path: Path) -> None:
    broken = broken_int8(shipped[0], tmp_path)
    check = check_int8(broken, THRESHOLD)
    assert check is not None and not check.passed, check.to_json()
    assert check.chosen == tmp_path / "model.onnx"
    assert check.agreement.disagreement > 2 * THRESHOLD
