"""``trivue judge``: the detector and the sorting rules over a folder of real waste photos.

Prints a verdict per photo (what was seen, which items are sorting errors for the stream) and a
summary, and writes annotated photos. It uses the shipped model, or says loudly that it falls
back to the COCO-pretrained model when the repository has none yet. (``trivue demo --photos``
runs the same.)
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

from base.errors import CliError
from base.paths import COCO_WEIGHTS, REPO_ROOT, SHARED_DIR, data_dir

log = logging.getLogger(__name__)

DEFAULT_PHOTO_DIRS = (
    SHARED_DIR / "datasets" / "hopper-bags" / "images" / "val",
    SHARED_DIR / "datasets" / "litter-items" / "images" / "val",
    SHARED_DIR / "datasets" / "glass-ewaste" / "images" / "val",
)
SAMPLE_PHOTO_DIRS = tuple(REPO_ROOT / "trivue" / "sample" / "images" / k for k in ("contaminated", "clean"))


def add_photo_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, with_model: bool = True) -> None:
    parser.add_argument("--images", type=Path, nargs="+", default=None,
                        help="photo folders (default: the shared datasets' val images, else the committed sample)")
    if with_model:
        parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped model)")
    parser.add_argument("--rules", type=Path, default=None, help="sorting rules YAML (default: French rules)")
    parser.add_argument("--out", type=Path, default=data_dir() / "judged",
                        help="annotated photos folder (default <TRIVUE_DATA_DIR>/judged)")
    parser.add_argument("--limit", type=int, default=0, help="judge at most N photos (0 = all)")


def register(subparsers: argparse._SubParsersAction) -> None:
    judge = subparsers.add_parser("judge", help="judge real waste photos with the model and the sorting rules")
    add_photo_options(judge)
    judge.add_argument("--stream", default="recyclables",
                       help="waste stream the photos are judged for (default recyclables)")
    judge.set_defaults(handler=run_judge)


def _choose_model_and_rules(args: argparse.Namespace) -> tuple[Path, Path | None]:
    from vision.model import default_model_path
    from vision.rules import COCO_RULES

    model = args.model or default_model_path()
    if model == COCO_WEIGHTS and args.rules is None:
        log.warning("No trained Trivue model in models/: falling back to the COCO-pretrained model %s, "
                    "which was never trained on waste (bags are invisible to it). Verdicts are illustrative.",
                    model)
        return model, COCO_RULES
    return model, args.rules


def run_judge(args: argparse.Namespace) -> int:
    import cv2
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    from base.paths import make_folder
    from vision.annotate import draw
    from vision.cli import IMAGE_SUFFIXES, ImageReader, annotated_names, check_no_overwrite, find_images, load_detector
    from vision.rules import RulesError, SortingRules
    from vision.schema import Stream

    try:
        stream = Stream(args.stream)
    except ValueError:
        raise CliError(f"--stream {args.stream!r} is not one of {[s.value for s in Stream]}") from None
    if args.limit < 0:
        raise CliError(f"--limit {args.limit}: expected 0 (all photos) or more")
    # The photos and the output folder first: a bad one stops before the model loads.
    folders = args.images or [d for d in DEFAULT_PHOTO_DIRS if d.is_dir()]
    if not folders:
        log.warning("%s is absent: judging the small photo sample committed in the repository", SHARED_DIR)
        folders = [d for d in SAMPLE_PHOTO_DIRS if d.is_dir()]
    photos = find_images(folders)[: args.limit or None]
    if not photos:  # no folder at all: neither the shared datasets nor the committed sample
        raise CliError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) to judge: pass --images DIR")
    names = annotated_names(folders, photos)
    check_no_overwrite(args.out, folders, names, "--out")
    make_folder("--out", args.out)
    model, rules_path = _choose_model_and_rules(args)
    detector = load_detector(model)
    try:
        rules = SortingRules.load(rules_path)
        blind = rules.check_model(detector.names, stream)
    except RulesError as error:
        raise CliError(str(error)) from None
    if blind:
        log.info("Not detectable by this model, so never reported: %s", ", ".join(blind))
    console = Console()
    table = Table(title=f"Verdicts — stream {stream.value}, model {detector.meta.name}")
    for column in ("photo", "objects seen", "sorting errors", "score"):
        table.add_column(column)
    contaminated, errors_total = 0, Counter[str]()
    reader = ImageReader(photos, "judge")
    for path, image in track(reader, total=len(photos), description="Judging the photos", console=console,
                             transient=True):
        detections = detector.detect(image)
        counts = Counter(detector.names[int(c)] for c in detections.class_id)
        verdict = rules.judge(stream, counts)
        severity_of = {e.class_: e.severity.value for e in verdict.errors}
        target = args.out / names[path]
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), draw(image, detections, detector.names, severity_of))
        contaminated += verdict.contaminated
        errors_total.update({rules.label(e.class_): e.count for e in verdict.errors})
        seen = ", ".join(f"{n}×{c}" for n, c in sorted(counts.items())) or "—"
        wrong = ", ".join(f"{rules.label(e.class_)}×{e.count} ({e.severity.value})" for e in verdict.errors) or "—"
        table.add_row(path.name, seen, wrong, f"{verdict.score:g}")
    console.print(table)
    judged = len(photos) - len(reader.unreadable)
    share = contaminated / judged if judged else 0.0
    unreadable = f" ({len(reader.unreadable)} unreadable, skipped)" if reader.unreadable else ""
    console.print(f"{judged} photos{unreadable}, {contaminated} with a sorting error ({share:.0%}). "
                  f"Errors: {dict(errors_total.most_common()) or 'none'}")
    console.print(f"Annotated photos: {args.out.resolve()}")
    return 2 if reader.unreadable else 0

