"""Where a CPU training step spends its time: data loading + augmentation vs forward/backward.

    .venv/bin/python bench/train_step.py RUN [--batches 15] [--imgsz 320] [--batch 16]

RUN is a `trivue train` run directory (its merged data and COCO init are reused). On CPU
Ultralytics loads batches in the main thread (workers=0), so the two add up per step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.train import offline_environment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    args = parser.parse_args()
    init = args.run / "init" / "yolov8n-coco.pt"
    for needed in (args.run / "data" / "data.yaml", init):
        if not needed.is_file():  # a run trained with --init scratch or X.onnx has no COCO init
            parser.error(f"{needed} is missing: RUN must be a `trivue train --init coco` run directory")
    offline_environment(args.run)
    import torch
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_dataloader, build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.nn.tasks import DetectionModel, load_checkpoint

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    cfg = get_cfg(overrides={"imgsz": args.imgsz, "cache": "ram", "mode": "train"})
    data = check_det_dataset(str(args.run / "data" / "data.yaml"))
    dataset = build_yolo_dataset(cfg, data["train"], args.batch, data, mode="train")
    loader = iter(build_dataloader(dataset, args.batch, workers=0, shuffle=True))
    weights, _ = load_checkpoint(str(init))
    model = DetectionModel(weights.yaml, nc=data["nc"], verbose=False)
    model.load(weights, verbose=False)
    model.args = cfg
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    load_s = step_s = 0.0
    for _ in range(args.batches):
        start = time.perf_counter()
        batch = next(loader)
        batch["img"] = batch["img"].float() / 255
        load_s += time.perf_counter() - start
        start = time.perf_counter()
        loss, _ = model.loss(batch)
        loss.sum().backward()
        optimiser.step()
        optimiser.zero_grad()
        step_s += time.perf_counter() - start
    n = args.batches
    print(json.dumps({"batch": args.batch, "imgsz": args.imgsz, "threads": torch.get_num_threads(),
                      "load_ms_per_batch": round(1000 * load_s / n), "step_ms_per_batch": round(1000 * step_s / n),
                      "load_share": round(load_s / (load_s + step_s), 3)}))


if __name__ == "__main__":
    main()
