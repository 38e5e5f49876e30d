"""Evaluate an exported ONNX model through ``vision.model.Detector``: the code the trucks run.

Two detector settings share one inference per image: Ultralytics' validation settings
(conf 0.001, NMS IoU 0.7) for mAP, comparable with ``yolo val``; the deployed settings
(``--conf``, NMS IoU 0.45) for precision/recall and for the decision users see: does this
image contain a sorting error for stream S (``vision.rules``).

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
import yaml

from training.datasets import SEPARATOR, merge
from training.metrics import MatchLog, binary_precision_recall, class_curves, precision_recall
from vision.model import Detector
from vision.rules import SortingRules
from vision.schema import Stream

log = logging.getLogger(__name__)

VAL_CONF, VAL_IOU = 0.001, 0.7  # Ultralytics' val defaults
DEPLOY_IOU = 0.45  # vision.model.Detector default


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
    content = yaml.safe_load(data.read_text(encoding="utf-8"))
    if isinstance(content, dict) and "sources" in content:
        return merge(data, workdir / "data").data_yaml
    return data


def read_split(data_yaml: Path, split: str) -> tuple[list[LabelledImage], list[str]]:
    """Images of a split with their label files, and the class names, from an Ultralytics data.yaml."""
    spec = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}
    names = spec.get("names")
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else names
    if not names or split not in spec:
        raise EvaluateError(f"{data_yaml}: needs 'names' and a '{split}' entry")
    root = Path(spec.get("path") or data_yaml.parent)
    root = root if root.is_absolute() else (data_yaml.parent / root).resolve()
    entry = root / spec[split]
    if entry.is_file():
        images = [Path(line.strip()) for line in entry.read_text(encoding="utf-8").splitlines() if line.strip()]
        images = [p if p.is_absolute() else (root / p) for p in images]
    elif entry.is_dir():
        images = sorted(p for p in entry.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    else:
        raise EvaluateError(f"{entry}: '{split}' split not found")
    items = []
    for image in dict.fromkeys(images):  # a repeated image is evaluated once
        label = Path(str(image.parent).replace("/images", "/labels", 1)) / f"{image.stem}.txt"
        source = image.name.split(SEPARATOR, 1)[0] if SEPARATOR in image.name else "all"
        items.append(LabelledImage(image, label, source))
    if not items:
        raise EvaluateError(f"{entry}: no images in split '{split}'")
    return items, [str(n) for n in names]


def read_labels(label: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.loadtxt(label, ndmin=2) if label.is_file() and label.stat().st_size else np.zeros((0, 5))
    cls = rows[:, 0].astype(int)
    cx, cy, w, h = (rows[:, i] for i in range(1, 5))
    xyxy = np.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], 1)
    return xyxy.astype(np.float32), cls


@dataclass(slots=True)
class Tally:
    """Accumulated per-image results for one group of images (all, or one source)."""

    all_dets: MatchLog
    deployed: MatchLog
    truth: list
    predicted: list
    detected: Counter  # deployed detections per class name
    labelled: Counter  # ground-truth boxes per class name

    @classmethod
    def new(cls) -> Tally:
        return cls(MatchLog(), MatchLog(), [], [], Counter(), Counter())


def evaluate(data: Path, model: Path, split: str = "val", conf: float = 0.25, stream: str = "recyclables",
             rules: Path | None = None, plot: Path | None = None) -> dict:
    """Run ``model`` over ``split`` of ``data``; return the report (JSON-ready dict)."""
    try:
        stream_value = Stream(stream)
    except ValueError:
        raise EvaluateError(f"--stream {stream}: choose one of {[s.value for s in Stream]}") from None
    sorting = SortingRules.load(rules)
    with tempfile.TemporaryDirectory() as workdir:  # holds a merged mapping until the end
        items, names = read_split(resolve_data(Path(data), Path(workdir)), split)
        return evaluate_items(items, names, model, conf, stream_value, sorting, plot) | {
            "data": str(data), "split": split}


def evaluate_items(items: list[LabelledImage], names: list[str], model: Path, conf: float, stream: Stream,
                   sorting: SortingRules, plot: Path | None) -> dict:
    validator = Detector(model, conf=VAL_CONF, iou=VAL_IOU)
    deployed = Detector(model, conf=conf, iou=DEPLOY_IOU)
    if list(validator.names) != names:
        raise EvaluateError(f"{model}: classes {list(validator.names)} differ from the data's {names}")
    sorting.check_model(names, stream)
    tallies: dict[str, Tally] = {"all": Tally.new()}
    seconds = run_images(items, validator, deployed, sorting, stream, tallies)
    report = summarise(tallies["all"], names, plot)
    report.update(model=str(model), images=len(items), conf=conf, stream=stream.value,
                  ms_per_image=round(1000 * seconds / len(items), 2))
    report["per_source"] = {src: summarise_source(t, names) for src, t in tallies.items() if src != "all"}
    return report


def run_images(items: list[LabelledImage], validator: Detector, deployed: Detector, sorting: SortingRules,
               stream: Stream, tallies: dict[str, Tally]) -> float:
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
        truth = sorting.judge(stream, Counter(validator.names[c] for c in gt_cls)).contaminated
        guess = sorting.judge(stream, Counter(validator.names[c] for c in kept.class_id)).contaminated
        for key in ("all", item.source):
            tally = tallies.setdefault(key, Tally.new())
            tally.all_dets.add(every.xyxy, every.confidence, every.class_id, gt_xyxy, gt_cls)
            tally.deployed.add(kept.xyxy, kept.confidence, kept.class_id, gt_xyxy, gt_cls)
            tally.truth.append(truth)
            tally.predicted.append(guess)
            tally.detected.update(validator.names[c] for c in kept.class_id)
            tally.labelled.update(validator.names[c] for c in gt_cls)
    return spent


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
    error_p, error_r, counts = binary_precision_recall(tally.truth, tally.predicted)
    if plot is not None:
        plot_curves(curves, names, plot)
    return {
        "map50": round(float(np.mean([c.ap[0] for c in present])) if present else 0.0, 4),
        "map50_95": round(float(np.mean([c.ap.mean() for c in present])) if present else 0.0, 4),
        "precision": round(precision, 4), "recall": round(recall, 4),
        "error_precision": round(error_p, 4), "error_recall": round(error_r, 4), "error_counts": counts,
        "per_class": per_class,
    }


def summarise_source(tally: Tally, names: list[str]) -> dict:
    """Per source: its mAP, and detections of classes it never labels (label gaps or false alarms).

    A source labels only its own classes (hopper photos hold unlabelled bottles): detections of
    the other classes there are not all wrong, which is why they are counted apart.
    """
    full = summarise(tally, names, None)
    unlabelled = {name: n for name, n in tally.detected.items() if not tally.labelled[name]}
    return {"images": len(tally.truth), "map50": full["map50"], "error_precision": full["error_precision"],
            "error_recall": full["error_recall"], "unlabelled_class_detections": unlabelled}


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
    lines.append(f"images with a sorting error ({report['stream']}): precision {report['error_precision']:.3f} "
                 f"recall {report['error_recall']:.3f}  {report['error_counts']}")
    for source, m in report["per_source"].items():
        lines.append(f"  {source}: {m['images']} images, mAP50 {m['map50']:.3f}, "
                     f"detections of classes it does not label: {m['unlabelled_class_detections']}")
    return "\n".join(lines) + "\n"
