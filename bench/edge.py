"""Frames/s of the truck's full loop vs the detector alone vs raw ``session.run`` vs Ultralytics' predict.

    .venv/bin/python bench/edge.py [--model M.onnx] [--lifts 15] [--frames-per-lift 4] [--threads 0]

Same real frames (shared hopper-bags val photos laid out as burst folders) for every contender,
measured side by side in one run:

- full loop: burst folders read from disk -> detect -> track -> lift recorder + rules -> evidence
  JPEG -> SQLite outbox commit (fsync), exactly ``trivue edge`` minus the network;
- detector alone: ``Detector.detect`` on the decoded frames;
- raw ``session.run`` on pre-made input tensors (the floor);
- Ultralytics ``YOLO(onnx).predict`` on the decoded frames (bench only: the edge never imports it).

Contenders run in interleaved rounds and the best round of each counts, because the CPU may be
shared. The agent's peak RSS is measured in a child process running the loop alone (no torch).
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

from rich.progress import track

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


def build_agent(work: Path, model: Path, threads: int, run: int) -> object:
    from edge.app import Agent
    from edge.config import load_settings

    settings = load_settings(None, {
        "truck_id": "bench", "source": str(work / "bursts"), "model": str(model), "threads": threads,
        "stream": "residual", "outbox": {"path": str(work / f"outbox-{run}.sqlite3")},
        "evidence": {"dir": str(work / "evidence")}, "uplink": {"broker": "mqtt://127.0.0.1:1"},
    }, environ={})
    agent = Agent.create(settings)
    agent.detector.warm_up()
    return agent


def full_loop_ms(work: Path, model: Path, threads: int, run: int) -> tuple[float, dict]:
    """One pass of the agent's loop over every burst (a fresh outbox, so nothing is skipped)."""
    from edge.camera import frames

    agent = build_agent(work, model, threads, run)
    started = time.perf_counter()
    lifts = agent.pipeline.run(frames(agent.settings.source, agent.outbox.is_consumed))
    elapsed = time.perf_counter() - started
    info = {"frames": agent.pipeline.meter.frames, "lifts": lifts, "outbox_rows": agent.outbox.depth()}
    agent.outbox.close()
    return elapsed / info["frames"] * 1000, info


def child_rss(args: argparse.Namespace) -> None:
    """Runs in a fresh process (no torch): the agent's loop once; prints its peak RSS as JSON."""
    ms, info = full_loop_ms(Path(args.work), args.model, args.threads, run=-1)
    info.update(ms=ms, rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(info))


def per_frame_ms(run: object, items: list) -> float:
    started = time.perf_counter()
    for item in items:
        run(item)  # type: ignore[operator]
    return (time.perf_counter() - started) / len(items) * 1000


def measure(args: argparse.Namespace, work: Path, photos: list[Path]) -> dict[str, float]:
    """Interleaved rounds (loop, detector, raw, ultralytics), best of each: the CPU may be shared."""
    import cv2

    from vision.model import Detector

    frames = [cv2.imread(str(p)) for p in photos]
    detector = Detector(args.model, threads=args.threads)
    detector.warm_up()
    blobs = [detector.preprocess(f)[0] for f in frames]
    contenders = {"detector alone": lambda: per_frame_ms(detector.detect, frames),
                  "raw session.run": lambda: per_frame_ms(detector.infer, blobs)}
    if not args.no_ultralytics:
        os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="ultralytics-"))
        os.environ.setdefault("YOLO_OFFLINE", "1")
        from ultralytics import YOLO

        model = YOLO(str(args.model), task="detect")
        imgsz = detector.meta.imgsz
        model.predict(frames[0], imgsz=imgsz, verbose=False)
        contenders["ultralytics predict"] = lambda: per_frame_ms(
            lambda f: model.predict(f, conf=detector.conf, iou=detector.iou, imgsz=imgsz, verbose=False), frames)
    best: dict[str, float] = {}
    for run in track(range(args.repeat), description="measuring"):
        loop_ms, _info = full_loop_ms(work, args.model, args.threads, run)
        best["full loop (agent)"] = min(best.get("full loop (agent)", float("inf")), loop_ms)
        for name, measure_once in contenders.items():
            best[name] = min(best.get(name, float("inf")), measure_once())
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--lifts", type=int, default=15)
    parser.add_argument("--frames-per-lift", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = all cores)")
    parser.add_argument("--no-ultralytics", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_rss(args)
        return
    with tempfile.TemporaryDirectory(prefix="trivue-bench-") as work:
        photos = lay_out_bursts(Path(work) / "bursts", args.lifts, args.frames_per_lift)
        command = [sys.executable, __file__, "--child", "--work", work, "--model", str(args.model),
                   "--threads", str(args.threads)]
        loop = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        results = measure(args, Path(work), photos)
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
    print(f"agent peak RSS (own process, no torch): {loop['rss_mb']:.0f} MB; "
          f"outbox rows written per pass: {loop['outbox_rows']}")


if __name__ == "__main__":
    main()
