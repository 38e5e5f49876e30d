"""``trivue evaluate --compare``: real models on a field dataset of real photos, verdicts and refusals."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from base.paths import COCO_WEIGHTS, MODELS_DIR
from tests.field_fixture import build_field_dataset, degrade_model
from training.compare import GATES, KEEP_EXIT, CompareError, Gates, compare, load_gates, map_gate, per_class
from trivue.cli import main

SHIPPED = MODELS_DIR / "trivue-waste.onnx"
CLASSES = ["bag", "bottle", "can"]


@pytest.fixture(scope="module")
def field(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (SHIPPED.is_file() and SHIPPED.with_name("trivue-waste-int8.onnx").is_file()):
        pytest.skip("the shipped FP32/INT8 pair is absent")
    return build_field_dataset(tmp_path_factory.mktemp("field") / "terrain")


@pytest.fixture(scope="module")
def degraded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return degrade_model(SHIPPED, tmp_path_factory.mktemp("models") / "degraded.onnx")


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["evaluate", "--compare", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_shipped_promotes_over_degraded_and_the_reverse_keeps(field: Path, degraded: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, str(degraded), str(SHIPPED), "--data", str(field))
    assert code == 0, out
    assert out.rstrip().endswith("verdict: promote")
    bag = next(line for line in out.splitlines() if line.startswith("bag "))
    old_ap, new_ap, delta, boxes = bag.split()[1:5]
    assert float(new_ap) > float(old_ap) and float(delta) == pytest.approx(float(new_ap) - float(old_ap), abs=2e-3)
    assert int(boxes) >= 20 and bag.endswith("ok")
    # the shipped model has an INT8 sibling: the trucks' self-check ran on it and passed
    assert "INT8 self-check: passed (trivue-waste-int8.onnx against trivue-waste.onnx" in out
    assert "fewer than 20 test boxes" in out and "no test box, not measured: glass" in out

    code, out, _ = run(capsys, str(SHIPPED), str(degraded), "--data", str(field), "--json")
    assert code == KEEP_EXIT
    result = json.loads(out)
    assert result["verdict"] == "keep" and result["split"] == "test" and result["images"] == 60
    assert result["map50"]["delta"] < 0 and result["map50"]["new"] == result["new"]["map50"]
    gated = [name for name, row in result["per_class"].items() if row["gate"] == "drop"]
    assert gated and all(result["per_class"][n]["boxes"] >= 20 for n in gated)
    assert [r for r in result["reasons"] if r.startswith("class ")] == [
        f"class {n}: AP50 {result['per_class'][n]['old_ap50']:.3f} -> {result['per_class'][n]['new_ap50']:.3f} "
        f"({result['per_class'][n]['delta']:+.4f}), a drop of more than 0.03 on {result['per_class'][n]['boxes']} "
        "test boxes" for n in gated]
    assert any(r.startswith("field mAP50 ") for r in result["reasons"])
    assert result["int8_selfcheck"] == {"applies": False, "why": "no degraded-int8.onnx beside degraded.onnx"}
    assert result["new"]["version"].endswith("-degraded") and result["gates"] == Gates().model_dump()


def test_an_int8_model_that_fails_the_selfcheck_keeps(field: Path, degraded: Path, tmp_path: Path) -> None:
    new = tmp_path / "candidate.onnx"
    shutil.copyfile(SHIPPED, new)
    # stands in for a quantisation gone wrong: the "INT8" model no longer sees what FP32 sees
    degrade_model(SHIPPED, tmp_path / "candidate-int8.onnx", noise=0.2)
    result = compare(degraded, new, field).to_json()
    assert result["verdict"] == "keep"
    assert len(result["reasons"]) == 1 and result["reasons"][0].startswith(
        "INT8 self-check failed: candidate-int8.onnx disagrees with candidate.onnx by")
    assert result["int8_selfcheck"]["applies"] and not result["int8_selfcheck"]["passed"]
    assert result["map50"]["delta"] > 0  # every other gate passed


def report(ap: dict[str, tuple[float, int]]) -> dict:
    return {"per_class": {name: {"ap50": value, "instances": boxes} for name, (value, boxes) in ap.items()}}


def test_gates_arithmetic() -> None:
    gates = Gates(max_class_drop=0.03, min_boxes=20)
    old = report({"bag": (0.80, 50), "bottle": (0.80, 50), "can": (0.80, 19)})
    new = report({"bag": (0.77, 50), "bottle": (0.7699, 50), "can": (0.10, 19)})
    rows, reasons, notes = per_class(old, new, CLASSES, gates)
    assert rows["bag"]["gate"] == "ok"  # exactly the allowance
    assert rows["bottle"]["gate"] == "drop" and reasons == [
        "class bottle: AP50 0.800 -> 0.770 (-0.0301), a drop of more than 0.03 on 50 test boxes"]
    assert rows["can"]["gate"] == "not gated (< 20 boxes)" and "can (19)" in notes[0]
    rows, reasons, notes = per_class(report({c: (0.5, 3) for c in CLASSES}), report({c: (0.1, 0) for c in CLASSES}),
                                     CLASSES, gates)
    assert not reasons and {r["gate"] for r in rows.values()} == {"no test box"}
    assert "the per-class gate checked nothing" in notes[-1]
    assert map_gate(0.5, 0.5001, Gates()) is None
    assert map_gate(0.5, 0.5, Gates()) == "field mAP50 0.500 -> 0.500 (+0.000): it must rise by more than 0.0"
    assert map_gate(0.5, 0.51, Gates(min_map_gain=0.01)) is not None and map_gate(0.5, 0.5101, Gates(
        min_map_gain=0.01)) is None


def test_gates_file_is_strict(tmp_path: Path) -> None:
    assert load_gates() == Gates() == load_gates(GATES)  # the shipped file says the defaults
    shipped = yaml.safe_load(GATES.read_text())
    assert set(shipped) == set(Gates.model_fields)
    cases = {"max_class_drops: 0.03\n": r"unknown key 'max_class_drops'",
             "max_class_drop: -1\n": r"max_class_drop: Input should be greater than or equal to 0",
             "min_boxes: many\n": r"min_boxes: Input should be a valid integer",
             "[1, 2]\n": r"Input should be a valid dictionary",
             "a: [\n": r"not valid YAML"}
    for text, message in cases.items():
        (tmp_path / "gates.yaml").write_text(text)
        with pytest.raises(CompareError, match=message):
            load_gates(tmp_path / "gates.yaml")
    (tmp_path / "gates.yaml").write_text("min_map_gain: 0.02\n")
    assert load_gates(tmp_path / "gates.yaml") == Gates(min_map_gain=0.02)


def test_bad_input_exits_2_with_one_line(field: Path, degraded: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(SHIPPED.read_bytes()[:100_000])
    no_test = build_field_dataset(tmp_path / "no-test", counts={"hopper-bags": {"train": 2, "val": 1}})
    (tmp_path / "gates.yaml").write_text("max_class_drop: 0.03\npromote_always: true\n")
    field_map = yaml.safe_load((Path(__file__).parents[2] / "training" / "field-map.yaml").read_text())
    del field_map["map"]["battery"]
    (tmp_path / "map.yaml").write_text(yaml.safe_dump(field_map))
    data = ["--data", str(field)]
    cases = [
        ([str(tmp_path / "gone.onnx"), str(SHIPPED), *data], "OLD .*gone.onnx: no such file"),
        ([str(degraded), str(corrupt), *data], "NEW .*corrupt.onnx: not a loadable ONNX model"),
        ([str(degraded), str(SHIPPED), "--data", str(no_test)], r"no-test: no test photos \(images/test is empty"),
        ([str(degraded), str(SHIPPED), "--data", str(tmp_path)], "data.yaml: absent: not a `trivue dataset export`"),
        ([str(degraded), str(SHIPPED), *data, "--gates", str(tmp_path / "gates.yaml")],
         r"gates.yaml: unknown key 'promote_always'"),
        ([str(degraded), str(SHIPPED), *data, "--field-map", str(tmp_path / "map.yaml")],
         r"data.yaml: class 'battery' is not in the field map .*map.yaml"),
        ([str(degraded), str(SHIPPED)], "--compare needs --data FIELD_DIR"),
    ]
    if COCO_WEIGHTS.is_file():
        cases.append(([str(SHIPPED), str(COCO_WEIGHTS), *data], r"have different classes \(10: bag, .* vs 80: person"))
    for args, message in cases:
        code, out, err = run(capsys, *args)
        assert code == 2 and out == "", (args, out)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("trivue evaluate: error: "), err
        assert re.search(message, lines[0]), (message, lines[0])
