"""Detector: any Ultralytics YOLO detection ONNX export run with onnxruntime on the CPU.

Preprocessing and post-processing reproduce Ultralytics' own (letterbox, class-aware NMS,
``scale_boxes``) so that a model behaves on the truck exactly as it did in validation;
``tests/vision/test_model_parity.py`` checks it against ``YOLO(model).predict``.
"""

from __future__ import annotations

import ast
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from trivue.paths import COCO_WEIGHTS, MODELS_DIR
from vision.detection import Detections
from vision.region import Region

log = logging.getLogger(__name__)

LETTERBOX_FILL = 114  # Ultralytics pads with grey 114
MAX_WH = 7680.0  # class offset for batched NMS, as Ultralytics
MAX_NMS = 30_000  # candidates kept before NMS, as Ultralytics
MAX_DET = 300

DEFAULT_MODEL_NAME = "trivue-waste.onnx"


class DetectorError(Exception):
    """A model that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True, slots=True)
class ModelMeta:
    """What the detector needs to know about a model, from its ONNX metadata."""

    names: tuple[str, ...]
    imgsz: tuple[int, int]  # (height, width)
    stride: int
    name: str
    version: str
    end_to_end: bool


def default_model_path() -> Path:
    """The model used when none is given: $TRIVUE_MODEL, the shipped model, else the shared COCO one."""
    env = os.environ.get("TRIVUE_MODEL")
    if env:
        return Path(env)
    shipped = MODELS_DIR / DEFAULT_MODEL_NAME
    if shipped.exists():
        return shipped
    return COCO_WEIGHTS


def _literal(meta: dict[str, str], key: str, path: Path) -> object:
    if key not in meta:
        raise DetectorError(f"{path}: ONNX metadata has no '{key}' (export it with Ultralytics or `trivue export`)")
    try:
        return ast.literal_eval(meta[key])
    except (ValueError, SyntaxError):
        return meta[key]


def read_meta(session: ort.InferenceSession, path: Path) -> ModelMeta:
    meta = session.get_modelmeta().custom_metadata_map
    task = meta.get("task", "detect")
    if task != "detect":
        raise DetectorError(f"{path}: model task is '{task}', not an object detector")
    names_raw = _literal(meta, "names", path)
    if not isinstance(names_raw, dict) or not names_raw:
        raise DetectorError(f"{path}: metadata 'names' is not a {{id: name}} mapping")
    names = tuple(str(names_raw[i]) for i in sorted(names_raw))
    shape = session.get_inputs()[0].shape
    imgsz_raw = _literal(meta, "imgsz", path) if "imgsz" in meta else shape[2:4]
    if isinstance(imgsz_raw, int):
        imgsz_raw = [imgsz_raw, imgsz_raw]
    if not all(isinstance(v, int) for v in imgsz_raw):
        raise DetectorError(f"{path}: cannot tell the input size (metadata imgsz={meta.get('imgsz')!r})")
    output = session.get_outputs()[0].shape
    if len(output) == 3 and output[1] == 4 + len(names):
        end_to_end = False  # raw head (1, 4 + nc, N): we decode and run NMS
    elif len(output) == 3 and output[2] == 6:
        end_to_end = True  # YOLO26 / nms=True export (1, K, 6): boxes already final
    else:
        raise DetectorError(
            f"{path}: output shape {output} is not a detection head for {len(names)} classes "
            f"(expected (1, {4 + len(names)}, N) or (1, K, 6))"
        )
    return ModelMeta(
        names=names,
        imgsz=(int(imgsz_raw[0]), int(imgsz_raw[1])),
        stride=int(meta.get("stride", 32)),
        name=meta.get("trivue_name", path.stem),
        version=meta.get("trivue_version", meta.get("version", "unknown")),
        end_to_end=end_to_end,
    )


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping aspect ratio and pad to ``size`` (h, w) exactly as Ultralytics' LetterBox."""
    h0, w0 = image.shape[:2]
    ratio = min(size[0] / h0, size[1] / w0)
    new_w, new_h = round(w0 * ratio), round(h0 * ratio)
    dw, dh = (size[1] - new_w) / 2, (size[0] - new_h) / 2
    if (w0, h0) != (new_w, new_h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    fill = (LETTERBOX_FILL,) * 3
    image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=fill)
    return image, ratio, (left, top)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS over xyxy boxes sorted by score; returns kept indices in score order."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


