"""``trivue dataset import``: labels edited in Label Studio or CVAT come back (YOLO 1.1 or COCO JSON).

Accepted: a folder or a zip holding YOLO label files (``<event_id>.txt``, one ``class cx cy w h``
per line) with their class names (CVAT's ``obj.names``, Label Studio's ``classes.txt``, or a
``data.yaml``), or a COCO JSON file (alone or in a zip, as both tools export it). Photos are found
by file name (the event id, as ``trivue dataset export`` named them). The whole file is checked
before anything changes: one bad box, unknown class or unknown photo refuses the import, naming it.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from sqlalchemy.orm import Session

from server.labels.dataset import DatasetError
from server.labels.store import LabelError, check_box, labellable, replace_boxes

NAME_FILES = ("obj.names", "classes.txt")
NOT_LABELS = {"obj.names", "classes.txt", "train.txt", "valid.txt", "test.txt", "obj.data"}
EPS = 1e-6  # six-decimal YOLO text: a box touching the edge may read 1.0000005
MAX_FILE_BYTES = 512 * 1024 * 1024
# Label Studio prefixes uploaded files with a hash ("3f2a9c1e-<event_id>.jpg"): the event id is found
# anywhere in the name.
EVENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

Files = dict[str, bytes]  # posix path inside the export -> content
Boxes = dict[str, list[dict[str, Any]]]  # event id -> boxes


def event_id(name: str) -> str:
    found = EVENT_ID.findall(PurePosixPath(name).stem.lower())
    return found[-1] if found else PurePosixPath(name).stem


def read_files(path: Path) -> Files:
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_dir():
        return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    data = path.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise DatasetError(f"{path}: {len(data)} bytes is more than an import may hold ({MAX_FILE_BYTES})")
    if zipfile.is_zipfile(io.BytesIO(data)):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}
        except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as error:
            # A truncated download or an encrypted archive: say so rather than "no class names".
            raise DatasetError(f"{path}: not a readable zip ({error})") from None
    if path.suffix.lower() != ".json":  # only COCO comes as a bare file; anything else is not an export
        raise DatasetError(f"{path}: not a readable zip or folder, nor a COCO .json (expected a YOLO 1.1 "
                           "zip/folder or COCO JSON exported by Label Studio or CVAT)")
    return {path.name: data}


def _names(files: Files, source: str) -> list[str]:
    try:
        for name in NAME_FILES:
            found = [k for k in files if PurePosixPath(k).name == name]
            if found:
                return [n.strip() for n in files[found[0]].decode("utf-8-sig").splitlines() if n.strip()]
        found = [k for k in files if PurePosixPath(k).name in ("data.yaml", "data.yml")]
        if found:
            document = yaml.safe_load(files[found[0]])
            names = document.get("names") if isinstance(document, dict) else None
            return list(names.values()) if isinstance(names, dict) else list(names or [])
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise DatasetError(f"{source}: {found[0]}: unreadable class names ({error})") from None
    raise DatasetError(f"{source}: no class names: a YOLO export holds obj.names (CVAT), classes.txt "
                       "(Label Studio) or data.yaml")


def _xyxy(values: list[float]) -> tuple[float, float, float, float]:
    cx, cy, w, h = values
    return _clip((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))


def parse_yolo(files: Files, source: str = "the export") -> Boxes:
    names, boxes = _names(files, source), {}
    for path, content in files.items():
        pure = PurePosixPath(path)
        if pure.suffix != ".txt" or pure.name in NOT_LABELS or pure.name.startswith("."):
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
        boxes[event_id(path)] = _checked(rows)
    return boxes


def parse_coco(document: Any, source: str) -> Boxes:
    try:
        categories = {c["id"]: c["name"] for c in document["categories"]}
        images = {i["id"]: i for i in document["images"]}
        annotations = document.get("annotations", [])
    except (KeyError, TypeError):
        raise DatasetError(f"{source}: not a COCO file (categories, images, annotations)") from None
    rows: dict[Any, list[tuple[str, tuple[float, float, float, float], str]]] = {i: [] for i in images}
    for number, ann in enumerate(annotations, 1):
        where = f"{source}: annotation {ann.get('id', number)}"
        image = images.get(ann.get("image_id"))
        if image is None or ann.get("category_id") not in categories:
            raise DatasetError(f"{where}: unknown image {ann.get('image_id')} or category {ann.get('category_id')}")
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
            width, height = float(image["width"]), float(image["height"])
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{where}: bbox [x, y, w, h] and the image's width and height needed") from None
        xyxy = (x / width, y / height, (x + w) / width, (y + h) / height)
        rows[image["id"]].append((categories[ann["category_id"]], _clip(xyxy), where))
    return {event_id(str(images[i]["file_name"])): _checked(r) for i, r in rows.items()}


def _clip(xyxy: tuple[float, ...]) -> tuple[float, float, float, float]:
    # Only rounding noise is clipped: a box truly outside the photo is refused by check_box.
    return tuple(min(max(v, 0.0), 1.0) if -EPS <= v <= 1 + EPS else v for v in xyxy)  # type: ignore[return-value]


def _checked(rows: list[tuple[str, tuple[float, float, float, float], str]]) -> list[dict[str, Any]]:
    out = []
    for class_, xyxy, where in rows:
        try:
            check_box(class_, xyxy, where)
        except LabelError as error:
            raise DatasetError(str(error)) from None
        out.append({"class": class_, **dict(zip(("x1", "y1", "x2", "y2"), xyxy, strict=True)),
                    "origin": "human", "state": "accepted", "model_class": None, "confidence": None})
    return out


def parse(path: Path) -> tuple[Boxes, str]:
    """The boxes per photo in the file, and what the file was (for the audit log)."""
    files = read_files(path)
    documents = [k for k in files if k.endswith(".json") and PurePosixPath(k).name != "notes.json"]
    if documents and not any(k.endswith(".txt") for k in files):
        boxes: Boxes = {}
        for name in documents:
            try:
                document = json.loads(files[name])
            except (ValueError, UnicodeDecodeError) as error:
                raise DatasetError(f"{name}: not JSON ({error})") from None
            boxes.update(parse_coco(document, name))
        return boxes, f"COCO {path.name}"
    return parse_yolo(files, str(path)), f"YOLO {path.name}"


def import_labels(session: Session, path: Path, actor: str, photo_days: int, lift_days: int) -> int:
    """Replace the labels of every photo in the file; all or nothing. Returns photos updated; the caller commits."""
    boxes, source = parse(path)
    if not boxes:
        raise DatasetError(f"{path}: no label file found (YOLO .txt per photo, or a COCO JSON)")
    checked = []
    for event, photo_boxes in sorted(boxes.items()):
        try:
            lift, _photo = labellable(session, event, photo_days, lift_days)
        except LabelError as error:
            raise DatasetError(f"{event}: {error}") from None
        checked.append((lift, photo_boxes))
    for lift, photo_boxes in checked:
        replace_boxes(session, lift, photo_boxes, actor, source)
    return len(checked)
