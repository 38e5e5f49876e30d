"""The float YOLOv8n rebuilt from the shared INT8 ONNX detects what the ONNX detects."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("ultralytics")
torch = pytest.importorskip("torch")

from training.coco_init import build_identity_model, letterboxed_batch, reexpress_bn  # noqa: E402
from vision.detection import box_iou  # noqa: E402
from vision.model import Detector  # noqa: E402

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def models(coco_model: Path, litter_val_images: list[Path]) -> tuple:
    identity = build_identity_model(coco_model)
    measured = copy.deepcopy(identity)
    reexpress_bn(measured, litter_val_images[::5][:8], imgsz=320)
    return identity, measured


@pytest.mark.heavy(cpu_s=30)
def test_rebuilt_model_reproduces_onnx_detections(models: tuple, coco_model: Path,
                                                  litter_val_images: list[Path]) -> None:
    _, measured = models
    detector = Detector(coco_model)
    found = matched = 0
    for path in litter_val_images[:12]:
        image = cv2.imread(str(path))
        blob, ratio, pad = detector.preprocess(image)
        reference = detector.postprocess(detector.infer(blob), ratio, pad, image.shape[:2])
        with torch.no_grad():
            output = measured(torch.from_numpy(blob))[0].numpy()
        rebuilt = detector.postprocess(output, ratio, pad, image.shape[:2])
        found += len(reference)
        if len(reference) and len(rebuilt):
            same = (box_iou(reference.xyxy, rebuilt.xyxy) > 0.9) & (
                reference.class_id[:, None] == rebuilt.class_id[None, :])
            matched += int(same.any(1).sum())
    assert found >= 10, "these photos hold bottles and cups the COCO model finds"
    # the ONNX also quantises activations on the fly: a detection near the threshold may flip
    assert matched / found >= 0.85


def test_bn_reexpression_keeps_inference_and_steadies_training_mode(
        models: tuple, litter_val_images: list[Path]) -> None:
    identity, measured = models
    batch = letterboxed_batch(litter_val_images[1::5][:8], 320)
    with torch.no_grad():
        eval_identity = identity.eval()(batch)[1]
        eval_measured = measured.eval()(batch)[1]
        train_identity = copy.deepcopy(identity).train()(batch)
        train_measured = copy.deepcopy(measured).train()(batch)
    heads = ("boxes", "scores")
    for key in heads:
        a, b = eval_identity[key], eval_measured[key]
        assert torch.allclose(a, b, atol=1e-2 * float(a.abs().max()))

    def drift(train_out: dict) -> float:
        return float(np.mean([float((train_out[k] - eval_identity[k]).abs().mean()) for k in heads]))

    # batch statistics replace running ones in training: measured stats keep the output close
    assert drift(train_measured) < 0.5 * drift(train_identity)


def test_a_warm_start_measures_its_statistics_at_the_training_size(coco_model: Path, litter_val_images: list[Path],
                                                                    tmp_path: Path) -> None:
    """The BN statistics of a 320 px input differ from a 640 px one's; a warm start training at
    320 px gets the former (one epoch of continuation: Ultralytics val mAP50 0.661 -> 0.696)."""
    from training.coco_init import build_coco_init

    images = litter_val_images[::5][:8]
    saved = torch.load(build_coco_init(coco_model, tmp_path / "init.pt", images, imgsz=320), weights_only=False)
    expected = build_identity_model(coco_model)
    reexpress_bn(expected, images, imgsz=320)
    at_640 = build_identity_model(coco_model)
    reexpress_bn(at_640, images, imgsz=640)
    saved_bn = [m for m in saved["model"].modules() if isinstance(m, torch.nn.BatchNorm2d)][5]
    same = [m for m in expected.modules() if isinstance(m, torch.nn.BatchNorm2d)][5]
    other = [m for m in at_640.modules() if isinstance(m, torch.nn.BatchNorm2d)][5]
    assert torch.allclose(saved_bn.running_var, same.running_var)
    assert not torch.allclose(saved_bn.running_var, other.running_var, rtol=0.05)
