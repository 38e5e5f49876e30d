"""Model card: what a deployment needs to know before trusting the model, written from the run.

Sources and licences come from the mapping file, numbers from the export's measurements, so
the card cannot drift from the model it describes. Hand-written notes (limits) are kept in
``LIMITS`` here, reviewed with each model.
"""

from __future__ import annotations

from pathlib import Path

from training.datasets import load_mapping

COCO_NOTE = ("Initialised from Ultralytics YOLOv8n trained on COCO (`../shared/weights/yolov8n-coco-int8.onnx`, "
             "dequantised by `training/coco_init.py`), AGPL-3.0, © Ultralytics. The model, derived from "
             "those weights, is distributed under AGPL-3.0.")

LIMITS = """\
- Never seen: French *bac jaune* hopper footage (the bag photos come from another project's
  rear-loader hopper camera and from kerbside pictures), glass, food waste, textiles, paper,
  batteries, gas cylinders, electronics. The rules know these classes; this model cannot
  report them.
- Each source labels only its own classes: hopper photos hold unlabelled bottles and films, litter
  photos hold no bags. The model learnt partly to ignore litter in hopper scenes; detections of
  litter classes on hopper images are counted separately in `trivue evaluate` (per source).
- Litter classes come from one small outdoor dataset (298 training photos, 9-15 validation boxes
  for cups, polystyrene and film): their numbers are noisy and optimistic about new scenes.
- Validation only: the figures are on the val split used to pick the best epoch, not on the
  held-out test set; expect lower numbers there.
- Night, rain, motion blur and dirty lenses are under-represented."""


def metrics_table(report: dict) -> list[str]:
    lines = ["| class | AP50 | AP50-95 | precision | recall | val boxes |", "|---|---|---|---|---|---|"]
    for name, m in report["per_class"].items():
        lines.append(f"| {name} | {m['ap50']:.3f} | {m['ap50_95']:.3f} | {m['precision']:.3f} | "
                     f"{m['recall']:.3f} | {m['instances']} |")
    lines.append(f"| **all** | **{report['map50']:.3f}** | **{report['map50_95']:.3f}** | "
                 f"{report['precision']:.3f} | {report['recall']:.3f} | |")
    return lines


def sources_section(mapping: Path | None, report: dict) -> list[str]:
    if mapping is None:
        return ["(trained from a plain data.yaml: list the datasets, licences and attributions here)"]
    spec = load_mapping(mapping)
    lines = ["| source | licence | attribution | class mapping | val images |", "|---|---|---|---|---|"]
    per_source = report.get("per_source", {})
    for name, source in spec.sources.items():
        mapped = ", ".join(f"{k} → {v or 'dropped'}" for k, v in source.map.items())
        images = per_source.get(name, {}).get("images", "")
        lines.append(f"| {name} | {source.licence} | {source.attribution} | {mapped} | {images} |")
    return lines


def render(name: str, version: str, mapping: Path | None, run: dict, report: dict, int8: dict | None,
           extra: list[str] | None = None, plot: str | None = None) -> str:
    classes = ", ".join(f"`{c}`" for c in report["per_class"])
    lines = [
        f"# {name} {version}", "",
        f"YOLO detector for household-waste sorting errors, run on the truck by `vision.model.Detector` "
        f"(onnxruntime, CPU). Classes: {classes} (the names of `vision/rules_fr.yaml`).", "",
        "## Training", "",
        f"- Model `{run.get('model')}`, init `{run.get('init')}`, image size {run.get('imgsz')}, "
        f"batch {run.get('batch')}, seed {run.get('seed')}: {run.get('epochs_done', '?')} epochs in "
        f"{run.get('train_minutes', '?')} min on 2 shared CPU cores (budget {run.get('hours') or '-'} h); "
        f"training-data hash `{run.get('data_hash')}`.",
        f"- {COCO_NOTE}", "",
        "## Data", "", *sources_section(mapping, report), "",
        "Both datasets are CC BY 4.0: credit their authors as above when redistributing the model.", "",
        f"## Validation metrics ({report['images']} val images, conf {report['conf']}, via `trivue evaluate`)", "",
        *metrics_table(report), "",
        *([f"![Precision-recall per class on val]({plot})", ""] if plot else []),
        f"Image-level decision for stream `{report['stream']}` (\"this lift holds a sorting error\", i.e. a "
        f"closed bag in the yellow bin): precision **{report['error_precision']:.3f}**, recall "
        f"**{report['error_recall']:.3f}** (" + ", ".join(f"{k.upper()} {v}" for k, v in report["error_counts"].items())
        + " images).", "",
    ]
    for source, m in report.get("per_source", {}).items():
        lines.append(f"- {source}: mAP50 {m['map50']:.3f}; detections of classes this source never labels: "
                     f"{m['unlabelled_class_detections'] or 'none'}")
    lines += ["", "## Speed", "", f"- FP32: {report['ms_per_image']} ms per image (inference, measured "
              "during evaluation on the 2-core dev machine)."]
    if int8:
        verdict = "shipped" if int8.get("written") else f"not shipped ({int8.get('reason')})"
        lines.append(f"- INT8 (static, per-channel, Conv only): {int8['ms_per_image']} ms per image against "
                     f"{int8['fp32_ms_per_image']} ms for FP32 (side by side, whole detector), "
                     f"×{int8['speedup']}; mAP50 {int8['map50']:.3f} (drop {int8['map50_drop']:.3f}): {verdict}.")
    lines += [*(extra or []), "", "## Limits", "", LIMITS, ""]
    return "\n".join(lines)
