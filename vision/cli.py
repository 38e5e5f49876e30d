"""``trivue detect`` and ``trivue schema``: the detector and the wire contract from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from base.errors import CliError
from base.paths import IMAGE_SUFFIXES, images_in, make_folder

if TYPE_CHECKING:  # numpy loads with the detector, not with every trivue command
    import numpy as np


def register(subparsers: argparse._SubParsersAction) -> None:
    detect = subparsers.add_parser("detect", help="run the detector on images or folders of images")
    detect.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE_OR_DIR",
                        help="photos, or folders searched for photos (subfolders too)")
    detect.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped model)")
    detect.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default 0.25)")
    detect.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    detect.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = all cores)")
    detect.add_argument("--json", action="store_true", help="one JSON object per image on stdout")
    detect.add_argument("--save", type=Path, metavar="DIR", help="write annotated images to DIR")
    detect.set_defaults(handler=run_detect)

    schema = subparsers.add_parser("schema", help="print the LiftEvent JSON Schema")
    schema.set_defaults(handler=run_schema)


def annotated_names(inputs: list[Path], images: list[Path]) -> dict[Path, Path]:
    """Where each image's annotated copy goes, relative to the output folder: a folder's photos
    keep their sub-folders (``a/photo.jpg`` and ``b/photo.jpg`` are two photos, and one copy wrote
    over the other), every copy is a ``.jpg``, and a name taken twice (``photo.jpg`` and
    ``photo.png``) gets ``-2``, ``-3``..."""
    names: dict[Path, Path] = {}
    taken: set[Path] = set()
    for path in images:
        folder = next((f for f in inputs if f.is_dir() and path.is_relative_to(f)), None)
        name = (path.relative_to(folder) if folder else Path(path.name)).with_suffix(".jpg")
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = name.with_name(f"{name.stem}-{n}.jpg")
        taken.add(candidate)
        names[path] = candidate
    return names


def check_no_overwrite(save: Path, inputs: list[Path], names: dict[Path, Path], option: str = "--save") -> None:
    """CliError when the annotated copies would go among the photos read: into an input folder (the
    next run over it reads them as photos; a ``.png`` and its ``.jpg`` copy side by side) or onto a
    photo given by name (the boxes drawn over the original for good)."""
    target = save.resolve()
    for folder in inputs:
        if folder.is_dir() and target.is_relative_to(folder.resolve()):
            raise CliError(f"{option} {save}: inside the photos read ({folder}): the annotated copies would "
                           "be read as photos next time, or write over them; choose a folder outside")
    originals = {path.resolve() for path in names}
    for path, name in names.items():
        if (save / name).resolve() in originals:
            raise CliError(f"{option} {save}: its copy of {path} would write over the photo {save / name}; "
                           "choose a folder outside the photos read")


class ImageReader:
    """The images read in turn; one that cannot be read is named on stderr and skipped, so a bad
    file (an interrupted copy, a text file named .jpg) never stops the rest of a folder, and
    ``unreadable`` lists them afterwards for the exit code."""

    def __init__(self, images: list[Path], command: str) -> None:
        self.images, self.command = images, command
        self.unreadable: list[Path] = []

    def __iter__(self) -> Iterator[tuple[Path, np.ndarray]]:
        for path in self.images:
            try:
                image = read_image(path)
            except CliError as error:
                print(f"trivue {self.command}: error: {error}", file=sys.stderr)
                self.unreadable.append(path)
                continue
            yield path, image


def find_images(inputs: list[Path]) -> list[Path]:
    """Files as given, folders expanded to their images (sorted, recursive).

    Every input is checked before the first image is read: a folder without images is an error
    (an empty folder printed nothing and exited 0, which looked like success)."""
    found: list[Path] = []
    for path in inputs:
        if path.is_dir():
            images = images_in(path, recursive=True)
            if not images:
                raise CliError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
            found.extend(images)
        elif path.is_file():
            found.append(path)
        else:
            raise CliError(f"{path}: no such file or folder")
    return found


def read_image(path: Path):  # -> np.ndarray, kept untyped here to avoid importing numpy at parse time
    """Read a BGR image or raise CliError naming the file."""
    import cv2
    import numpy as np


    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise CliError(f"{path}: not a readable image")
    return image


def load_detector(model: Path | None, **kwargs):
    from vision.model import Detector, DetectorError, default_model_path

    try:
        return Detector(model or default_model_path(), **kwargs)
    except DetectorError as error:
        raise CliError(str(error)) from None


def run_detect(args: argparse.Namespace) -> int:
    import cv2

    from vision.annotate import draw

    if args.threads < 0:
        raise CliError(f"--threads {args.threads}: expected 0 (all cores) or more")
    for option, value in (("--conf", args.conf), ("--iou", args.iou)):
        if not 0.0 <= value <= 1.0:  # the detector's own check named neither option (nan fails it too)
            raise CliError(f"{option} {value:g}: expected a threshold from 0 to 1")
    images = find_images(args.inputs)
    names = annotated_names(args.inputs, images)
    if args.save:
        check_no_overwrite(args.save, args.inputs, names)
        make_folder("--save", args.save)
    detector = load_detector(args.model, conf=args.conf, iou=args.iou, threads=args.threads)
    reader = ImageReader(images, "detect")
    for path, image in reader:
        detections = detector.detect(image)
        rows = [
            {"class": detector.names[int(c)], "confidence": round(float(s), 4),
             "box": [round(float(v), 1) for v in box]}
            for box, s, c in zip(detections.xyxy, detections.confidence, detections.class_id, strict=True)
        ]
        if args.json:
            record = {"image": str(path), "width": image.shape[1], "height": image.shape[0], "detections": rows}
            sys.stdout.write(json.dumps(record) + "\n")
        else:
            found = ", ".join(f"{r['class']} {r['confidence']:.2f}" for r in rows) or "nothing"
            sys.stdout.write(f"{path}  {image.shape[1]}x{image.shape[0]}  {len(rows)} detections: {found}\n")
        if args.save:
            target = args.save / names[path]
            target.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(target), draw(image, detections, detector.names))
    return 2 if reader.unreadable else 0


def run_schema(args: argparse.Namespace) -> int:
    from vision.schema import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n")
    return 0
