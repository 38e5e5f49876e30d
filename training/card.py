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
WARM_NOTE = ("Warm start: `--init` names a previous Trivue ONNX export (itself fine-tuned from COCO); its weights "
             "are rebuilt by `training/coco_init.py` and Ultralytics keeps the class rows it knows by name, "
             "new classes start fresh.")
METHOD_NOTES = {
    "mask": ("Missing labels: each source labels only its own classes, so the classification loss of a photo "
             "counts only the classes its source labels (`training/partial.py`) and mosaics combine photos "
             "of one source. An unboxed bottle in a hopper photo is never taught as background."),
    "naive": ("Missing labels: naive merge. Every source's labels are taken as exhaustive, so unboxed objects "
              "(bottles in hopper photos, bags in litter photos) are taught as background."),
}

LIMITS = """\
- Never seen: French *bac jaune* hopper footage (the bag photos come from another project's
  rear-loader hopper camera and from kerbside pictures), food waste, textiles, paper, batteries,
  gas cylinders. The rules know these classes; this model cannot report them.
- `glass`, `electronics`, `medical` come from one dataset (glass-ewaste) that shows the same few
  dozen objects re-arranged on a tiled floor and on an outdoor pile: its validation measures new
  arrangements of known objects, not new objects, and overstates what the model does on unseen
  waste. Some of its boxes group several objects; its `can` also covers tins and an aluminium
  bottle; glass has only 173 boxes (138 in training). `medical` is almost only medicine blister packs:
  syringes and needles are not represented.
- Each source labels only its own classes (hopper photos hold unboxed bottles and glass, litter
  photos no bags): a source's figures cover the classes it labels; detections of the others are
  counted apart (not all of them are wrong).
- Litter classes come from one small outdoor dataset (about 300 training photos): their numbers
  are noisy and optimistic about new scenes.
- Validation only: the figures are on the val split used to pick the best epoch, after
  near-duplicate photos were moved into one split; the held-out test set is not available here.
- There is no figure of the kind "this bin holds an error, precision P": no source holds photos of
  clean hoppers, so such a figure would measure where the photos come from, not the model.
- Night, rain, motion blur and dirty lenses are under-represented."""


def metrics_table(report: dict) -> list[str]:
    lines = ["| class | AP50 | AP50-95 | precision | recall | val boxes |", "|---|---|---|---|---|---|"]
    for name, m in report["per_class"].items():
        lines.append(f"| {name} | {m['ap50']:.3f} | {m['ap50_95']:.3f} | {m['precision']:.3f} | "
                     f"{m['recall']:.3f} | {m['instances']} |")
    lines.append(f"| **all** | **{report['map50']:.3f}** | **{report['map50_95']:.3f}** | "
                 f"{report['precision']:.3f} | {report['recall']:.3f} | |")
    return lines


