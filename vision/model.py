"""Detector: any Ultralytics YOLO detection ONNX export run with onnxruntime on the CPU.

Preprocessing and post-processing reproduce Ultralytics' own (letterbox, class-aware NMS,
``scale_boxes``) so that a model behaves on the truck exactly as it did in validation;
``tests/vision/test_model_parity.py`` checks it against ``YOLO(model).predict``.
"""

from __future__ import annotations

import ast
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from base.paths import COCO_WEIGHTS, MODELS_DIR
from vision.detection import Detections
from vision.region import Region

log = logging.getLogger(__name__)

LETTERBOX_FILL = 114  # Ultralytics pads with grey 114
MAX_WH = 7680.0  # class offset for batched NMS, as Ultralytics
MAX_NMS = 30_000  # candidates kept before NMS, as Ultralytics
MAX_DET = 300

DEFAULT_MODEL_NAME = "trivue-waste.onnx"
# The truck's default when shipped: static INT8 passed the accuracy gate (models/trivue-waste.md:
# mAP50 0.820 vs 0.831) and runs the loop faster (docs/edge.md, Performance).
QUANTISED_MODEL_NAME = "trivue-waste-int8.onnx"


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


def default_model_path(quantised: bool = False) -> Path:
    """The model used when none is given: $TRIVUE_MODEL, the shipped model, else the shared COCO one.

    ``quantised`` (the truck) prefers the shipped INT8 model; evaluation and tools keep FP32, the
    reference the INT8 model is gated against.
    """
    env = os.environ.get("TRIVUE_MODEL")
    if env:
        return Path(env)
    names = (QUANTISED_MODEL_NAME, DEFAULT_MODEL_NAME) if quantised else (DEFAULT_MODEL_NAME,)
    for name in names:
        if (MODELS_DIR / name).exists():
            return MODELS_DIR / name
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


def letterbox_geometry(shape: tuple[int, int], size: tuple[int, int]) -> tuple[float, tuple[int, int], tuple[int, int]]:
    """Ultralytics' LetterBox arithmetic: (ratio, resized (w, h), pad (left, top)) for an (h, w) image."""
    h0, w0 = shape
    ratio = min(size[0] / h0, size[1] / w0)
    new_w, new_h = round(w0 * ratio), round(h0 * ratio)
    dw, dh = (size[1] - new_w) / 2, (size[0] - new_h) / 2
    return ratio, (new_w, new_h), (round(dw - 0.1), round(dh - 0.1))


def letterbox(
    image: np.ndarray, size: tuple[int, int], out: np.ndarray | None = None
) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping aspect ratio and pad to ``size`` (h, w) exactly as Ultralytics' LetterBox.

    With ``out`` (an (h, w, 3) uint8 buffer whose border already holds the grey fill), the resize
    writes straight into its centre: no intermediate image and no ``copyMakeBorder`` copy per frame.
    """
    ratio, (new_w, new_h), (left, top) = letterbox_geometry(image.shape[:2], size)
    if out is None:
        out = np.full((size[0], size[1], 3), LETTERBOX_FILL, np.uint8)
    centre = out[top:top + new_h, left:left + new_w]
    if (image.shape[1], image.shape[0]) != (new_w, new_h):
        cv2.resize(image, (new_w, new_h), dst=centre, interpolation=cv2.INTER_LINEAR)  # OpenCV writes into the view
    else:
        centre[...] = image
    return out, ratio, (left, top)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS over xyxy boxes; returns kept indices in score order (a box is dropped when its
    IoU with a kept, higher-scoring box exceeds the threshold, as torchvision's ``nms``).

    OpenCV's C++ loop replaces a Python loop with one numpy pass per kept box; it sorts by score
    with a stable sort, so ties keep their input order as before. Scores must be positive (the
    detector passes only candidates above ``conf``): OpenCV keeps scores above its threshold, 0.
    """
    if not len(boxes):
        return np.zeros(0, np.int64)
    xywh = np.empty((len(boxes), 4), np.float64)  # OpenCV's Rect2d: x, y, w, h in double
    xywh[:, :2] = boxes[:, :2]
    xywh[:, 2:] = boxes[:, 2:] - boxes[:, :2]
    keep = cv2.dnn.NMSBoxes(xywh, scores.astype(np.float32, copy=False), 0.0, float(iou_threshold))
    return np.asarray(keep, dtype=np.int64).reshape(-1)


