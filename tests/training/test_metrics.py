"""AP and matching on hand-made cases whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import average_precision, binary_precision_recall, class_curves, match

GT = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)


def test_match_is_one_to_one_and_class_aware() -> None:
    preds = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [21, 20, 31, 30]], np.float32)
    flags = match(preds, np.array([0, 0, 1, 1]), GT, np.array([0, 0]))
    assert flags[:, 0].tolist() == [True, False, False, False]  # duplicate and wrong class miss
    shifted = match(np.array([[1, 0, 11, 10]], np.float32), np.array([0]), GT[:1], np.array([0]))
    iou = 90 / 110
    assert shifted[0].tolist() == [t <= iou for t in np.linspace(0.5, 0.95, 10)]


def test_perfect_detector_scores_one_and_an_empty_one_zero() -> None:
    tp = np.ones((2, 10), bool)
    curves = class_curves(tp, np.array([0.9, 0.8]), np.array([0, 0]), np.array([0, 0]), nc=2)
    # 0.995, not 1: the sentinel (recall 1, precision 0) closes the last 1/100 step, as in Ultralytics
    assert curves[0].ap == pytest.approx(np.full(10, 0.995), abs=1e-6)
    assert curves[1].instances == 0 and curves[1].ap.sum() == 0


def test_ap_of_a_half_right_ranking() -> None:
    # ranking: hit, miss, hit over 2 targets -> P = 1, 0.5, 0.67 at R = .5, .5, 1
    ap = average_precision(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3]))
    assert ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3, abs=0.01)


def test_binary_decision_counts() -> None:
    precision, recall, counts = binary_precision_recall([True, True, False, False], [True, False, True, False])
    assert (precision, recall) == (0.5, 0.5)
    assert counts == {"tp": 1, "fp": 1, "fn": 1, "tn": 1}
