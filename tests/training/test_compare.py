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
             "[1, 2]\n": r"expected a mapping at the top level, got list",
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


def with_extra_class(model: Path, out: Path, name: str, copy_of: int = 0) -> Path:
    """``model`` plus a class ``name`` whose scores are those of class ``copy_of``: a model that was
    taught a class the old one lacks (the field photos' batteries), every other detection unchanged
    (the truck's detector gives a tie to the first class)."""
    import ast

    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    graph_model = onnx.load(str(model))
    graph = graph_model.graph
    output = graph.output[0].name
    for node in graph.node:
        node.output[:] = ["before_extra" if o == output else o for o in node.output]
    graph.initializer.extend([numpy_helper.from_array(np.array([v], np.int64), n) for n, v in
                              (("extra_start", 4 + copy_of), ("extra_end", 5 + copy_of), ("extra_axis", 1))])
    graph.node.extend([
        helper.make_node("Slice", ["before_extra", "extra_start", "extra_end", "extra_axis"], ["extra_scores"]),
        helper.make_node("Concat", ["before_extra", "extra_scores"], [output], axis=1)])
    dim = graph.output[0].type.tensor_type.shape.dim[1]
    dim.dim_value += 1
    meta = {p.key: p for p in graph_model.metadata_props}
    names = ast.literal_eval(meta["names"].value)
    meta["names"].value = repr({**names, len(names): name})
    meta["trivue_version"].value = "with-" + name
    onnx.save(graph_model, str(out))
    return out


def test_a_model_that_learnt_a_new_class_is_compared_on_the_classes_both_have(
        field: Path, degraded: Path, tmp_path: Path) -> None:
    """The field loop teaches classes the public data lacks (add `battery` to the model's classes):
    the new model is compared with the one in service on the classes both have, and its new class
    is shown, not gated. Before, the comparison refused two models with different classes."""
    from tests.field_fixture import taxonomy

    data = tmp_path / "terrain"
    shutil.copytree(field, data)
    battery = taxonomy().index("battery")
    labels = sorted((data / "labels" / "test").iterdir())[:3]
    for label in labels:  # one battery on three test photos, where a labelled item lies
        first = label.read_text().splitlines()[0].split(" ", 1)[1]
        label.write_text(label.read_text() + f"{battery} {first}\n")
    field_map = yaml.safe_load((Path(__file__).parents[2] / "training" / "field-map.yaml").read_text())
    field_map["map"]["battery"] = "battery"
    (tmp_path / "map.yaml").write_text(yaml.safe_dump(field_map))
    new = with_extra_class(SHIPPED, tmp_path / "candidate.onnx", "battery")

    result = compare(degraded, new, data, field_map=tmp_path / "map.yaml").to_json()
    assert result["verdict"] == "promote", result["reasons"]
    row = result["per_class"]["battery"]
    assert (row["old_ap50"], row["delta"], row["boxes"], row["gate"]) == (None, None, 3, "new class")
    assert any("classes OLD does not have" in note and "battery (AP50" in note for note in result["notes"])
    assert "battery" not in result["map50"]["classes"]
    # the same two figures as the shipped model (the same network without the class) against the old one
    same = compare(degraded, SHIPPED, data).to_json()  # the default field map leaves batteries out
    # (means of the per-class AP50s, rounded to 4 decimals each: equal within rounding)
    assert result["map50"]["old"] == pytest.approx(same["map50"]["old"], abs=3e-4)
    assert result["map50"]["new"] == pytest.approx(same["map50"]["new"], abs=3e-4)
    assert result["per_class"]["bag"] == same["per_class"]["bag"]
    # the other way round: NEW lacks a class of OLD, which the trucks would lose
    with pytest.raises(CompareError, match=r"NEW lacks 1: battery"):
        compare(new, degraded, data, field_map=tmp_path / "map.yaml")


