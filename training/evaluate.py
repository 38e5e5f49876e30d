"""Evaluate an exported ONNX model through ``vision.model.Detector``: the code the trucks run.

Two detector settings share one inference per image: Ultralytics' validation settings
(conf 0.001, NMS IoU 0.7) for mAP, comparable with ``yolo val``; the deployed settings
(``--conf``, NMS IoU 0.45) for precision/recall and for the per-image count error (detected minus
labelled items of a class, what a lift's counts are made of).

Each source labels only its own classes (``trivue_sources`` in a merged data.yaml): a source's
figures cover the classes it labels, since the others may sit in its photos unboxed. There is no
image-level "this bin holds an error" figure: no source has photos of clean hoppers as negatives,
so such a precision would measure the photos' origin, not the model.

mAP stays within ~0.015 of ``yolo val`` on the same ONNX; the gap is Ultralytics' multi-label
NMS in validation (a box may score for two classes), which the truck's detector does not do.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from base.paths import images_in
from base.strict_yaml import read_mapping
from training.datasets import SEPARATOR, merge
from training.labels import LabelError, label_path, label_rows, read_labels
from training.metrics import MatchLog, class_curves, precision_recall
from vision.model import Detector
from vision.rules import SortingRules
from vision.schema import Stream

log = logging.getLogger(__name__)

VAL_CONF, VAL_IOU = 0.001, 0.7  # Ultralytics' val defaults
DEPLOY_IOU = 0.45  # vision.model.Detector default
MIN_INSTANCES = 20  # fewer labelled boxes in a split: AP swings by +-0.1 with a single box


class EvaluateError(ValueError):
    """Data or model that cannot be evaluated; the message says which and why."""


@dataclass(frozen=True, slots=True)
class LabelledImage:
    image: Path
    label: Path
    source: str


def resolve_data(data: Path, workdir: Path) -> Path:
    """A data.yaml for ``data``: itself, a run's merged data, or a mapping merged into ``workdir``."""
    if data.is_dir():
        candidates = [data / "data" / "data.yaml", data / "data.yaml"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise EvaluateError(f"{data}: no data.yaml (expected RUN/data/data.yaml or DIR/data.yaml)")
        return found
    if not data.is_file():
        raise EvaluateError(f"{data}: no such data file or folder")
    content = read_mapping(data, EvaluateError, "data file")  # bad YAML: one line naming the file
    if "sources" in content:
        return merge(data, workdir / "data").data_yaml
    return data


def read_split(data_yaml: Path, split: str) -> tuple[list[LabelledImage], list[str]]:
    """Images of a split with their label files, and the class names, from an Ultralytics data.yaml."""
    spec = read_mapping(data_yaml, EvaluateError, "data file")
    names = spec.get("names")
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else names
    if not names:
        raise EvaluateError(f"{data_yaml}: needs 'names', the class list")
    if split not in spec:
        present = [key for key in ("train", "val", "test") if key in spec]
        raise EvaluateError(f"no split {split!r} in {data_yaml} (its splits: {', '.join(present) or 'none'})")
    root = Path(spec.get("path") or data_yaml.parent)
    root = root if root.is_absolute() else (data_yaml.parent / root).resolve()
    entry = root / spec[split]
    if entry.is_file():
        images = [Path(line.strip()) for line in entry.read_text(encoding="utf-8").splitlines() if line.strip()]
        images = [p if p.is_absolute() else (root / p) for p in images]
    elif entry.is_dir():
        images = images_in(entry, recursive=True)
    else:
        raise EvaluateError(f"{entry}: '{split}' split not found")
    items = []
    for image in dict.fromkeys(images):  # a repeated image is evaluated once
        label = label_path(image)
        source = image.name.split(SEPARATOR, 1)[0] if SEPARATOR in image.name else "all"
        items.append(LabelledImage(image, label, source))
    if not items:
        raise EvaluateError(f"{entry}: no images in split '{split}'")
    return items, [str(n) for n in names]


def check_labels(items: list[LabelledImage], names: list[str]) -> None:
    """Every label row of the split read before any inference: a bad row (a class id beyond the
    names, a short or non-numeric row) stops the command at once, naming file, line and value."""
    for item in items:
        try:
            label_rows(item.label, len(names))
        except LabelError as error:
            raise EvaluateError(str(error)) from None


@dataclass(slots=True)
class Tally:
    """Accumulated per-image results for one group of images (all, or one source)."""

    all_dets: MatchLog
    deployed: MatchLog
    images: int
    detected: Counter  # deployed detections per class name
    labelled: Counter  # ground-truth boxes per class name
    count_errors: dict  # class name -> per image, deployed detections minus labelled boxes

    @classmethod
    def new(cls) -> Tally:
        return cls(MatchLog(), MatchLog(), 0, Counter(), Counter(), {})


def evaluate(data: Path, model: Path, split: str = "val", conf: float = 0.25, stream: str = "recyclables",
             rules: Path | None = None, plot: Path | None = None, sheets: Path | None = None) -> dict:
    """Run ``model`` over ``split`` of ``data``; return the report (JSON-ready dict).

    ``sheets``: a folder for contact sheets of what the model sees on each source and, for merged
    data, of the photos judged the same shot and the most alike ones left apart.
    """
    try:
        stream_value = Stream(stream)
    except ValueError:
        raise EvaluateError(f"--stream {stream}: choose one of {[s.value for s in Stream]}") from None
    sorting = SortingRules.load(rules)
    with tempfile.TemporaryDirectory() as workdir:  # holds a merged mapping until the end
        data_yaml = resolve_data(Path(data), Path(workdir))
        items, names = read_split(data_yaml, split)
        check_labels(items, names)
        labelled = source_classes(data_yaml, names)
        report = evaluate_items(items, names, model, conf, stream_value, sorting, plot, labelled)
        if sheets is not None:
            report["sheets"] = [str(p) for p in write_sheets(model, items, names, data_yaml.parent, sheets, conf)]
        return report | {"data": str(data), "split": split}


def write_sheets(model: Path, items: list[LabelledImage], names: list[str], merged: Path, out: Path,
                 conf: float) -> list[Path]:
    from training.sheets import distinct_neighbours_sheet, duplicates_sheet, prediction_sheet

    written = prediction_sheet(model, items, names, out, conf=conf)
    if (merged / "near-duplicates.json").is_file():
        written.append(duplicates_sheet(merged, out / "near-duplicates.jpg"))
        for source in sorted({item.source for item in items}):
            written.append(distinct_neighbours_sheet(merged, source, out / f"distinct-{source}.jpg"))
    return written


def source_classes(data_yaml: Path, names: list[str]) -> dict[str, list[str]]:
    """Class names each source labels (from a merged data.yaml); empty for a plain one."""
    from training.datasets import SOURCES_KEY

    spec = read_mapping(data_yaml, EvaluateError, "data file")
    return {source: [names[i] for i in ids] for source, ids in (spec.get(SOURCES_KEY) or {}).items()}


def evaluate_items(items: list[LabelledImage], names: list[str], model: Path, conf: float, stream: Stream,
                   sorting: SortingRules, plot: Path | None, labelled: dict[str, list[str]] | None = None) -> dict:
    sorting.check_model(names, stream)
    report = measure(items, names, model, conf, plot, labelled)
    report["stream"] = stream.value
    report["not_measured"] = not_measured(report, sorting, stream, names)
    return report


def measure(items: list[LabelledImage], names: list[str], model: Path, conf: float, plot: Path | None = None,
            labelled: dict[str, list[str]] | None = None) -> dict:
    """mAP, per-class and per-source figures of ``model`` on ``items``, whose labels use ``names``
    (the model's classes, in order); no sorting rules involved (``trivue evaluate --compare``)."""
    validator = Detector(model, conf=VAL_CONF, iou=VAL_IOU)
    deployed = Detector(model, conf=conf, iou=DEPLOY_IOU)
    if list(validator.names) != names:
        raise EvaluateError(f"{model}: classes {list(validator.names)} differ from the data's {names}")
    # onnxruntime's first run allocates: timed, it made a 5-photo val's 10 ms per image read 51
    validator.warm_up()
    labelled = labelled or {}
    tallies: dict[str, Tally] = {"all": Tally.new()}
    seconds = run_images(items, validator, deployed, labelled, tallies)
    report = summarise(tallies["all"], names, plot)
    report.update(model=str(model), images=len(items), conf=conf, ms_per_image=round(1000 * seconds / len(items), 2))
    report["per_source"] = {src: summarise_source(t, names, labelled.get(src, names))
                            for src, t in tallies.items() if src != "all"}
    return report


def not_measured(report: dict, sorting: SortingRules, stream: Stream, names: list[str]) -> dict[str, str]:
    """Classes of the sorting rules that these figures say nothing about, with the reason."""
    reasons = {}
    for name in sorting.classes(stream):
        if name not in names:
            reasons[name] = "the model has no such class (no labelled photos in its training data)"
        elif report["per_class"][name]["instances"] == 0:
            reasons[name] = "no labelled box of this class in this split"
        elif report["per_class"][name]["instances"] < MIN_INSTANCES:
            reasons[name] = (f"only {report['per_class'][name]['instances']} labelled boxes in this split: "
                             "its figures move by several points with each box found or missed: not to be relied on")
    return reasons


def run_images(items: list[LabelledImage], validator: Detector, deployed: Detector,
               labelled: dict[str, list[str]], tallies: dict[str, Tally]) -> float:
    """Detect every image once, feed both tallies; return seconds spent in inference."""
    from rich.progress import track

    spent = 0.0
    for item in track(items, description="evaluating", transient=True):
        image = cv2.imread(str(item.image))
        if image is None:
            raise EvaluateError(f"{item.image}: not a readable image")
        gt_xyxy, gt_cls = read_labels(item.label, image.shape[1], image.shape[0])
        blob, ratio, pad = validator.preprocess(image)
        start = time.perf_counter()
        output = validator.infer(blob)
        spent += time.perf_counter() - start
        every = validator.postprocess(output, ratio, pad, image.shape[:2])
        kept = deployed.postprocess(output, ratio, pad, image.shape[:2])
        truth = Counter(validator.names[c] for c in gt_cls)
        found = Counter(validator.names[c] for c in kept.class_id)
        # A detection of a class the photo's source never labels is neither right nor wrong (an
        # unboxed bag in a litter photo): it stays out of the AP and precision, in every tally, and
        # is counted apart (unlabelled_class_detections). Otherwise a model that finds unboxed
        # objects, the point of partial-label training, would be scored as making false alarms.
        scored = labelled_ids(validator.names, labelled.get(item.source))
        every, kept_scored = every[np.isin(every.class_id, scored)], kept[np.isin(kept.class_id, scored)]
        for key in ("all", item.source):
            tally = tallies.setdefault(key, Tally.new())
            tally.all_dets.add(every.xyxy, every.confidence, every.class_id, gt_xyxy, gt_cls)
            tally.deployed.add(kept_scored.xyxy, kept_scored.confidence, kept_scored.class_id, gt_xyxy, gt_cls)
            tally.images += 1
            tally.detected.update(found)
            tally.labelled.update(truth)
            # a count error only means something where the source labels the class
            for name in labelled.get(item.source, validator.names):
                tally.count_errors.setdefault(name, []).append(found[name] - truth[name])
    return spent


def labelled_ids(names: list[str], labelled: list[str] | None) -> np.ndarray:
    """Class ids a source labels (every class when the data says nothing about sources)."""
    return np.asarray([i for i, name in enumerate(names) if labelled is None or name in labelled], dtype=int)


def summarise(tally: Tally, names: list[str], plot: Path | None) -> dict:
    tp, conf, pred_cls, target_cls = tally.all_dets.arrays()
    curves = class_curves(tp, conf, pred_cls, target_cls, len(names))
    d_tp, _, d_cls, _ = tally.deployed.arrays()
    per_class = {}
    for c, (name, curve) in enumerate(zip(names, curves, strict=True)):
        p, r = precision_recall(d_tp[:, 0], d_cls, target_cls, c)
        per_class[name] = {"ap50": round(float(curve.ap[0]), 4), "ap50_95": round(float(curve.ap.mean()), 4),
                           "precision": round(p, 4), "recall": round(r, 4), "instances": curve.instances}
    present = [c for c in curves if c.instances]
    precision, recall = precision_recall(d_tp[:, 0], d_cls, target_cls, None)
    if plot is not None:
        plot_curves(curves, names, plot)
    return {
        "map50": round(float(np.mean([c.ap[0] for c in present])) if present else 0.0, 4),
        "map50_95": round(float(np.mean([c.ap.mean() for c in present])) if present else 0.0, 4),
        "precision": round(precision, 4), "recall": round(recall, 4),
        "per_class": per_class,
        "count_error": {name: count_error(errors) for name, errors in tally.count_errors.items()},
    }


def count_error(errors: list[int]) -> dict:
    """Per image, deployed detections minus labelled boxes of one class."""
    values = np.asarray(errors, dtype=float)
    return {"images": len(values), "mae": round(float(np.abs(values).mean()), 3) if len(values) else 0.0,
            "bias": round(float(values.mean()), 3) if len(values) else 0.0,
            "within_1": round(float((np.abs(values) <= 1).mean()), 4) if len(values) else 0.0}


def summarise_source(tally: Tally, names: list[str], labelled: list[str]) -> dict:
    """Per source: mAP and per-class figures over the classes it labels, count errors, and
    detections of classes it never labels (label gaps or false alarms: not all wrong, so apart)."""
    full = summarise(tally, names, None)
    per_class = {name: m for name, m in full["per_class"].items() if name in labelled and m["instances"]}
    unlabelled = {name: n for name, n in tally.detected.items() if name not in labelled}
    return {"images": tally.images, "classes": labelled,
            "map50": round(float(np.mean([m["ap50"] for m in per_class.values()])) if per_class else 0.0, 4),
            "map50_95": round(float(np.mean([m["ap50_95"] for m in per_class.values()])) if per_class else 0.0, 4),
            "per_class": per_class, "count_error": full["count_error"],
            "unlabelled_class_detections": unlabelled}


def plot_curves(curves: list, names: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    for name, curve in zip(names, curves, strict=True):
        if len(curve.recall):
            ax.plot(curve.recall, curve.precision, label=f"{name} AP50 {curve.ap[0]:.2f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall, IoU 0.5")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)


def format_report(report: dict) -> str:
    lines = [f"{report['model']} on {report['data']} ({report['split']}, {report['images']} images, "
             f"{report['ms_per_image']} ms/image)",
             f"mAP50 {report['map50']:.3f}  mAP50-95 {report['map50_95']:.3f}  "
             f"P {report['precision']:.3f}  R {report['recall']:.3f} at conf {report['conf']}",
             f"{'class':<12} {'AP50':>6} {'AP50-95':>8} {'P':>6} {'R':>6} {'boxes':>6}"]
    for name, m in report["per_class"].items():
        lines.append(f"{name:<12} {m['ap50']:>6.3f} {m['ap50_95']:>8.3f} {m['precision']:>6.3f} "
                     f"{m['recall']:>6.3f} {m['instances']:>6}")
    for source, m in report["per_source"].items():
        lines.append(f"{source}: {m['images']} images, mAP50 {m['map50']:.3f} over the classes it labels; "
                     f"detections of classes it does not label: {m['unlabelled_class_detections'] or 'none'}")
        for name, c in m["per_class"].items():
            e = m["count_error"].get(name)
            count = f"  count error MAE {e['mae']:.2f}, within ±1 {e['within_1']:.0%}" if e else ""
            lines.append(f"  {name:<12} AP50 {c['ap50']:.3f}  AP50-95 {c['ap50_95']:.3f}  P {c['precision']:.3f}  "
                         f"R {c['recall']:.3f}  boxes {c['instances']}{count}")
    for name, reason in report.get("not_measured", {}).items():
        lines.append(f"not measured: {name}: {reason}")
    return "\n".join(lines) + "\n"
