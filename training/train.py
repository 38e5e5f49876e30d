"""Train a detector with Ultralytics, offline, with everything under one run directory.

Run layout::

    RUN/config/       Ultralytics settings and the fonts its plots want (no download attempt)
    RUN/data/         the merged dataset (links to the shared images, rewritten labels)
    RUN/init/         the COCO float checkpoint rebuilt from the shared INT8 ONNX
    RUN/train/        Ultralytics' own output: weights/{last,best}.pt, results.csv, plots
    RUN/trivue.json   what was asked (so `--resume` and `trivue export` know the run)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from base.paths import COCO_WEIGHTS
from base.strict_yaml import read_mapping
from training.device import Device, DeviceError, resolve_device

log = logging.getLogger(__name__)

STRIDE = 32  # a YOLO network's largest stride: its input sides are multiples of it

MODELS = ("yolov8n", "yolov8s", "yolo11n", "yolo26n")
FONTS = ("Arial.ttf", "Arial.Unicode.ttf")
RUN_FILE = "trivue.json"


class TrainError(RuntimeError):
    """A training request that cannot run; the message says why."""


@dataclass(frozen=True, slots=True)
class TrainConfig:
    data: Path  # a mapping YAML (merged into RUN/data) or a ready Ultralytics data.yaml
    run_dir: Path
    model: str = "yolov8n"
    init: str = "coco"  # coco | coco-identity | scratch | path to a .pt | path to a YOLOv8n float .onnx
    # naive: every source's labels taken as exhaustive (what every shipped model used and scored best
    # with, docs/training.md) | mask: per-source class masks (training.partial)
    missing_labels: str = "naive"
    imgsz: int = 320
    epochs: int = 30
    hours: float = 0.0  # > 0: Ultralytics re-plans epochs to finish within this budget
    batch: int = 16
    close_mosaic: int = 5
    seed: int = 0
    cache: bool = True
    fraction: float = 1.0
    patience: int = 100
    plots: bool = True
    threads: int = 0  # torch CPU threads; 0 = all cores
    # cpu | cuda | cuda:N | GPU indices "0,1" (training.device); None: the CPU for a new run, the
    # run's own device for a resume
    device: str | None = None
    precision: str = "fp32"  # fp32 | bf16 (CUDA GPUs of compute capability 8.0 and newer)
    field: tuple[Path, ...] = ()  # field datasets (`trivue dataset export`): train and val photos join
    field_map: Path | None = None  # their class names -> the model's (default training/field-map.yaml)
    lr0: float | None = None  # None: Ultralytics' own choice for the run's length (optimizer=auto)
    # auto: Ultralytics' choice (AdamW for short runs), AdamW when lr0 is set | sgd | adamw
    optimizer: str = "auto"
    warmup_epochs: float | None = None  # None: Ultralytics' default (3)

    def to_json(self) -> dict:
        def plain(value: object) -> object:
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            return str(value) if isinstance(value, Path) else value

        return {k: plain(v) for k, v in asdict(self).items()}


# --optimizer -> Ultralytics' name (None: optimizer=auto). SGD's steps follow the gradient's size,
# which is small where a trained model already sits; AdamW's first steps are about lr0 for every
# weight whatever its gradient (its moment estimates start empty): a jolt to a trained model.
OPTIMIZERS = {"auto": None, "sgd": "SGD", "adamw": "AdamW"}


def offline_environment(run_dir: Path) -> Path:
    """Point Ultralytics at RUN/config, forbid network use, and give it the fonts it looks for.

    Must run before the first ``import ultralytics`` to take full effect (settings dir and
    online check are read at import); the fonts are also placed in whatever config dir an
    already-imported Ultralytics uses, so plotting never tries to download Arial.
    """
    config = run_dir.resolve() / "config"
    config.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config))
    os.environ.setdefault("MPLCONFIGDIR", str(config / "matplotlib"))  # font cache of the plots
    os.environ["YOLO_OFFLINE"] = "1"  # is_online() -> False: no hub sync, no downloads attempted
    os.environ["YOLO_AUTOINSTALL"] = "false"  # never pip-install at run time
    # Ultralytics sets OMP_NUM_THREADS=1 at import when unset: CPU training would use one core
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    from ultralytics.utils import LOGGER, USER_CONFIG_DIR

    install_fonts(Path(USER_CONFIG_DIR))
    for handler in LOGGER.handlers:  # its progress goes to stderr: stdout carries results (--json)
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
    return Path(USER_CONFIG_DIR)


def install_fonts(folder: Path) -> None:
    """Ultralytics' plots ask for Arial; DejaVu Sans (shipped by matplotlib) stands in for it."""
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    folder.mkdir(parents=True, exist_ok=True)
    for name in FONTS:
        if not (folder / name).exists():
            shutil.copyfile(source, folder / name)


