"""Field datasets: a deployment's own labelled photos, as ``trivue dataset export`` writes them.

They train beside the public sources (``trivue train --field DIR``) and judge a new model against
the old one (``trivue evaluate --compare``). Their test split is the deployment's yardstick: made
of whole collection days and frozen by the server, so successive models are measured on the same
photos. It must therefore never be trained on, and this module is where that is enforced:

- only ``images/train`` and ``images/val`` are read for training;
- a photo the manifest puts in the test split but found in another folder (moved by hand) stops
  the merge, as does any training photo, of any source, byte-identical to a field test photo;
- a field train/val photo that is the same shot as a test photo of any export passed to the run
  (``training.duplicates``: a re-upload, a crop, the next frame of a burst, even when a night round
  across midnight put the two frames in two exports) is left out of training, counted in the merge
  report; the test split never moves, since it is frozen;
- a train/val photo whose retention date (``retention_until`` in the manifest) has passed is left
  out of training, counted (``expired_left_out``) and named in a warning: the photos are personal
  data, kept at most that long (privacy.md section 1 quater); a date that is not one stops the run.

Class names are the sorting rules'; a field map (``training/field-map.yaml``) turns them into the
model's classes. Strict: a class of the dataset absent from the map, a map entry the dataset does
not have, or a target the model does not know is refused, naming the class and the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from base.paths import images_in
from training.datasets import (
    SEPARATOR,
    DatasetError,
    MappingSpec,
    MergeReport,
    Sample,
    SourceReport,
    SourceSpec,
    check_image,
    collect_sources,
    collect_split,
    keep_groups_together,
    load_mapping,
    write_merge,
)
from training.spec_files import load_spec
from training.yardstick import SplitPhotos, read_test_split

log = logging.getLogger(__name__)

FIELD_MAP = Path(__file__).with_name("field-map.yaml")
MANIFEST = "manifest.json"
TEST = "test"
TRAINED_SPLITS = ("train", "val")
FIELD_PREFIX = "field-"


class FieldMap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    repeat: int = Field(default=1, ge=1, le=10)
    map: dict[str, str | None] = Field(min_length=1)


def load_field_map(path: Path, classes: Sequence[str]) -> FieldMap:
    """The field map at ``path``, every target checked against the model's ``classes``."""
    spec = load_spec(path, FieldMap, DatasetError, "field map")
    for name, target in spec.map.items():
        if target is not None and target not in classes:
            raise DatasetError(f"{path}: field class '{name}' maps to '{target}', which is not a class of the "
                               f"model ({', '.join(classes)}); map it to one of them or to null")
    return spec


@dataclass(frozen=True, slots=True)
class FieldDataset:
    """An exported field dataset, checked: class names, manifest, and a test split kept apart."""

    root: Path
    names: tuple[str, ...]
    manifest: dict

    def images(self, split: str) -> list[Path]:
        folder = self.root / "images" / split
        return images_in(folder) if folder.is_dir() else []

    def label(self, image: Path) -> Path:
        return self.root / "labels" / image.parent.name / f"{image.stem}.txt"

    def class_map(self, field_map: FieldMap, map_path: Path, classes: Sequence[str],
                  others: Sequence[FieldDataset] = ()) -> list[int | None]:
        """Per dataset class id, the model's class id (None: left out); refuses what does not match.

        A map entry must be a class of this dataset or of one of ``others`` (the exports trained
        together): exports made under different rules files (a class added, renamed) share one map,
        and a typo, a class of none of them, is still refused."""
        for name in self.names:
            if name not in field_map.map:
                raise DatasetError(f"{self.root / 'data.yaml'}: class '{name}' is not in the field map {map_path} "
                                   f"(map it to a class of the model or to null)")
        together = (self, *others)
        for name in field_map.map:
            if not any(name in dataset.names for dataset in together):
                where = ", ".join(str(d.root / "data.yaml") for d in together)
                raise DatasetError(f"{map_path}: class '{name}' is not a class of {where} "
                                   f"(their classes: {', '.join(dict.fromkeys(n for d in together for n in d.names))})")
        return [None if field_map.map[n] is None else list(classes).index(field_map.map[n]) for n in self.names]

    @property
    def period(self) -> str:
        return f"{self.manifest.get('since', '?')}..{self.manifest.get('until', '?')}"

    def expired(self, today: date) -> set[str]:
        """Event ids of the train and val photos whose retention date has passed (on or before
        ``today``, UTC, as the server counts it: a photo expires on its day, whatever the hour)."""
        gone = set()
        for photo in self.manifest["photos"]:
            if photo.get("split") not in TRAINED_SPLITS:
                continue
            until = photo.get("retention_until")
            try:
                expires = date.fromisoformat(until)
            except (TypeError, ValueError):
                raise DatasetError(f"{self.root / MANIFEST}: photo {photo.get('file')!r}: retention_until "
                                   f"{until!r} is not a date (YYYY-MM-DD): export again") from None
            if expires <= today:
                gone.add(Path(str(photo.get("file", ""))).stem)
        return gone

    def yardstick(self, today: date, decode: bool = False) -> SplitPhotos:
        """The test photos the manifest lists against those in images/test (``training.yardstick``)."""
        listed = [p for p in self.manifest["photos"] if p.get("split") == TEST]
        return read_test_split(listed, self.images(TEST), today, decode)

    def days(self, split: str) -> list[str]:
        """Collection days of a split, from the manifest."""
        return sorted({str(p.get("day")) for p in self.manifest["photos"] if p.get("split") == split})


