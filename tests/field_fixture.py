"""Field data for tests without a server: a dataset laid out as ``trivue dataset export`` writes it,
from real shared photos, and a second model measurably worse than the shipped one.

Public API (the field-loop end-to-end test and the training tests use it):

- ``build_field_dataset(out, shared=SHARED_DIR, counts=DEFAULT_COUNTS, start=date(2026, 11, 2)) -> Path``:
  ``out`` becomes a field export (``data.yaml`` with train/val/test and the rules' class names,
  ``images/{split}/<event_id>.jpg``, ``labels/{split}/<event_id>.txt``, ``manifest.json``). Train
  and val photos come from the shared datasets' train splits, test photos from their val splits,
  leaving out the photos that ``trivue train`` moves across (near-duplicates of the other
  split): a model trained on the shared data has not seen the test photos. Labels are the shared ones mapped
  onto the rules' classes through ``training/mapping.yaml``. Deterministic, but for the retention
  dates (a year from the day it runs).
- ``degrade_model(model, out, noise=DEGRADE_NOISE, seed=0, version=None) -> Path``: a copy of an
  FP32 ONNX detector whose conv weights are each scaled by ``1 + noise * N(0, 1)`` (seeded), with
  its own ``trivue_version`` (``<version>-degraded``): on the field fixture it loses AP in every
  class with 20 test boxes or more (mAP50 0.735 -> 0.577), so ``evaluate --compare degraded shipped``
  promotes and the reverse keeps.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Mapping
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from base.paths import SHARED_DIR
from training.datasets import SourceReport, collect_source, keep_groups_together, load_mapping, read_source_names
from training.duplicates import default_cache_dir
from vision.rules import SortingRules

# Per shared dataset, how many photos go to each field split. The test photos hold 310 boxes, at
# least 20 each of bag (184), bottle (43) and can (49): the per-class gate judges those three.
DEFAULT_COUNTS: Mapping[str, Mapping[str, int]] = {
    "hopper-bags": {"train": 12, "val": 4, "test": 30},
    "litter-items": {"train": 12, "val": 4, "test": 30},
}
# 6 % noise on every conv weight: on the default fixture's test split mAP50 falls from 0.735 to
# 0.577, bag, bottle and can lose 0.28-0.30 AP50 each (seed 0); at 10 % the model sees almost nothing.
DEGRADE_NOISE = 0.06
DAYS = {"train": 0, "val": 20, "test": 40}  # each split on its own collection days, like an export
NAMESPACE = uuid.UUID("6f1e9a52-5a0e-4b7e-9d61-0c7f3f3b7a11")


def taxonomy() -> list[str]:
    """The class names a field export carries: the rules' classes in file order (as the server's)."""
    return list(SortingRules.load().spec.classes)


@cache  # the shared data does not change during a run; hashing it costs seconds
def training_splits(shared: Path, source: str) -> dict[Path, str]:
    """Per photo of a shared dataset, the split that ``trivue train`` puts it in: its own, unless
    ``training.datasets`` moved it to keep a group of near-duplicates (rotated, mirrored copies)
    together. Read from the committed groupings (``training/near-duplicates``): a few seconds."""
    mapping = Path(__file__).parents[1] / "training" / "mapping.yaml"
    spec = load_mapping(mapping)
    local = spec.sources[source].model_copy(update={"path": str(shared / "datasets" / source)})
    spec = spec.model_copy(update={"sources": {source: local}})
    samples = collect_source(source, mapping, spec, SourceReport())
    placed, _ = keep_groups_together(samples, SourceReport(), default_cache_dir(), source)
    return {sample.image: sample.split for sample in placed}


def _source_photos(shared: Path, source: str, counts: Mapping[str, int]) -> list[tuple[str, Path, Path]]:
    """(field split, image, label) of one shared dataset: field train and val photos from those
    training puts in train, field test photos from those it keeps in val, so that the shipped model
    was not trained on them and no test photo has a near-duplicate among the field's train photos."""
    root = shared / "datasets" / source
    placed = training_splits(shared, source)
    chosen = []
    taken = {"train": 0}
    for split in ("train", "val", "test"):
        n = counts.get(split, 0)
        origin = "val" if split == "test" else "train"
        images = sorted(p for p in (root / "images" / origin).glob("*.jpg") if placed.get(p) == origin)
        start = taken.get(origin, 0)
        if start + n > len(images):
            raise ValueError(f"{root}: {len(images)} {origin} photos, {start + n} asked")
        for image in images[start:start + n]:
            chosen.append((split, image, root / "labels" / origin / f"{image.stem}.txt"))
        taken[origin] = start + n
    return chosen


