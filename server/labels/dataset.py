"""``trivue dataset export``: labelled field photos as a YOLO (or COCO) dataset with a manifest.

Layout (what ``trivue train`` and ``trivue evaluate --compare`` read)::

    images/{train,val,test}/<event_id>.jpg   labels/{train,val,test}/<event_id>.txt
    data.yaml (path, train, val, test, names)  manifest.json (one entry per photo)

The split is per collection day and stored the first time an export meets the day
(``dataset_splits``): a round's photos never straddle splits, and every later export puts the
same days, so the same photos, in the test split. Only photos labelled ``done`` are exported;
unusable ones never. Photos are personal data: each entry carries its retention date.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from server.audit import audit
from server.config import ServerSettings
from server.db import utcnow
from server.ingest.evidence import EvidenceStore
from server.ingest.models import Evidence, Lift
from server.labels.models import DatasetSplit, LabelPhoto
from server.labels.store import COORDS, DELETED, DONE, expires_on, taxonomy
from vision.rules import SortingRules

SPLITS = ("train", "val", "test")
TARGET = {"train": 0.7, "val": 0.1, "test": 0.2}  # shares of collection days
MANIFEST_VERSION = 1


class DatasetError(ValueError):
    """An export or import refused; nothing was written or changed."""


@dataclass(frozen=True, slots=True)
class Entry:
    lift: Lift
    photo: Evidence
    label: LabelPhoto


def plan_splits(session: Session, days: list[date]) -> dict[date, str]:
    """The split of every day: stored ones unchanged, new ones (in date order) each to the split
    furthest below its share of days, so that a small deployment gets test days from its second day.
    Nothing is written: ``store_splits`` does, once the files are there."""
    known = dict(session.execute(select(DatasetSplit.day, DatasetSplit.split)).all())
    counts = {s: sum(v == s for v in known.values()) for s in SPLITS}
    for day in sorted(set(days) - set(known)):
        total = sum(counts.values()) + 1
        split = max(("test", "val", "train"), key=lambda s: TARGET[s] * total - counts[s])
        known[day] = split
        counts[split] += 1
    return {day: known[day] for day in days}


def store_splits(session: Session, planned: dict[date, str]) -> dict[date, str]:
    """Store the planned splits of days not stored yet and return the stored split of every day.

    Two exports at once (an admin's and a scheduled one) both planned a split for the same new
    day; the second failed on the day's key with a traceback, leaving a folder whose split
    disagreed with the frozen one. ``ON CONFLICT DO NOTHING`` waits for the other export's commit
    and keeps its split, which the caller then follows."""
    name = session.get_bind().dialect.name
    if name not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"database dialect {name!r} is not supported (use SQLite or PostgreSQL)")
    insert = postgresql.insert if name == "postgresql" else sqlite.insert
    now = utcnow()
    rows = [{"day": day, "split": split, "assigned_at": now} for day, split in sorted(planned.items())]
    session.execute(insert(DatasetSplit).on_conflict_do_nothing(index_elements=["day"]), rows)
    stored = session.execute(select(DatasetSplit.day, DatasetSplit.split)
                             .where(DatasetSplit.day.in_(list(planned)))).all()
    return dict(stored)


def entries(session: Session, settings: ServerSettings, since: date, until: date) -> list[Entry]:
    query = (select(Lift, Evidence, LabelPhoto).join(Evidence, Evidence.event_id == Lift.event_id)
             .join(LabelPhoto, LabelPhoto.event_id == Lift.event_id)
             .where(LabelPhoto.status == DONE, Lift.day >= since, Lift.day <= until)
             .order_by(Lift.day, Lift.started_at, Lift.id))
    today = utcnow().date()
    return [Entry(*row) for row in session.execute(query)
            if expires_on(row[1], row[0].started_at, settings.evidence_retention_days, settings.retention_days) > today]


def yolo_lines(boxes: list[dict[str, Any]], names: tuple[str, ...]) -> list[str]:
    """``class cx cy w h`` per kept box, fractions with 6 decimals (what Label Studio and CVAT write)."""
    lines = []
    for box in boxes:
        if box["state"] == DELETED:
            continue
        x1, y1, x2, y2 = (box[k] for k in COORDS)
        lines.append(f"{names.index(box['class'])} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}")
    return lines


def _manifest_entry(entry: Entry, split: str, settings: ServerSettings) -> dict[str, Any]:
    lift, photo, label = entry.lift, entry.photo, entry.label
    return {"file": f"images/{split}/{lift.event_id}.jpg", "event_id": lift.event_id, "split": split,
            "truck_id": lift.truck_id, "day": lift.day.isoformat(), "stream": lift.stream,
            "reason": lift.evidence_reason or "contaminated",
            "model_version": f"{lift.model_name}:{lift.model_version}",
            "annotator": label.annotator, "labelled_at": label.updated_at.isoformat(),
            "width": photo.width, "height": photo.height,
            "retention_until": expires_on(photo, lift.started_at, settings.evidence_retention_days,
                                          settings.retention_days).isoformat(),
            "boxes": sum(b["state"] != DELETED for b in label.boxes)}


def _coco(rows: list[tuple[Entry, str]], names: tuple[str, ...], split: str) -> dict[str, Any]:
    images, annotations = [], []
    for entry, where in rows:
        if where != split:
            continue
        image_id = len(images) + 1
        w, h = entry.photo.width, entry.photo.height
        images.append({"id": image_id, "file_name": f"{entry.lift.event_id}.jpg", "width": w, "height": h})
        for box in entry.label.boxes:
            if box["state"] == DELETED:
                continue
            bw, bh = (box["x2"] - box["x1"]) * w, (box["y2"] - box["y1"]) * h
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": names.index(box["class"]) + 1,
                                "bbox": [round(box["x1"] * w, 3), round(box["y1"] * h, 3), round(bw, 3), round(bh, 3)],
                                "area": round(bw * bh, 3), "iscrowd": 0})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": i + 1, "name": n, "supercategory": "waste"} for i, n in enumerate(names)]}


def _write_files(rows: list[tuple[Entry, str]], store: EvidenceStore, out: Path, fmt: str, final: Path,
                 names: tuple[str, ...]) -> None:
    """Photos, labels and data.yaml (or COCO files) under ``out``, which becomes ``final``."""
    for entry, split in rows:
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(store.path(entry.photo.path), out / "images" / split / f"{entry.lift.event_id}.jpg")
        if fmt == "yolo":
            (out / "labels" / split).mkdir(parents=True, exist_ok=True)
            text = "\n".join(yolo_lines(entry.label.boxes, names))
            (out / "labels" / split / f"{entry.lift.event_id}.txt").write_text(text + "\n" if text else "")
    if fmt == "yolo":
        # Absolute: Ultralytics reads a relative ``path`` under its own datasets folder, not beside the file.
        data = {"path": str(final), **{s: f"images/{s}" for s in SPLITS}, "nc": len(names), "names": list(names)}
        (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    else:
        _write_coco(rows, out, names)


def _write_coco(rows: list[tuple[Entry, str]], out: Path, names: tuple[str, ...]) -> None:
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        document = _coco(rows, names, split)
        (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(document, indent=1))


def _resplit(rows: list[tuple[Entry, str]], stored: dict[date, str], out: Path, fmt: str,
             names: tuple[str, ...]) -> list[tuple[Entry, str]]:
    """Move the files of the days another export stored first into that export's split (renames:
    no photo is copied twice) and return the rows as stored."""
    moved = []
    for entry, split in rows:
        final = stored[entry.lift.day]
        if final != split:
            for kind, suffix in (("images", ".jpg"), ("labels", ".txt")):
                source = out / kind / split / f"{entry.lift.event_id}{suffix}"
                if source.exists():
                    (out / kind / final).mkdir(parents=True, exist_ok=True)
                    source.rename(out / kind / final / source.name)
        moved.append((entry, final))
    for folder in [*out.glob("images/*"), *out.glob("labels/*")]:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # as an export that never had the split's photos
    if fmt == "coco":
        _write_coco(moved, out, names)
    return moved


def _check_classes(chosen: list[Entry], names: tuple[str, ...], rules: SortingRules) -> None:
    """Every kept box has a class of the rules: a box labelled under a class the rules file has since
    lost (renamed, or another file) has no class id, and leaving it out would teach "nothing here"."""
    for entry in chosen:
        for box in entry.label.boxes:
            if box["state"] != DELETED and box["class"] not in names:
                raise DatasetError(f"photo {entry.lift.event_id} ({entry.lift.day}): box {box['id']} has the class "
                                   f"{box['class']!r}, which the server's sorting rules (sorting_rules: "
                                   f"{rules.source}) no longer have: give it one of their classes on the Annotation "
                                   "page, or put the class back in the rules")


def export(session: Session, settings: ServerSettings, store: EvidenceStore, since: date, until: date, out: Path,
           fmt: str, actor: str, rules: SortingRules) -> dict[str, int]:
    """Write the dataset under ``out`` (new or empty), store new days' splits, audit; the caller commits.

    The class ids are the server's sorting rules' classes in file order (``sorting_rules``, the
    trucks' file): a class the deployment added is a class of the dataset.

    Written in a sibling folder renamed at the end: a failed export (a photo file gone, a full disk)
    leaves no half dataset behind, and the caller's rollback forgets the new days' splits."""
    if until < since:
        raise DatasetError(f"--until {until} is before --since {since}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out} is not an empty folder: choose a new one (an export never overwrites)")
    chosen = entries(session, settings, since, until)
    if not chosen:
        raise DatasetError(f"no labelled photo between {since} and {until} (label some in the dashboard first)")
    names = taxonomy(rules)
    _check_classes(chosen, names, rules)
    planned = plan_splits(session, [e.lift.day for e in chosen])
    rows = [(e, planned[e.lift.day]) for e in chosen]
    partial = out.parent / f".{out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        _write_files(rows, store, partial, fmt, out.resolve(), names)
        # Stored only now: the database is not held while photos are copied (on SQLite the ingest
        # would wait), and an export that ran meanwhile has stored its splits, which win.
        stored = store_splits(session, planned)
        if stored != planned:
            rows = _resplit(rows, stored, partial, fmt, names)
        manifest = {"version": MANIFEST_VERSION, "format": fmt, "since": since.isoformat(),
                    "until": until.isoformat(), "exported_at": utcnow().isoformat(), "exported_by": actor,
                    "names": list(names), "photos": [_manifest_entry(e, s, settings) for e, s in rows]}
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
        if out.exists():
            out.rmdir()
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    counts = {s: sum(split == s for _, split in rows) for s in SPLITS}
    audit(session, actor, "dataset.export", str(out)[:256],
          f"{fmt}, {since}..{until}, {len(rows)} photos ({counts})")
    return counts
