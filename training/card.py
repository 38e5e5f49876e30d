"""Model card: what a deployment needs to know before trusting the model, written from the run.

Every sentence is derived from the run's facts, so the card cannot say something false of the model
it describes: the classes (the model's, the sorting rules', those with training boxes), the sources
and their licences (the mapping file, the merge's ``report.json``, field exports among them), the
initialisation, the device that trained it and the machine that measured its speed. What is known
of a public dataset beyond its counts (how its photos were taken) is in ``SOURCE_NOTES``, printed
only when that dataset is a source of the run, reviewed with each model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from training.datasets import load_mapping
from training.yardstick import REASONS

COCO_NOTE = ("Initialised from Ultralytics YOLOv8n trained on COCO (`../shared/weights/yolov8n-coco-int8.onnx`, "
             "dequantised by `training/coco_init.py`), AGPL-3.0, © Ultralytics. The model, derived from "
             "those weights, is distributed under AGPL-3.0.")
WARM_NOTE = ("Warm start: `--init` names a previous Trivue ONNX export{origin}; its weights "
             "are rebuilt by `training/coco_init.py` and Ultralytics keeps the class rows it knows by name, "
             "new classes start fresh.")
# where a warm start's own lineage began (``init_origin``, recorded since 2026-12-05; an older export
# does not say, and every Trivue model before it descends from COCO)
ORIGINS = {None: " (itself fine-tuned from COCO)", "coco": " (itself fine-tuned from COCO)",
           "coco-identity": " (itself fine-tuned from COCO)", "scratch": " (itself trained from scratch)"}
SCRATCH_NOTE = "Initialised at random (`--init scratch`): no pretrained weights."
CHECKPOINT_NOTE = "Initialised from the checkpoint `{init}`: the licence of the weights it holds applies."
METHOD_NOTES = {
    "mask": ("Missing labels: each source labels only its own classes, so the classification loss of a photo "
             "counts only the classes its source labels (`training/partial.py`) and mosaics combine photos "
             "of one source.{example}"),
    "naive": ("Missing labels: naive merge. Every source's labels are taken as exhaustive, so unboxed objects "
              "{example} are taught as background."),
}
# plural names of rule classes in the card's prose; any other class is written as its name
WORDS = {"food": "food waste", "textile": "textiles", "battery": "batteries", "gas_cylinder": "gas cylinders"}


@dataclass(frozen=True, slots=True)
class Facts:
    """What the card may state: the model's classes, the rules', and the run's sources."""

    classes: list[str]  # the model's, in order
    rule_classes: list[str]  # the sorting rules', in file order
    labels: dict[str, list[str]]  # source -> model classes it has boxes of (or maps to)
    public: list[str]  # public sources, in mapping order
    field: dict[str, dict]  # field source -> report.json's provenance
    train_images: dict[str, int]  # source -> training photos (when the merge report says)
    merged: bool  # a merge by ``trivue train`` (near-duplicates grouped), not a plain data.yaml

    def sole(self, source: str) -> list[str]:
        """Model classes only ``source`` labels."""
        others = {c for name, cs in self.labels.items() if name != source for c in cs}
        return [c for c in self.classes if c in self.labels.get(source, []) and c not in others]

    def trained(self) -> set[str]:
        return {c for cs in self.labels.values() for c in cs} if self.labels else set(self.classes)


def facts(classes: list[str], mapping: Path | None, merge_report: dict | None) -> Facts:
    from vision.rules import SortingRules

    rule_classes = list(SortingRules.load().spec.classes)
    if mapping is None:
        return Facts(classes, rule_classes, {}, [], {}, {}, merged=False)
    spec = load_mapping(mapping)
    merged = (merge_report or {}).get("sources", {})
    labels = {name: [c for c in classes if c in {t for t in source.map.values() if t}]
              for name, source in spec.sources.items()}
    for name, counts in merged.items():  # the boxes the merge found: field sources' too
        labels[name] = [c for c in classes if counts.get("boxes", {}).get(c)]
    train = {name: counts.get("images", {}).get("train", 0) for name, counts in merged.items()}
    return Facts(classes, rule_classes, labels, list(spec.sources), dict((merge_report or {}).get("field", {})),
                 train, merged=True)


