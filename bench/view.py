"""The camera-view measures (``vision.view``) on real photos and spoilt copies, and their cost per frame.

    .venv/bin/python bench/view.py [--per-set 150] [--seed 1]

``--per-set`` photos drawn from each of ../shared/datasets hopper-bags, litter-items and glass-ewaste,
then for each photo: itself, grey (an infrared camera: three equal channels, and one channel), grey at
35 % of its light (a dim infrared light), at 8 % of its light (hopper lights out), washed out
(x0.3 + 200), blurred by a Gaussian of 1/40 and 1/20 of its side, under a bag (blurred + grey veil),
the same frame re-encoded (JPEG q80: a frozen stream re-encoding its frame) and with sensor noise
(sigma 2: a static scene). Prints min / p1 / p50 / p99 / max of each measure and the verdicts under
the default thresholds (``ViewLimits``), then ms per frame at three sizes (best of 5 rounds of 500).
The defaults of ``edge.view_settings`` and the table of docs/edge.md come from this output.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np

from base.paths import SHARED_DIR
from vision.view import FrameView, ViewLimits, measure, small_grey

SETS = ("hopper-bags", "litter-items", "glass-ewaste")


def grey3(image: np.ndarray, light: float = 1.0) -> np.ndarray:
    return cv2.cvtColor((cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) * light).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def blur(image: np.ndarray, fraction: int) -> np.ndarray:
    side = max(image.shape[:2]) // fraction | 1
    return cv2.GaussianBlur(image, (side, side), 0)


def bag(image: np.ndarray) -> np.ndarray:
    veil = cv2.GaussianBlur(image, (0, 0), max(image.shape[:2]) / 8)
    return cv2.addWeighted(veil, 0.3, np.full_like(image, 150), 0.7, 0)


def reencoded(image: np.ndarray) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], cv2.IMREAD_COLOR)


def noisy(image: np.ndarray) -> np.ndarray:
    noise = np.random.default_rng(0).normal(0, 2, image.shape).round().astype(np.int16)
    return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)


# name -> (the frame, the frame before it or None)
VARIANTS: dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]] = {
    "real": lambda im: (im, None),
    "grey (IR), 3 channels": lambda im: (grey3(im), None),
    "grey (IR), 1 channel": lambda im: (cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), None),
    "grey at 35 % light": lambda im: (grey3(im, 0.35), None),
    "8 % light (dark)": lambda im: ((im * 0.08).astype(np.uint8), None),
    "washed out": lambda im: (cv2.convertScaleAbs(im, alpha=0.3, beta=200), None),
    "blur 1/40": lambda im: (blur(im, 40), None),
    "blur 1/20": lambda im: (blur(im, 20), None),
    "bag on the lens": lambda im: (bag(im), None),
    "same frame re-encoded": lambda im: (reencoded(im), im),
    "sensor noise only": lambda im: (noisy(im), im),
}


def view_of(frame: np.ndarray, before: np.ndarray | None) -> FrameView:
    return measure(small_grey(frame), small_grey(before) if before is not None else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-set", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    paths: list[Path] = []
    for name in SETS:
        found = sorted((SHARED_DIR / "datasets" / name / "images").glob("*/*.jpg"))
        rng.shuffle(found)
        paths += found[:args.per_set]
    limits = ViewLimits()
    views: dict[str, list[FrameView]] = {name: [] for name in VARIANTS}
    for path in paths:
        image = cv2.imread(str(path))
        if image is None:
            continue
        for name, make in VARIANTS.items():
            views[name].append(view_of(*make(image)))
    print(f"{len(paths)} photos; defaults {limits}")
    for name, found in views.items():
        verdicts = Counter(str(v.problem(limits) or "usable") for v in found)
        print(f"{name}: {dict(verdicts)}")
        for measure_name in ("brightness", "contrast", "sharpness", "change"):
            values = np.array([getattr(v, measure_name) for v in found if getattr(v, measure_name) is not None])
            if values.size:
                p1, p50, p99 = np.percentile(values, [1, 50, 99])
                print(f"  {measure_name:10s} min {values.min():7.2f}  p1 {p1:7.2f}  p50 {p50:7.2f}  p99 {p99:7.2f}  "
                      f"max {values.max():7.2f}")
    image = cv2.imread(str(paths[0]))
    for size in ((640, 480), (1280, 720), (1920, 1080)):
        frame = cv2.resize(image, size)
        before = small_grey(frame)
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(500):
                measure(small_grey(frame), before)
            best = min(best, (time.perf_counter() - started) / 500 * 1000)
        print(f"{size[0]} x {size[1]}: {best:.3f} ms per frame (best of 5 rounds of 500)")


if __name__ == "__main__":
    main()
