"""What a truck pays to accept a model the server rolled out, off the loop (lifts go on meanwhile).

    .venv/bin/python bench/model_swap.py [--runs 5] [--threads 1]

``edge.model_update.ModelUpdater.prepare`` on a model already downloaded: SHA-256 of the file,
onnxruntime session, metadata, rules of the stream, self-check on the 8 calibration photos. Side
by side, alternating, ``--runs`` times each: an FP32 model (the shipped one under another version)
and the shipped INT8 model with its FP32 reference (the INT8 self-check runs both models). The
download itself depends on the network (12.7 MB FP32, 3.5 MB INT8) and is not timed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from base.paths import MODELS_DIR
from edge.config import load_settings
from edge.model_update import ModelUpdater, RunningModel, file_sha256
from vision.model import Detector
from vision.onnxmeta import parse_model_file, with_metadata
from vision.rules import SortingRules
from vision.schema import ModelInfo, ModelRef, Stream

FP32, INT8 = MODELS_DIR / "trivue-waste.onnx", MODELS_DIR / "trivue-waste-int8.onnx"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads (a 2-core truck: 1 per worker)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="trivue-bench-swap-"))
    try:
        return run(folder, args.runs, args.threads)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(folder: Path, runs: int, threads: int) -> int:
    version = parse_model_file(FP32).version
    derived = with_metadata(FP32.read_bytes(), {"trivue_version": "bench"})
    fp32_sha = file_sha256(FP32)
    (folder / "derived.onnx").write_bytes(derived)
    derived_sha = file_sha256(folder / "derived.onnx")
    (folder / "derived.onnx").rename(folder / f"{derived_sha}.onnx")
    settings = load_settings(None, {"truck_id": "bench", "source": "x", "threads": threads, "workers": 1,
                                    "models": {"dir": str(folder)}}, environ={})
    # The truck runs the FP32 model: the INT8 model's reference is the file it already has.
    running = RunningModel(Detector(FP32, threads=threads), ModelInfo(name="trivue-waste", version=version),
                           fp32_sha, FP32)
    updater = ModelUpdater(settings, SortingRules.load(), lambda: Stream.recyclables,
                           lambda path: Detector(path, threads=threads), running, lambda _m: None, lambda: None)
    (folder / f"{file_sha256(INT8)}.onnx").write_bytes(INT8.read_bytes())
    cases = {"FP32 (derived)": ModelRef(sha256=derived_sha, name="trivue-waste", version="bench"),
             "INT8 + FP32 reference": ModelRef(sha256=file_sha256(INT8), name="trivue-waste", version=version,
                                               reference=fp32_sha)}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, ref in cases.items():
            started = time.perf_counter()
            updater.prepare(ref)
            times[name].append(time.perf_counter() - started)
    print(f"prepare (hash, load, rules, self-check on 8 photos), {threads} thread(s), {runs} runs each:")
    for name, values in times.items():
        print(f"  {name:24s} median {statistics.median(values):.2f} s  (min {min(values):.2f}, max {max(values):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
