"""The ONNX detector on real models and photos, and its refusal of unusable models."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from base.paths import SHARED_DIR
from vision.detection import Detections, box_iou
from vision.model import Detector, DetectorError, default_model_path, letterbox, nms
from vision.region import Region

LITTER_VAL = SHARED_DIR / "datasets" / "litter-items" / "images" / "val"


def constant_model(path: Path, output: np.ndarray, *, names: str | None = "{0: 'bag', 1: 'bottle'}",
                   task: str = "detect", imgsz: int = 64, dtype: int = TensorProto.FLOAT) -> Path:
    """A tiny real ONNX graph whose output is ``output`` whatever the image (tests the decoders)."""
    images = helper.make_tensor_value_info("images", dtype, [1, 3, imgsz, imgsz])
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))
    value = helper.make_tensor("value", TensorProto.FLOAT, output.shape, output.astype(np.float32).ravel())
    # Shape(images) keeps the input alive in the graph; the constant is the detector output
    nodes = [helper.make_node("Shape", ["images"], ["shape"]),
             helper.make_node("Constant", [], ["output0"], value=value)]
    graph = helper.make_graph(nodes, "constant", [images], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    props = {"task": task, "imgsz": f"[{imgsz}, {imgsz}]", "stride": "32"}
    if names is not None:
        props["names"] = names
    for key, value_ in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value_
    onnx.save(model, path)
    return path


def test_finds_bottles_and_cups_in_real_litter_photos(coco_model: Path) -> None:
    detector = Detector(coco_model)
    found = {}
    for name in ("7b038fdaf68c", "834f3620c260", "b923e7d77780"):
        image = cv2.imread(str(LITTER_VAL / f"{name}.jpg"))
        detections = detector.detect(image)
        found[name] = {detector.names[int(c)] for c in detections.class_id}
        assert (detections.xyxy[:, [0, 2]] <= image.shape[1]).all()
        assert (detections.xyxy[:, [1, 3]] <= image.shape[0]).all()
    assert "cup" in found["7b038fdaf68c"]
    assert "bottle" in found["834f3620c260"] and "bottle" in found["b923e7d77780"]
    assert detector.meta.imgsz == (640, 640) and len(detector.names) == 80


def test_confidence_threshold_is_honoured(coco_model: Path) -> None:
    image = cv2.imread(str(LITTER_VAL / "834f3620c260.jpg"))
    low = Detector(coco_model, conf=0.05).detect(image)
    high = Detector(coco_model, conf=0.45).detect(image)
    assert len(low) > len(high) >= 1
    assert (high.confidence > 0.45).all()


def test_raw_head_decode_maps_boxes_back_to_the_original_image(tmp_path: Path) -> None:
    # two candidates for class 1 overlapping (NMS keeps the best), one for class 0, one below threshold
    n = 4
    out = np.zeros((1, 6, n), np.float32)
    out[0, :4, 0] = [32, 32, 20, 20]; out[0, 5, 0] = 0.9  # noqa: E702
    out[0, :4, 1] = [33, 32, 20, 20]; out[0, 5, 1] = 0.8  # noqa: E702
    out[0, :4, 2] = [33, 32, 20, 20]; out[0, 4, 2] = 0.7  # noqa: E702
    out[0, :4, 3] = [10, 10, 4, 4]; out[0, 4, 3] = 0.1  # noqa: E702
    detector = Detector(constant_model(tmp_path / "raw.onnx", out), conf=0.25, iou=0.45)
    # a 128x64 (w x h) image: ratio 0.5, padded 16 px top and bottom in the 64x64 input
    result = detector.detect(np.zeros((64, 128, 3), np.uint8))
    assert sorted(result.class_id.tolist()) == [0, 1]
    best = result[result.class_id == 1]
    np.testing.assert_allclose(best.xyxy[0], [44, 12, 84, 52], atol=1e-4)
    np.testing.assert_allclose(best.confidence, [0.9], atol=1e-6)


def test_end_to_end_output_and_fp16_input(tmp_path: Path) -> None:
    out = np.array([[[8, 8, 24, 40, 0.8, 1], [0, 0, 4, 4, 0.1, 0]]], np.float32)
    model = constant_model(tmp_path / "e2e.onnx", out, dtype=TensorProto.FLOAT16)
    detector = Detector(model)
    assert detector.meta.end_to_end
    result = detector.detect(np.zeros((64, 64, 3), np.uint8))
    assert result.class_id.tolist() == [1]
    np.testing.assert_allclose(result.xyxy[0], [8, 8, 24, 40])


def test_region_drops_items_outside_the_hopper(tmp_path: Path) -> None:
    out = np.array([[[2, 2, 10, 10, 0.9, 0], [40, 40, 60, 60, 0.9, 1]]], np.float32)
    region = Region.from_points([(0.5, 0.5), (1, 0.5), (1, 1), (0.5, 1)])
    detector = Detector(constant_model(tmp_path / "e2e.onnx", out), region=region)
    assert detector.detect(np.zeros((64, 64, 3), np.uint8)).class_id.tolist() == [1]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "absent.onnx", "model file not found"),
        (lambda p: (p / "x.onnx").write_text("hello") and p / "x.onnx", "not a loadable ONNX model"),
        (lambda p: constant_model(p / "c.onnx", np.zeros((1, 10)), task="classify"), "not an object detector"),
        (lambda p: constant_model(p / "n.onnx", np.zeros((1, 6, 5)), names=None), "no 'names'"),
        (lambda p: constant_model(p / "s.onnx", np.zeros((1, 9, 5))), "not a detection head"),
    ],
)
def test_unusable_models_are_refused_naming_the_file(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    with pytest.raises(DetectorError, match=message) as error:
        Detector(path)
    assert str(path) in str(error.value)


def test_letterbox_pads_to_size_and_centres() -> None:
    padded, ratio, (left, top) = letterbox(np.zeros((100, 200, 3), np.uint8), (64, 64))
    assert padded.shape == (64, 64, 3) and ratio == pytest.approx(0.32)
    assert (left, top) == (0, 16)
    assert (padded[:16] == 114).all() and (padded[16:48] == 0).all()


def test_nms_keeps_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]], np.float32)
    assert nms(boxes, np.array([0.5, 0.9, 0.3], np.float32), 0.45).tolist() == [1, 2]


def test_detections_validate_shapes() -> None:
    with pytest.raises(ValueError, match=r"expected shape \(_, 4\), got \(3, 5\)"):
        Detections(np.zeros((3, 5)), np.zeros(3), np.zeros(3, np.int32))
    rows = Detections.from_rows([(0, 0, 10, 10, 0.9, 1), (5, 5, 15, 15, 0.8, 0)])
    assert len(rows) == 2 and rows.area.tolist() == [100, 100]
    assert box_iou(rows.xyxy, rows.xyxy)[0, 1] == pytest.approx(25 / 175)


def test_the_truck_prefers_the_shipped_int8_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIVUE_MODEL", raising=False)
    monkeypatch.setattr("vision.model.MODELS_DIR", tmp_path)
    (tmp_path / "trivue-waste.onnx").write_bytes(b"fp32")
    assert default_model_path(quantised=True) == tmp_path / "trivue-waste.onnx"  # no INT8 shipped
    (tmp_path / "trivue-waste-int8.onnx").write_bytes(b"int8")
    assert default_model_path(quantised=True) == tmp_path / "trivue-waste-int8.onnx"
    assert default_model_path() == tmp_path / "trivue-waste.onnx"  # evaluation keeps the FP32 reference
    monkeypatch.setenv("TRIVUE_MODEL", str(tmp_path / "mine.onnx"))
    assert default_model_path(quantised=True) == tmp_path / "mine.onnx"
