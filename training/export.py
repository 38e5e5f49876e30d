"""Export a training run to the ONNX the trucks run, measured and labelled.

The FP32 export carries Ultralytics' metadata (names, imgsz, stride, task) plus Trivue's:
name, version, training-data hash, validation metrics and date. The optional INT8 model is
static, per-channel and Conv-only, after ``quant_pre_process`` (dynamic and all-operator
quantisation were measured slower or less accurate on the trucks' CPUs); it is written only
when its val mAP50 stays within ``max_drop`` of the FP32 model.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from base.paths import images_in
from training.datasets import SEPARATOR, MergeReport
from training.train import TrainError, imgsz_problem, offline_environment, read_run

log = logging.getLogger(__name__)

CALIBRATION_IMAGES = 100
STEM_MODULES = 3  # backbone modules kept in float by INT8 export (stem_convs)


class ExportError(RuntimeError):
    """An export that cannot be made or would ship a worse model; the message says why."""


def export(run_dir: Path, imgsz: int | None = None, out: Path | None = None, name: str = "trivue-waste",
           version: str | None = None, calib_dir: Path | None = None, max_drop: float = 0.02) -> dict:
    """Write ``out`` (and ``<out>-int8.onnx`` when asked and good enough); return what was measured.
    ``imgsz`` None: the size the run trained at, which its card states (320 for a run that says none)."""
    if imgsz is not None and (problem := imgsz_problem(imgsz)):
        raise ExportError(problem)
    try:
        run = read_run(run_dir)
    except TrainError as error:
        raise ExportError(str(error)) from None
    trained = run["imgsz"] if isinstance(run.get("imgsz"), int) else None
    if imgsz is None:
        imgsz = trained or 320
    elif trained and imgsz != trained:  # allowed (a camera may suit another size); the card states the trained one
        log.warning("%s: trained at %d px, exported at --imgsz %d: its metrics are measured at %d px",
                    run_dir, trained, imgsz, imgsz)
    check_int8_arguments(calib_dir, max_drop)
    best = run_dir / "train" / "weights" / "best.pt"
    if not best.is_file():
        raise ExportError(f"{best}: no trained weights (is the run finished?)")
    out = out or run_dir / "export" / f"{name}.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    version = version or datetime.now(UTC).strftime("%Y.%m.%d")
    try:
        raw = ultralytics_onnx(run_dir, best, imgsz)
    except Exception as error:  # torch's unpickling errors, wrapped in whatever Ultralytics raises
        raise ExportError(f"{best}: cannot be read as a checkpoint ({str(error).splitlines()[0][:160]})") from None
    shutil.copyfile(raw, out)
    fp32 = measure(out, Path(run["data_yaml"]), plot=out.with_name(f"{out.stem}-pr.png"))
    meta = {"trivue_name": name, "trivue_version": version, "trivue_data_hash": run["data_hash"],
            # Ultralytics' own description names the run's absolute data.yaml path on the
            # training machine: meaningless (and revealing) wherever the model is shipped.
            "description": f"Trivue {name} {version}: YOLO detector of household-waste sorting errors",
            "trivue_date": datetime.now(UTC).isoformat(timespec="seconds"),
            "trivue_metrics": json.dumps(headline(fp32)), "trivue_train": json.dumps(train_summary(run))}
    add_metadata(out, meta)
    result = {"onnx": str(out), "bytes": out.stat().st_size, "version": version, "fp32": headline(fp32)}
    if calib_dir is not None:
        result["int8"] = export_int8(out, calib_dir, Path(run["data_yaml"]), fp32, max_drop, meta)
    (out.with_suffix(".json")).write_text(json.dumps({**result, "fp32_report": fp32}, indent=2), encoding="utf-8")
    write_card(out.with_suffix(".md"), name, version, run | progress(run_dir), fp32, result.get("int8"))
    result["card"] = str(out.with_suffix(".md"))
    return result


def requantise(model: Path, data: Path, calib_dir: Path | None = None, max_drop: float = 0.02,
               field: Sequence[Path] = (), field_map: Path | None = None) -> dict:
    """The INT8 model, metrics and card of an FP32 model ``trivue export`` wrote, without its run.

    Training runs are never committed, so when the INT8 recipe changes (``quantise``) the shipped
    or candidate FP32 model is all there is. Its own metadata says what it is (name, version,
    training summary, data hash); val is merged again from ``data`` (and the ``field`` exports the
    model was trained with, which its metadata names) and every figure is measured again here.
    ``calib_dir`` defaults to the merged training images.
    """
    from training.datasets import DatasetError, merge
    from training.field import FIELD_MAP, merge_with_field
    from vision.onnxmeta import OnnxMetaError, read_metadata

    check_int8_arguments(calib_dir, max_drop)
    try:
        meta = read_metadata(model.read_bytes())
    except (OSError, OnnxMetaError) as error:
        raise ExportError(f"--from-onnx {model}: {error}") from None
    missing = [k for k in ("trivue_name", "trivue_version", "trivue_data_hash", "trivue_train") if k not in meta]
    if missing:
        raise ExportError(f"--from-onnx {model}: no {', '.join(missing)} metadata (not written by trivue export)")
    recorded = json.loads(meta["trivue_train"]).get("field")  # None: exported before field sources were recorded
    check_field_given(model, recorded, field)  # before the merge, which takes minutes
    with tempfile.TemporaryDirectory(prefix="trivue-requantise-") as workdir:
        try:
            merged = (merge_with_field(data, field, Path(workdir) / "data", field_map or FIELD_MAP) if field
                      else merge(data, Path(workdir) / "data"))
        except DatasetError as error:
            raise ExportError(str(error)) from None
        check_field_merged(model, recorded, field_record(merged.data_yaml))
        return _requantise(model, meta, data, merged, calib_dir, max_drop)


def field_record(data_yaml: Path) -> dict[str, dict] | None:
    """The field exports a merge took in (report.json's ``field``: name, period, export time), or None
    for data not merged by Trivue. Folders are left out: the model's metadata travels with it."""
    report = data_yaml.with_name("report.json")
    if not report.is_file():
        return None
    field = json.loads(report.read_text(encoding="utf-8")).get("field") or {}
    return {name: {k: p.get(k) for k in ("period", "exported_at")} for name, p in field.items()}


def field_hint(recorded: dict[str, dict]) -> str:
    return ", ".join(f"{name} (exported {p.get('exported_at') or '?'}, period {p.get('period') or '?'})"
                     for name, p in recorded.items())


def check_field_given(model: Path, recorded: dict[str, dict] | None, field: Sequence[Path]) -> None:
    """A model trained with field exports is measured and carded with them, or refused: merged
    without them its card would lose their validation photos and their source rows."""
    if recorded and not field:
        raise ExportError(f"--from-onnx {model}: trained with the field export(s) {field_hint(recorded)}: pass "
                          "each folder with --field DIR (and --field-map FILE if the run had its own), as to "
                          "trivue train")
    if recorded == {} and field:
        raise ExportError(f"--from-onnx {model}: trained without field exports: drop --field")


def check_field_merged(model: Path, recorded: dict[str, dict] | None, merged: dict[str, dict] | None) -> None:
    if recorded is None or not merged:
        return
    if set(recorded) != set(merged) or any(recorded[n].get("period") != merged[n].get("period") for n in merged):
        raise ExportError(f"--from-onnx {model}: trained with the field export(s) {field_hint(recorded)}, given "
                          f"{field_hint(merged)}: pass the same folders with --field")


def _requantise(model: Path, meta: dict[str, str], data: Path, merged: MergeReport, calib_dir: Path | None,
                max_drop: float) -> dict:
    if merged.data_hash != meta["trivue_data_hash"]:
        # Measuring on today's val is still right; the card keeps the hash of the data it was trained on.
        log.warning("%s was trained on data %s, the merge of %s is now %s", model, meta["trivue_data_hash"],
                    data, merged.data_hash)
    name, version = meta["trivue_name"], meta["trivue_version"]
    fp32 = measure(model, merged.data_yaml, plot=model.with_name(f"{model.stem}-pr.png"))
    metrics = {"trivue_metrics": json.dumps(headline(fp32))}
    add_metadata(model, metrics)
    keep = {k: v for k, v in meta.items() if k.startswith("trivue_") or k == "description"} | metrics
    calibration = calib_dir or merged.data_yaml.parent / "images" / "train"
    result = {"onnx": str(model), "version": version, "fp32": headline(fp32),
              "int8": export_int8(model, calibration, merged.data_yaml, fp32, max_drop, keep)}
    run = json.loads(meta["trivue_train"]) | {"data": str(data), "data_yaml": str(merged.data_yaml),
                                               "data_hash": meta["trivue_data_hash"]}
    write_card(model.with_suffix(".md"), name, version, run, fp32, result["int8"])
    result["card"] = str(model.with_suffix(".md"))
    return result


def write_card(path: Path, name: str, version: str, run: dict, report: dict, int8: dict | None) -> None:
    from training.card import render
    from training.datasets import DatasetError

    merged = Path(run.get("data_yaml", "")).with_name("report.json")
    merge_report = json.loads(merged.read_text(encoding="utf-8")) if merged.is_file() else None
    try:
        text = render(name, version, Path(run["data"]), run, report, int8, plot=f"{path.stem}-pr.png",
                      merge_report=merge_report)
    except DatasetError:  # trained from a plain data.yaml: no sources to credit automatically
        log.warning("%s: run data %s is not a mapping file; card written without sources", path, run["data"])
        text = render(name, version, None, run, report, int8, plot=f"{path.stem}-pr.png")
    path.write_text(text, encoding="utf-8")


def check_int8_arguments(calib_dir: Path | None, max_drop: float) -> None:
    """Before the long FP32 export and its evaluation: what the INT8 step would refuse at the end."""
    if not 0 <= max_drop <= 1:
        raise ExportError(f"--max-drop {max_drop}: a loss of mAP50, from 0 to 1 (e.g. 0.02; 1 keeps any INT8)")
    if calib_dir is not None:
        calibration_images(calib_dir)


def ultralytics_onnx(run_dir: Path, weights: Path, imgsz: int) -> Path:
    offline_environment(run_dir)
    from ultralytics import YOLO

    path = YOLO(str(weights)).export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False, device="cpu")
    return Path(path)


