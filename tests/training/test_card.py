"""The model card states only what the run's facts say (training.card).

It printed fixed wording that a deployment's own run made false: "Never seen: ... batteries" for a
model with a `battery` class trained on field photos, "All datasets are CC BY 4.0" beside the
collectivité's own photos, the COCO/AGPL note for `--init scratch`, "2-core dev machine" for
whichever machine measured the speed. And the shipped card is what its own facts give.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from base.paths import REPO_ROOT
from training.card import render
from vision.onnxmeta import read_metadata

FIELD = "field-terrain-2026-11"
MACHINE = "a 16-core AMD EPYC 9454 (x86_64)"


def class_figures(classes: list[str]) -> dict:
    one = {"ap50": 0.5, "ap50_95": 0.3, "precision": 0.6, "recall": 0.5, "instances": 30}
    return {"per_class": {c: dict(one) for c in classes}, "per_source": {}, "images": 12, "conf": 0.25,
            "map50": 0.5, "map50_95": 0.3, "precision": 0.6, "recall": 0.5, "ms_per_image": 3.2,
            "machine": MACHINE}


def field_run(tmp_path: Path) -> tuple[Path, dict, dict]:
    """A deployment's run: one public source (bottles), its field export teaching `battery`."""
    mapping = {"name": "terrain", "classes": ["bottle", "battery"],
               "sources": {"litter-items": {"path": "x", "licence": "CC BY 4.0", "attribution": "Roboflow",
                                            "map": {"bottle": "bottle"}}}}
    (tmp_path / "mapping.yaml").write_text(yaml.safe_dump(mapping))
    merge_report = {"sources": {"litter-items": {"images": {"train": 40, "val": 5}, "boxes": {"bottle": 80}},
                                FIELD: {"images": {"train": 30, "val": 6}, "boxes": {"bottle": 9, "battery": 41}}},
                    "field": {FIELD: {"dir": "/srv/x", "field_map": "field-map.yaml",
                                      "period": "2026-11-01..2026-11-30", "exported_at": "2026-12-01",
                                      "test_photos": 14, "test_days": 3, "test_twins_dropped": 0}}}
    run = {"model": "yolov8n", "init": "scratch", "imgsz": 320, "batch": 16, "seed": 0, "device": "cpu",
           "missing_labels": "naive", "data_hash": "abc"}
    return tmp_path / "mapping.yaml", run, merge_report


def section(card: str, title: str) -> str:
    return card.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_a_field_trained_battery_model_from_scratch_is_described_as_it_is(tmp_path: Path) -> None:
    mapping, run, merge_report = field_run(tmp_path)
    card = render("terrain", "1", mapping, run, class_figures(["bottle", "battery"]), None, merge_report=merge_report)
    never = next(line for line in card.splitlines() if line.startswith("- Never seen"))
    assert "batteries" not in never and "gas cylinders" in never  # battery is trained, gas cylinders are not
    assert "hopper footage" not in never  # the field exports are the deployment's own hopper photos
    assert "All datasets are CC BY 4.0" not in card
    assert "CC BY 4.0 (litter-items)" in card and f"{FIELD}: the deployment's own photos, under no open licence" in card
    assert "COCO" not in card and "AGPL" not in card and "(`--init scratch`)" in card
    assert "2-core dev machine" not in card and f"measured during evaluation on {MACHINE}" in card
    assert "held-out test set is not available" not in card and f"{FIELD}: 14 photos of 3 collection days" in card
    assert "no source holds photos of clean hoppers" not in card
    assert "on the CPU" in section(card, "Training") and "shared" not in section(card, "Training")