MISSING_LABELS = ("mask", "naive")


def prepare_data(config: TrainConfig) -> tuple[Path, str]:
    """Ultralytics data.yaml for the run and a hash of the training data (for the model metadata).

    ``naive`` is written into the merged data.yaml (``trivue_missing_labels``): the trainer then
    takes every source's labels as exhaustive (the baseline the partial-label method is measured
    against), while evaluation still reads which classes each source labels.
    Field datasets join a mapping's sources (``training.field``: their test split stays out).
    """
    import yaml

    from training.datasets import SOURCES_KEY, merge
    from training.field import FIELD_MAP, merge_with_field
    from training.partial import METHOD_KEY

    data = read_mapping(config.data, TrainError, "--data file (a mapping YAML or data.yaml)")
    if not data:
        raise TrainError(f"{config.data}: empty, not a mapping YAML or data.yaml")
    if config.field and "sources" not in data:
        raise TrainError(f"--field needs a mapping YAML as --data (like training/mapping.yaml), not the plain "
                         f"data.yaml {config.data}: the field photos join the mapping's sources")
    if "sources" in data:
        if config.field:
            report = merge_with_field(config.data, config.field, config.run_dir / "data",
                                      config.field_map or FIELD_MAP)
        else:
            report = merge(config.data, config.run_dir / "data")
        merged = yaml.safe_load(report.data_yaml.read_text(encoding="utf-8"))
        merged[METHOD_KEY] = config.missing_labels  # the sources' class lists stay: evaluation needs them
        return _written(report.data_yaml, merged), report.data_hash
    if SOURCES_KEY in data and data.get(METHOD_KEY, "mask") != config.missing_labels:
        # A merged data.yaml made elsewhere (a run's data copied to a GPU machine): --missing-labels
        # must still decide, so the run trains on a copy that says so, its folder made absolute.
        root = Path(data.get("path") or ".")
        data["path"] = str(root if root.is_absolute() else (config.data.resolve().parent / root).resolve())
        data[METHOD_KEY] = config.missing_labels
        return _written(config.run_dir / "data.yaml", data), "unhashed"
    return config.data.resolve(), "unhashed"