def measure(model: Path, data_yaml: Path, plot: Path | None = None) -> dict:
    from training.evaluate import evaluate

    return evaluate(data_yaml, model, plot=plot) | {"machine": machine()}


def machine() -> str:
    """The machine measuring speed, for the card: its usable cores and CPU model."""
    import os
    import platform

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
                break
    return f"a {cores}-core {model} ({platform.machine()})"


def headline(report: dict) -> dict:
    return {"map50": report["map50"], "map50_95": report["map50_95"],
            "ap50": {k: v["ap50"] for k, v in report["per_class"].items()},
            "ms_per_image": report["ms_per_image"]}


def train_summary(run: dict) -> dict:
    """What the model's metadata keeps of its run: the card's facts, once the run folder is gone."""
    keys = ("model", "init", "init_model", "init_origin", "imgsz", "epochs", "hours", "batch", "seed",
            "missing_labels", "device")
    field = field_record(Path(run["data_yaml"]))
    return ({k: run[k] for k in keys if k in run} | progress(Path(run["run_dir"]))
            | ({"field": field} if field is not None else {}))


def progress(run_dir: Path) -> dict:
    """Epochs done and training wall time, from Ultralytics' results.csv (time mode re-plans epochs)."""
    import csv

    results = run_dir / "train" / "results.csv"
    if not results.is_file():
        return {}
    with results.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    # "time" is the seconds since the process began training: a --resume starts it again at 0,
    # so the training time is the sum of each stretch's last value
    seconds, previous = 0.0, 0.0
    for row in rows:
        time = float(row["time"])
        if time < previous:
            seconds += previous
        previous = time
    return {"epochs_done": len(rows), "train_minutes": round((seconds + previous) / 60, 1)}


