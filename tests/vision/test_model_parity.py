"""Our detector agrees with Ultralytics' own ONNX predict on the same model and real photos."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.detection import box_iou
from vision.model import Detector

CONF, IOU = 0.25, 0.45


@pytest.fixture(scope="module")
def ultralytics_yolo(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    # Keep Ultralytics offline and out of ~/.config: settings in a temp dir, no hub, no downloads
    os.environ["YOLO_CONFIG_DIR"] = str(tmp_path_factory.mktemp("ultralytics"))
    os.environ["YOLO_OFFLINE"] = "1"
    ultralytics = pytest.importorskip("ultralytics", reason="parity needs the train extra")
    return ultralytics.YOLO


def photos(shared_dir: Path) -> list[Path]:
    litter = sorted((shared_dir / "datasets" / "litter-items" / "images" / "val").glob("*.jpg"))
    bags = sorted((shared_dir / "datasets" / "hopper-bags" / "images" / "val").glob("*.jpg"))[:25]
    return litter + bags


@pytest.mark.train
def test_same_detections_as_ultralytics_predict(ultralytics_yolo, coco_model: Path, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    ours = Detector(coco_model, conf=CONF, iou=IOU)
    theirs = ultralytics_yolo(str(coco_model), task="detect")
    compared = 0
    for path in photos(shared_dir):
        image = cv2.imread(str(path))
        mine = ours.detect(image)
        result = theirs.predict(image, conf=CONF, iou=IOU, imgsz=ours.meta.imgsz, verbose=False)[0].boxes
        ref_xyxy, ref_conf = result.xyxy.numpy(), result.conf.numpy()
        ref_cls = result.cls.numpy().astype(int)
        assert len(mine) == len(ref_xyxy), f"{path.name}: {len(mine)} detections vs {len(ref_xyxy)}"
        if not len(mine):
            continue
        iou = box_iou(mine.xyxy, ref_xyxy)
        for i in range(len(mine)):
            j = int(np.argmax(iou[i]))
            assert mine.class_id[i] == ref_cls[j], f"{path.name}: class differs"
            assert iou[i, j] >= 0.9, f"{path.name}: box IoU {iou[i, j]:.3f}"
            assert abs(mine.confidence[i] - ref_conf[j]) <= 0.02, f"{path.name}: confidence differs"
            compared += 1
    assert compared >= 20, f"only {compared} detections compared: the photos do not exercise the detector"
