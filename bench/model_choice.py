"""Which detector fits the truck: accuracy at a fixed real-time budget, candidates side by side.

    .venv/bin/python bench/model_choice.py [--trained models/trivue-waste.onnx] [--rounds 3]
        [--budget-fps 25] [--data training/mapping.yaml]

Candidates: YOLOv8n at 320 and 416 px, YOLO11n and YOLOv8s at 320 px, each with the project's
classes. For each, in one run on this machine:

- frames/s of the truck's whole loop (``bench/edge.py``'s pipelined loop: files -> detect ->
  track -> rules -> evidence -> outbox, the agent's default 2 workers), its start-up and peak RSS;
- val mAP50 of a trained model of that architecture where one exists (``--trained`` ONNX files;
  the shipped model is trained at 320 px and is also exported at 416 px from the same weights, from
  its training run when ``--run`` gives it, else rebuilt from the ONNX file itself: a model
  trained at 320 px run at 416 px, not a model trained at 416 px). Architectures without trained weights are timed from
  an untrained export (speed does not depend on the weight values) and their accuracy is
  "not trained": only YOLOv8n has COCO weights offline (``../shared/weights``), and training the
  others from scratch on 2 CPU cores is not a comparison of architectures.

The rule: the loop must stay at or above ``--budget-fps`` frames/s; among the candidates that do,
the most accurate one ships.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from base.paths import MODELS_DIR, REPO_ROOT

CANDIDATES = (("yolov8n", 320), ("yolov8n", 416), ("yolo11n", 320), ("yolov8s", 320))


def untrained_export(arch: str, imgsz: int, names: list[str], out_dir: Path) -> Path:
    """ONNX of an architecture with random weights and the project's classes (for timing only)."""
    from training.train import offline_environment

    offline_environment(out_dir)
    import yaml
    from ultralytics import YOLO
    from ultralytics.nn.tasks import yaml_model_load

    spec = yaml_model_load(f"{arch}.yaml")
    spec["nc"] = len(names)
    cfg = out_dir / f"{arch}-{imgsz}.yaml"
    cfg.write_text(yaml.safe_dump(spec))
    model = YOLO(str(cfg))
    model.model.names = dict(enumerate(names))
    # Ultralytics names the export after the spec's bare file name, relative to the current folder:
    # export from out_dir, or it lands (overwriting a file of that name) wherever the bench was run
    with contextlib.chdir(out_dir):
        path = Path(model.export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False, device="cpu")).resolve()
    target = out_dir / f"{arch}-{imgsz}-untrained.onnx"
    path.replace(target)
    return target


def run_export(run: Path, imgsz: int, out_dir: Path) -> Path:
    """The trained run's best weights exported at another input size."""
    from training.export import ultralytics_onnx

    path = ultralytics_onnx(run, run / "train" / "weights" / "best.pt", imgsz)
    target = out_dir / f"yolov8n-{imgsz}-trained.onnx"
    path.replace(target)
    return target


def onnx_export(trained: Path, imgsz: int, out_dir: Path) -> Path:
    """The trained ONNX model's own weights at another input size, without its run: rebuilt in torch
    by ``training.coco_init`` (what ``--init X.onnx`` does; exact, the 320 px re-export scores the
    same mAP50), then exported by Ultralytics."""
    from training.coco_init import build_identity_model, save_checkpoint
    from training.train import offline_environment

    offline_environment(out_dir)
    from ultralytics import YOLO

    checkpoint = save_checkpoint(build_identity_model(trained), out_dir / "rebuilt.pt")
    with contextlib.chdir(out_dir):  # as untrained_export: nothing written where the bench was run
        path = Path(YOLO(str(checkpoint)).export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False,
                                                 device="cpu")).resolve()
    target = out_dir / f"yolov8n-{imgsz}-trained.onnx"
    path.replace(target)
    return target


def loop_figures(models: list[Path], rounds: int) -> dict[str, dict]:
    """bench/edge.py on every model in one run: pipelined loop frames/s, start-up, RSS."""
    done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "edge.py"), "--models", *map(str, models),
                           "--rounds", str(rounds), "--no-ultralytics", "--agent-runs", "1"],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"bench/edge.py failed:\n{done.stderr[-3000:]}")
    out = done.stdout
    figures: dict[str, dict] = {}
    current = None
    for line in out.splitlines():
        head = re.match(r"^(\S+\.onnx) \(", line)
        if head:
            current = figures.setdefault(head.group(1), {})
        elif current is not None and "pipelined loop," in line:
            current["fps"] = float(line.split()[-3])  # ms/frame, frames/s, x raw, best ms
        elif current is not None and "start-up" in line:
            numbers = re.findall(r"([\d.]+) s.*?([\d.]+) MB", line)
            if numbers:
                current["startup_s"], current["rss_mb"] = (float(v) for v in numbers[0])
    return figures


def accuracy(model: Path, data: Path) -> float:
    from training.evaluate import evaluate

    return evaluate(data, model)["map50"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trained", type=Path, default=MODELS_DIR / "trivue-waste.onnx",
                        help="the trained YOLOv8n 320 px ONNX")
    parser.add_argument("--run", type=Path, default=None, help="its training run (also exports it at 416 px)")
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "training" / "mapping.yaml")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget-fps", type=float, default=25.0)
    args = parser.parse_args()
    from vision.model import Detector

    names = list(Detector(args.trained).names)
    with tempfile.TemporaryDirectory(prefix="trivue-choice-") as tmp:
        out = Path(tmp)
        models: dict[tuple[str, int], tuple[Path, bool]] = {("yolov8n", 320): (args.trained, True)}
        for arch, imgsz in CANDIDATES:
            if (arch, imgsz) in models:
                continue
            if (arch, imgsz) == ("yolov8n", 416):  # the 320 px weights, run at 416 px
                export = run_export(args.run, imgsz, out) if args.run else onnx_export(args.trained, imgsz, out)
                models[(arch, imgsz)] = (export, True)
            else:
                models[(arch, imgsz)] = (untrained_export(arch, imgsz, names, out), False)
        print(f"timing {len(models)} candidates with bench/edge.py ({args.rounds} rounds)...", file=sys.stderr)
        loop = loop_figures([path for path, _ in models.values()], args.rounds)
        rows = []
        for (arch, imgsz), (path, trained) in models.items():
            figures = loop.get(path.name, {})
            rows.append({"model": arch, "imgsz": imgsz, "trained": trained,
                         "map50": accuracy(path, args.data) if trained else None, **figures})
    print(f"\nModel choice on this machine ({len(os.sched_getaffinity(0))} CPUs, load {os.getloadavg()[0]:.1f}); "
          f"budget: the truck loop >= {args.budget_fps:g} frames/s")
    print(f"{'model':<10} {'px':>4} {'val mAP50':>10} {'loop fps':>9} {'start-up s':>11} {'RSS MB':>7}  verdict")
    for row in rows:
        fits = row.get("fps", 0) >= args.budget_fps
        acc = "not trained" if row["map50"] is None else f"{row['map50']:.3f}" + ("*" if row["imgsz"] != 320 else "")
        print(f"{row['model']:<10} {row['imgsz']:>4} {acc:>10} {row.get('fps', float('nan')):>9.1f} "
              f"{row.get('startup_s', float('nan')):>11.2f} {row.get('rss_mb', float('nan')):>7.0f}  "
              f"{'within budget' if fits else 'too slow'}")
    if any(row["map50"] is not None and row["imgsz"] != 320 for row in rows):
        print("* the 320 px weights run at this size (not trained at it)")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