class _Buffers:
    """One thread's letterbox canvas, planes and blob, reused frame after frame."""

    def __init__(self, size: tuple[int, int]) -> None:
        h, w = size
        self.padded = np.full((h, w, 3), LETTERBOX_FILL, np.uint8)
        self.blob = np.empty((1, 3, h, w), np.float32)
        self.planes = [np.empty((h, w), np.uint8) for _ in range(3)]
        self.geometry: tuple[int, int] | None = None  # image (h, w) whose letterbox ``padded`` holds


class Detector:
    """``detect(bgr_image) -> Detections`` for one frame; thread count tuned for small CPUs.

    ``detect`` may be called from several threads at once (``concurrent``): onnxruntime's
    ``session.run`` is thread-safe and releases the GIL, and each thread gets its own buffers. The
    edge loop uses it to run two frames at once (``edge.pipeline``).
    """

    concurrent = True

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
        self.session = self._session(threads)
        self.meta = read_meta(self.session, self.path)
        model_input = self.session.get_inputs()[0]
        self._input_name = model_input.name
        self._input_dtype = np.float16 if "float16" in model_input.type else np.float32
        # Reused by detect() for every frame: a fresh 1.2 MB float blob per frame costs an mmap and
        # page faults each time. One set per calling thread, so that threads never share a blob.
        self._local = threading.local()

    def _session(self, threads: int) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # A YOLO graph is a chain: sequential execution, one inter-op thread, and intra-op threads
        # on every core this process may use (onnxruntime's own 0 counts the host's physical
        # cores, ignoring a cgroup cpuset or taskset).
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        # No spin-waiting between runs: a spinning worker holds a core while the loop decodes the
        # next frame (prefetch thread), tracks and commits; bench/edge.py measured the loop faster
        # without it (and far steadier on a busy CPU), at most ~5% slower raw runs on an idle one.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            return ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises several private exception types
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise DetectorError(f"{self.path}: not a loadable ONNX model ({first[:200]})") from None

    @property
    def names(self) -> tuple[str, ...]:
        return self.meta.names

    def preprocess(self, image: np.ndarray, reuse: bool = False) -> tuple[np.ndarray, float, tuple[int, int]]:
        """Letterboxed NCHW blob. With ``reuse`` it is the calling thread's buffer, overwritten by its
        next call (what ``detect`` wants); without, a new array the caller may keep."""
        if reuse:
            buffers = self._buffers()
            if buffers.geometry != image.shape[:2]:  # another frame size moves the border: repaint it
                buffers.padded.fill(LETTERBOX_FILL)
                buffers.geometry = image.shape[:2]
            padded, ratio, pad = letterbox(image, self.meta.imgsz, buffers.padded)
            blob = buffers.blob
        else:
            padded, ratio, pad = letterbox(image, self.meta.imgsz)
            blob = np.empty((1, 3, *self.meta.imgsz), np.float32)
        # HWC -> CHW: OpenCV's SIMD split into planes, then each plane converted and divided straight
        # into its RGB slot of the blob (twice as fast as numpy over a transposed, reversed view).
        # Divide by 255 (not multiply by 1/255): quantised models amplify last-bit differences,
        # and Ultralytics divides.
        planes = cv2.split(padded, buffers.planes) if reuse else cv2.split(padded)
        for channel, plane in enumerate(reversed(planes)):  # B, G, R planes -> R, G, B channels
            np.divide(plane, np.float32(255.0), out=blob[0, channel])
        return blob.astype(self._input_dtype, copy=False), ratio, pad

    def _buffers(self) -> _Buffers:
        buffers: _Buffers | None = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = _Buffers(self.meta.imgsz)
        return buffers

    def infer(self, blob: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input_name: blob})[0]

    def detect(self, image: np.ndarray) -> Detections:
        if image is None or image.ndim != 3 or image.shape[2] != 3:
            shape = None if image is None else image.shape
            raise ValueError(f"expected a BGR image of shape (H, W, 3), got {shape}")
        blob, ratio, pad = self.preprocess(image, reuse=True)
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
