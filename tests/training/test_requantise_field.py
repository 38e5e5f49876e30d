"""``trivue export --from-onnx`` of a field-trained model carries its field sources, or refuses.

It merged only ``--data`` again: a model trained with ``--field`` was re-measured without the field
validation photos and its re-written card lost the field source row, with only a data-hash warning
in the log. The model's metadata now names the field exports it was trained with (``trivue_train``
``field``): without them ``--from-onnx`` stops, saying what to pass; with them the card is whole.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

pytest.importorskip("onnx")

from base.paths import REPO_ROOT
from tests.field_fixture import build_field_dataset
from tests.training.test_field import SMALL, public_source
from training.export import ExportError, add_metadata, requantise, train_summary
from trivue.cli import main

FIELD = "field-terrain-2026-11"


def shipped_copy(tmp_path: Path, field: dict | None) -> Path:
    """The shipped FP32 model, its training summary saying which field exports it was trained with."""
    model = tmp_path / "model" / "trivue-waste.onnx"
    model.parent.mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "models" / "trivue-waste.onnx", model)
    train = {"model": "yolov8n", "init": "models/trivue-waste.onnx", "imgsz": 320, "batch": 16, "seed": 0,
             "missing_labels": "naive", **({"field": field} if field is not None else {})}
    add_metadata(model, {"trivue_train": json.dumps(train)})
    return model


@pytest.fixture
def setup(shared_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(mapping of a few glass-ewaste photos, a field export of hopper and litter photos)."""
    mapping = yaml.safe_load((REPO_ROOT / "training" / "mapping.yaml").read_text())
    mapping["sources"] = {"glass-ewaste": mapping["sources"]["glass-ewaste"]}
    mapping["sources"]["glass-ewaste"]["path"] = str(public_source(shared_dir, tmp_path / "public", per_split=3))
    (tmp_path / "mapping.yaml").write_text(yaml.safe_dump(mapping))
    return tmp_path / "mapping.yaml", build_field_dataset(tmp_path / "terrain-2026-11", counts=SMALL)


def recorded(field: Path) -> dict:
    manifest = json.loads((field / "manifest.json").read_text())
    return {FIELD: {"period": f"{manifest['since']}..{manifest['until']}", "exported_at": manifest["exported_at"]}}


def test_a_field_trained_model_without_its_field_export_is_refused(setup: tuple[Path, Path], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    mapping, field = setup
    model = shipped_copy(tmp_path, recorded(field))
    code = main(["export", "--from-onnx", str(model), "--data", str(mapping)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"trained with the field export(s) {FIELD} (exported " in err and "pass each folder with --field DIR" in err
    assert not model.with_suffix(".md").exists()
    # the other way round: a field export given for a model trained without one
    plain = shipped_copy(tmp_path / "plain", {})
    with pytest.raises(ExportError, match="trained without field exports: drop --field"):
        requantise(plain, mapping, field=[field])


def test_a_field_trained_model_with_its_field_export_keeps_its_card(setup: tuple[Path, Path], tmp_path: Path) -> None:
    mapping, field = setup
    model = shipped_copy(tmp_path, recorded(field))
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for image in sorted((field / "images" / "train").glob("*.jpg"))[:2]:
        shutil.copyfile(image, calibration / image.name)
    result = requantise(model, mapping, calib_dir=calibration, max_drop=1.0, field=[field])
    card = Path(result["card"]).read_text()
    assert f"| {FIELD} | own photos (personal data) |" in card
    assert result["fp32"]["map50"] > 0 and result["int8"]["written"]
    assert f"**{FIELD}** (" in card  # its validation photos were measured, a table of their own
    assert f"- {FIELD}: the deployment's own photos" not in card and f"{FIELD}: the deployment's own photos" in card
    # a different export under the same folder name is another training set
    moved = recorded(field)
    moved[FIELD]["period"] = "2025-01-01..2025-01-31"
    with pytest.raises(ExportError, match="pass the same folders with --field"):
        requantise(shipped_copy(tmp_path / "other", moved), mapping, calib_dir=calibration, field=[field])


def test_the_model_metadata_names_the_field_exports(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "report.json").write_text(json.dumps({"sources": {}, "field": {FIELD: {
        "dir": "/home/agent/terrain-2026-11", "field_map": "x.yaml", "period": "2026-11-02..2026-11-10",
        "exported_at": "2026-11-10T20:00:00+00:00", "test_photos": 6, "test_days": 3, "test_twins_dropped": 0}}}))
    summary = train_summary({"data_yaml": str(data / "data.yaml"), "run_dir": str(tmp_path), "init": "coco",
                             "device": "cuda:0"})
    assert summary["field"] == {FIELD: {"period": "2026-11-02..2026-11-10", "exported_at": "2026-11-10T20:00:00+00:00"}}
    assert summary["device"] == "cuda:0" and "/home/agent" not in json.dumps(summary)
    (data / "report.json").write_text(json.dumps({"sources": {}}))  # a merge without field exports says so
    assert train_summary({"data_yaml": str(data / "data.yaml"), "run_dir": str(tmp_path)})["field"] == {}
