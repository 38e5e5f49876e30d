"""Merge labelled YOLO datasets into one training set through a class-mapping file.

Images are linked, never copied (the shared data stays where it is); label files are rewritten
with the project's class ids. Everything doubtful is counted in a :class:`MergeReport`; what
would silently corrupt training (unknown class ids, malformed rows, unreadable images, the same
photo in train and val) stops the merge with the file name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from base.paths import SHARED_DIR, images_in
from training.spec_files import load_spec

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
# Roboflow exports carry boxes a hair outside the image after rotation augments: clip those;
# anything further out is a broken label, not rounding.
CLIP_TOLERANCE = 0.02
MIN_SIZE = 1e-3  # boxes thinner than this after clipping carry no signal
SEPARATOR = "__"  # merged file name = <source>__<original name>; evaluation splits on it


SOURCES_KEY = "trivue_sources"
# Near-duplicate groupings of the shared datasets, committed (they take minutes to find): a merge
# of the same files in the same splits reads them instead of searching again.
SHIPPED_GROUPS = Path(__file__).parent / "near-duplicates"


class DatasetError(ValueError):
    """A dataset that cannot be trained on; the message names the file and the reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Strict):
    path: str = Field(min_length=1)
    map: dict[str, str | None]
    repeat: int = Field(default=1, ge=1, le=10)
    licence: str = ""
    attribution: str = ""


class MappingSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    classes: list[str] = Field(min_length=1)
    sources: dict[str, SourceSpec] = Field(min_length=1)


@dataclass(slots=True)
class SourceReport:
    """Counts for one source dataset; the merge log and report.json show them."""

    images: Counter = field(default_factory=Counter)  # per split
    boxes: Counter = field(default_factory=Counter)  # per project class
    missing_labels: int = 0
    empty_images: int = 0
    clipped_boxes: int = 0
    degenerate_boxes: int = 0
    dropped_boxes: int = 0  # source classes mapped to null
    duplicates_within_split: int = 0
    near_duplicate_links: int = 0  # pairs of photos found to be the same shot (training.duplicates)
    near_duplicate_groups: int = 0  # groups of two or more photos
    moved_to_train: int = 0  # val photos whose group lies mostly in train
    moved_to_val: int = 0

    def to_json(self) -> dict:
        # asdict() would rebuild the Counters from their items: convert them by hand
        return {f: dict(v) if isinstance(v, Counter) else v for f, v in
                ((f, getattr(self, f)) for f in self.__slots__)}


@dataclass(slots=True)
class MergeReport:
    name: str
    classes: list[str]
    data_yaml: Path
    data_hash: str
    sources: dict[str, SourceReport]

    def to_json(self) -> dict:
        return {"name": self.name, "classes": self.classes, "data_yaml": str(self.data_yaml),
                "data_hash": self.data_hash,
                "sources": {k: v.to_json() for k, v in self.sources.items()}}


@dataclass(frozen=True, slots=True)
class Sample:
    source: str
    split: str
    image: Path
    digest: str
    rows: tuple[str, ...]  # rewritten label rows


def load_mapping(path: Path) -> MappingSpec:
    """The mapping file at ``path``, every source's targets checked against its ``classes``."""
    spec = load_spec(path, MappingSpec, DatasetError, "mapping file")
    for source, sspec in spec.sources.items():
        bad = sorted({v for v in sspec.map.values() if v is not None} - set(spec.classes))
        if bad:
            raise DatasetError(f"{path}: source '{source}' maps to classes not in 'classes': {bad}")
    return spec


def labelled_classes(spec: MappingSpec, source: str) -> list[int]:
    """Project class ids a source labels: the targets of its map."""
    targets = {v for v in spec.sources[source].map.values() if v is not None}
    return sorted(spec.classes.index(t) for t in targets)


def source_root(spec_path: Path, source: SourceSpec) -> Path:
    if source.path.startswith("shared/"):
        return SHARED_DIR / source.path.removeprefix("shared/")
    root = Path(source.path)
    return root if root.is_absolute() else (Path(spec_path).parent / root).resolve()