def open_field(path: Path) -> FieldDataset:
    """The field dataset in folder ``path`` (or whose ``data.yaml`` is ``path``), checked."""
    root = Path(path).resolve()
    root = root.parent if root.is_file() and root.name == "data.yaml" else root
    data_yaml = root / "data.yaml"
    if not root.is_dir():
        raise DatasetError(f"{path}: no such field dataset folder")
    if not data_yaml.is_file():
        hint = " (a COCO export: export with --format yolo)" if (root / "annotations").is_dir() else ""
        raise DatasetError(f"{data_yaml}: absent: not a `trivue dataset export` folder{hint}")
    if not (root / MANIFEST).is_file():
        raise DatasetError(f"{root / MANIFEST}: absent: field datasets come from `trivue dataset export`, "
                           "whose manifest says which photos are test photos")
    try:
        spec = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        raise DatasetError(f"{root}: unreadable data.yaml or {MANIFEST} ({error})"[:400]) from None
    names = spec.get("names") if isinstance(spec, dict) else None
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else names
    if not isinstance(names, list) or not names:
        raise DatasetError(f"{data_yaml}: 'names' is missing or empty")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("photos"), list):
        raise DatasetError(f"{root / MANIFEST}: no 'photos' list")
    dataset = FieldDataset(root, tuple(str(n) for n in names), manifest)
    check_test_apart(dataset)
    return dataset


def check_test_apart(dataset: FieldDataset) -> None:
    """Every photo the manifest puts in the test split lies in images/test, and nowhere else."""
    test_ids = {Path(p.get("file", "")).stem for p in dataset.manifest["photos"] if p.get("split") == TEST}
    for split in TRAINED_SPLITS:
        for image in dataset.images(split):
            if image.stem in test_ids:
                raise DatasetError(f"{image}: {MANIFEST} puts this photo in the test split, which is never trained "
                                   "on (export again instead of moving files)")


def source_name(root: Path) -> str:
    """``field-<folder>``: a merged file is named ``<source>__<photo>``, so no ``__`` in it."""
    cleaned = re.sub(r"[^A-Za-z0-9.-]+", "-", root.name).strip("-") or "data"
    return f"{FIELD_PREFIX}{cleaned}"


