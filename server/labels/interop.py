"""``trivue dataset import``: labels edited in Label Studio or CVAT come back (YOLO 1.1 or COCO JSON).

Accepted: a folder or a zip holding YOLO label files (``<event_id>.txt``, one ``class cx cy w h``
per line) with their class names (CVAT's ``obj.names``, Label Studio's ``classes.txt``, or a
``data.yaml``), or a COCO JSON file (alone or in a zip, as both tools export it). Photos are found
by file name (the event id, as ``trivue dataset export`` named them); that export itself, YOLO or COCO,
imports too (its ``manifest.json`` is no label file). The whole file is checked
before anything changes: one bad box, unknown class or unknown photo refuses the import, naming it.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from sqlalchemy.orm import Session

from server.ingest.models import Evidence
from server.labels.dataset import DatasetError
from server.labels.handback import Later, ManifestError, answered, decided_since, manifest_export
from server.labels.models import LabelPhoto
from server.labels.store import MAX_BOXES, UNUSABLE, LabelError, check_box, labellable, lock, replace_boxes
from vision.rules import SortingRules

NAME_FILES = ("obj.names", "classes.txt")
MANIFEST = "manifest.json"  # what ``trivue dataset export`` writes beside the labels
NOT_LABELS = {"obj.names", "classes.txt", "train.txt", "valid.txt", "test.txt", "obj.data"}
LABEL_SUFFIXES = (".txt", ".json", ".yaml", ".yml")
EPS = 1e-6  # six-decimal YOLO text: a box touching the edge may read 1.0000005
MAX_FILE_BYTES = 512 * 1024 * 1024
# Label Studio prefixes uploaded files with a hash ("3f2a9c1e-<event_id>.jpg"): the event id is found
# anywhere in the name.
EVENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

Files = dict[str, bytes]  # posix path inside the export -> content
Boxes = dict[str, list[dict[str, Any]]]  # event id -> boxes
Sizes = dict[str, tuple[str, float, float]]  # event id -> (the tool's image, as the file names it; width, height)


def event_id(name: str) -> str:
    found = EVENT_ID.findall(PurePosixPath(name).stem.lower())
    return found[-1] if found else PurePosixPath(name).stem


def _wanted(name: str) -> bool:
    """Only label and class-name files are read: the photos beside them in a Label Studio or CVAT
    export are never needed, and a zip's stated sizes then bound what the import holds in memory."""
    pure = PurePosixPath(name)
    return pure.suffix.lower() in LABEL_SUFFIXES or pure.name in NAME_FILES


def _bounded(path: Path, unpacked: int) -> None:
    if unpacked > MAX_FILE_BYTES:
        raise DatasetError(f"{path}: its label files {'hold' if path.is_dir() else 'unpack to'} more than an import "
                           f"may hold ({MAX_FILE_BYTES} bytes)")


def read_files(path: Path) -> Files:
    """The label and class-name files of a folder or zip (the photos beside them are never read, and
    do not count towards the limit: a CVAT or Label Studio export with its photos weighs gigabytes),
    or a bare COCO file; each bounded before it is read."""
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_dir():
        wanted = [p for p in sorted(path.rglob("*")) if p.is_file() and _wanted(p.name)]
        _bounded(path, sum(p.stat().st_size for p in wanted))
        return {p.relative_to(path).as_posix(): p.read_bytes() for p in wanted}
    if zipfile.is_zipfile(path):  # read from the file: only its directory and the label files' bytes
        try:
            with zipfile.ZipFile(path) as archive:
                members = [i for i in archive.infolist() if not i.is_dir() and _wanted(i.filename)]
                _bounded(path, sum(i.file_size for i in members))  # reading stops at the stated size
                return {i.filename: archive.read(i) for i in members}
        except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as error:
            # A truncated download or an encrypted archive: say so rather than "no class names".
            raise DatasetError(f"{path}: not a readable zip ({error})") from None
    if path.suffix.lower() != ".json":  # only COCO comes as a bare file; anything else is not an export
        raise DatasetError(f"{path}: not a readable zip or folder, nor a COCO .json (expected a YOLO 1.1 "
                           "zip/folder or COCO JSON exported by Label Studio or CVAT)")
    if (size := path.stat().st_size) > MAX_FILE_BYTES:
        raise DatasetError(f"{path}: {size} bytes is more than an import may hold ({MAX_FILE_BYTES})")
    return {path.name: path.read_bytes()}