def read_source_names(root: Path) -> list[str]:
    data_yaml = root / "data.yaml"
    if not data_yaml.is_file():
        raise DatasetError(f"{data_yaml}: dataset has no data.yaml")
    data = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}
    names = data.get("names")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    if not isinstance(names, list) or not names:
        raise DatasetError(f"{data_yaml}: 'names' is missing or empty")
    return [str(n) for n in names]


def split_dirs(root: Path, split: str) -> tuple[Path, Path] | None:
    """Image and label folders of a split, Ultralytics (images/val) or Roboflow (valid/images) layout."""
    candidates = [(root / "images" / split, root / "labels" / split),
                  (root / split / "images", root / split / "labels")]
    if split == "val":
        candidates.append((root / "valid" / "images", root / "valid" / "labels"))
    for images, labels in candidates:
        if images.is_dir():
            return images, labels
    return None


def rewrite_rows(label: Path, class_map: list[int | None], report: SourceReport,
                 names: list[str]) -> list[str]:
    """Source label rows -> project rows; fatal problems raise naming the file and line."""
    rows: list[str] = []
    for number, line in enumerate(label.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            cls, values = int(parts[0]), [float(v) for v in parts[1:]]
        except ValueError:
            raise DatasetError(f"{label}:{number}: not a 'class cx cy w h' row: {line[:80]!r}") from None
        if len(values) != 4:
            raise DatasetError(f"{label}:{number}: expected 5 numbers, got {len(parts)} (segments are not supported)")
        if not 0 <= cls < len(class_map):
            raise DatasetError(f"{label}:{number}: class id {cls} unknown (dataset has {len(class_map)} classes)")
        target = class_map[cls]
        if target is None:
            report.dropped_boxes += 1
            continue
        box = clip_box(values, label, number, report)
        if box is not None:
            rows.append(f"{target} " + " ".join(f"{v:.6f}" for v in box))
            report.boxes[names[target]] += 1
    return rows


def clip_box(values: list[float], label: Path, number: int, report: SourceReport) -> list[float] | None:
    cx, cy, w, h = values
    x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    if w < 0 or h < 0 or min(x1, y1) < -CLIP_TOLERANCE or max(x2, y2) > 1 + CLIP_TOLERANCE:
        raise DatasetError(f"{label}:{number}: box {values} lies outside the image")
    cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, 1.0), min(y2, 1.0)
    if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
        report.clipped_boxes += 1
    if cx2 - cx1 < MIN_SIZE or cy2 - cy1 < MIN_SIZE:
        report.degenerate_boxes += 1
        return None
    return [(cx1 + cx2) / 2, (cy1 + cy2) / 2, cx2 - cx1, cy2 - cy1]


def check_image(image: Path) -> str:
    """sha256 of the file; raise when it does not decode.

    OpenCV, not PIL: Ultralytics patches ``PIL.Image.open`` to fetch a HEIF plugin on unknown files.
    """
    import cv2
    import numpy as np

    data = image.read_bytes()
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8) if data else None
    if decoded is None:
        raise DatasetError(f"{image}: not a readable image")
    return hashlib.sha256(data).hexdigest()


def collect_source(name: str, spec_path: Path, spec: MappingSpec, report: SourceReport) -> list[Sample]:
    source = spec.sources[name]
    root = source_root(spec_path, source)
    if not root.is_dir():  # else "has no data.yaml", as if the folder were there
        raise DatasetError(f"{spec_path}: source '{name}': {root}: no such dataset folder")
    names = read_source_names(root)
    unknown = sorted(set(source.map) - set(names))
    if unknown:
        raise DatasetError(f"{root}: mapping names classes the dataset does not have: {unknown} (has {names})")
    unmapped = [n for n in names if n not in source.map]
    if unmapped:
        raise DatasetError(f"{spec_path}: source '{name}': classes {unmapped} need a mapping (a class or null)")
    class_map = [None if source.map[n] is None else spec.classes.index(source.map[n]) for n in names]
    samples: list[Sample] = []
    for split in SPLITS:
        dirs = split_dirs(root, split)
        if dirs is None:
            raise DatasetError(f"{root}: no '{split}' images (expected images/{split} or {split}/images)")
        images_dir, labels_dir = dirs
        samples += collect_split(name, split, images_dir, labels_dir, class_map, spec.classes, report)
    return samples


