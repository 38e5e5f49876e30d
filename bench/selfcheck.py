"""What the INT8 self-check costs the truck at start-up, and how far the models disagree.

    .venv/bin/python bench/selfcheck.py [--model models/trivue-waste-int8.onnx] [--runs 5]

Side by side, alternating, ``--runs`` times each: ``trivue edge`` (in a subprocess, on one burst of
real photos, the shipped defaults) from process start to its log line "first frame analysed", with
``selfcheck.enabled`` true and false. Also the check's own time as the agent logs it, and the
disagreement of the model with its FP32 sibling on the shipped calibration photos.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from base.paths import MODELS_DIR, REPO_ROOT, SHARED_DIR
from vision.selfcheck import calibration_photos

PHOTOS = SHARED_DIR / "datasets" / "hopper-bags" / "images" / "val"


def start_up(work: Path, model: Path, enabled: bool, run: int) -> tuple[float, str]:
    """Seconds from process start to the first analysed frame, and the self-check's log line."""
    root = work / f"run-{run}-{enabled}"
    (root / "bursts" / "burst-000").mkdir(parents=True)
    for photo in sorted(PHOTOS.glob("*.jpg"))[:3]:
        shutil.copy(photo, root / "bursts" / "burst-000" / photo.name)
    env = {**os.environ, "TRIVUE_EDGE_SELFCHECK__ENABLED": str(enabled).lower(),
           "TRIVUE_EDGE_EVIDENCE__DIR": str(root / "evidence")}
    command = [sys.executable, "-m", "trivue", "edge", "--source", str(root / "bursts"), "--truck-id", "bench",
               "--model", str(model), "--broker", "mqtt://127.0.0.1:1", "--outbox", str(root / "outbox.sqlite3"),
               "--gps", "fixed:48.85,2.35"]
    started = time.perf_counter()
    child = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
                             cwd=REPO_ROOT)
    check_line, seconds = "", None
    try:
        assert child.stderr is not None
        for line in child.stderr:
            if "self-check" in line:
                check_line = line.strip()
            if "first frame analysed" in line:
                seconds = time.perf_counter() - started
                break
    finally:
        child.kill()
        child.wait()
    if seconds is None:
        sys.exit(f"trivue edge ended before its first frame (check {command})")
    return seconds, check_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODELS_DIR / "trivue-waste-int8.onnx")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not PHOTOS.is_dir():
        sys.exit(f"{PHOTOS} is absent: the bench needs the shared photos")
    times: dict[bool, list[float]] = {True: [], False: []}
    lines = []
    with tempfile.TemporaryDirectory() as work:
        for run in range(args.runs + 1):  # run 0 warms the disk cache, untimed
            for enabled in ((True, False) if run % 2 else (False, True)):
                seconds, line = start_up(Path(work), args.model, enabled, run)
                if run:
                    times[enabled].append(seconds)
                    if line:
                        lines.append(line)
    with_check, without = statistics.median(times[True]), statistics.median(times[False])
    print(f"{args.model.name}: {len(calibration_photos())} calibration photos, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"trivue edge start-up to the first analysed frame, median of {args.runs}: "
          f"{with_check:.2f} s with the self-check, {without:.2f} s without: +{with_check - without:.2f} s")
    print(f"runs with: {[round(t, 2) for t in times[True]]}; without: {[round(t, 2) for t in times[False]]}")
    if lines:
        print("agent log:", lines[-1].split("edge.app: ", 1)[-1])


if __name__ == "__main__":
    main()
