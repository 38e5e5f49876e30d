"""What keeping photos for labelling costs the truck's lift recorder, per frame.

    .venv/bin/python bench/recorder.py [--frames 40] [--lifts 5] [--rounds 5]

Same real frames (the shared hopper-bags val photos at 1280x960, as a truck camera gives them) and
the same scripted detections (three tracked items, nothing wrong in the yellow bin) for every
contender, alternating, ``--rounds`` times; each figure is the median ms per ``LiftRecorder.add``:

- ``no photo policy``: a clean lift never keeps a photo (what the recorder did before wire 1.1);
- ``shipped policy, not drawn``: the default ``evidence`` settings (2 % sample, band [0.25, 0.5)) on
  a lift that was not drawn and has no unsure item: 98 % of clean lifts;
- ``shipped policy, sampled``: a lift drawn for the sample: its best frame is sought (sharpness of
  every frame that ties the best, and a copy when it wins);
- ``contaminated lift``: one wrong item in every frame (the evidence search as it always was).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np

from base.paths import SHARED_DIR
from vision.detection import Detections
from vision.lift import LiftContext, LiftRecorder, PhotoPolicy
from vision.rules import SortingRules
from vision.schema import ModelInfo, Stream

PHOTOS = SHARED_DIR / "datasets" / "hopper-bags" / "images" / "val"
NAMES = ("bottle", "glass", "battery", "bag")


def detections(wrong: bool) -> Detections:
    rows = [(10 + 50 * k, 10, 40 + 50 * k, 40, 0.8, 0) for k in range(3)]
    if wrong:
        rows.append((300, 300, 380, 380, 0.7, 3))
    return Detections.from_rows(rows).with_tracker_ids(np.arange(len(rows)))


def per_frame_ms(frames: list[np.ndarray], policy: PhotoPolicy | None, wrong: bool, lifts: int) -> float:
    recorder = LiftRecorder(NAMES, SortingRules.load(), ModelInfo(name="bench", version="1"), 2, policy)
    dets = detections(wrong)
    start = time.perf_counter()
    for lift in range(lifts):
        recorder.begin(datetime.now(UTC), Stream.recyclables)
        for frame in frames:
            recorder.add(frame, dets)
        recorder.finish(datetime.now(UTC), LiftContext("bench", lift))
    return (time.perf_counter() - start) * 1000 / (lifts * len(frames))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--lifts", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    paths = sorted(PHOTOS.glob("*.jpg"))[: args.frames]
    if not paths:
        raise SystemExit(f"no photos under {PHOTOS}")
    frames = [cv2.resize(cv2.imread(str(p)), (1280, 960)) for p in paths]
    shipped = {"sample_rate": 0.02, "uncertain": (0.25, 0.5)}
    contenders = {
        "no photo policy (clean lift)": (None, False),
        "shipped policy, clean lift not drawn": (PhotoPolicy(**shipped, draw=lambda: 0.5), False),
        "shipped policy, clean lift sampled": (PhotoPolicy(**shipped, draw=lambda: 0.0), False),
        "contaminated lift": (PhotoPolicy(**shipped, draw=lambda: 0.5), True),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    per_frame_ms(frames, None, True, 1)  # warm-up
    for _ in range(args.rounds):
        for name, (policy, wrong) in contenders.items():
            times[name].append(per_frame_ms(frames, policy, wrong, args.lifts))
    base = statistics.median(times["no photo policy (clean lift)"])
    print(f"LiftRecorder.add, {len(frames)} frames 1280x960 x {args.lifts} lifts, median of {args.rounds} rounds")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:40s} {median:7.3f} ms/frame  ({median - base:+.3f} ms vs no policy)")


if __name__ == "__main__":
    main()