def collect_split(source: str, split: str, images_dir: Path, labels_dir: Path,
                  class_map: list[int | None], classes: list[str], report: SourceReport) -> list[Sample]:
    samples: list[Sample] = []
    seen: set[str] = set()
    for image in images_in(images_dir):
        digest = check_image(image)
        if digest in seen:
            report.duplicates_within_split += 1
            continue
        seen.add(digest)
        label = labels_dir / f"{image.stem}.txt"
        if label.is_file():
            rows = rewrite_rows(label, class_map, report, classes)
        else:
            report.missing_labels += 1
            rows = []
        report.empty_images += not rows
        report.images[split] += 1
        samples.append(Sample(source, split, image, digest, tuple(rows)))
    return samples


def keep_groups_together(samples: list[Sample], report: SourceReport, cache_dir: Path | None,
                         name: str) -> tuple[list[Sample], dict]:
    """Move near-duplicate groups of one source into one split; return the samples and the evidence.

    The grouping is cached by the source's content (file digests and splits), since finding
    crops and tiles takes minutes: a later merge of unchanged data reuses it.
    """
    from training.duplicates import VERSION, assign, find_groups, save_cached

    key = hashlib.sha256(json.dumps([VERSION, [(s.split, s.digest) for s in samples]]).encode()).hexdigest()[:20]
    cached = cache_dir / f"{name}-{key}.json" if cache_dir else None
    shipped = SHIPPED_GROUPS / f"{name}-{key}.json"
    if shipped.is_file():  # the shipped datasets' groupings are committed: same data, same answer
        evidence = json.loads(shipped.read_text(encoding="utf-8"))
    elif cached is not None and cached.is_file():
        evidence = json.loads(cached.read_text(encoding="utf-8"))
    else:
        log.info("%s: looking for near-duplicate photos (%d images)", name, len(samples))
        groups = find_groups([s.image for s in samples], [s.split for s in samples], label=name)
        evidence = {"links": [[link.a, link.b, link.kind, link.score] for link in groups.links],
                    "splits": assign(groups, [s.split for s in samples])}
        if cached is not None:
            save_cached(cached, evidence)
    from training.duplicates import Link, count_groups

    placed = evidence["splits"]
    check_near_leaks([Link(*link) for link in evidence["links"]], placed, [s.image for s in samples])
    report.images = Counter(placed)
    report.near_duplicate_links = len(evidence["links"])
    report.near_duplicate_groups = count_groups(len(samples), evidence["links"])
    report.moved_to_train = sum(s.split == "val" and p == "train" for s, p in zip(samples, placed, strict=True))
    report.moved_to_val = sum(s.split == "train" and p == "val" for s, p in zip(samples, placed, strict=True))
    moved = [replace(s, split=p) for s, p in zip(samples, placed, strict=True)]
    named = {"source": name, "links": [{"a": f"{name}{SEPARATOR}{samples[a].image.name}",
                                        "b": f"{name}{SEPARATOR}{samples[b].image.name}",
                                        "a_split": placed[a], "b_split": placed[b], "kind": kind, "score": score}
                                       for a, b, kind, score in evidence["links"]]}
    return moved, named


def check_near_leaks(links: list, splits: list[str], images: list[Path]) -> None:
    """Refuse a near-duplicate pair (``training.duplicates.Link``) whose photos sit in different splits."""
    for link in links:
        if splits[link.a] != splits[link.b]:
            raise DatasetError(f"{images[link.a]} ({splits[link.a]}) and {images[link.b]} ({splits[link.b]}) "
                               f"are the same shot ({link.kind} match, score {link.score}): one split only")


def check_leaks(samples: list[Sample]) -> None:
    """The same photo in train and val would inflate every validation number: refuse."""
    first: dict[str, Sample] = {}
    for sample in samples:
        other = first.setdefault(sample.digest, sample)
        if other.split != sample.split:
            raise DatasetError(f"{sample.image} is the same image as {other.image} ({other.split} vs {sample.split})")


def link(target: Path, link_path: Path) -> None:
    """Symlink (hardlink where symlinks are refused): shared images are never copied."""
    link_path.unlink(missing_ok=True)
    try:
        link_path.symlink_to(target.resolve())
    except OSError:
        os.link(target, link_path)