def add_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    existing = {p.key: p for p in model.metadata_props}
    for key, value in meta.items():
        prop = existing.get(key) or model.metadata_props.add()
        prop.key, prop.value = key, str(value)
    onnx.save(model, str(path))


def calibration_images(calib_dir: Path) -> list[Path]:
    """Up to CALIBRATION_IMAGES photos, the same number from each source (merged names
    ``<source>__<name>``): activation ranges then cover glass on a tiled floor as well as dark
    hoppers, instead of whichever source has most files."""
    if not calib_dir.is_dir():
        raise ExportError(f"--int8 {calib_dir}: not a folder of images")
    images = images_in(calib_dir, recursive=True)
    if not images:
        raise ExportError(f"--int8 {calib_dir}: no images to calibrate on")
    by_source: dict[str, list[Path]] = {}
    for image in images:
        by_source.setdefault(image.name.split(SEPARATOR, 1)[0] if SEPARATOR in image.name else "", []).append(image)
    share = max(CALIBRATION_IMAGES // len(by_source), 1)
    picked = []
    for group in by_source.values():
        step = max(len(group) // share, 1)
        picked += group[::step][:share]
    return picked


def head_outputs(model_path: Path) -> list[str]:
    """Convs that write the detection outputs (box/class logits, DFL): they stay in float.

    Their outputs are decoded into coordinates and scores directly; 8-bit activations there cost
    box precision and confidence ranking out of proportion to the time they take.
    """
    import onnx

    graph = onnx.load(str(model_path)).graph
    head = [n.name for n in graph.node if n.op_type == "Conv" and "/model." in n.name]
    last_module = max(int(name.split("/model.")[1].split("/")[0]) for name in head)
    prefix = f"/model.{last_module}/"
    return [n for n in head if n.startswith(prefix) and (n.endswith(".2/Conv") or "/dfl/" in n)]


def stem_convs(model_path: Path, modules: int = STEM_MODULES) -> list[str]:
    """Convs of the first ``modules`` backbone modules (``/model.0/`` .. ``/model.{modules-1}/``).

    They see the photo at full and half resolution, where an 8-bit activation range set by a few
    bright glints (glass, foil, wet film) flattens the low-contrast edges every later layer builds
    on. Kept in float on 2026.12.03 (same calibration, same val): whole model quantised 0.031 mAP50
    below FP32; first 2 modules float 0.022; first 3 0.011; first 4 0.014 (0.013 with 300
    calibration photos). Entropy, min-max and symmetric QDQ calibration did no better (0.024-0.031).
    """
    import onnx

    graph = onnx.load(str(model_path)).graph
    prefixes = tuple(f"/model.{i}/" for i in range(modules))
    return [n.name for n in graph.node if n.op_type == "Conv" and n.name.startswith(prefixes)]


def quantise(fp32: Path, out: Path, images: list[Path]) -> None:
    import cv2
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from vision.model import Detector

    detector = Detector(fp32)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._blobs = iter(detector.preprocess(cv2.imread(str(p)))[0] for p in images)

        def get_next(self) -> dict | None:
            blob = next(self._blobs, None)
            return None if blob is None else {detector.session.get_inputs()[0].name: blob}

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre))
        # the histogram calibrators print progress: keep stdout for the command's JSON
        with contextlib.redirect_stdout(sys.stderr):
            quantize_static(str(pre), str(out), Reader(), per_channel=True, op_types_to_quantize=["Conv"],
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            # 7-bit weights: u8 x s8 products summed in pairs saturate int16 on
                            # CPUs whose kernels use VPMADDUBSW, and which kernel runs depends on the
                            # CPU and on graph optimisation (2026.11.25 INT8: 0.818 mAP50 without,
                            # 0.746 with ORT's default optimisation on the CI CPU). reduce_range
                            # keeps every sum in range, measured 0.824 vs 0.796 on the same val.
                            reduce_range=True,
                            nodes_to_exclude=head_outputs(fp32) + stem_convs(fp32),
                            # min/max ranges are set by rare outliers; percentile ranges cost half
                            # the mAP50 (trivue-waste 2026.11.25: drop 0.011 vs 0.021)
                            calibrate_method=CalibrationMethod.Percentile)


