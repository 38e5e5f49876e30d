"""Frames/s of the truck's loop vs our detector vs raw ``session.run`` vs Ultralytics' predict, per model.

    .venv/bin/python bench/edge.py [--models A.onnx B.onnx] [--lifts 15] [--frames-per-lift 4]
        [--rounds 5] [--threads 0] [--workers 0] [--stream recyclables] [--no-ultralytics] [--no-agent]

Same real frames for every contender: the shared hopper-bags val photos, laid out as burst folders
(one folder of stills per lift, as the truck's camera box writes them). Defaults: the shipped
320 px model in FP32 and in INT8. For each model, measured side by side in one run:

- raw ``session.run`` on pre-made input tensors, one frame at a time with ``--threads`` intra-op
  threads (all cores) and with one thread, and ``--workers`` frames at once with one thread each
  (what the pipelined loop does): the limits of the serial and pipelined loops;
- our ``Detector.detect`` (letterbox, run, NMS) on decoded frames, and its pre- and post-processing
  timed alone (on recorded outputs): our overhead, in % of raw;
- the full edge loop, ``Agent.frame_source`` -> ``Pipeline.run``: JPEG files read and decoded by
  the prefetch thread -> detect -> track -> lift recorder + rules -> evidence photo (blurred outside
  the example truck's hopper outline) -> SQLite outbox
  commit (fsync), exactly ``trivue edge`` minus the network; serial (``workers: 1``, intra-op
  threads on every core) and pipelined (``workers`` = ``--workers``, one thread each: the default);
- Ultralytics ``YOLO(onnx).predict`` on the same files (it reads and decodes them too), in a child
  process so that torch never shares our process (the agent never imports it). It processes one
  frame at a time, with onnxruntime's own thread pool; the pipelined loop runs two frames at once.

One untimed warm-up round, then ``--rounds`` rounds; the contenders' order rotates each round
and each figure is the median over rounds (the CPU may be shared). Then, per model, the real agent
(``trivue edge`` in a subprocess on a copy of the bursts): start-up = process start to its log line
"first frame analysed", and its peak RSS (VmHWM) once every burst is delivered (a burst's last photo ends its lift).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np
import yaml

from base.paths import MODELS_DIR, SHARED_DIR
from vision.model import Detector

PHOTOS = SHARED_DIR / "datasets" / "hopper-bags" / "images" / "val"
DEFAULT_MODELS = [MODELS_DIR / "trivue-waste.onnx", MODELS_DIR / "trivue-waste-int8.onnx"]
TRIVUE = Path(sys.executable).parent / "trivue"
PAUSE_S = 0.3  # between contenders: lets another process's worker threads go idle first

Measure = Callable[[], float]
RUNS = itertools.count()  # a fresh outbox and evidence folder per loop pass
# The example truck's hopper outline: the evidence photos are blurred outside it, as on a truck (the
# default, the whole frame, blurs nothing and would leave that cost out of the loop's figure).
EXAMPLE_HOPPER = yaml.safe_load((Path(__file__).resolve().parent.parent / "edge" / "truck.example.yaml")
                                .read_text(encoding="utf-8"))["hopper"]


def lay_out_bursts(root: Path, lifts: int, per_lift: int) -> list[Path]:
    """Burst folders of real photos; copy2 keeps old mtimes, so a following agent sees them settled."""
    photos = sorted(PHOTOS.glob("*.jpg"))[: lifts * per_lift]
    if len(photos) < lifts * per_lift:
        sys.exit(f"need {lifts * per_lift} photos in {PHOTOS}, found {len(photos)}")
    copied = []
    for index, photo in enumerate(photos):
        folder = root / f"burst-{index // per_lift:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        copied.append(Path(shutil.copy2(photo, folder / photo.name)))
    return copied


def per_frame_ms(run: Callable[[object], object], items: list) -> float:
    started = time.perf_counter()
    for item in items:
        run(item)
    return (time.perf_counter() - started) / len(items) * 1000


def full_loop(detector: Detector, work: Path, args: argparse.Namespace, workers: int) -> Measure:
    """One pass of the agent's loop over every burst, into a fresh outbox (nothing is skipped)."""
    from edge.app import Agent
    from edge.config import load_settings

    def once() -> float:
        run = next(RUNS)
        settings = load_settings(None, {
            "truck_id": "bench", "source": str(work / "bursts"), "stream": args.stream, "workers": workers,
            "hopper": EXAMPLE_HOPPER,
            "outbox": {"path": str(work / f"outbox-{detector.path.stem}-{run}.sqlite3")},
            "evidence": {"dir": str(work / f"evidence-{run}")}, "uplink": {"broker": "mqtt://127.0.0.1:1"},
        }, environ={})
        agent = Agent.create(settings, detector=detector)  # the shared detector: same session, warm
        assert agent.pipeline.workers == workers
        try:
            started = time.perf_counter()
            agent.pipeline.run(agent.frame_source(once=True))
            elapsed = time.perf_counter() - started
            frames, lifts = agent.pipeline.meter.frames, agent.pipeline.meter.lifts
            if lifts != args.lifts or agent.outbox.depth() < lifts:
                sys.exit(f"the loop delivered {lifts} lifts, {agent.outbox.depth()} outbox rows; expected {args.lifts}")
        finally:
            agent.close()
        return elapsed / frames * 1000

    return once


