"""``trivue detect`` and ``trivue schema``: the detector and the wire contract from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from base.errors import CliError
from base.paths import IMAGE_SUFFIXES, images_in, make_folder


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
    if args.save:
        make_folder("--save", args.save)
    detector = load_detector(args.model, conf=args.conf, iou=args.iou, threads=args.threads)
    for path in images:
        image = read_image(path)
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
            cv2.imwrite(str(args.save / f"{path.stem}.jpg"), draw(image, detections, detector.names))
    return 0


def run_schema(args: argparse.Namespace) -> int:
    from vision.schema import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n")
    return 0
