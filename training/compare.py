"""``trivue evaluate --compare OLD.onnx NEW.onnx --data FIELD_DIR``: promote the new model, or keep the old.

Both models run through the truck's detector (``training.evaluate.measure``, onnxruntime only,
no torch) on the field dataset's test split: whole collection days, frozen by the server, never
trained on (``training.field``), so successive models meet the same photos. The field classes
become the models' through the field map, as in training; classes mapped to null are left out and
counted. The verdict comes from the gates file (``training/compare-gates.yaml``): per-class AP50
drops, the field mAP50 gain and the INT8 self-check the trucks run at start-up. Each failed gate
gives one reason.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from training.compare_input import field_test
from training.datasets import DatasetError
from training.evaluate import EvaluateError, LabelledImage, measure
from training.field import FIELD_MAP, TEST
from training.spec_files import load_spec
from vision.model import Detector, DetectorError
from vision.selfcheck import INT8_SUFFIX, SelfCheckError, calibration_photos, check_int8, fp32_sibling

GATES = Path(__file__).with_name("compare-gates.yaml")
PROMOTE, KEEP = "promote", "keep"
KEEP_EXIT = 3  # `trivue evaluate --compare`: 0 promote, 3 keep, 2 bad input
EPSILON = 1e-9  # AP figures are rounded to 4 decimals: a drop of exactly the allowance passes


class CompareError(ValueError):
    """Input that cannot be compared (missing or corrupt file, no test split, different classes)."""


class Gates(BaseModel):
    """What NEW must do to be promoted; every key optional (defaults as the shipped file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_class_drop: float = Field(default=0.03, ge=0, le=1)
    min_boxes: int = Field(default=20, ge=1)
    min_map_gain: float = Field(default=0.0, ge=0, le=1)
    max_false_alarm_rise: float = Field(default=0.02, ge=0)
    min_false_alarms: int = Field(default=3, ge=1)
    int8_selfcheck: bool = True
    int8_max_disagreement: float = Field(default=0.15, ge=0, le=1)
    # not a gate of NEW but of the input: below this share of the manifest's test photos still
    # readable, the comparison is refused (exit 2) rather than judged on what is left
    min_test_share: float = Field(default=0.5, ge=0, le=1)


def load_gates(path: Path | None = None) -> Gates:
    """The gates file at ``path`` (default: the shipped one); an empty file is the defaults."""
    return load_spec(Path(path) if path is not None else GATES, Gates, CompareError, "gates file")


def open_model(path: Path, role: str) -> Detector:
    if not Path(path).is_file():
        raise CompareError(f"{role} {path}: no such file")
    try:
        return Detector(path)  # a corrupt or truncated file: DetectorError naming it
    except DetectorError as error:
        raise CompareError(f"{role} {error}") from None


def int8_pair(new: Path) -> tuple[Path, Path | None] | None:
    """(INT8 model, its FP32 reference) that NEW ships as; None when NEW has no INT8 model."""
    if new.stem.endswith(INT8_SUFFIX):
        return new, fp32_sibling(new)
    sibling = new.with_name(f"{new.stem}{INT8_SUFFIX}{new.suffix}")
    return (sibling, new) if sibling.is_file() else None


def int8_gate(new: Path, gates: Gates) -> tuple[dict, str | None]:
    """The self-check's result and, when it fails, the reason."""
    if not gates.int8_selfcheck:
        return {"applies": False, "why": "int8_selfcheck is off in the gates file"}, None
    pair = int8_pair(new)
    if pair is None:
        return {"applies": False, "why": f"no {new.stem}{INT8_SUFFIX}.onnx beside {new.name}"}, None
    int8, reference = pair
    if reference is None:
        reason = (f"INT8 self-check impossible: {int8.name} has no FP32 model beside it "
                  f"({int8.name.replace(INT8_SUFFIX, '')}); trucks would run it unchecked")
        return {"applies": True, "passed": False, "candidate": str(int8), "why": reason}, reason
    try:
        check = check_int8(int8, gates.int8_max_disagreement, calibration_photos(), reference=reference)
    except SelfCheckError as error:
        reason = f"INT8 self-check impossible: {error}"
        return {"applies": True, "passed": False, "candidate": str(int8), "why": reason}, reason
    assert check is not None  # a reference was given
    result = {"applies": True, **check.to_json()}
    result.pop("per_photo")
    if check.passed:
        return result, None
    return result, (f"INT8 self-check failed: {int8.name} disagrees with {reference.name} by "
                    f"{check.agreement.disagreement:.3f} > {gates.int8_max_disagreement} on "
                    f"{len(check.agreement.photos)} calibration photos (trucks would run the FP32 model)")


@dataclass(frozen=True, slots=True)
class Comparison:
    verdict: str
    reasons: list[str]
    notes: list[str]
    result: dict  # everything, JSON-ready

    def to_json(self) -> dict:
        return {"verdict": self.verdict, "reasons": self.reasons, "notes": self.notes, **self.result}


def false_alarms(report: dict, name: str) -> tuple[int, int]:
    """(detections of ``name`` at the deployed confidence, photos) in a split holding no box of it:
    ``count_error`` is detections minus boxes per photo, so its mean is then detections per photo."""
    errors = report.get("count_error", {}).get(name)
    if not errors or not errors["images"]:
        return 0, 0
    return round(errors["bias"] * errors["images"]), errors["images"]


def alarm_gate(old: dict, new: dict, name: str, gates: Gates) -> tuple[int, int, str | None]:
    """A class the test photos hold no box of has no AP, but field labels are exhaustive: each
    detection of it there is a false alarm, a sorting error the trucks would report. Without this
    gate a candidate better on bags that fired "glass" on every photo was promoted. Returns OLD's
    and NEW's false alarms and the reason when NEW's rise per test photo exceeds the allowance and
    counts at least ``min_false_alarms`` (one detection more on a handful of photos, an item left
    unboxed or a bag's fragment called film, is no trend)."""
    before, _ = false_alarms(old, name) if name in old["per_class"] else (0, 0)
    after, photos = false_alarms(new, name)
    rise = (after - before) / photos if photos else 0.0
    if after - before < gates.min_false_alarms or rise <= gates.max_false_alarm_rise + EPSILON:
        return before, after, None
    return before, after, (f"class {name}: no test box, yet NEW reports it on the test photos {after} times against "
                           f"{before} for OLD ({rise:+.3f} per photo, more than max_false_alarm_rise "
                           f"{gates.max_false_alarm_rise}): the field labels hold none, so each is a false alarm")


def per_class(old: dict, new: dict, names: list[str], gates: Gates,
              covered: frozenset[str] | None = None) -> tuple[dict, list[str], list[str]]:
    """Per class: both AP50s, delta, boxes and what the gate made of it; failed reasons; notes.

    A class of NEW that OLD lacks (a class the field photos taught, e.g. battery) has no delta: it is
    listed with its AP50 and boxes and gated by nothing, since the old model cannot be worse at it.
    A class of ``covered`` (the field labels' classes: None, all) with no test box is gated on its
    false alarms instead (``alarm_gate``)."""
    rows, reasons, few, empty, added = {}, [], [], [], []
    for name in names:
        boxes = new["per_class"][name]["instances"]
        alarms: dict = {}
        failed = None
        if boxes == 0 and (covered is None or name in covered):
            before_fa, after_fa, failed = alarm_gate(old, new, name, gates)
            alarms = {"old_false_alarms": before_fa, "new_false_alarms": after_fa}
            if failed:
                reasons.append(failed)
        if name not in old["per_class"]:
            after = new["per_class"][name]["ap50"]
            rows[name] = {"old_ap50": None, "new_ap50": after, "delta": None, "boxes": boxes,
                          "gate": "false alarms" if failed else "new class", **alarms}
            added.append(f"{name} (AP50 {after:.3f} on {boxes} test boxes)" if boxes else f"{name} (no test box)")
            continue
        before, after = old["per_class"][name]["ap50"], new["per_class"][name]["ap50"]
        delta = round(after - before, 4)
        if boxes == 0:
            gate = "false alarms" if failed else "no test box"
            empty.append(name)
        elif boxes < gates.min_boxes:
            gate = f"not gated (< {gates.min_boxes} boxes)"
            few.append(f"{name} ({boxes})")
        elif delta < -gates.max_class_drop - EPSILON:
            gate = "drop"
            reasons.append(f"class {name}: AP50 {before:.3f} -> {after:.3f} ({delta:+.4f}), a drop of more than "
                           f"{gates.max_class_drop} on {boxes} test boxes")
        else:
            gate = "ok"
        rows[name] = {"old_ap50": before, "new_ap50": after, "delta": delta, "boxes": boxes, "gate": gate, **alarms}
    notes = []
    if few:
        notes.append(f"not gated one by one, fewer than {gates.min_boxes} test boxes (AP50 too noisy): "
                     f"{', '.join(few)}; they count in the mAP50")
    if empty:
        notes.append(f"no test box, not measured: {', '.join(empty)}; their false alarms on the test photos are "
                     f"gated where a field class maps onto them (at most {gates.max_false_alarm_rise} more per photo, "
                     f"judged from {gates.min_false_alarms} more)")
    if len(few) + len(empty) + len(added) == len(names):
        notes.append(f"no class has {gates.min_boxes} test boxes: the per-class gate checked nothing "
                     "(label more test days)")
    if added:
        notes.append(f"classes OLD does not have, not gated, left out of the mAP50 comparison: {', '.join(added)}")
    return rows, reasons, notes


def common_map50(report: dict, names: Sequence[str]) -> float:
    """mAP50 over ``names`` that have test boxes (``measure``'s mean, on a subset of its classes)."""
    present = [report["per_class"][n]["ap50"] for n in names if report["per_class"][n]["instances"]]
    return round(sum(present) / len(present), 4) if present else 0.0


def relabelled(items: list[LabelledImage], names: Sequence[str], old_names: Sequence[str],
               workdir: Path) -> list[LabelledImage]:
    """The test labels with OLD's class ids (matched by name); boxes of classes OLD lacks left out."""
    index = {i: old_names.index(name) for i, name in enumerate(names) if name in old_names}
    folder = workdir / "old"
    folder.mkdir()
    out = []
    for item in items:
        rows = [line.split(" ", 1) for line in item.label.read_text(encoding="utf-8").splitlines() if line.strip()]
        label = folder / item.label.name
        label.write_text("".join(f"{index[int(c)]} {rest}\n" for c, rest in rows if int(c) in index),
                         encoding="utf-8")
        out.append(LabelledImage(item.image, label, item.source))
    return out


def map_gate(before: float, after: float, gates: Gates) -> str | None:
    """The reason field mAP50 fails its gate, or None: it must rise by more than ``min_map_gain``."""
    gain = round(after - before, 4)
    if gain > gates.min_map_gain + EPSILON:
        return None
    return f"field mAP50 {before:.3f} -> {after:.3f} ({gain:+.3f}): it must rise by more than {gates.min_map_gain}"


def compare(old: Path, new: Path, data: Path, gates: Gates | None = None, field_map: Path | None = None,
            conf: float = 0.25) -> Comparison:
    """Evaluate OLD and NEW on the field test split of ``data`` and apply ``gates``."""
    gates = gates or load_gates()
    map_path = Path(field_map) if field_map is not None else FIELD_MAP
    old, new = Path(old), Path(new)
    old_model, new_model = open_model(old, "OLD"), open_model(new, "NEW")
    names, old_names = list(new_model.names), list(old_model.names)
    if lost := [n for n in old_names if n not in names]:
        raise CompareError(f"OLD {old} and NEW {new} have different classes ({short(old_names)} vs "
                           f"{short(names)}): NEW lacks {short(lost)}; per-class deltas need every class of OLD in "
                           "NEW (NEW may add classes)")
    common = [n for n in names if n in old_names]
    with tempfile.TemporaryDirectory() as workdir:
        try:
            test = field_test(Path(data), names, map_path, Path(workdir), gates.min_test_share)
        except DatasetError as error:
            raise CompareError(str(error)) from None
        try:
            before = measure(relabelled(test.items, names, old_names, Path(workdir)), old_names, old, conf)
            after = measure(test.items, names, new, conf)
        except (EvaluateError, DetectorError) as error:
            raise CompareError(str(error)) from None
    rows, reasons, notes = per_class(before, after, names, gates, test.covered)
    # Both models' mAP50 over the classes both have: a class only NEW has would pull NEW's mean
    # up or down with nothing to compare it with.
    old_map, new_map = ((before["map50"], after["map50"]) if common == names
                        else (common_map50(before, common), common_map50(after, common)))
    gain = round(new_map - old_map, 4)
    if failed := map_gate(old_map, new_map, gates):
        reasons.append(failed)
    int8, failed = int8_gate(new, gates)
    if failed:
        reasons.append(failed)
    if test.left_out:
        notes.append("field classes the models do not have (field map -> null), not compared: "
                     + ", ".join(f"{k} ({v} boxes)" for k, v in test.left_out.items()))
    if test.split.missing:  # said before any figure is read: they rest on fewer photos than the split has
        notes.insert(0, f"{test.split.describe()}; the figures rest on the {len(test.items)} photos read")
    if test.split.past_retention:
        notes.append(f"{test.split.past_retention} test photos read past their retention date: keeping a test "
                     "set longer is the deliberation's decision (privacy.md, section 1 quater)")
    result = {
        "data": str(test.dataset.root), "split": TEST, "period": test.dataset.period,
        "test_days": test.split.days, "images": len(test.items), "test_photos": test.split.to_json(),
        "boxes": test.boxes, "field_map": str(map_path),
        "old": describe(old, old_model, before), "new": describe(new, new_model, after),
        "map50": {"old": old_map, "new": new_map, "delta": gain, "classes": common},
        "per_class": rows, "left_out": test.left_out, "int8_selfcheck": int8,
        "gates": gates.model_dump(),
    }
    return Comparison(KEEP if reasons else PROMOTE, reasons, notes, result)


def short(names: Sequence[str], shown: int = 8) -> str:
    more = f", ... {len(names) - shown} more" if len(names) > shown else ""
    return f"{len(names)}: {', '.join(names[:shown])}{more}"


def describe(path: Path, model: Detector, report: dict) -> dict:
    return {"model": str(path), "name": model.meta.name, "version": model.meta.version, "map50": report["map50"],
            "map50_95": report["map50_95"], "ms_per_image": report["ms_per_image"]}


def format_comparison(comparison: Comparison) -> str:
    r = comparison.result
    old, new = r["old"], r["new"]
    days = r["test_days"]
    span = f", {days[0]}..{days[-1]}" if days else ""
    plural = "s" if len(days) != 1 else ""
    photos = r["test_photos"]
    of = f" (of {photos['expected']} in manifest.json)" if photos["read"] != photos["expected"] else ""
    lines = [f"field test split of {r['data']}: {r['images']} photos{of} of {len(days)} collection day{plural}{span}, "
             f"{r['boxes']} boxes",
             f"OLD {old['model']} ({old['name']} {old['version']})",
             f"NEW {new['model']} ({new['name']} {new['version']})",
             f"{'class':<14} {'old AP50':>8} {'new AP50':>8} {'delta':>7} {'boxes':>6}  gate"]
    for name, row in r["per_class"].items():
        if row["old_ap50"] is None:  # a class OLD does not have
            shown = f"{row['new_ap50']:>8.3f}" if row["boxes"] else f"{'-':>8}"
            lines.append(f"{name:<14} {'-':>8} {shown} {'-':>7} {row['boxes']:>6}  {row['gate']}")
        elif row["boxes"]:
            lines.append(f"{name:<14} {row['old_ap50']:>8.3f} {row['new_ap50']:>8.3f} {row['delta']:>+7.3f} "
                         f"{row['boxes']:>6}  {row['gate']}")
        else:  # no test box: only false alarms to show, when either model raised some
            raised = row.get("old_false_alarms") or row.get("new_false_alarms")
            alarms = f" ({row['old_false_alarms']} -> {row['new_false_alarms']} false alarms)" if raised else ""
            lines.append(f"{name:<14} {'-':>8} {'-':>8} {'-':>7} {0:>6}  {row['gate']}{alarms}")
    m = r["map50"]
    lines.append(f"{'mAP50':<14} {m['old']:>8.3f} {m['new']:>8.3f} {m['delta']:>+7.3f} {r['boxes']:>6}")
    check = r["int8_selfcheck"]
    if not check["applies"]:
        lines.append(f"INT8 self-check: not applicable ({check['why']})")
    elif "disagreement" in check:
        lines.append(f"INT8 self-check: {'passed' if check['passed'] else 'FAILED'} ({Path(check['candidate']).name} "
                     f"against {Path(check['reference']).name}: disagreement {check['disagreement']:.3f}, "
                     f"threshold {check['threshold']})")
    lines += [f"note: {note}" for note in comparison.notes]
    lines.append(f"verdict: {comparison.verdict}")
    lines += [f"  - {reason}" for reason in comparison.reasons]
    return "\n".join(lines) + "\n"
