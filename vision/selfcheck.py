"""Does a quantised model still see what its FP32 original sees, on the CPU running it?

INT8 kernels differ from CPU to CPU: on AVX2 without VNNI, onnxruntime's U8S8 convolutions can
saturate, and the shipped INT8 model lost 0.085 mAP50 on the project's 2-core CI machine while its
card, measured elsewhere, claimed 0.011. An accuracy gate passed on the build machine therefore
says little about a truck's CPU. The truck checks at start-up instead (``edge.app``): both models
run on a few real photos shipped in the package (``vision/calibration``), and when they disagree
beyond a threshold it runs the FP32 model and says so in its heartbeat.

Disagreement, between 0 (the same detections) and 1 (nothing in common), over all photos pooled::

    sum over matched pairs |conf_ref - conf_cand|  +  sum over unmatched boxes of their conf
    -------------------------------------------------------------------------------------------
                  sum of every box's confidence, in both models' detections

A pair is one box of each model, same class, IoU >= 0.5, matched one-to-one (highest IoU first).
Weighting by confidence makes a faint box near the threshold that only one model keeps cost
little, and a confident box that the quantised model misses or misclassifies cost a lot. Both
models run at ``COMPARE_CONF`` (below any deployed threshold) so that a box at 0.26 in one model
and 0.24 in the other counts as a 0.02 difference, not as a missed box.

``compare`` and ``check_int8`` are the API; ``trivue evaluate --compare`` can call them as well.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.detection import Detections, box_iou
from vision.model import Detector, DetectorError

CALIBRATION_DIR = Path(__file__).with_name("calibration")
INT8_SUFFIX = "-int8"  # training/export.py writes <name>-int8.onnx beside <name>.onnx
COMPARE_CONF = 0.1
MATCH_IOU = 0.5
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}


class SelfCheckError(ValueError):
    """A comparison that cannot be made; the message names the file and the reason."""


def fp32_sibling(model: Path) -> Path | None:
    """``X.onnx`` beside ``X-int8.onnx``; None when ``model`` is not named as an INT8 model or has none."""
    model = Path(model)
    if not model.stem.endswith(INT8_SUFFIX):
        return None
    sibling = model.with_name(model.stem.removesuffix(INT8_SUFFIX) + model.suffix)
    return sibling if sibling.is_file() else None


def calibration_photos(folder: Path | None = None) -> list[Path]:
    """The photos of ``folder`` (default: those shipped in the package), sorted by name."""
    folder = Path(folder) if folder is not None else CALIBRATION_DIR
    if not folder.is_dir():
        raise SelfCheckError(f"{folder}: no such folder of calibration photos")
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        raise SelfCheckError(f"{folder}: no .jpg/.png photo to compare the models on")
    return photos


@dataclass(frozen=True, slots=True)
class PhotoAgreement:
    """Both models' detections on one photo, compared."""

    photo: str
    reference: int  # boxes of the reference (FP32) model
    candidate: int  # boxes of the candidate (INT8) model
    matched: int
    distance: float  # numerator of the disagreement (see the module's docstring)
    weight: float  # denominator: every box's confidence

    @property
    def disagreement(self) -> float:
        return self.distance / self.weight if self.weight > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Agreement:
    photos: tuple[PhotoAgreement, ...]

    @property
    def disagreement(self) -> float:
        weight = sum(p.weight for p in self.photos)
        return sum(p.distance for p in self.photos) / weight if weight > 0 else 0.0

    def to_json(self) -> dict:
        return {"disagreement": round(self.disagreement, 4),
                "reference_boxes": sum(p.reference for p in self.photos),
                "candidate_boxes": sum(p.candidate for p in self.photos),
                "matched": sum(p.matched for p in self.photos),
                "per_photo": {p.photo: round(p.disagreement, 4) for p in self.photos}}


def compare_detections(reference: Detections, candidate: Detections, photo: str = "",
                       iou: float = MATCH_IOU) -> PhotoAgreement:
    """Match boxes one-to-one (same class, IoU >= ``iou``, highest IoU first) and weigh the differences."""
    overlap = box_iou(reference.xyxy, candidate.xyxy) if len(reference) and len(candidate) else np.zeros((0, 0))
    if overlap.size:
        overlap = np.where(reference.class_id[:, None] == candidate.class_id[None, :], overlap, 0.0)
    ref_free = np.ones(len(reference), bool)
    cand_free = np.ones(len(candidate), bool)
    distance = 0.0
    matched = 0
    for flat in np.argsort(-overlap, axis=None, kind="stable"):
        r, c = np.unravel_index(flat, overlap.shape)
        if overlap[r, c] < iou:
            break
        if ref_free[r] and cand_free[c]:
            ref_free[r] = cand_free[c] = False
            distance += abs(float(reference.confidence[r]) - float(candidate.confidence[c]))
            matched += 1
    distance += float(reference.confidence[ref_free].sum()) + float(candidate.confidence[cand_free].sum())
    weight = float(reference.confidence.sum()) + float(candidate.confidence.sum())
    return PhotoAgreement(photo, len(reference), len(candidate), matched, distance, weight)


def compare(reference: Detector, candidate: Detector, photos: Sequence[Path]) -> Agreement:
    """Both detectors on every photo (at their own thresholds; ``check_int8`` uses COMPARE_CONF)."""
    if tuple(reference.names) != tuple(candidate.names):
        raise SelfCheckError(f"{candidate.path} and {reference.path} have different classes "
                             f"({list(candidate.names)} vs {list(reference.names)}): not one model")
    results = []
    for photo in photos:
        image = cv2.imread(str(photo))
        if image is None:
            raise SelfCheckError(f"{photo}: not a readable image")
        results.append(compare_detections(reference.detect(image), candidate.detect(image), photo.name))
    return Agreement(tuple(results))


@dataclass(frozen=True, slots=True)
class SelfCheck:
    """The verdict on a quantised model: run it, or its reference instead."""

    candidate: Path
    reference: Path
    agreement: Agreement
    threshold: float
    seconds: float  # what the check cost (both sessions and every inference)

    @property
    def passed(self) -> bool:
        return self.agreement.disagreement <= self.threshold

    @property
    def chosen(self) -> Path:
        return self.candidate if self.passed else self.reference

    def to_json(self) -> dict:
        return {"candidate": str(self.candidate), "reference": str(self.reference), "passed": self.passed,
                "threshold": self.threshold, "seconds": round(self.seconds, 3), **self.agreement.to_json()}


def check_int8(model: Path, threshold: float, photos: Sequence[Path] | None = None,
               reference: Path | None = None, threads: int = 0) -> SelfCheck | None:
    """Compare ``model`` with its FP32 sibling (or ``reference``) on ``photos`` (default: the shipped
    calibration photos); None when there is nothing to compare it with."""
    if not 0.0 <= threshold <= 1.0:
        raise SelfCheckError(f"threshold must be within 0..1, got {threshold}")
    reference = reference or fp32_sibling(model)
    if reference is None:
        return None
    photos = list(photos) if photos is not None else calibration_photos()
    started = time.perf_counter()
    try:
        fp32 = Detector(reference, conf=COMPARE_CONF, threads=threads)
        int8 = Detector(model, conf=COMPARE_CONF, threads=threads)
    except DetectorError as error:
        raise SelfCheckError(str(error)) from None
    agreement = compare(fp32, int8, photos)
    return SelfCheck(Path(model), Path(reference), agreement, threshold, time.perf_counter() - started)