def source_tables(report: dict) -> list[str]:
    """Per source, its classes: AP, precision/recall at the deployed threshold, count error per image."""
    lines = []
    for source, m in report.get("per_source", {}).items():
        lines += [f"**{source}** ({m['images']} val images, mAP50 {m['map50']:.3f} over the classes it labels)", "",
                  "| class | AP50 | AP50-95 | precision | recall | boxes | count MAE per image | within ±1 |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, c in m["per_class"].items():
            e = m["count_error"].get(name, {})
            lines.append(f"| {name} | {c['ap50']:.3f} | {c['ap50_95']:.3f} | {c['precision']:.3f} | {c['recall']:.3f} "
                         f"| {c['instances']} | {e.get('mae', 0):.2f} | {e.get('within_1', 0):.0%} |")
        other = m.get("unlabelled_class_detections") or {}
        lines += ["", f"Detections of classes this source does not label: "
                      f"{', '.join(f'{k} {v}' for k, v in other.items()) or 'none'}.", ""]
    return lines


def sources_section(mapping: Path | None, report: dict, merge_report: dict | None) -> list[str]:
    if mapping is None:
        return ["(trained from a plain data.yaml: list the datasets, licences and attributions here)"]
    spec = load_mapping(mapping)
    lines = ["| source | licence | attribution | class mapping | val images | near-duplicate links "
             "(moved to train / to val) |", "|---|---|---|---|---|---|"]
    per_source = report.get("per_source", {})
    merged = (merge_report or {}).get("sources", {})
    for name, source in spec.sources.items():
        mapped = ", ".join(f"{k} → {v or 'not trained'}" for k, v in source.map.items())
        images = per_source.get(name, {}).get("images", "")
        dup = merged.get(name, {})
        dups = (f"{dup.get('near_duplicate_links', 0)} ({dup.get('moved_to_train', 0)} / {dup.get('moved_to_val', 0)})"
                if dup else "")
        lines.append(f"| {name} | {source.licence} | {source.attribution} | {mapped} | {images} | {dups} |")
    for name, field in (merge_report or {}).get("field", {}).items():  # training.field: own photos
        counts = merged.get(name, {})
        lines.append(f"| {name} | own photos (personal data) | exported {field['period']}, "
                     f"{field['test_photos']} test photos never trained on, "
                     f"{field['test_twins_dropped']} training photos left out as their twins "
                     f"| {field['field_map']} | {per_source.get(name, {}).get('images', '')} "
                     f"| {counts.get('near_duplicate_links', 0)} |")
    return lines


def render(name: str, version: str, mapping: Path | None, run: dict, report: dict, int8: dict | None,
           extra: list[str] | None = None, plot: str | None = None, merge_report: dict | None = None) -> str:
    classes = ", ".join(f"`{c}`" for c in report["per_class"])
    init = str(run.get("init"))
    lines = [
        f"# {name} {version}", "",
        f"YOLO detector for household-waste sorting errors, run on the truck by `vision.model.Detector` "
        f"(onnxruntime, CPU). Classes: {classes} (the names of `vision/rules_fr.yaml`).", "",
        "## Training", "",
        f"- Model `{run.get('model')}`, init `{init}`, image size {run.get('imgsz')}, "
        f"batch {run.get('batch')}, seed {run.get('seed')}: {run.get('epochs_done', '?')} epochs in "
        f"{run.get('train_minutes', '?')} min on shared CPU cores (budget {run.get('hours') or '-'} h); "
        f"training-data hash `{run.get('data_hash')}`.",
        f"- {METHOD_NOTES.get(str(run.get('missing_labels', 'naive')), METHOD_NOTES['naive'])}",
        *([f"- {WARM_NOTE} Started from `{run.get('init_model', init)}`."] if init.endswith(".onnx") else []),
        f"- {COCO_NOTE}", "",
        "## Data", "", *sources_section(mapping, report, merge_report), "",
        "Near-duplicates (mirrored, rotated, cropped, tiled or re-exposed copies of one photo, and bursts of one "
        "scene) are found by `training/duplicates.py` and kept in one split, so val holds no copy of a training "
        "photo. All datasets are CC BY 4.0: credit their authors as above when redistributing the model.", "",
        f"## Validation metrics ({report['images']} val images, conf {report['conf']}, via `trivue evaluate`)", "",
        "All sources together (a class's figures come from the sources that label it):", "",
        *metrics_table(report), "",
        *([f"![Precision-recall per class on val]({plot})", ""] if plot else []),
        "Per source: AP over the classes it labels; the count error is, per photo, the detections kept at the "
        "deployed threshold minus the labelled boxes (what a lift's counts are made of).", "",
        *source_tables(report),
    ]
    missing = report.get("not_measured") or {}
    if missing:
        lines += ["Not measured, or too few boxes to rely on:", "", *(f"- `{k}`: {v}" for k, v in missing.items()), ""]
    lines += ["## Speed", "", f"- FP32: {report['ms_per_image']} ms per image (inference, measured "
              "during evaluation on the 2-core dev machine)."]
    if int8:
        verdict = "shipped" if int8.get("written") else f"not shipped ({int8.get('reason')})"
        lines.append(f"- INT8 (static, per-channel, Conv only, 7-bit weights): {int8['ms_per_image']} ms per image "
                     f"against {int8['fp32_ms_per_image']} ms for FP32 (side by side, whole detector), "
                     f"×{int8['speedup']}; mAP50 {int8['map50']:.3f} (drop {int8['map50_drop']:.3f}): {verdict}.")
    lines += [*(extra or []), "", "## Limits", "", LIMITS, ""]
    return "\n".join(lines)