def code(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def about(count: int) -> str:
    return f"about {round(count, -2)}" if count >= 100 else str(count)


def glass_ewaste_note(f: Facts) -> str:
    sole = f.sole("glass-ewaste")
    lead = f"{code(sole)} come from one dataset (glass-ewaste) that shows" if sole else "glass-ewaste shows"
    return (f"{lead} the same few dozen objects re-arranged on a tiled floor and on an outdoor pile: its "
            "validation measures new arrangements of known objects, not new objects, and overstates what the "
            "model does on unseen waste. Some of its boxes group several objects; its `can` also covers tins and "
            "an aluminium bottle" + ("; glass has only 173 boxes (138 in training)" if "glass" in sole else "")
            + "." + (" `medical` is almost only medicine blister packs: syringes and needles are not represented."
                     if "medical" in sole else ""))


def litter_items_note(f: Facts) -> str:
    photos = f.train_images.get("litter-items")
    size = f" ({about(photos)} training photos)" if photos else ""
    if f.sole("litter-items"):
        return f"Litter classes come from one small outdoor dataset{size}: their numbers are noisy and optimistic " \
               "about new scenes."
    return f"litter-items is one small outdoor dataset{size}: its figures are noisy and optimistic about new scenes."


# what is known of a public dataset beyond its counts, keyed by its source name in the mapping
SOURCE_NOTES: dict[str, Callable[[Facts], str]] = {"glass-ewaste": glass_ewaste_note,
                                                   "litter-items": litter_items_note}


def limits(f: Facts) -> list[str]:
    trained = f.trained()
    unseen = [c for c in f.rule_classes if c not in f.classes]
    seen = [WORDS.get(c, c.replace("_", " ")) for c in unseen]
    if not f.field:  # field exports are the deployment's own hopper footage
        footage = "French *bac jaune* hopper footage"
        if "hopper-bags" in f.public:
            footage += (" (the bag photos come from another project's rear-loader hopper camera and from kerbside "
                        "pictures)")
        seen.insert(0, footage)
    lines = []
    if seen:
        lines.append(f"Never seen: {', '.join(seen)}." +
                     (" The rules know these classes; this model cannot report them." if unseen else ""))
    untaught = [c for c in f.classes if c not in trained]
    if untaught:
        lines.append(f"{code(untaught)}: classes of the model without a single training box: what it reports "
                     "of them means nothing.")
    lines += [note(f) for name, note in SOURCE_NOTES.items() if name in f.public]
    partial = [name for name in f.public if set(f.labels.get(name, [])) < set(f.classes)]
    if partial:
        example = (" (hopper photos hold unboxed bottles and glass, litter photos no bags)"
                   if {"hopper-bags", "litter-items"} <= set(f.public) else "")
        lines.append(f"Each {'public ' if f.field else ''}source labels only its own classes{example}: a source's "
                     "figures cover the classes it labels; detections of the others are counted apart (not all of "
                     "them are wrong).")
    grouped = ", after near-duplicate photos were moved into one split" if f.merged else ""
    if f.field:
        tests = "; ".join(f"{name}: {p.get('test_photos', '?')} photos of {p.get('test_days', '?')} collection days"
                          for name, p in f.field.items())
        lines.append(f"Validation only: the figures are on the val split used to pick the best epoch{grouped}. The "
                     f"field test split ({tests}) was never trained on: `trivue evaluate --compare` measures there.")
        lines += [line for name, p in f.field.items() if (line := lost_tests(name, p))]
        lines.append("There is no figure of the kind \"this bin holds an error, precision P\": `trivue evaluate` "
                     "measures boxes, not bins.")
        lines.append("Night, rain, motion blur and dirty lenses: as many as the field exports hold (not counted).")
    else:
        lines.append(f"Validation only: the figures are on the val split used to pick the best epoch{grouped}; the "
                     "held-out test set is not available here.")
        lines.append("There is no figure of the kind \"this bin holds an error, precision P\": no source holds photos "
                     "of clean hoppers, so such a figure would measure where the photos come from, not the model.")
        lines.append("Night, rain, motion blur and dirty lenses are under-represented.")
    return [f"- {line}" for line in lines]


def lost_tests(name: str, provenance: dict) -> str:
    """The test photos a field export's manifest lists that could not be read at training time, by
    reason (``training.yardstick``); empty when none, or for a report written before it counted them."""
    left = provenance.get("test_photos_left_out") or {}
    if not left:
        return ""
    why = "; ".join(f"{n} {REASONS.get(reason, reason)}" for reason, n in left.items())
    return (f"{name}: {sum(left.values())} of the {provenance.get('test_photos_listed', '?')} test photos its "
            f"manifest lists could not be read and were left out ({why}): the test split holds fewer photos, "
            "and training photos that are the same shot as them could not be looked for.")


def licence_note(mapping: Path | None, f: Facts) -> str:
    """Whose photos trained the model and under which terms, from the mapping and the field exports."""
    if mapping is None:
        return ""
    spec = load_mapping(mapping)
    by_licence: dict[str, list[str]] = {}
    for name in f.public:
        by_licence.setdefault(spec.sources[name].licence or "no licence given", []).append(name)
    if len(by_licence) == 1 and not f.field:
        text = f"All datasets are {next(iter(by_licence))}"
    else:
        text = "Public datasets: " + "; ".join(f"{licence} ({', '.join(names)})"
                                               for licence, names in by_licence.items())
    text += ": credit their authors as above when redistributing the model."
    if f.field:
        text += (f" {', '.join(f.field)}: the deployment's own photos, under no open licence and personal data "
                 "(docs/privacy.md): the model holds none of them, the run folder does.")
    return text


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
                     f"{field['test_photos']} test photos never trained on"
                     f"{lost_count(field)}, "
                     f"{field['test_twins_dropped']} training photos left out as their twins "
                     f"| {field['field_map']} | {per_source.get(name, {}).get('images', '')} "
                     f"| {counts.get('near_duplicate_links', 0)} |")
    return lines


