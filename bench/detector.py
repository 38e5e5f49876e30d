"""Per-frame time of our detector vs raw ``session.run`` vs Ultralytics' predict, same model and frames.

    .venv/bin/python bench/detector.py [--model M.onnx] [--frames 40] [--repeat 3] [--threads 2]

Prints medians (ms per frame) and ratios measured side by side in one run. Our pre/post-processing
overhead is ours - raw; the goal is under 10% of raw inference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np

from base.paths import SHARED_DIR
from vision.model import Detector, default_model_path


def load_frames(count: int) -> list[np.ndarray]:
    folders = [SHARED_DIR / "datasets" / d / "images" / "val" for d in ("hopper-bags", "litter-items")]
    paths = sorted(p for folder in folders for p in folder.glob("*.jpg"))
    if not paths:
        sys.exit(f"no frames: {SHARED_DIR} is absent")
    step = max(1, len(paths) // count)
    return [cv2.imread(str(p)) for p in paths[::step][:count]]


def per_frame_ms(run: Callable[[int], object], frames: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        for i in range(frames):
            start = time.perf_counter()
            run(i)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = all cores)")
    parser.add_argument("--no-ultralytics", action="store_true", help="skip the Ultralytics comparison")
    args = parser.parse_args()

    frames = load_frames(args.frames)
    detector = Detector(args.model, threads=args.threads)
    detector.warm_up()
    prepared = [detector.preprocess(f) for f in frames]
    outputs = [detector.infer(blob) for blob, _, _ in prepared]
    n, r = len(frames), args.repeat

    results = {
        "raw session.run": per_frame_ms(lambda i: detector.infer(prepared[i][0]), n, r),
        "ours: preprocess": per_frame_ms(lambda i: detector.preprocess(frames[i]), n, r),
        "ours: postprocess": per_frame_ms(
            lambda i: detector.postprocess(outputs[i], prepared[i][1], prepared[i][2], frames[i].shape[:2]), n, r),
        "ours: detect()": per_frame_ms(lambda i: detector.detect(frames[i]), n, r),
    }
    if not args.no_ultralytics:
        os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="ultralytics-"))
        os.environ.setdefault("YOLO_OFFLINE", "1")
        from ultralytics import YOLO

        model = YOLO(str(args.model), task="detect")
        imgsz = detector.meta.imgsz
        model.predict(frames[0], imgsz=imgsz, verbose=False)
        results["ultralytics predict"] = per_frame_ms(
            lambda i: model.predict(frames[i], conf=detector.conf, iou=detector.iou, imgsz=imgsz, verbose=False), n, r)

    raw = results["raw session.run"]
    print(f"model {args.model} ({detector.meta.imgsz[0]} px), {n} real frames x {r}, "
          f"threads={args.threads or 'all'}, {os.cpu_count()} CPUs")
    print(f"{'':24s} {'ms/frame':>9s} {'x raw':>7s}")
    for name, ms in results.items():
        print(f"{name:24s} {ms:9.2f} {ms / raw:7.2f}")
    overhead = results["ours: detect()"] - raw
    print(f"our pre+post overhead: {overhead:.2f} ms = {overhead / raw:.1%} of raw inference (goal < 10%)")
    if "ultralytics predict" in results:
        speedup = results["ultralytics predict"] / results["ours: detect()"]
        print(f"ours vs ultralytics predict: {speedup:.2f}x faster")


if __name__ == "__main__":
    main()