def side_by_side_ms(fp32: Path, int8: Path, images: list[Path], rounds: int = 3) -> tuple[float, float]:
    """Median ms per image of each model, alternating rounds so machine load hits both alike."""
    import statistics
    import time

    import cv2

    from vision.model import Detector

    frames = [cv2.imread(str(p)) for p in images]
    detectors = [Detector(fp32), Detector(int8)]
    times: list[list[float]] = [[], []]
    for detector in detectors:
        detector.warm_up()
    for _ in range(rounds):
        for detector, spent in zip(detectors, times, strict=True):
            start = time.perf_counter()
            for frame in frames:
                detector.detect(frame)
            spent.append(1000 * (time.perf_counter() - start) / len(frames))
    return statistics.median(times[0]), statistics.median(times[1])


def export_int8(fp32: Path, calib_dir: Path, data_yaml: Path, fp32_report: dict, max_drop: float,
                meta: dict[str, str]) -> dict:
    """Quantise, measure against FP32 on val, keep only within the accuracy gate."""
    out = fp32.with_name(f"{fp32.stem}-int8.onnx")
    candidate = fp32.with_name(f"{fp32.stem}-int8.candidate.onnx")
    quantise(fp32, candidate, calibration_images(calib_dir))
    add_metadata(candidate, meta)
    int8 = measure(candidate, data_yaml)
    drop = fp32_report["map50"] - int8["map50"]
    fp32_ms, int8_ms = side_by_side_ms(fp32, candidate, calibration_images(calib_dir)[:40])
    summary = {"map50": int8["map50"], "map50_drop": round(drop, 4), "speedup": round(fp32_ms / int8_ms, 2),
               "ms_per_image": round(int8_ms, 2), "fp32_ms_per_image": round(fp32_ms, 2),
               "bytes": candidate.stat().st_size}
    if drop > max_drop:
        candidate.unlink()
        log.warning("INT8 refused: mAP50 drops by %.3f (> %.3f allowed)", drop, max_drop)
        return {**summary, "written": False, "reason": f"mAP50 drop {drop:.3f} > {max_drop}"}
    candidate.replace(out)
    add_metadata(out, {"trivue_metrics": json.dumps(headline(int8))})
    return {**summary, "written": True, "onnx": str(out)}