def with_false_alarms(model: Path, out: Path, name: str, anchors: tuple[int, ...] = (-100, -91, -10, -1)) -> Path:
    """``model`` that also reports class ``name`` with confidence 0.99 at a few anchors of the
    coarsest grid, the photo's corners, whatever the photo shows: a candidate that fires a class
    on every photo where there is none, every other detection unchanged."""
    import ast

    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    graph_model = onnx.load(str(model))
    graph = graph_model.graph
    output = graph.output[0].name
    channels, count = (d.dim_value for d in graph.output[0].type.tensor_type.shape.dim[1:])
    names = ast.literal_eval({p.key: p.value for p in graph_model.metadata_props}["names"])
    row = 4 + next(i for i, n in names.items() if n == name)
    for node in graph.node:
        node.output[:] = ["before_alarms" if o == output else o for o in node.output]
    raised = np.zeros((1, channels, count), np.float32)
    raised[0, row, list(anchors)] = 0.99
    graph.initializer.append(numpy_helper.from_array(raised, "alarms"))
    graph.node.append(helper.make_node("Max", ["before_alarms", "alarms"], [output]))
    onnx.save(graph_model, str(out))
    return out


def test_false_alarms_of_a_class_without_test_boxes_keep_the_old_model(field: Path, degraded: Path,
                                                                         tmp_path: Path) -> None:
    """Field labels are exhaustive: on the test photos every detection of a class they hold no box
    of is a false alarm. Its AP cannot say so (no box, no AP), so a candidate better on bags that
    fires "glass" on every photo was promoted, and its trucks would have reported glass in every lift."""
    new = with_false_alarms(SHIPPED, tmp_path / "candidate.onnx", "glass")
    result = compare(degraded, new, field, Gates(int8_selfcheck=False)).to_json()
    assert result["per_class"]["glass"]["boxes"] == 0 and result["map50"]["delta"] > 0  # every other gate passes
    assert result["verdict"] == "keep"
    (reason,) = result["reasons"]
    assert reason.startswith("class glass: no test box, yet NEW reports it on the test photos"), reason
    row = result["per_class"]["glass"]
    assert row["gate"] == "false alarms" and row["new_false_alarms"] > row["old_false_alarms"] == 0
    # the model in service itself raises none there: promoted as before (the classes' rows say so)
    same = compare(degraded, SHIPPED, field, Gates(int8_selfcheck=False)).to_json()
    assert same["verdict"] == "promote" and same["per_class"]["glass"]["gate"] == "no test box"
    assert same["per_class"]["glass"]["new_false_alarms"] == 0


def test_false_alarm_gate_arithmetic() -> None:
    """Judged per test photo, and only from ``min_false_alarms`` more than OLD: one stray detection
    on five photos is no trend; a class the field map leaves out is not judged at all."""
    def with_alarms(alarms: int, photos: int = 5) -> dict:
        result = report({"bag": (0.8, 30), "glass": (0.0, 0)})
        result["count_error"] = {"bag": {"images": photos, "bias": 0.0},
                                 "glass": {"images": photos, "bias": round(alarms / photos, 3)}}
        return result

    gates = Gates()  # 0.02 per photo, from 3 more
    for old, new, failed in [(0, 2, False), (0, 3, True), (1, 3, False), (2, 5, True)]:
        rows, reasons, _ = per_class(with_alarms(old), with_alarms(new), ["bag", "glass"], gates)
        assert (rows["glass"]["old_false_alarms"], rows["glass"]["new_false_alarms"]) == (old, new)
        assert bool(reasons) == failed and (rows["glass"]["gate"] == "false alarms") == failed, (old, new)
    # 3 more on 1000 photos is 0.003 per photo: within the allowance
    _, reasons, _ = per_class(with_alarms(0, 1000), with_alarms(3, 1000), ["bag", "glass"], gates)
    assert not reasons
    # glass mapped to null in the field map: its detections cannot be called false
    rows, reasons, _ = per_class(with_alarms(0), with_alarms(9), ["bag", "glass"], gates, covered=frozenset({"bag"}))
    assert not reasons and "new_false_alarms" not in rows["glass"]
