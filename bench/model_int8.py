"""FP32 vs INT8 ONNX through the truck's detector: per-frame time side by side, same frames.

    .venv/bin/python bench/model_int8.py [--fp32 models/trivue-waste.onnx]
        [--int8 models/trivue-waste-int8.onnx] [--frames 40] [--repeat 3] [--threads 1 2]

Accuracy of both lives in each model's metadata (``trivue_metrics``) and in ``trivue evaluate``;
this script measures speed only, alternating the models so machine load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from base.paths import MODELS_DIR
from bench.detector import load_frames  # the same real frames as the detector bench
from vision.model import Detector


def frame_ms(detector: Detector, frames: list[np.ndarray]) -> float:
    start = time.perf_counter()
    for frame in frames:
        detector.detect(frame)
    return 1000 * (time.perf_counter() - start) / len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fp32", type=Path, default=MODELS_DIR / "trivue-waste.onnx")
    parser.add_argument("--int8", type=Path, default=MODELS_DIR / "trivue-waste-int8.onnx")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    frames = load_frames(args.frames)
    for threads in args.threads:
        models = {"fp32": Detector(args.fp32, threads=threads), "int8": Detector(args.int8, threads=threads)}
        for detector in models.values():
            detector.warm_up()
        times: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(args.repeat):
            for name, detector in models.items():
                times[name].append(frame_ms(detector, frames))
        median = {name: statistics.median(values) for name, values in times.items()}
        print(json.dumps({"threads": threads, "frames": len(frames), "imgsz": models["fp32"].meta.imgsz,
                          "fp32_ms": round(median["fp32"], 2), "int8_ms": round(median["int8"], 2),
                          "int8_speedup": round(median["fp32"] / median["int8"], 2)}))


if __name__ == "__main__":
    main()
