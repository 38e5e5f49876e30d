"""``trivue train``, ``trivue evaluate`` and ``trivue export``: from labelled data to a shipped ONNX.

Heavy imports (torch, ultralytics, onnxruntime) happen inside the handlers only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from base.errors import CliError

DEFAULT_MAPPING = Path(__file__).with_name("mapping.yaml")
# What a resumed run trains with comes from its checkpoint (Ultralytics), so these options cannot
# change on --resume; --device and --threads can (how it runs, not what it learns).
RESUME_FIXED = ("data", "model", "init", "imgsz", "epochs", "hours", "batch", "close_mosaic", "lr0",
                "optimizer", "warmup_epochs", "fraction", "seed", "missing_labels", "precision", "field_map")


def register(subparsers: argparse._SubParsersAction) -> None:
    register_train(subparsers)
    register_evaluate(subparsers)
    register_export(subparsers)


def register_train(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train a detector (Ultralytics, CPU, offline)")
    train.add_argument("--data", type=Path, default=DEFAULT_MAPPING,
                       help="class-mapping YAML (merged into RUN/data) or an Ultralytics data.yaml")
    train.add_argument("--field", type=Path, action="append", default=[], metavar="DIR",
                       help="a field dataset (`trivue dataset export`, repeatable): its train and val photos join "
                            "the mapping's sources; its test split is never trained on")
    train.add_argument("--field-map", type=Path, default=None, metavar="FILE",
                       help="field class names -> model classes (default training/field-map.yaml)")
    train.add_argument("--run", type=Path, default=Path("runs/trivue-waste"), help="run directory")
    train.add_argument("--model", default="yolov8n", help="yolov8n | yolov8s | yolo11n | yolo26n")
    train.add_argument("--init", default="coco",
                       help="coco (rebuilt from the shared ONNX) | coco-identity (same, identity BNs, "
                            "for comparison) | scratch | X.pt | X.onnx (warm start from a float YOLOv8n "
                            "export such as models/trivue-waste.onnx: class rows copied by name)")
    train.add_argument("--imgsz", type=int, default=320,
                       help="network input size in pixels, a multiple of 32 (default 320)")
    train.add_argument("--epochs", type=int, default=30, help="passes over the training images (default 30)")
    train.add_argument("--hours", type=float, default=0.0,
                       help="time budget: epochs are re-planned after each epoch to finish within it")
    train.add_argument("--batch", type=int, default=16, help="photos per step (default 16)")
    train.add_argument("--close-mosaic", type=int, default=5, help="last N epochs without mosaic")
    train.add_argument("--lr0", type=float, default=None,
                       help="learning rate, with AdamW unless --optimizer sgd (default: Ultralytics' choice "
                            "for the run's length, AdamW at 0.002 x 5 / (4 + classes) for short runs); "
                            "continuing a trained model (--init X.onnx) may want less")
    train.add_argument("--optimizer", default="auto", choices=["auto", "sgd", "adamw"],
                       help="auto: Ultralytics' choice, AdamW when --lr0 is given; sgd (needs --lr0) moves a "
                            "trained model by its gradients, gentler when continuing one (--init X.onnx)")
    train.add_argument("--warmup-epochs", type=float, default=None,
                       help="epochs over which the learning rate rises from 0 (default: Ultralytics' 3)")
    train.add_argument("--fraction", type=float, default=1.0, help="use this fraction of the training images")
    train.add_argument("--seed", type=int, default=0, help="random seed (default 0: reproducible runs)")
    train.add_argument("--missing-labels", default="naive", choices=["mask", "naive"],
                       help="classes a source does not label: treat them as background (naive merge, "
                            "default: it scored higher in every comparison so far, docs/training.md) "
                            "or mask their loss per source")
    train.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = all cores)")
    train.add_argument("--device", default=None,
                       help="cpu (default), cuda, cuda:N or GPU indices (0 or 0,1); with --resume, "
                            "default: the run's own")
    train.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                       help="bf16: bfloat16 on CUDA GPUs of compute capability 8.0 and newer")
    train.add_argument("--no-cache", action="store_true", help="decode images every epoch (saves RAM)")
    train.add_argument("--no-plots", action="store_true",
                       help="skip Ultralytics' training plots (results.png, label plots)")
    train.add_argument("--resume", action="store_true", help="continue RUN from its last checkpoint")
    # An option left at its default was not given: only the others are checked against the run's record.
    train.set_defaults(handler=run_train, fixed_defaults={key: train.get_default(key) for key in RESUME_FIXED})


def register_evaluate(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser("evaluate", help="measure an ONNX model through the truck's detector")
    evaluate.add_argument("--data", type=Path, default=DEFAULT_MAPPING,
                          help="mapping YAML, data.yaml or run directory (its merged val split)")
    evaluate.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped one)")
    evaluate.add_argument("--split", default="val", help="the data.yaml split to measure (default val)")
    evaluate.add_argument("--conf", type=float, default=0.25, help="deployed confidence threshold")
    evaluate.add_argument("--stream", default="recyclables", help="stream for the sorting-error decision")
    evaluate.add_argument("--rules", type=Path, default=None, help="rules YAML (default: French rules)")
    evaluate.add_argument("--json", action="store_true", help="one JSON object on stdout")
    evaluate.add_argument("--plot", type=Path, default=None,
                          help="write a PR-curve PNG here (with --lifts: a contact sheet of the worst lift)")
    evaluate.add_argument("--sheets", type=Path, default=None, metavar="DIR",
                          help="write contact sheets here: the model's boxes on each source, and the "
                               "near-duplicate photos kept in one split")
    evaluate.add_argument("--lifts", action="store_true",
                          help="count lifts instead: each photo as a 5-8 frame burst through the truck's pipeline")
    evaluate.add_argument("--seed", type=int, default=0, help="--lifts: seed of the bursts (reproducible)")
    # --compare (training/compare.py): exit 0 promote, 3 keep (KEEP_EXIT), 2 bad input
    evaluate.add_argument("--compare", type=Path, nargs=2, default=None, metavar=("OLD", "NEW"),
                          help="compare two ONNX models on the test split of the field dataset --data DIR: "
                               "per-class AP50 deltas and a verdict, promote (exit 0) or keep (exit 3)")
    evaluate.add_argument("--gates", type=Path, default=None, metavar="FILE",
                          help="--compare: gates YAML (default training/compare-gates.yaml)")
    evaluate.add_argument("--field-map", type=Path, default=None, metavar="FILE",
                          help="--compare: field class names -> model classes (default training/field-map.yaml)")
    evaluate.set_defaults(handler=run_evaluate)


def register_export(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser("export", help="export a training run to ONNX with Trivue metadata")
    export.add_argument("run", type=Path, metavar="RUN", nargs="?", default=None,
                        help="the training run directory (trivue train --run); not with --from-onnx")
    export.add_argument("--from-onnx", type=Path, default=None, metavar="MODEL",
                        help="instead of a run: measure an FP32 model trivue export wrote, write its INT8 "
                             "model (calibrated on --int8 DIR, else the merged training images) and card")
    export.add_argument("--data", type=Path, default=DEFAULT_MAPPING, help="--from-onnx: the mapping to merge")
    export.add_argument("--field", type=Path, action="append", default=[], metavar="DIR",
                        help="--from-onnx: a field export the model was trained with (repeatable, as to trivue "
                             "train; its metadata names them and a missing one is refused)")
    export.add_argument("--field-map", type=Path, default=None, metavar="FILE",
                        help="--from-onnx: the field map the run used (default training/field-map.yaml)")
    export.add_argument("--imgsz", type=int, default=None,
                        help="input size in pixels (default: the size the run trained at)")
    export.add_argument("--out", type=Path, default=None, help="ONNX path (default RUN/export/<name>.onnx)")
    export.add_argument("--name", default="trivue-waste", help="model name in its metadata and file name")
    export.add_argument("--version", default=None, help="model version (default: date-based)")
    export.add_argument("--int8", type=Path, default=None, metavar="CALIB_DIR",
                        help="also write a static INT8 model calibrated on these images")
    export.add_argument("--max-drop", type=float, default=0.02, help="largest mAP50 loss INT8 may cost")
    export.set_defaults(handler=run_export)


def run_train(args: argparse.Namespace) -> int:
    from training.datasets import DatasetError
    from training.train import TrainConfig, TrainError, train

    if args.field_map is not None and not args.field:  # else ignored, found out after the training
        raise CliError("--field-map goes with --field DIR (a field export to map); drop it or add --field")
    config = TrainConfig(
        data=args.data, run_dir=args.run, model=args.model, init=args.init, imgsz=args.imgsz,
        epochs=args.epochs, hours=args.hours, batch=args.batch, close_mosaic=args.close_mosaic,
        seed=args.seed, threads=args.threads, cache=not args.no_cache, fraction=args.fraction, plots=not args.no_plots,
        missing_labels=args.missing_labels, field=tuple(args.field), field_map=args.field_map,
        lr0=args.lr0, optimizer=args.optimizer, warmup_epochs=args.warmup_epochs, device=args.device,
        precision=args.precision,
    )
    if args.resume:
        check_resume_options(args, config.to_json())
    try:
        best = train(config, resume=args.resume)
    except (TrainError, DatasetError) as error:
        raise CliError(str(error)) from None
    sys.stdout.write(f"best checkpoint: {best}\n")
    return 0


def check_resume_options(args: argparse.Namespace, asked: dict) -> None:
    """An option given with --resume that differs from the run's record stops the command: it was dropped."""
    record_file = args.run / "trivue.json"
    try:
        record = json.loads(record_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # no record: train() says there is nothing to resume
    for key in RESUME_FIXED:
        if getattr(args, key) != args.fixed_defaults[key] and key in record and asked[key] != record[key]:
            flag = "--" + key.replace("_", "-")
            raise CliError(f"--resume continues {args.run} as it was started ({record_file}): {flag} "
                           f"{asked[key]} differs from its {record[key]}; drop it, or train into a new --run")


def run_evaluate(args: argparse.Namespace) -> int:
    from training.datasets import DatasetError
    from training.evaluate import EvaluateError, evaluate, format_report
    from training.sheets import SheetError
    from vision.model import DetectorError, default_model_path
    from vision.rules import RulesError

    if args.compare:
        return run_compare(args)
    if args.gates or args.field_map:  # else silently ignored, after minutes of an evaluation not asked for
        raise CliError("--gates and --field-map go with --compare OLD NEW --data FIELD_DIR")
    make_output_folders(args)  # before the evaluation, which takes minutes, rather than after it
    if args.lifts:
        return run_evaluate_lifts(args)
    try:
        report = evaluate(args.data, args.model or default_model_path(), split=args.split, conf=args.conf,
                          stream=args.stream, rules=args.rules, plot=args.plot, sheets=args.sheets)
    except (EvaluateError, DatasetError, DetectorError, SheetError, RulesError) as error:
        raise CliError(str(error)) from None
    sys.stdout.write(json.dumps(report) + "\n" if args.json else format_report(report))
    return 0


def make_output_folders(args: argparse.Namespace) -> None:
    """The folders --plot and --sheets write to; a path that cannot be one stops the command naming it."""
    from base.paths import make_folder

    if args.plot is not None:
        if args.plot.is_dir():
            raise CliError(f"--plot {args.plot}: is a folder, expected a PNG file name")
        make_folder("--plot", args.plot.parent, args.plot)
    if args.sheets is not None:
        make_folder("--sheets", args.sheets)


def run_compare(args: argparse.Namespace) -> int:
    from training.compare import KEEP, KEEP_EXIT, CompareError, compare, format_comparison, load_gates

    if args.lifts or args.model or args.sheets or args.plot:
        raise CliError("--compare takes its two models and prints a verdict: drop --model, --lifts, --sheets, --plot")
    if args.data == DEFAULT_MAPPING:
        raise CliError("--compare needs --data FIELD_DIR, a folder written by `trivue dataset export`")
    try:
        result = compare(*args.compare, args.data, load_gates(args.gates), args.field_map, conf=args.conf)
    except CompareError as error:
        raise CliError(str(error)) from None
    sys.stdout.write(json.dumps(result.to_json()) + "\n" if args.json else format_comparison(result))
    return KEEP_EXIT if result.verdict == KEEP else 0


def run_evaluate_lifts(args: argparse.Namespace) -> int:
    from training.datasets import DatasetError
    from training.evaluate import EvaluateError
    from training.lifts import evaluate_lifts, format_lifts
    from vision.model import DetectorError, default_model_path
    from vision.rules import RulesError

    try:
        report = evaluate_lifts(args.data, args.model or default_model_path(), split=args.split, conf=args.conf,
                                stream=args.stream, rules=args.rules, seed=args.seed, sheet=args.plot)
    except (EvaluateError, DatasetError, DetectorError, RulesError) as error:
        raise CliError(str(error)) from None
    sys.stdout.write(json.dumps(report) + "\n" if args.json else format_lifts(report))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from training.export import ExportError, export, requantise

    if (args.run is None) == (args.from_onnx is None):
        raise CliError("give a training RUN or --from-onnx MODEL (one of them)")
    if args.from_onnx is not None and (args.out is not None or args.version is not None):
        raise CliError("--from-onnx: --out and --version are the model's own (its metadata)")
    if args.from_onnx is not None and args.imgsz is not None:
        raise CliError("--from-onnx: --imgsz is the model's own (its input size)")
    if args.from_onnx is None and (args.field or args.field_map):
        raise CliError("--field and --field-map go with --from-onnx: a run's export reads its own merged data")
    try:
        if args.from_onnx is not None:
            result = requantise(args.from_onnx, args.data, calib_dir=args.int8, max_drop=args.max_drop,
                                field=args.field, field_map=args.field_map)
        else:
            result = export(args.run, imgsz=args.imgsz, out=args.out, name=args.name, version=args.version,
                            calib_dir=args.int8, max_drop=args.max_drop)
    except ExportError as error:
        raise CliError(str(error)) from None
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0