@dataclass(frozen=True, slots=True)
class FieldSource:
    """A field dataset with its map, ready to join a merge."""

    name: str
    dataset: FieldDataset
    map_path: Path
    field_map: FieldMap
    class_map: tuple[int | None, ...]

    def spec(self) -> SourceSpec:
        return SourceSpec(path=str(self.dataset.root), map=dict(self.field_map.map), repeat=self.field_map.repeat,
                          licence="own photos (personal data: see privacy.md)",
                          attribution=f"field photos {self.dataset.period}")

    def collect(self, classes: Sequence[str], report: SourceReport) -> list[Sample]:
        samples = []
        for split in TRAINED_SPLITS:
            folder = self.dataset.root / "images" / split
            if folder.is_dir():
                samples += collect_split(self.name, split, folder, self.dataset.root / "labels" / split,
                                         list(self.class_map), list(classes), report)
        return samples

    def provenance(self, twins_dropped: int, in_newer: int = 0, expired: int = 0,
                   tests: SplitPhotos | None = None) -> dict:
        """What report.json says of this source beside its counts: where it came from, what stayed out.
        ``tests``: its test split as read; the photos its manifest lists that are not there are
        counted by reason (``test_photos_left_out``), since the card says what the split lost."""
        tests = tests or self.dataset.yardstick(datetime.now(UTC).date())
        return {"dir": str(self.dataset.root), "field_map": str(self.map_path), "period": self.dataset.period,
                "exported_at": self.dataset.manifest.get("exported_at"), "test_photos": len(tests.photos),
                "test_days": len(tests.days), "test_photos_listed": tests.expected,
                "test_photos_left_out": tests.left_out, "test_twins_dropped": twins_dropped,
                "in_newer_export": in_newer, "expired_left_out": expired}


def field_sources(paths: Sequence[Path], map_path: Path, classes: Sequence[str]) -> list[FieldSource]:
    """The field datasets at ``paths``, each with its class map from the one field map they share."""
    datasets = [open_field(path) for path in paths]
    field_map = load_field_map(map_path, classes) if datasets else None
    sources = []
    for dataset in datasets:
        assert field_map is not None
        others = [other for other in datasets if other is not dataset]
        class_map = dataset.class_map(field_map, map_path, classes, others)
        sources.append(FieldSource(source_name(dataset.root), dataset, Path(map_path), field_map, tuple(class_map)))
    return sources


def drop_test_twins(source: FieldSource, samples: list[Sample], tests: dict[str, Path], report: SourceReport,
                    cache_dir: Path) -> tuple[list[Sample], int]:
    """Leave out the train/val photos that are the same shot as a test photo (``tests``: by digest,
    the test photos of every export of the run); return the others and how many were left out. The
    test split never moves."""
    from training.duplicates import VERSION, leaks, save_cached

    if not samples or not tests:
        return samples, 0
    key = hashlib.sha256(json.dumps([VERSION, "test-twins", sorted(tests), [s.digest for s in samples]])
                         .encode()).hexdigest()[:20]
    cached = cache_dir / f"{source.name}-{key}.json"
    if cached.is_file():
        twins = set(json.loads(cached.read_text(encoding="utf-8")))
    else:
        log.info("%s: looking for training photos that are the same shot as a test photo", source.name)
        # leaks() matches features from the photos it calls val: here, the test photos
        images = [s.image for s in samples] + list(tests.values())
        links = leaks(images, ["train"] * len(samples) + ["val"] * len(tests), label=source.name)
        twins = {samples[i].digest for link in links for i in (link.a, link.b) if i < len(samples)}
        save_cached(cached, sorted(twins))
    for sample in samples:
        if sample.digest in twins:
            log.warning("%s: %s left out of training: the same shot as a test photo", source.name, sample.image)
            report.images[sample.split] -= 1
    kept = [s for s in samples if s.digest not in twins]
    return kept, len(samples) - len(kept)


def drop_expired(source: FieldSource, samples: list[Sample], report: SourceReport,
                 today: date) -> tuple[list[Sample], int]:
    """Leave out the train/val photos past their retention date: an export folder kept after it
    (privacy.md proposes deleting it) must not go on feeding training. The files stay where they are:
    deleting them is the deployment's decision, which the warning asks for."""
    gone = source.dataset.expired(today)
    kept = [s for s in samples if s.image.stem not in gone]
    for sample in samples:
        if sample.image.stem in gone:
            report.images[sample.split] -= 1
    if len(kept) < len(samples):
        log.warning("%s: %d train/val photos left out of training: their retention date (retention_until in %s) "
                    "has passed; delete %s and export again (privacy.md, section 1 quater)", source.name,
                    len(samples) - len(kept), MANIFEST, source.dataset.root)
    return kept, len(samples) - len(kept)