def _lines(text: str, where: str) -> list[str]:
    """Class names one a line, the line's index being the class id: trailing blank lines are
    nothing, but a blank line between names would shift every class id after it."""
    names = [n.strip() for n in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if "" in names:
        raise DatasetError(f"{where}: line {names.index('') + 1} is empty: each line names the class whose id is "
                           "its line number, so a blank line would shift the classes after it")
    return names


def _yaml_names(document: Any, where: str) -> list[str]:
    """``names`` of a data.yaml: a list, or an ``{id: name}`` mapping taken in id order (not in the
    order the file happens to list it, which would give boxes the wrong classes)."""
    names = document.get("names") if isinstance(document, dict) else None
    if isinstance(names, dict):
        if set(names) != set(range(len(names))) or any(isinstance(k, bool) for k in names):
            raise DatasetError(f"{where}: 'names' ids are not 0..{len(names) - 1}")
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{where}: 'names' is not a list of class names nor an {{id: name}} mapping")
    return names


def _names(files: Files, source: str) -> list[str]:
    try:
        for name in NAME_FILES:
            found = [k for k in files if PurePosixPath(k).name == name]
            if found:
                return _lines(files[found[0]].decode("utf-8-sig"), f"{source}: {found[0]}")
        found = [k for k in files if PurePosixPath(k).name in ("data.yaml", "data.yml")]
        if found:
            return _yaml_names(yaml.safe_load(files[found[0]]), f"{source}: {found[0]}")
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise DatasetError(f"{source}: {found[0]}: unreadable class names ({error})") from None
    raise DatasetError(f"{source}: no class names: a YOLO export holds obj.names (CVAT), classes.txt "
                       "(Label Studio) or data.yaml")


def _xyxy(values: list[float]) -> tuple[float, float, float, float]:
    cx, cy, w, h = values
    return _clip((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))


def _once(boxes: Boxes, seen: dict[str, str], event: str, where: str, photo_boxes: list[dict[str, Any]]) -> None:
    """One labelling per photo: a second one (another file, folder or COCO image naming the same
    photo) would silently replace the first, whichever the file listing put last."""
    if event in seen:
        raise DatasetError(f"{where}: photo {event} is labelled twice in the import (also in {seen[event]}): "
                           "keep one labelling per photo")
    seen[event] = where
    boxes[event] = photo_boxes


def parse_yolo(files: Files, rules: SortingRules, source: str = "the export") -> Boxes:
    names, boxes, seen = _names(files, source), {}, {}
    for path, content in files.items():
        pure = PurePosixPath(path)
        if pure.suffix.lower() != ".txt" or pure.name in NOT_LABELS or pure.name.startswith("."):
            continue
        rows = []
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise DatasetError(f"{source}: {path}: not a YOLO text label file ({error})") from None
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            parts = line.split()
            try:
                index, values = int(parts[0]), [float(v) for v in parts[1:]]
            except (ValueError, IndexError):
                raise DatasetError(f"{where}: {line[:60]!r} is not 'class cx cy w h'") from None
            if len(values) != 4:
                raise DatasetError(f"{where}: {len(values)} numbers after the class, 4 expected (cx cy w h)")
            if not 0 <= index < len(names):
                raise DatasetError(f"{where}: class index {index} is not in the {len(names)} class names")
            rows.append((names[index], _xyxy(values), where))
        _once(boxes, seen, event_id(path), path, _checked(rows, path, rules))
    return boxes


def _number(value: Any) -> float | None:
    """A JSON number as a float; None for anything else (a string, a bool, an int too big for a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _get(mapping: dict[Any, Any], key: Any) -> Any:
    try:
        return mapping.get(key)
    except TypeError:  # an id that JSON made a list or an object: no such entry
        return None


def _coco_image(image: dict[str, Any], source: str) -> tuple[str, float, float]:
    """(file name, width, height) of a COCO image; one line naming the image otherwise."""
    name, width, height = image.get("file_name"), _number(image.get("width")), _number(image.get("height"))
    if not isinstance(name, str) or not name:
        raise DatasetError(f"{source}: image {image.get('id')!r}: no file_name (the photo's file, named by its "
                           "event id)")
    if width is None or height is None or not (0 < width < float("inf") and 0 < height < float("inf")):
        raise DatasetError(f"{source}: image {image.get('id')!r} ({name}): width and height must be positive numbers "
                           f"(pixels), got {image.get('width')!r:.20} x {image.get('height')!r:.20}")
    return name, width, height


def parse_coco(document: Any, source: str, rules: SortingRules, sizes_out: Sizes | None = None) -> Boxes:
    try:
        categories = {c["id"]: c["name"] for c in document["categories"]}
        images = {i["id"]: i for i in document["images"]}
        annotations = document.get("annotations", [])
    except (KeyError, TypeError, AttributeError):
        raise DatasetError(f"{source}: not a COCO file (categories, images, annotations)") from None
    if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
        raise DatasetError(f"{source}: not a COCO file: 'annotations' is not a list of objects")
    sizes = {i: _coco_image(image, source) for i, image in images.items()}
    rows: dict[Any, list[tuple[str, tuple[float, float, float, float], str]]] = {i: [] for i in images}
    for number, ann in enumerate(annotations, 1):
        where = f"{source}: annotation {ann.get('id', number)}"
        image_id, category = ann.get("image_id"), ann.get("category_id")
        if _get(images, image_id) is None or _get(categories, category) is None:
            raise DatasetError(f"{where}: unknown image {ann.get('image_id')} or category {category}")
        bbox = ann.get("bbox")
        values = [_number(v) for v in bbox] if isinstance(bbox, list) else []
        if len(values) != 4 or None in values:
            raise DatasetError(f"{where}: bbox must be [x, y, w, h] in pixels, got {bbox!r}"[:300])
        x, y, w, h = (float(v or 0.0) for v in values)  # None refused just above
        _name, width, height = sizes[image_id]
        xyxy = (x / width, y / height, (x + w) / width, (y + h) / height)
        rows[image_id].append((categories[category], _clip(xyxy), where))
    boxes: Boxes = {}
    seen: dict[str, str] = {}
    for i, r in rows.items():
        name = sizes[i][0]
        _once(boxes, seen, event_id(name), f"{source}: image {i!r} ({name})",
              _checked(r, f"{source}: {name}", rules))
        if sizes_out is not None:  # the boxes are fractions of this size: checked against the stored photo
            sizes_out[event_id(name)] = (f"{source}: image {i!r} ({name})", sizes[i][1], sizes[i][2])
    return boxes


def _clip(xyxy: tuple[float, ...]) -> tuple[float, float, float, float]:
    # Only rounding noise is clipped: a box truly outside the photo is refused by check_box.
    return tuple(min(max(v, 0.0), 1.0) if -EPS <= v <= 1 + EPS else v for v in xyxy)  # type: ignore[return-value]


def _checked(rows: list[tuple[str, tuple[float, float, float, float], str]], photo: str,
             rules: SortingRules) -> list[dict[str, Any]]:
    if len(rows) > MAX_BOXES:  # as in the dashboard: more is a runaway script, not a hopper
        raise DatasetError(f"{photo}: {len(rows)} boxes on one photo, at most {MAX_BOXES}")
    out = []
    for class_, xyxy, where in rows:
        try:
            check_box(class_, xyxy, where, rules)
        except LabelError as error:
            raise DatasetError(str(error)) from None
        out.append({"class": class_, **dict(zip(("x1", "y1", "x2", "y2"), xyxy, strict=True)),
                    "origin": "human", "state": "accepted", "model_class": None, "confidence": None})
    return out


@dataclass(frozen=True, slots=True)
class Parsed:
    boxes: Boxes
    source: str  # what the file was, for the audit log
    sizes: Sizes  # COCO: each image's size as the tool saw it
    manifest: tuple[datetime, set[str]] | None  # the export's date and photos, when its manifest.json came along


def _manifest(files: Files) -> tuple[datetime, set[str]] | None:
    found = sorted(k for k in files if PurePosixPath(k).name == MANIFEST)
    if not found:
        return None
    try:
        return manifest_export(files[found[0]], found[0])
    except ManifestError as error:
        raise DatasetError(str(error)) from None


def parse(path: Path, rules: SortingRules) -> Parsed:
    """The boxes per photo in the file, what the file was, and what it says of the photos (sizes, the
    export it answers); a class must be one of ``rules`` (the server's sorting rules)."""
    files = read_files(path)
    if set(files) == {MANIFEST}:
        raise DatasetError(f"{path}: the manifest of a `trivue dataset export`, not labels: pass the export's "
                           "folder (or zip) instead, or one of its annotations/instances_*.json")
    # Label Studio's notes.json, and the manifest of Trivue's own export (imported back after a
    # labelling in CVAT, or to move labels from a test server to production): no COCO files.
    documents = [k for k in files if k.endswith(".json") and PurePosixPath(k).name not in ("notes.json", MANIFEST)]
    manifest = _manifest(files)
    if documents and not any(k.endswith(".txt") for k in files):
        boxes: Boxes = {}
        seen: dict[str, str] = {}
        sizes: Sizes = {}
        for name in documents:
            try:
                document = json.loads(files[name])
            except (ValueError, UnicodeDecodeError, RecursionError) as error:
                raise DatasetError(f"{name}: not JSON ({error})") from None
            for event, photo_boxes in parse_coco(document, name, rules, sizes).items():  # instances_train...
                _once(boxes, seen, event, name, photo_boxes)
        return Parsed(boxes, f"COCO {path.name}", sizes, manifest)
    return Parsed(parse_yolo(files, rules, str(path)), f"YOLO {path.name}", {}, manifest)


def check_size(sizes: Sizes, event: str, photo: Evidence) -> None:
    """The tool's image has the stored photo's size (or a copy scaled alike): COCO boxes are pixels of
    the tool's image. A tool that turned the photo upright (EXIF orientation) swapped its width and
    height, and every box landed elsewhere on the stored photo."""
    if event not in sizes:
        return
    where, width, height = sizes[event]
    x, y = width / photo.width, height / photo.height
    if abs(x - y) <= 0.01 * max(x, y):  # 1 %: a box one pixel off on a rescaled copy
        return
    turned = abs(width / photo.height - height / photo.width) <= 0.01 * max(width / photo.height, height / photo.width)
    why = ("width and height swapped: the tool turned the photo (EXIF orientation), " if turned
           else "not the same proportions: ")
    raise DatasetError(f"{where}: the tool's image is {width:g} x {height:g} pixels, the stored photo {photo.width} x "
                       f"{photo.height}; {why}its boxes would land in the wrong place on the photo. Label the photo "
                       "as exported (no rotation), then export again")


@dataclass(frozen=True, slots=True)
class ImportSummary:
    imported: int
    kept_unusable: tuple[str, ...]  # photos a person marked unusable: left so, their labels not imported
    kept_changed: tuple[Later, ...] = ()  # photos a person changed after the export: left so


def import_labels(session: Session, path: Path, actor: str, photo_days: int, lift_days: int,
                  rules: SortingRules, relabel_unusable: bool = False, force: bool = False) -> ImportSummary:
    """Replace the labels of every photo in the file; all or nothing, except the photos a person
    marked unusable, which stay so unless ``relabel_unusable``, and those a person changed after the
    export the file answers (``server.labels.handback``), left as they are unless ``force``; both
    listed in the summary. The caller commits."""
    parsed = parse(path, rules)
    if not parsed.boxes:
        raise DatasetError(f"{path}: no label file found (YOLO .txt per photo, or a COCO JSON)")
    checked = []
    for event, photo_boxes in sorted(parsed.boxes.items()):
        try:
            lift, photo = labellable(session, event, photo_days, lift_days)
        except LabelError as error:
            raise DatasetError(f"{event}: {error}") from None
        check_size(parsed.sizes, event, photo)
        checked.append((lift, photo_boxes))
    for lift, _boxes in checked:  # held until the commit: a decision taken now is seen below, or waits
        lock(session, lift.event_id, f"import on photo {lift.event_id} by {actor}")
    later = {} if force else decided_since(session, answered(session, [lift for lift, _ in checked], parsed.manifest))
    kept, changed = [], []
    for lift, photo_boxes in checked:
        row = session.get(LabelPhoto, lift.event_id)
        if lift.event_id in later and (row is None or row.status != UNUSABLE):
            changed.append(later[lift.event_id])  # an unusable photo is --relabel-unusable's to decide
        elif not replace_boxes(session, lift, photo_boxes, actor, parsed.source, rules, relabel_unusable):
            kept.append(lift.event_id)
    return ImportSummary(len(checked) - len(kept) - len(changed), tuple(kept), tuple(changed))