def write_merged(samples: list[Sample], spec: MappingSpec, out_dir: Path) -> tuple[Path, str]:
    """Lay out images/labels per split, list files (with repeats) and data.yaml; return yaml, hash."""
    lists: dict[str, list[str]] = {split: [] for split in SPLITS}
    digest = hashlib.sha256(json.dumps(spec.model_dump(exclude={"sources"}), sort_keys=True).encode())
    for sample in sorted(samples, key=lambda s: (s.split, s.source, s.image.name)):
        name = f"{sample.source}{SEPARATOR}{sample.image.name}"
        image_path = out_dir / "images" / sample.split / name
        label_path = out_dir / "labels" / sample.split / f"{Path(name).stem}.txt"
        image_path.parent.mkdir(parents=True, exist_ok=True)
        label_path.parent.mkdir(parents=True, exist_ok=True)
        link(sample.image, image_path)
        label_path.write_text("".join(f"{row}\n" for row in sample.rows), encoding="utf-8")
        repeat = spec.sources[sample.source].repeat if sample.split == "train" else 1
        lists[sample.split] += [str(image_path)] * repeat
        digest.update(f"{sample.split}/{sample.digest}/{'|'.join(sample.rows)}".encode())
    for split, files in lists.items():
        (out_dir / f"{split}.txt").write_text("".join(f"{f}\n" for f in files), encoding="utf-8")
    data_yaml = out_dir / "data.yaml"
    data = {"path": str(out_dir.resolve()), "train": "train.txt", "val": "val.txt",
            "names": dict(enumerate(spec.classes)),
            # which classes each source labels: the rest may be in its photos unlabelled
            # (training.partial masks them; a plain Ultralytics run ignores this key)
            SOURCES_KEY: {name: labelled_classes(spec, name) for name in spec.sources}}
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return data_yaml, digest.hexdigest()[:16]


def merge(mapping_path: Path, out_dir: Path, cache_dir: Path | None = None) -> MergeReport:
    """Validate and merge every source of the mapping into ``out_dir``; return the counts.

    Near-duplicate photos (mirrored, cropped, tiled copies) are grouped per source and each group
    kept in one split; ``out_dir/near-duplicates.json`` lists every link with its evidence.
    """
    from training.duplicates import default_cache_dir

    spec = load_mapping(mapping_path)
    samples, reports, evidence = collect_sources(spec, Path(mapping_path), cache_dir or default_cache_dir())
    return write_merge(spec, samples, reports, evidence, out_dir, Path(mapping_path))


def collect_sources(spec: MappingSpec, mapping_path: Path,
                    cache_dir: Path) -> tuple[list[Sample], dict[str, SourceReport], list[dict]]:
    """Every source's samples (near-duplicate groups each in one split), counts and link evidence."""
    reports = {name: SourceReport() for name in spec.sources}
    samples: list[Sample] = []
    evidence = []
    for name in spec.sources:
        collected = collect_source(name, mapping_path, spec, reports[name])
        collected, links = keep_groups_together(collected, reports[name], cache_dir, name)
        evidence.append(links)
        samples += collected
    return samples, reports, evidence


def write_merge(spec: MappingSpec, samples: list[Sample], reports: dict[str, SourceReport], evidence: list[dict],
                out_dir: Path, mapping_path: Path, extra: dict | None = None) -> MergeReport:
    """Check the samples as a whole, lay them out under ``out_dir``, write report.json (plus ``extra``)."""
    out_dir = out_dir.resolve()
    check_leaks(samples)
    if not any(s.split == "train" and s.rows for s in samples):
        raise DatasetError(f"{mapping_path}: no labelled training image in any source")
    out_dir.mkdir(parents=True, exist_ok=True)
    data_yaml, data_hash = write_merged(samples, spec, out_dir)
    report = MergeReport(spec.name, list(spec.classes), data_yaml, data_hash, reports)
    (out_dir / "report.json").write_text(json.dumps(report.to_json() | (extra or {}), indent=2), encoding="utf-8")
    (out_dir / "near-duplicates.json").write_text(json.dumps(evidence, indent=1), encoding="utf-8")
    for name, counts in reports.items():  # every count that is not zero, by its report.json name
        log.info("%s: %s", name, ", ".join(f"{k} {v}" for k, v in counts.to_json().items() if v))
    return report
