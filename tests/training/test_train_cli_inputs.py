"""``trivue train`` and evaluation inputs a newcomer gets wrong: one line naming the bad thing, and
options that would be ignored refused before minutes of training (found following docs/training.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from training.datasets import DatasetError, merge
from training.evaluate import LabelledImage, measure
from trivue.cli import main
from vision.model import Detector, default_model_path


def test_field_map_without_field_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # It was ignored: a whole training ran on the public sources alone, the field map never read.
    code = main(["train", "--field-map", str(tmp_path / "map.yaml"), "--run", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("trivue train: error: --field-map goes with --field DIR"), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_missing_dataset_folder_is_named_with_its_source(tmp_path: Path) -> None:
    # It read "<path>/data.yaml: dataset has no data.yaml", as if the folder were there.
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(yaml.safe_dump({"name": "t", "classes": ["bag"],
                                       "sources": {"bags": {"path": "nowhere", "map": {"thing": "bag"}}}}))
    with pytest.raises(DatasetError) as error:
        merge(mapping, tmp_path / "out")
    assert str(error.value) == f"{mapping}: source 'bags': {tmp_path / 'nowhere'}: no such dataset folder"


def test_the_first_inference_is_not_timed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # onnxruntime's first run allocates: on a 5-photo val it made the card's FP32 speed 51 ms per
    # image where the same model runs at 10 ms.
    items = []
    for n in range(2):
        image = tmp_path / f"{n}.jpg"
        cv2.imwrite(str(image), np.random.default_rng(n).integers(0, 255, (64, 64, 3), dtype=np.uint8))
        (tmp_path / f"{n}.txt").write_text("")
        items.append(LabelledImage(image, tmp_path / f"{n}.txt", "src"))
    real, calls = Detector.infer, []

    def slow_first(self: Detector, blob: np.ndarray) -> np.ndarray:
        calls.append(blob)
        if len(calls) == 1:
            time.sleep(0.5)
        return real(self, blob)

    monkeypatch.setattr(Detector, "infer", slow_first)
    model = default_model_path()
    report = measure(items, list(Detector(model).names), model, 0.25)
    assert report["ms_per_image"] < 150, report["ms_per_image"]


def test_a_run_without_time_budget_says_so_on_its_card() -> None:
    # The card read "2 epochs in 0.0 min on the CPU (budget - h)" for a run without --hours.
    from tests.training.test_card import class_figures
    from training.card import render

    run = {"model": "yolov8n", "init": "coco", "imgsz": 160, "batch": 4, "seed": 0, "epochs_done": 2,
           "train_minutes": 0.4, "hours": 0.0, "device": "cpu"}
    card = render("t", "1", None, run, class_figures(["bottle"]), None)
    assert "budget - h" not in card and "2 epochs in 0.4 min on the CPU (no time budget)" in card, card
    budgeted = render("t", "1", None, run | {"hours": 1.2}, class_figures(["bottle"]), None)
    assert "(budget 1.2 h)" in budgeted


def test_resume_refuses_a_changed_training_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `--resume --epochs 60` went on to the run's own 40 epochs, the 60 silently dropped (Ultralytics
    # resumes with the arguments its checkpoint holds). The same options as the run's own, or none, pass.
    run = tmp_path / "run"
    run.mkdir()
    (run / "trivue.json").write_text(json.dumps({"epochs": 40, "imgsz": 160, "data": "m.yaml", "hours": 0.0}))
    code = main(["train", "--resume", "--run", str(run), "--epochs", "60", "--imgsz", "160"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.strip() == (f"trivue train: error: --resume continues {run} as it was started ({run / 'trivue.json'}): "
                           "--epochs 60 differs from its 40; drop it, or train into a new --run"), err
    code = main(["train", "--resume", "--run", str(run), "--epochs", "40", "--imgsz", "160", "--data", "m.yaml"])
    err = capsys.readouterr().err
    assert code == 2 and "nothing to resume" in err, err  # past the check: no checkpoint here