def lost_count(provenance: dict) -> str:
    lost = sum((provenance.get("test_photos_left_out") or {}).values())
    return f" ({lost} more listed could not be read, left out)" if lost else ""


def init_notes(run: dict) -> list[str]:
    """How the weights started, and the licence that follows from it: only what ``--init`` was."""
    init = str(run.get("init"))
    if init in ("coco", "coco-identity"):
        return [COCO_NOTE]
    if init == "scratch":
        return [SCRATCH_NOTE]
    if init.endswith(".onnx"):
        origin = run.get("init_origin")
        started = (f"Started from `{init}` as it was then ({run['init_model']})." if run.get("init_model")
                   else f"Started from `{init}`.")
        note = WARM_NOTE.format(origin=ORIGINS.get(origin, f" (itself started from `{origin}`)"))
        return [f"{note} {started}", *([COCO_NOTE] if origin in (None, "coco", "coco-identity") else [])]
    return [CHECKPOINT_NOTE.format(init=init)]


def trained_on(run: dict) -> str:
    """The device: every model before ``--device`` existed (no ``device`` recorded) trained on the CPU."""
    device = str(run.get("device") or "cpu")
    return "on the CPU" if device == "cpu" else f"on the GPU `{device}`"


def budget(run: dict) -> str:
    """The run's --hours, or that it had none (it read "budget - h")."""
    return f"budget {run['hours']} h" if run.get("hours") else "no time budget"


def render(name: str, version: str, mapping: Path | None, run: dict, report: dict, int8: dict | None,
           extra: list[str] | None = None, plot: str | None = None, merge_report: dict | None = None) -> str:
    f = facts(list(report["per_class"]), mapping, merge_report)
    classes = code(f.classes)
    method = str(run.get("missing_labels", "naive"))
    examples = {"naive": "(bottles in hopper photos, bags in litter photos)" if {"hopper-bags", "litter-items"}
                <= set(f.public) else "of the classes a source does not label",
                "mask": " An unboxed bottle in a hopper photo is never taught as background."
                if "hopper-bags" in f.public else ""}
    method = method if method in METHOD_NOTES else "naive"
    lines = [
        f"# {name} {version}", "",
        f"YOLO detector for household-waste sorting errors, run on the truck by `vision.model.Detector` "
        f"(onnxruntime, CPU). Classes: {classes} (the names of `vision/rules_fr.yaml`).", "",
        "## Training", "",
        f"- Model `{run.get('model')}`, init `{run.get('init')}`, image size {run.get('imgsz')}, "
        f"batch {run.get('batch')}, seed {run.get('seed')}: {run.get('epochs_done', '?')} epochs in "
        f"{run.get('train_minutes', '?')} min {trained_on(run)} ({budget(run)}); "
        f"training-data hash `{run.get('data_hash')}`.",
        f"- {METHOD_NOTES[method].format(example=examples[method])}",
        *(f"- {note}" for note in init_notes(run)), "",
        "## Data", "", *sources_section(mapping, report, merge_report), "",
        *([f"Near-duplicates (mirrored, rotated, cropped, tiled or re-exposed copies of one photo, and bursts of "
           "one scene) are found by `training/duplicates.py` and kept in one split, so val holds no copy of a "
           f"training photo. {licence_note(mapping, f)}", ""] if f.merged else []),
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
    machine = report.get("machine") or "the machine that ran the export"
    lines += ["## Speed", "", f"- FP32: {report['ms_per_image']} ms per image (inference, measured "
              f"during evaluation on {machine})."]
    if int8:
        verdict = "shipped" if int8.get("written") else f"not shipped ({int8.get('reason')})"
        lines.append(f"- INT8 (static, per-channel, Conv only, 7-bit weights): {int8['ms_per_image']} ms per image "
                     f"against {int8['fp32_ms_per_image']} ms for FP32 (side by side, whole detector), "
                     f"×{int8['speedup']}; mAP50 {int8['map50']:.3f} (drop {int8['map50_drop']:.3f}): {verdict}.")
    lines += [*(extra or []), "", "## Limits", "", *limits(f), ""]
    return "\n".join(lines)