def test_the_init_and_the_device_say_what_they_were(tmp_path: Path) -> None:
    mapping, run, merge_report = field_run(tmp_path)
    figures = class_figures(["bottle", "battery"])
    coco = render("t", "1", mapping, run | {"init": "coco"}, figures, None, merge_report=merge_report)
    assert "trained on COCO" in coco and "AGPL-3.0" in coco
    checkpoint = render("t", "1", mapping, run | {"init": "mine.pt"}, figures, None, merge_report=merge_report)
    assert "COCO" not in checkpoint and "checkpoint `mine.pt`" in checkpoint
    gpu = render("t", "1", mapping, run | {"device": "cuda:0"}, figures, None, merge_report=merge_report)
    assert "on the GPU `cuda:0`" in section(gpu, "Training") and "CPU cores" not in section(gpu, "Training")
    warm = render("t", "1", mapping, run | {"init": "old.onnx", "init_origin": "scratch"}, figures, None,
                  merge_report=merge_report)
    assert "itself trained from scratch" in warm and "COCO" not in warm
    # without a field export and with one licence, the shipped sentence stays
    public = render("t", "1", mapping, run, figures, None, merge_report={"sources": merge_report["sources"]})
    assert "All datasets are CC BY 4.0: credit their authors" in public


def test_a_plain_data_yaml_claims_no_merge(tmp_path: Path) -> None:
    card = render("t", "1", None, {"init": "coco"}, class_figures(["bag"]), None)
    assert "near-duplicate" not in card.lower() and "All datasets" not in card


def shipped_facts() -> tuple[dict, dict]:
    """The shipped model's run (its metadata, plus the warm start its card names) and merge counts."""
    meta = read_metadata((REPO_ROOT / "models" / "trivue-waste.onnx").read_bytes())
    run = json.loads(meta["trivue_train"]) | {"data_hash": meta["trivue_data_hash"],
                                              "init_model": "trivue-waste 2026.12.02"}
    counts = {"hopper-bags": (847, 122, 20, 18), "litter-items": (298, 148, 12, 12),
              "glass-ewaste": (777, 1748, 94, 44)}  # docs/training.md: photos in train, links, moved
    mapping = yaml.safe_load((REPO_ROOT / "training" / "mapping.yaml").read_text())
    sources = {name: {"images": {"train": train}, "near_duplicate_links": links, "moved_to_train": to_train,
                      "moved_to_val": to_val,
                      "boxes": {t: 1 for t in mapping["sources"][name]["map"].values() if t}}
               for name, (train, links, to_train, to_val) in counts.items()}
    return run, {"sources": sources}


def test_the_shipped_card_is_what_its_facts_give() -> None:
    shipped = (REPO_ROOT / "models" / "trivue-waste.md").read_text(encoding="utf-8")
    run, merge_report = shipped_facts()
    classes = re.findall(r"^\| (\w+) \| [0-9.]+ \|", section(shipped, "Validation metrics (217 val images, conf "
                                                                       "0.25, via `trivue evaluate`)"), re.M)
    report = class_figures(classes) | {"per_source": {s: {"images": n, "map50": 0, "per_class": {},
                                                          "count_error": {}} for s, n in
                                                      (("hopper-bags", 114), ("litter-items", 45),
                                                       ("glass-ewaste", 58))}}
    card = render("trivue-waste", "2026.12.03", REPO_ROOT / "training" / "mapping.yaml", run, report, None,
                  merge_report=merge_report)
    for title in ("Training", "Data", "Limits"):
        assert section(card, title).strip() == section(shipped, title).strip(), title


def test_a_warm_start_records_where_its_lineage_began(tmp_path: Path) -> None:
    """``init_origin``: the card's licence note of a model warm-started from one trained from scratch."""
    import shutil

    import pytest

    pytest.importorskip("onnx")
    from training.export import add_metadata
    from training.train import init_provenance

    model = tmp_path / "scratch.onnx"
    shutil.copyfile(REPO_ROOT / "models" / "trivue-waste.onnx", model)
    add_metadata(model, {"trivue_train": json.dumps({"init": "scratch"}), "trivue_version": "0.1"})
    assert init_provenance(str(model)) == {"init_model": "trivue-waste 0.1", "init_origin": "scratch"}
    # the shipped model was itself warm-started and recorded no origin: unknown, not guessed here
    assert "init_origin" not in init_provenance(str(REPO_ROOT / "models" / "trivue-waste.onnx"))