class Detector:
    """``detect(bgr_image) -> Detections`` for one frame; thread count tuned for small CPUs."""

    def __init__(
        self,
        path: Path | str,
        conf: float = 0.25,
        iou: float = 0.45,
        threads: int = 0,
        region: Region | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DetectorError(f"{self.path}: model file not found")
        if not 0.0 <= conf <= 1.0 or not 0.0 <= iou <= 1.0:
            raise DetectorError(f"conf and iou must be within 0..1, got conf={conf}, iou={iou}")
        self.conf, self.iou, self.region = conf, iou, region
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises several private exception types
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise DetectorError(f"{self.path}: not a loadable ONNX model ({first[:200]})") from None
        self.meta = read_meta(self.session, self.path)
        model_input = self.session.get_inputs()[0]
        self._input_name = model_input.name
        self._input_dtype = np.float16 if "float16" in model_input.type else np.float32

    @property
    def names(self) -> tuple[str, ...]:
        return self.meta.names

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float, tuple[int, int]]:
        padded, ratio, pad = letterbox(image, self.meta.imgsz)
        # BGR -> RGB, HWC -> CHW, then divide by 255 (not multiply by 1/255): dynamically quantised
        # INT8 models amplify last-bit differences, and Ultralytics divides.
        blob = np.ascontiguousarray(padded[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32)
        blob /= 255.0
        return blob.astype(self._input_dtype, copy=False), ratio, pad

    def infer(self, blob: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input_name: blob})[0]

    def detect(self, image: np.ndarray) -> Detections:
        if image is None or image.ndim != 3 or image.shape[2] != 3:
            shape = None if image is None else image.shape
            raise ValueError(f"expected a BGR image of shape (H, W, 3), got {shape}")
        blob, ratio, pad = self.preprocess(image)
        return self.postprocess(self.infer(blob), ratio, pad, image.shape[:2])

    def postprocess(
        self, output: np.ndarray, ratio: float, pad: tuple[int, int], shape: tuple[int, int]
    ) -> Detections:
        output = output[0].astype(np.float32, copy=False)
        if self.meta.end_to_end:
            keep = output[:, 4] > self.conf
            boxes, scores, classes = output[keep, :4], output[keep, 4], output[keep, 5].astype(np.int32)
        else:
            boxes, scores, classes = self._decode(output)
        boxes = boxes.copy()
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - pad[0]) / ratio
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - pad[1]) / ratio
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, shape[1])
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, shape[0])
        detections = Detections(boxes, scores.astype(np.float32), classes)
        if self.region is not None and len(detections):
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2
            detections = detections[self.region.contains(centres, shape[1], shape[0])]
        return detections

    def _decode(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # output: (4 + nc, N) -> candidates above threshold, then class-aware NMS
        class_scores = output[4:]
        classes = class_scores.argmax(0)
        scores = class_scores[classes, np.arange(class_scores.shape[1])]
        keep = scores > self.conf
        if not keep.any():
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)
        xywh, scores, classes = output[:4, keep].T, scores[keep], classes[keep]
        if len(scores) > MAX_NMS:
            top = np.argsort(-scores)[:MAX_NMS]
            xywh, scores, classes = xywh[top], scores[top], classes[top]
        boxes = np.empty_like(xywh)
        boxes[:, :2] = xywh[:, :2] - xywh[:, 2:] / 2
        boxes[:, 2:] = xywh[:, :2] + xywh[:, 2:] / 2
        kept = nms(boxes + classes[:, None] * MAX_WH, scores, self.iou)[:MAX_DET]
        return boxes[kept], scores[kept], classes[kept].astype(np.int32)

    def warm_up(self) -> None:
        """One inference on a blank frame: the first run allocates, so timings start after it."""
        h, w = self.meta.imgsz
        self.detect(np.full((h, w, 3), LETTERBOX_FILL, np.uint8))
