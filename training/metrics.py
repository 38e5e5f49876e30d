"""Detection metrics computed the way Ultralytics computes them (so the two agree on one model).

Matching: per image, a prediction is a true positive at IoU threshold t when it overlaps a
ground-truth box of its class by >= t and neither was matched by a better-overlapping pair.
AP: area under the precision envelope, sampled at 101 recall points (COCO style).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vision.detection import box_iou

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


@dataclass(slots=True)
class MatchLog:
    """Predictions of a whole split, flattened, with their true-positive flags per IoU threshold."""

    tp: list[np.ndarray] = field(default_factory=list)  # (N, 10) bool per image
    conf: list[np.ndarray] = field(default_factory=list)
    pred_cls: list[np.ndarray] = field(default_factory=list)
    target_cls: list[np.ndarray] = field(default_factory=list)

    def add(self, pred_xyxy: np.ndarray, conf: np.ndarray, pred_cls: np.ndarray,
            gt_xyxy: np.ndarray, gt_cls: np.ndarray) -> None:
        self.tp.append(match(pred_xyxy, pred_cls, gt_xyxy, gt_cls))
        self.conf.append(conf)
        self.pred_cls.append(pred_cls)
        self.target_cls.append(gt_cls)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        tp = np.concatenate(self.tp) if self.tp else np.zeros((0, len(IOU_THRESHOLDS)), bool)
        return (tp, np.concatenate(self.conf) if self.conf else np.zeros(0),
                np.concatenate(self.pred_cls) if self.pred_cls else np.zeros(0, int),
                np.concatenate(self.target_cls) if self.target_cls else np.zeros(0, int))


def match(pred_xyxy: np.ndarray, pred_cls: np.ndarray, gt_xyxy: np.ndarray, gt_cls: np.ndarray,
          thresholds: np.ndarray = IOU_THRESHOLDS) -> np.ndarray:
    """(N, T) true-positive flags, one-to-one matching by best IoU (Ultralytics' match_predictions)."""
    correct = np.zeros((len(pred_xyxy), len(thresholds)), dtype=bool)
    if not len(pred_xyxy) or not len(gt_xyxy):
        return correct
    iou = box_iou(gt_xyxy, pred_xyxy) * (gt_cls[:, None] == pred_cls[None, :])
    for i, threshold in enumerate(thresholds):
        gt_idx, pred_idx = np.nonzero(iou >= threshold)
        if not len(gt_idx):
            continue
        pairs = np.stack([gt_idx, pred_idx, iou[gt_idx, pred_idx]], axis=1)
        pairs = pairs[pairs[:, 2].argsort()[::-1]]
        pairs = pairs[np.unique(pairs[:, 1], return_index=True)[1]]
        pairs = pairs[np.unique(pairs[:, 0], return_index=True)[1]]
        correct[pairs[:, 1].astype(int), i] = True
    return correct


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    x = np.linspace(0, 1, 101)
    return float(np.trapezoid(np.interp(x, mrec, mpre), x))


@dataclass(frozen=True, slots=True)
class ClassCurve:
    ap: np.ndarray  # (T,) AP per IoU threshold
    recall: np.ndarray  # recall at IoU 0.5 along decreasing confidence
    precision: np.ndarray
    instances: int


def class_curves(tp: np.ndarray, conf: np.ndarray, pred_cls: np.ndarray, target_cls: np.ndarray,
                 nc: int) -> list[ClassCurve]:
    """AP at every IoU threshold and the IoU-0.5 PR curve, for each class id < nc."""
    order = np.argsort(-conf, kind="stable")
    tp, pred_cls = tp[order], pred_cls[order]
    curves = []
    for c in range(nc):
        hits = tp[pred_cls == c]
        n_gt = int((target_cls == c).sum())
        if not len(hits) or not n_gt:
            curves.append(ClassCurve(np.zeros(tp.shape[1]), np.zeros(0), np.zeros(0), n_gt))
            continue
        tpc = hits.cumsum(0)
        fpc = (1 - hits).cumsum(0)
        recall = tpc / (n_gt + 1e-16)
        precision = tpc / (tpc + fpc)
        ap = np.array([average_precision(recall[:, j], precision[:, j]) for j in range(tp.shape[1])])
        curves.append(ClassCurve(ap, recall[:, 0], precision[:, 0], n_gt))
    return curves


def precision_recall(tp50: np.ndarray, pred_cls: np.ndarray, target_cls: np.ndarray, c: int | None
                     ) -> tuple[float, float]:
    """Precision and recall of a fixed set of detections (at IoU 0.5), one class or all."""
    if c is not None:
        tp50, n_gt = tp50[pred_cls == c], int((target_cls == c).sum())
    else:
        n_gt = len(target_cls)
    precision = float(tp50.sum() / len(tp50)) if len(tp50) else 0.0
    recall = float(tp50.sum() / n_gt) if n_gt else 0.0
    return precision, recall


def binary_precision_recall(truth: list[bool], predicted: list[bool]) -> tuple[float, float, dict]:
    """Image-level decision quality: precision, recall and the confusion counts."""
    t, p = np.asarray(truth, bool), np.asarray(predicted, bool)
    counts = {"tp": int((t & p).sum()), "fp": int((~t & p).sum()), "fn": int((t & ~p).sum()),
              "tn": int((~t & ~p).sum())}
    precision = counts["tp"] / (counts["tp"] + counts["fp"]) if counts["tp"] + counts["fp"] else 0.0
    recall = counts["tp"] / (counts["tp"] + counts["fn"]) if counts["tp"] + counts["fn"] else 0.0
    return precision, recall, counts