def build_field_dataset(out: Path, shared: Path = SHARED_DIR,
                        counts: Mapping[str, Mapping[str, int]] = DEFAULT_COUNTS,
                        start: date = date(2026, 11, 2)) -> Path:
    """Write a field export of real shared photos under ``out`` (new or empty); return ``out``."""
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty")
    names = taxonomy()
    mapping = load_mapping(Path(__file__).parents[1] / "training" / "mapping.yaml")
    photos = []
    # A year from the day the tests run, not from the fixed collection days: `trivue train` leaves
    # photos past their retention date out, and the fixture's photos would all expire in late 2027.
    retention = date.today() + timedelta(days=365)
    for index, (source, per_split) in enumerate(counts.items()):
        to_field = [mapping.sources[source].map[n] for n in read_source_names(shared / "datasets" / source)]
        for number, (split, image, label) in enumerate(_source_photos(shared, source, per_split)):
            event_id = str(uuid.uuid5(NAMESPACE, f"{source}/{image.name}"))
            day = start + timedelta(days=DAYS[split] + number % 3)
            rows = []
            for line in label.read_text().splitlines() if label.is_file() else []:
                parts = line.split()
                target = to_field[int(parts[0])] if parts else None
                if target is not None:
                    rows.append(" ".join([str(names.index(target)), *parts[1:]]))
            target_image = out / "images" / split / f"{event_id}.jpg"
            target_image.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image, target_image)
            (out / "labels" / split).mkdir(parents=True, exist_ok=True)
            (out / "labels" / split / f"{event_id}.txt").write_text("".join(f"{r}\n" for r in rows))
            height, width = cv2.imread(str(image)).shape[:2]
            photos.append({"file": f"images/{split}/{event_id}.jpg", "event_id": event_id, "split": split,
                           "truck_id": f"benne-{index + 1:02d}", "day": day.isoformat(), "stream": "recyclables",
                           "reason": ("sample", "uncertain", "contaminated")[number % 3],
                           "model_version": "trivue-waste:2026.12.02", "annotator": "fixture",
                           "labelled_at": f"{day.isoformat()}T18:00:00+00:00", "width": width, "height": height,
                           "retention_until": retention.isoformat(), "boxes": len(rows)})
    for split in ("train", "val", "test"):  # an export has every folder, even an empty split's
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    data = {"path": str(out), "train": "images/train", "val": "images/val", "test": "images/test",
            "nc": len(names), "names": names}
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    days = sorted(p["day"] for p in photos)
    manifest = {"version": 1, "format": "yolo", "since": days[0], "until": days[-1],
                "exported_at": f"{days[-1]}T20:00:00+00:00", "exported_by": "fixture", "names": names,
                "photos": photos}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


def degrade_model(model: Path, out: Path, noise: float = DEGRADE_NOISE, seed: int = 0,
                  version: str | None = None) -> Path:
    """Write ``out``: ``model`` (an FP32 ONNX detector) with seeded multiplicative noise on every
    conv weight and a version of its own; return ``out``."""
    import onnx
    from onnx import numpy_helper

    loaded = onnx.load(str(model))
    rng = np.random.default_rng(seed)
    touched = 0
    for init in loaded.graph.initializer:
        weights = numpy_helper.to_array(init)
        if weights.ndim == 4 and weights.dtype == np.float32:
            noisy = weights * (1 + noise * rng.standard_normal(weights.shape))
            init.CopyFrom(numpy_helper.from_array(noisy.astype(np.float32), init.name))
            touched += 1
    if not touched:
        raise ValueError(f"{model}: no FP32 conv weight to perturb (an INT8 model?)")
    meta = {p.key: p for p in loaded.metadata_props}
    old = meta["trivue_version"].value if "trivue_version" in meta else "0"
    new_version = version or f"{old}-degraded"
    for key, value in (("trivue_version", new_version),
                       ("description", f"{model.name} degraded for tests: conv weights x (1 + {noise} N(0,1)), "
                                       f"seed {seed}")):
        if key in meta:
            meta[key].value = value
        else:
            loaded.metadata_props.add(key=key, value=value)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(loaded, str(out))
    return out


def kept_photo(model: Path, photo: Path, frames: int = 2) -> tuple[str | None, list[tuple[float, ...]]]:
    """What a truck with its default settings (every clean lift sampled) keeps of a lift of ``frames``
    copies of ``photo``: the reason and the boxes on the kept photo, ``(x1, y1, x2, y2, confidence)``
    as fractions of the image. The truck's own code: ``Detector``, ``Tracker``, ``LiftRecorder``,
    ``Pipeline``; the fixture picks photos by what the model in service does with them."""
    from datetime import UTC, datetime

    from edge.camera import Frame
    from edge.config import EdgeSettings, EvidenceSettings, TrackingSettings
    from edge.pipeline import Pipeline
    from edge.trigger import BurstTrigger
    from vision.lift import LiftContext, LiftRecorder, PhotoPolicy
    from vision.rules import SortingRules
    from vision.schema import ModelInfo, Stream
    from vision.tracking import Tracker, TrackerSettings

    defaults = EdgeSettings.model_fields
    conf, frame_rate = defaults["conf"].default, defaults["frame_rate"].default
    t, band = TrackingSettings(), EvidenceSettings().uncertain_band
    detector = _detector(model, conf)
    recorder = LiftRecorder(detector.names, SortingRules.load(), ModelInfo(name="fixture", version="0"),
                            t.min_track_frames, PhotoPolicy(1.0, band, lambda: 0.0))
    tracker = Tracker(TrackerSettings(t.activation_conf, t.high_conf, t.match_iou, t.lost_frames, frame_rate))
    kept: list[Any] = []

    def deliver(last: Frame) -> None:
        kept.append(recorder.finish(last.captured_at, LiftContext("fixture", 0)))

    pipeline = Pipeline(detector.detect, tracker, recorder, BurstTrigger(), deliver, lambda _classes: None,
                        lambda: Stream.recyclables, 1)
    image = cv2.imread(str(photo))
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    pipeline.run([Frame(image, start + timedelta(seconds=i / frame_rate), i, photo.stem)
                  for i in range(frames)])
    lift = kept[0]
    if lift.evidence is None:
        return None, []
    height, width = lift.evidence.image.shape[:2]
    shown = lift.evidence.detections
    boxes = [(x1 / width, y1 / height, x2 / width, y2 / height, float(c))
             for (x1, y1, x2, y2), c in zip(shown.xyxy.tolist(), shown.confidence, strict=True)]
    return (lift.reason.value if lift.reason else None), boxes


@cache
def _detector(model: Path, conf: float) -> Any:
    from vision.model import Detector

    return Detector(model, conf=conf)
