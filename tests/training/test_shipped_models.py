"""The shipped models hold their card's accuracy on the machine running the suite.

The INT8 model is the truck's default; a CPU whose int8 kernels saturate (or a graph optimisation
that picks another kernel) can cost it accuracy that a training log never shows. So both shipped
models are evaluated here, through the truck's own detector, on the near-duplicate-free val split.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from base.paths import MODELS_DIR, REPO_ROOT
from training.evaluate import evaluate
from vision.model import Detector

FP32 = MODELS_DIR / "trivue-waste.onnx"
INT8 = MODELS_DIR / "trivue-waste-int8.onnx"
MAPPING = REPO_ROOT / "training" / "mapping.yaml"
INT8_MAX_DROP = 0.02
# the card's figure was measured on another CPU: allow for kernel rounding, not for a regression
CARD_TOLERANCE = 0.005


def card_metrics(model: Path) -> dict:
    return json.loads(Detector(model).session.get_modelmeta().custom_metadata_map["trivue_metrics"])


@pytest.fixture(scope="module")
def reports(shared_dir: Path) -> dict[str, dict]:
    return {"fp32": evaluate(MAPPING, FP32), "int8": evaluate(MAPPING, INT8)}


@pytest.mark.heavy(cpu_s=35)
def test_int8_stays_within_two_points_of_fp32_here(reports: dict[str, dict]) -> None:
    drop = reports["fp32"]["map50"] - reports["int8"]["map50"]
    assert drop <= INT8_MAX_DROP, f"INT8 mAP50 {reports['int8']['map50']:.3f} is {drop:.3f} below FP32 on this CPU"


@pytest.mark.parametrize("kind", ["fp32", "int8"])
def test_each_model_holds_its_card(reports: dict[str, dict], kind: str) -> None:
    model = FP32 if kind == "fp32" else INT8
    card = card_metrics(model)
    measured = reports[kind]
    assert measured["map50"] >= card["map50"] - CARD_TOLERANCE, (model.name, measured["map50"], card["map50"])
    for name, ap in card["ap50"].items():
        here = measured["per_class"][name]
        assert here["ap50"] >= ap - class_tolerance(here["instances"]), (model.name, name, here, ap)


def class_tolerance(instances: int) -> float:
    """How far a class's AP50 may sit below its card on another CPU: 0.02, or one labelled box's worth
    where the class has fewer than 50 in val. INT8 kernels differ between CPUs (VNNI, AVX-512, plain
    AVX2) in rounding, and one box found or missed moves a 20-box class's AP by ~0.05 (seen: medical,
    20 boxes, 0.926 on the card's CPU and 0.900 on an AVX2-only EPYC, the model's mAP50 0.002 apart)."""
    return max(0.02, 1.0 / max(instances, 1))


def test_the_card_quotes_no_image_level_claim() -> None:
    card = (MODELS_DIR / "trivue-waste.md").read_text(encoding="utf-8")
    assert "0.991" not in card and "recall 1.000" not in card
    assert "no figure of the kind" in card