def drop_in_newer(source: FieldSource, samples: list[Sample], claimed: set[str],
                  report: SourceReport) -> tuple[list[Sample], int]:
    """Leave out the photos a newer export passed alongside already holds (``claimed``, by digest):
    exports overlap (a cumulative one beside last month's), and a photo in both was trained twice,
    with both labellings when it was relabelled in between. The newest export's labels win."""
    kept = []
    for sample in samples:
        if sample.digest in claimed:
            report.images[sample.split] -= 1
        else:
            kept.append(sample)
    claimed.update(s.digest for s in kept)
    if len(kept) < len(samples):
        log.info("%s: %d photos left out, a newer field export holds them", source.name, len(samples) - len(kept))
    return kept, len(samples) - len(kept)


def check_test_untouched(samples: list[Sample], tests: dict[str, Path]) -> None:
    """No training or validation photo, of any source, is a field test photo (``tests``: by digest)."""
    for sample in samples:
        if sample.digest in tests:
            raise DatasetError(f"{sample.image} ({sample.source}, {sample.split}) is the field test photo "
                               f"{tests[sample.digest]}: the test split is never trained on")


def merge_with_field(mapping_path: Path, fields: Sequence[Path], out_dir: Path, map_path: Path = FIELD_MAP,
                     cache_dir: Path | None = None) -> MergeReport:
    """``training.datasets.merge`` of the mapping's sources plus the field datasets' train and val photos."""
    spec = load_mapping(mapping_path)
    sources = field_sources(fields, map_path, spec.classes)
    names = [s.name for s in sources]
    for name in names:
        if name in spec.sources or names.count(name) > 1:
            raise DatasetError(f"--field {name.removeprefix(FIELD_PREFIX)}: a second source named {name} "
                               "(give each field dataset its own folder name)")
    assert all(SEPARATOR not in name for name in names)  # source_name() guarantees it
    from training.duplicates import default_cache_dir

    cache_dir = cache_dir or default_cache_dir()
    samples, reports, evidence = collect_sources(spec, Path(mapping_path), cache_dir)
    # Every export's training photos are checked against every export's test photos: the two shots
    # of one burst may sit in two exports (a night round across midnight, exports of two periods).
    tests_of = {s.name: {check_image(image): image for image in s.dataset.images(TEST)} for s in sources}
    every_test = {digest: image for tests in tests_of.values() for digest, image in tests.items()}
    provenance = {}
    claimed: set[str] = set()  # digests of the photos a newer export already gave
    newest_first = sorted(sources, key=lambda s: str(s.dataset.manifest.get("exported_at") or ""), reverse=True)
    today = datetime.now(UTC).date()
    for source in newest_first:
        report = reports[source.name] = SourceReport()
        collected, expired = drop_expired(source, source.collect(spec.classes, report), report, today)
        collected, in_newer = drop_in_newer(source, collected, claimed, report)
        if collected:
            collected, links = keep_groups_together(collected, report, cache_dir, source.name)
            evidence.append(links)
        kept, twins = drop_test_twins(source, collected, every_test, report, cache_dir)
        samples += kept
        split = source.dataset.yardstick(today)
        if split.missing:  # its twins cannot be looked for either: the photos are gone
            log.warning("%s: %s", source.name, split.describe())
        provenance[source.name] = source.provenance(twins, in_newer, expired, split)
        log.info("%s: %d test photos of %d collection days kept out of training, %d training photos left out as "
                 "the same shot as a test photo", source.name, len(split.photos), len(split.days), twins)
    check_test_untouched(samples, every_test)
    merged_spec = MappingSpec.model_construct(name=spec.name, classes=spec.classes,
                                              sources={**spec.sources, **{s.name: s.spec() for s in sources}})
    return write_merge(merged_spec, samples, reports, evidence, out_dir, Path(mapping_path),
                       extra={"field": provenance})
