"""What the COCO initialisation buys: the same short training from COCO (measured BN statistics),
COCO with identity BNs, and random weights, side by side.

    .venv/bin/python bench/train_init.py [--epochs 3] [--fraction 0.3] [--imgsz 320] [--out runs/init-bench]

Each variant is a real `trivue train` run (same data, seed, budget) in OUT/<init>; the table shows
val mAP50 after every epoch (Ultralytics' results.csv). Long: minutes per variant on 2 cores.
Ultralytics' `fraction` keeps the first images of train.txt (hopper-bags sorts first): a small
fraction trains on bags only, while val holds every class; the comparison stays like for like.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

INITS = ("coco", "coco-identity", "scratch")


def run(init: str, args: argparse.Namespace) -> dict:
    out = args.out / init
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trivue", "train", "--run", str(out), "--init", init,
                    "--epochs", str(args.epochs), "--imgsz", str(args.imgsz), "--fraction", str(args.fraction),
                    "--close-mosaic", "0", "--no-plots"], check=True, stdout=subprocess.DEVNULL)
    with open(out / "train" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {"init": init, "minutes": round((time.perf_counter() - start) / 60, 1),
            "first_cls_loss": round(float(rows[0]["train/cls_loss"]), 2),
            "map50_per_epoch": [round(float(r["metrics/mAP50(B)"]), 3) for r in rows]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--fraction", type=float, default=0.3)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--out", type=Path, default=Path("runs/init-bench"))
    parser.add_argument("--inits", nargs="+", default=list(INITS), choices=INITS)
    args = parser.parse_args()
    for init in args.inits:
        print(json.dumps(run(init, args)), flush=True)


if __name__ == "__main__":
    main()
