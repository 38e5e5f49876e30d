"""Frames/s of the truck's full loop vs the detector alone vs raw ``session.run`` vs Ultralytics' predict.

    .venv/bin/python bench/edge.py [--model M.onnx] [--lifts 15] [--frames-per-lift 4] [--threads 0]

Same real frames (shared hopper-bags val photos laid out as burst folders) for every contender,
measured side by side in one run:

- full loop: burst folders read from disk -> detect -> track -> lift recorder + rules -> evidence
  JPEG -> SQLite outbox commit (fsync), exactly ``trivue edge`` minus the network;
- detector alone: ``Detector.detect`` on the decoded frames;
- raw ``session.run`` on pre-made input tensors (the floor);
- Ultralytics ``YOLO(onnx).predict`` on the decoded frames (bench only: the edge never imports it).

The full loop runs in a child process so that its peak RSS is the agent's, without torch.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trivue.paths import SHARED_DIR
from vision.model import default_model_path

PHOTOS = SHARED_DIR / "datasets" / "hopper-bags" / "images" / "val"


def lay_out_bursts(root: Path, lifts: int, per_lift: int) -> list[Path]:
    photos = sorted(PHOTOS.glob("*.jpg"))[: lifts * per_lift]
    for index, photo in enumerate(photos):
        folder = root / f"burst-{index // per_lift:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, folder / photo.name)
    return photos


def child_full_loop(args: argparse.Namespace) -> None:
    """Runs in a fresh process: the agent's loop over the bursts; prints JSON."""
    from edge.app import Agent
    from edge.camera import frames
    from edge.config import load_settings

    work = Path(args.work)
    settings = load_settings(None, {
        "truck_id": "bench", "source": str(work / "bursts"), "model": str(args.model), "threads": args.threads,
        "stream": "residual", "outbox": {"path": str(work / "outbox.sqlite3")},
        "evidence": {"dir": str(work / "evidence")}, "uplink": {"broker": "mqtt://127.0.0.1:1"},
    }, environ={})
    agent = Agent.create(settings)
    agent.detector.warm_up()
    started = time.perf_counter()
    lifts = agent.pipeline.run(frames(settings.source, agent.outbox.is_consumed))
    elapsed = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": elapsed, "frames": agent.pipeline.meter.frames, "lifts": lifts,
                      "rss_mb": peak_kb / 1024, "outbox_rows": agent.outbox.depth()}))
    agent.outbox.close()


def per_frame_ms(run: object, items: list, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for item in items:
            run(item)  # type: ignore[operator]
        best = min(best, (time.perf_counter() - started) / len(items) * 1000)
    return best


def in_process(args: argparse.Namespace, photos: list[Path]) -> dict[str, float]:
    import cv2

    from vision.model import Detector

    frames = [cv2.imread(str(p)) for p in photos]
    detector = Detector(args.model, threads=args.threads)
    detector.warm_up()
    blobs = [detector.preprocess(f)[0] for f in frames]
    results = {
        "raw session.run": per_frame_ms(detector.infer, blobs, args.repeat),
        "detector alone": per_frame_ms(detector.detect, frames, args.repeat),
    }
    if not args.no_ultralytics:
        os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="ultralytics-"))
        os.environ.setdefault("YOLO_OFFLINE", "1")
        from ultralytics import YOLO

        model = YOLO(str(args.model), task="detect")
        imgsz = detector.meta.imgsz
        model.predict(frames[0], imgsz=imgsz, verbose=False)
        results["ultralytics predict"] = per_frame_ms(
            lambda f: model.predict(f, conf=detector.conf, iou=detector.iou, imgsz=imgsz, verbose=False),
            frames, args.repeat)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--lifts", type=int, default=15)
    parser.add_argument("--frames-per-lift", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = all cores)")
    parser.add_argument("--no-ultralytics", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_full_loop(args)
        return
    with tempfile.TemporaryDirectory(prefix="trivue-bench-") as work:
        photos = lay_out_bursts(Path(work) / "bursts", args.lifts, args.frames_per_lift)
        command = [sys.executable, __file__, "--child", "--work", work, "--model", str(args.model),
                   "--threads", str(args.threads)]
        loop = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        results = {"full loop (agent)": loop["seconds"] / loop["frames"] * 1000, **in_process(args, photos)}
    raw = results["raw session.run"]
    print(f"model {args.model.name}; {loop['frames']} real frames in {loop['lifts']} burst lifts; "
          f"threads={args.threads or 'all'} on {os.cpu_count()} CPUs")
    print(f"{'':22s} {'ms/frame':>9s} {'frames/s':>9s} {'x raw':>7s}")
    for name, ms in results.items():
        print(f"{name:22s} {ms:9.1f} {1000 / ms:9.1f} {ms / raw:7.2f}")
    loop_ms, detect_ms = results["full loop (agent)"], results["detector alone"]
    print(f"full loop / detector alone: {loop_ms / detect_ms:.2f}x "
          f"(tracking, rules, evidence, outbox: {loop_ms - detect_ms:.1f} ms/frame)")
    if "ultralytics predict" in results:
        print(f"ultralytics predict / full loop: {results['ultralytics predict'] / loop_ms:.2f}x")
    print(f"agent peak RSS: {loop['rss_mb']:.0f} MB; outbox rows written: {loop['outbox_rows']}")


if __name__ == "__main__":
    main()