class UltralyticsWorker:
    """Ultralytics in a child process: one round over the files per request, answered in ms/frame."""

    def __init__(self, models: list[Path], files: list[Path], detector: Detector, log: Path) -> None:
        spec = {"models": [str(m) for m in models], "files": [str(f) for f in files],
                "conf": detector.conf, "iou": detector.iou, "imgsz": list(detector.meta.imgsz)}
        self.log = log
        with log.open("w") as chatter:
            self.child = subprocess.Popen([sys.executable, __file__, "--ultralytics-worker", json.dumps(spec)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=chatter, text=True)
        self.request(-1)  # loaded and warmed up

    def request(self, model_index: int) -> float:
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write(f"{model_index}\n")
        self.child.stdin.flush()
        line = self.child.stdout.readline()
        if not line:
            sys.exit("the Ultralytics worker died (is the train extra installed?):\n" + self.log.read_text()[-3000:])
        return float(line)

    def close(self) -> None:
        if self.child.stdin is not None:
            self.child.stdin.close()
        self.child.wait(timeout=30)


def ultralytics_worker(spec_json: str) -> None:
    """Child: loads every model with Ultralytics, then times one round per line read on stdin."""
    spec = json.loads(spec_json)
    answers = os.fdopen(os.dup(1), "w")  # our answers own stdout; Ultralytics' prints go to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="ultralytics-"))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    models = [YOLO(m, task="detect") for m in spec["models"]]
    files = spec["files"]

    def predict(model: object, path: str) -> object:
        return model.predict(path, conf=spec["conf"], iou=spec["iou"], imgsz=spec["imgsz"], verbose=False)  # type: ignore[attr-defined]

    for line in sys.stdin:
        index = int(line)
        if index < 0:
            for model in models:
                for path in files[:3]:
                    predict(model, path)
            print(0.0, file=answers, flush=True)
            continue
        print(per_frame_ms(lambda path, m=models[index]: predict(m, path), files), file=answers, flush=True)


def measure(args: argparse.Namespace, work: Path, files: list[Path]) -> dict[str, dict[str, list[float]]]:
    """ms/frame per model, contender and round, over rotating, interleaved rounds."""
    frames = [cv2.imread(str(p)) for p in files]
    contenders: dict[str, dict[str, Measure]] = {}
    worker = None
    detectors = [Detector(m, threads=args.threads) for m in args.models]
    # the pipelined loop's detectors: one intra-op thread per run, ``workers`` runs at once
    single = [Detector(m, threads=1) for m in args.models]
    pool = ThreadPoolExecutor(args.workers, thread_name_prefix="raw")
    if not args.no_ultralytics:
        worker = UltralyticsWorker(args.models, files, detectors[0], work / "ultralytics.log")
    for index, (detector, one) in enumerate(zip(detectors, single, strict=True)):
        detector.warm_up()
        one.warm_up()
        blobs = [detector.preprocess(f) for f in frames]  # fresh arrays: the raw run reads each
        # pre- and post-processing timed alone, on the frames and their recorded outputs: a direct
        # measurement of our overhead, not a difference of two noisy timings
        recorded = [(f, (detector.infer(b), ratio, pad, f.shape[:2])) for f, (b, ratio, pad) in zip(frames, blobs,
                                                                                                     strict=True)]

        def pre_post(item: tuple, d: Detector = detector) -> None:
            d.preprocess(item[0], reuse=True)
            d.postprocess(*item[1])

        def concurrent_raw(inputs: list, d: Detector = one) -> float:
            started = time.perf_counter()
            for _output in pool.map(d.infer, inputs):
                pass
            return (time.perf_counter() - started) / len(inputs) * 1000

        inputs = [b[0] for b in blobs]
        table: dict[str, Measure] = {
            "raw": lambda d=detector, b=inputs: per_frame_ms(d.infer, b),
            "raw1": lambda d=one, b=inputs: per_frame_ms(d.infer, b),
            "rawN": lambda b=inputs, f=concurrent_raw: f(b),  # bound now: the loop redefines it per model
            "prepost": lambda f=pre_post, items=recorded: per_frame_ms(f, items),
            "detector": lambda d=detector: per_frame_ms(d.detect, frames),
            "loop": full_loop(detector, work, args, workers=1),
            "pipelined": full_loop(one, work, args, workers=args.workers),
        }
        if worker is not None:
            table["ultralytics"] = lambda i=index: worker.request(i)
        contenders[detector.path.name] = table
    samples: dict[str, dict[str, list[float]]] = {m: {c: [] for c in t} for m, t in contenders.items()}
    for round_index in range(args.rounds + 1):  # round 0 warms up every contender and is dropped
        for model, table in contenders.items():
            names = list(table)
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                time.sleep(PAUSE_S)
                ms = table[name]()
                if round_index:
                    samples[model][name].append(ms)
        print(f"round {round_index}/{args.rounds} done", file=sys.stderr)
    if worker is not None:
        worker.close()
    pool.shutdown()
    return samples


def agent_run(model: Path, work: Path, args: argparse.Namespace, run: int) -> tuple[float, float]:
    """``trivue edge`` on its own copy of the bursts: seconds to its first analysed frame, peak RSS MB."""
    root = work / f"agent-{model.stem}-{run}"
    shutil.copytree(work / "bursts", root / "bursts", copy_function=shutil.copy2)
    command = [str(TRIVUE), "edge", "--source", str(root / "bursts"), "--truck-id", "bench",
               "--stream", args.stream, "--model", str(model), "--broker", "mqtt://127.0.0.1:1",
               "--outbox", str(root / "outbox.sqlite3"), "--gps", "fixed:48.85,2.35"]
    env = {**os.environ, "TRIVUE_EDGE_EVIDENCE__DIR": str(root / "evidence")}  # the agent's defaults: workers auto
    started = time.perf_counter()
    child = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    startup, delivered, log = None, 0, []
    try:
        assert child.stderr is not None
        for line in child.stderr:
            log.append(line)
            if startup is None and "first frame analysed" in line:
                startup = time.perf_counter() - started
            if ": lift " in line and " frames, counts " in line:
                delivered += 1
                if delivered == args.lifts:
                    break
        status = Path(f"/proc/{child.pid}/status").read_text()
        rss_mb = int(next(v for v in status.splitlines() if v.startswith("VmHWM:")).split()[1]) / 1024
    except (StopIteration, FileNotFoundError):
        sys.exit("the agent ended early:\n" + "".join(log[-20:]))
    finally:
        child.kill()  # a clean stop would wait for the broker's acknowledgements: nothing to keep here
        child.wait()
    if startup is None or delivered < args.lifts:
        sys.exit(f"the agent delivered {delivered}/{args.lifts} lifts:\n" + "".join(log[-20:]))
    return startup, rss_mb


def describe(model: Path) -> str:
    detector = Detector(model)
    kind = "INT8" if "int8" in model.stem.lower() else "FP32"
    h, w = detector.meta.imgsz
    return f"{model.name} ({kind}, {w}x{h} px)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--lifts", type=int, default=15)
    parser.add_argument("--frames-per-lift", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0,
                        help="onnxruntime threads of the serial contenders (0 = every core we may use)")
    parser.add_argument("--workers", type=int, default=0,
                        help="frames at once in the pipelined loop, one thread each (0 = every core we may use)")
    parser.add_argument("--stream", default="recyclables",
                        help="stream of the lifts (recyclables: hopper bags are errors, evidence photos are made)")
    parser.add_argument("--agent-runs", type=int, default=3, help="trivue edge start-ups per model (median)")
    parser.add_argument("--no-ultralytics", action="store_true")
    parser.add_argument("--no-agent", action="store_true", help="skip the trivue edge start-up and RSS runs")
    parser.add_argument("--ultralytics-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ultralytics_worker:
        ultralytics_worker(args.ultralytics_worker)
        return
    args.workers = args.workers or len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="trivue-bench-") as tmp:
        work = Path(tmp)
        files = lay_out_bursts(work / "bursts", args.lifts, args.frames_per_lift)
        shape = cv2.imread(str(files[0])).shape
        samples = measure(args, work, files)
        agent: dict[str, tuple[float, float]] = {}
        if not args.no_agent:
            for model in args.models:
                runs = [agent_run(model, work, args, run) for run in range(args.agent_runs)]
                agent[model.name] = (statistics.median(r[0] for r in runs), max(r[1] for r in runs))
    cpus = len(os.sched_getaffinity(0))
    print(f"\n{len(files)} real frames ({shape[1]}x{shape[0]} JPEG, hopper-bags val) in {args.lifts} burst lifts, "
          f"stream {args.stream}; median of {args.rounds} rounds; serial: onnxruntime threads="
          f"{args.threads or cpus}; pipelined: {args.workers} frames at once, 1 thread each; {cpus} CPUs; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("Ultralytics predict and the serial loop process one frame at a time; the pipelined loop (the agent's "
          "default) detects several frames at once, tracking them in order.")
    for model in args.models:
        r = {c: statistics.median(v) for c, v in samples[model.name].items()}
        best = {c: min(v) for c, v in samples[model.name].items()}
        raw = r["raw"]
        print(f"\n{describe(model)}")
        print(f"  {'(median of rounds)':34s} {'ms/frame':>9s} {'frames/s':>9s} {'x raw':>7s} {'best ms':>8s}")
        threads = args.threads or cpus
        rows = [(f"raw session.run, {threads} thread(s)", "raw"), ("raw session.run, 1 thread", "raw1"),
                (f"raw session.run, {args.workers} at once x 1 thr", "rawN"),
                ("our pre+post alone (no run)", "prepost"), ("our Detector (pre+run+post)", "detector"),
                ("serial loop (files->outbox)", "loop"), (f"pipelined loop, {args.workers} workers", "pipelined"),
                ("ultralytics predict (files)", "ultralytics")]
        for label, key in rows:
            if key in r:
                print(f"  {label:34s} {r[key]:9.2f} {1000 / r[key]:9.1f} {r[key] / raw:7.2f} {best[key]:8.2f}")
        print(f"  our pre+post-processing: {r['prepost']:.2f} ms = {r['prepost'] / raw * 100:.1f}% of raw "
              f"(goal < 10%); Detector - raw: {r['detector'] - raw:+.2f} ms")
        print(f"  full loop beyond the detector (decode not overlapped, track, rules, evidence, outbox): "
              f"{r['loop'] - r['detector']:+.2f} ms/frame")
        if "ultralytics" in r:
            for label, key in (("serial loop", "loop"), ("pipelined loop", "pipelined")):
                ratios = [u / loop for u, loop in zip(samples[model.name]["ultralytics"], samples[model.name][key],
                                                       strict=True)]
                print(f"  {label} frames/s / ultralytics predict frames/s: {r['ultralytics'] / r[key]:.2f}x "
                      f"(goal >= 1.3x; per round {min(ratios):.2f}-{max(ratios):.2f}x; best rounds "
                      f"{best['ultralytics'] / best[key]:.2f}x, the quiet-CPU case)")
        if model.name in agent:
            startup, rss = agent[model.name]
            print(f"  trivue edge (defaults: workers auto): start-up to first analysed frame {startup:.2f} s "
                  f"(median of {args.agent_runs}, "
                  f"goal < 3 s); peak RSS {rss:.0f} MB (goal < 400 MB)")
    medians = {m: {c: statistics.median(v) for c, v in t.items()} for m, t in samples.items()}
    for fast in args.models:  # the truck's INT8 loop against Ultralytics' predict on the FP32 export
        for reference in args.models:
            if fast != reference and "ultralytics" in medians[reference.name] and "int8" in fast.stem.lower() \
                    and "int8" not in reference.stem.lower():
                for key in ("loop", "pipelined"):
                    ultra, loop = samples[reference.name]["ultralytics"], samples[fast.name][key]
                    print(f"\n{fast.name} {'serial' if key == 'loop' else 'pipelined'} loop frames/s / ultralytics "
                          f"predict on {reference.name} frames/s: "
                          f"{medians[reference.name]['ultralytics'] / medians[fast.name][key]:.2f}x "
                          f"(best rounds {min(ultra) / min(loop):.2f}x)")
    print(f"\nnumpy {np.__version__}, opencv {cv2.__version__}, onnxruntime {__import__('onnxruntime').__version__}")


if __name__ == "__main__":
    main()