def _written(path: Path, data: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def stats_images(data_yaml: Path) -> list[Path]:
    """32 training photos spread over the sources (every n-th of the sorted list): what a COCO or
    warm start measures its BatchNorm statistics on. Read from the data.yaml the run trains on,
    merged here or elsewhere, whatever the photos' format."""
    from training.evaluate import EvaluateError, read_split

    try:
        images = sorted({item.image for item in read_split(data_yaml, "train")[0]})
    except EvaluateError as error:
        raise TrainError(f"no training photos to start from: {error}") from None
    return images[:: max(len(images) // 32, 1)]


def initial_weights(config: TrainConfig, data_yaml: Path) -> str:
    """What Ultralytics starts from: a YAML (scratch), the COCO rebuild, a float YOLOv8n ONNX
    export (warm start from a shipped model), or a checkpoint."""
    if config.init == "scratch":
        return f"{config.model}.yaml"
    if config.init not in ("coco", "coco-identity"):
        path = Path(config.init)
        if not path.is_file():
            raise TrainError(f"--init {config.init}: no such checkpoint")
        if path.suffix == ".onnx":
            return str(warm_start(config, path, data_yaml))
        return str(path.resolve())
    if config.model != "yolov8n":
        raise TrainError(f"--init coco holds YOLOv8n weights; use --model yolov8n or --init scratch, "
                         f"not {config.model}")
    if not COCO_WEIGHTS.is_file():
        raise TrainError(f"{COCO_WEIGHTS}: COCO weights absent (use --init scratch)")
    out = config.run_dir / "init" / f"yolov8n-{config.init}.pt"
    if not out.is_file():
        from training.coco_init import build_coco_init

        # coco-identity keeps identity BNs: only there to measure what the real statistics buy
        build_coco_init(COCO_WEIGHTS, out, stats_images(data_yaml), real_stats=config.init == "coco")
    return str(out)


def init_provenance(init: str) -> dict:
    """Name and version of an ONNX warm start (the file at that path may be replaced later), and
    where its own lineage began (``init_origin``: coco, scratch...; the model card's licence note)."""
    if not init.endswith(".onnx") or not Path(init).is_file():
        return {}
    import onnx

    meta = {p.key: p.value for p in onnx.load(init, load_external_data=False).metadata_props}
    try:
        parent = json.loads(meta.get("trivue_train", "{}"))
    except json.JSONDecodeError:
        parent = {}
    parent_init = str(parent.get("init", ""))
    origin = parent.get("init_origin") or (parent_init if parent_init and not parent_init.endswith(".onnx") else None)
    return {"init_model": f"{meta.get('trivue_name', Path(init).stem)} {meta.get('trivue_version', '?')}",
            **({"init_origin": origin} if origin else {})}


def warm_start(config: TrainConfig, onnx: Path, data_yaml: Path) -> Path:
    """A checkpoint rebuilt from a float YOLOv8n export; Ultralytics maps its classes by name."""
    if config.model != "yolov8n":
        raise TrainError(f"--init {onnx}: an ONNX warm start rebuilds YOLOv8n; use --model yolov8n")
    # named by the model's content and the size its BatchNorm statistics are measured at: a run
    # folder trained again after the model in service was replaced (same file name), or at
    # another --imgsz, must not start from the checkpoint built for the other one
    digest = hashlib.sha256(onnx.read_bytes()).hexdigest()[:12]
    out = config.run_dir / "init" / f"{onnx.stem}-{digest}-{config.imgsz}px-warm.pt"
    if not out.is_file():
        from training.coco_init import InitError, build_coco_init

        try:
            build_coco_init(onnx, out, stats_images(data_yaml), imgsz=config.imgsz)
        except (InitError, KeyError) as error:
            raise TrainError(f"--init {onnx}: not a float YOLOv8n export ({error})") from None
    return out


def imgsz_problem(imgsz: int) -> str | None:
    """What is wrong with an image size for a YOLO network, or None (training and export alike)."""
    if imgsz < STRIDE or imgsz % STRIDE:
        return f"--imgsz {imgsz}: a multiple of {STRIDE} from {STRIDE} up (the network's stride), e.g. 320"
    return None


def check_sizes(config: TrainConfig) -> None:
    """The numbers Ultralytics would refuse only after the data is merged and the model built."""
    if problem := imgsz_problem(config.imgsz):
        raise TrainError(problem)
    if config.epochs < 1:
        raise TrainError(f"--epochs {config.epochs}: at least 1")
    if config.batch < 1:
        raise TrainError(f"--batch {config.batch}: at least 1 photo")
    if not 0 < config.fraction <= 1:
        raise TrainError(f"--fraction {config.fraction}: a share of the training photos, above 0 and at most 1")
    if config.hours < 0:
        raise TrainError(f"--hours {config.hours}: cannot be negative (0: no time budget)")
    if config.close_mosaic < 0:
        raise TrainError(f"--close-mosaic {config.close_mosaic}: cannot be negative")
    if config.threads < 0:
        raise TrainError(f"--threads {config.threads}: cannot be negative (0: every core)")


def last_checkpoint(run_dir: Path) -> Path:
    return run_dir / "train" / "weights" / "last.pt"


def check_choices(config: TrainConfig) -> None:
    """The named choices (model, optimizer, labels method) and the schedule's rates, refused before
    anything is written."""
    if config.model not in MODELS:
        raise TrainError(f"--model {config.model}: choose one of {', '.join(MODELS)}")
    if config.lr0 is not None and not 0 < config.lr0 < 1:
        raise TrainError(f"--lr0 {config.lr0}: a learning rate is above 0 and below 1 (e.g. 0.0005)")
    if config.optimizer not in OPTIMIZERS:
        raise TrainError(f"--optimizer {config.optimizer}: choose one of {', '.join(OPTIMIZERS)}")
    if config.optimizer != "auto" and config.lr0 is None:
        raise TrainError(f"--optimizer {config.optimizer} needs --lr0: Ultralytics' default for a named "
                         "optimizer (0.01) is SGD's rate for training from COCO, far above what continuing a "
                         "trained model can take")
    if config.warmup_epochs is not None and config.warmup_epochs < 0:
        raise TrainError(f"--warmup-epochs {config.warmup_epochs}: cannot be negative")
    if config.missing_labels not in MISSING_LABELS:
        raise TrainError(f"--missing-labels {config.missing_labels}: choose one of {', '.join(MISSING_LABELS)}")


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Train (or resume) the run; return the best checkpoint."""
    check_choices(config)
    check_sizes(config)
    if resume and not last_checkpoint(config.run_dir).is_file():  # before the run folder is made
        raise TrainError(f"{config.run_dir}: nothing to resume ({last_checkpoint(config.run_dir)} absent)")
    try:
        # before any data is merged: a wrong device fails at once
        device = resolve_device(config.device or "cpu", config.precision)
    except DeviceError as error:
        raise TrainError(str(error)) from None
    config.run_dir.mkdir(parents=True, exist_ok=True)
    offline_environment(config.run_dir)
    import torch

    torch.set_num_threads(config.threads or os.cpu_count() or 1)  # torch may be imported already
    if resume:
        resume_run(config, device)
    else:
        start_run(config, device)
    return config.run_dir / "train" / "weights" / "best.pt"


def resume_run(config: TrainConfig, device: Device) -> None:
    """Go on from the run's last.pt (checked to exist by ``train``), on ``--device`` when given."""
    from ultralytics import YOLO  # after offline_environment, like every Ultralytics import here

    from training.checkpoints import trim_results
    from training.partial import PartialLabelTrainer

    last = last_checkpoint(config.run_dir)
    # Ultralytics lets a resume change the device: a run begun on a GPU can end on the CPU.
    moved = {"device": device.name} if config.device else {}
    log.info("resuming %s on %s", last, device.name if config.device else "its own device")
    try:
        checkpoint = YOLO(str(last))
    except Exception as error:  # torch's "failed reading zip archive", wrapped in whatever Ultralytics raises
        raise TrainError(f"{last} cannot be read: it was cut short while being written (by a trivue before "
                         f"2026-12-04, which wrote checkpoints in place); start the run again "
                         f"({str(error).splitlines()[0][:160]})") from None
    state = checkpoint.ckpt if isinstance(checkpoint.ckpt, dict) else {}
    # Ultralytics' own test: a finished run's last.pt (optimizer stripped) is no resume to it, and
    # it would start a new 100-epoch run on its default data, downloading coco8.zip (no YOLO_OFFLINE
    # check there) into ./runs and ../datasets
    if state.get("epoch", -1) < 0 or state.get("optimizer") is None:
        raise TrainError(f"{config.run_dir}: nothing to resume, its training finished ({last} holds no "
                         "optimizer state); train again into a new --run to go further")
    trim_results(config.run_dir / "train" / "results.csv", state["epoch"])
    checkpoint.train(resume=True, trainer=PartialLabelTrainer, **moved)


def start_run(config: TrainConfig, device: Device) -> None:
    """Merge the data, record the run (``trivue.json``, what ``--resume`` and ``trivue export`` read)
    and train from the initial weights."""
    from ultralytics import YOLO  # after offline_environment, like every Ultralytics import here

    from training.partial import PartialLabelTrainer

    data_yaml, data_hash = prepare_data(config)
    record = {**config.to_json(), "device": device.name, "data_yaml": str(data_yaml), "data_hash": data_hash,
              **init_provenance(config.init)}
    (config.run_dir / RUN_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    model = YOLO(initial_weights(config, data_yaml), task="detect")
    if config.init.endswith(".onnx"):
        # A warm start's BatchNorms were set on clean photos; the first epoch's augmented batches
        # would move them and cost ~0.1 mAP50 before any learning (training.batchnorm).
        from training.batchnorm import align_to_training_batches

        model.add_callback("on_pretrain_routine_end", align_to_training_batches)
    model.train(trainer=PartialLabelTrainer, **ultralytics_args(config, data_yaml, device))


def ultralytics_args(config: TrainConfig, data_yaml: Path, device: Device | None = None) -> dict:
    device = device or Device("cpu", "fp32")
    args = dict(
        data=str(data_yaml), imgsz=config.imgsz, epochs=config.epochs, batch=config.batch,
        project=str(config.run_dir.resolve()), name="train", exist_ok=True, device=device.name,
        seed=config.seed, cache="ram" if config.cache else False, close_mosaic=config.close_mosaic,
        fraction=config.fraction, patience=config.patience, plots=config.plots, amp=device.amp,
        pretrained=config.init != "scratch", verbose=True,
    )
    if config.hours > 0:
        args["time"] = config.hours
    if config.lr0 is not None:
        # optimizer=auto ignores lr0 (it picks AdamW at 0.002 x 5 / (4 + classes) for short runs,
        # SGD at 0.01 for long ones): a chosen rate needs a named optimizer, AdamW (the one auto
        # picks here) unless told. auto also starts the bias warm-up at 0; a named optimizer would
        # start it at 0.1, a jolt to a trained model's biases.
        args.update(optimizer=OPTIMIZERS[config.optimizer] or "AdamW", lr0=config.lr0, warmup_bias_lr=0.0)
    if config.warmup_epochs is not None:
        args["warmup_epochs"] = config.warmup_epochs
    return args


def read_run(run_dir: Path) -> dict:
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise TrainError(f"{run_dir}: not a trivue training run ({RUN_FILE} absent)")
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TrainError(f"{path}: damaged ({error}); the run's record is written by trivue train") from None
    if not isinstance(run, dict) or not {"data_yaml", "data_hash"} <= set(run):
        raise TrainError(f"{path}: not a trivue run record (no data_yaml and data_hash)")
    return run
