"""Lift counting: labelled photos -> synthetic bursts -> the truck's own pipeline -> count errors.

The truck counts a lift from several frames through the tracker (``edge.pipeline``): an item is
one track, counted when seen in ``min_track_frames`` frames and labelled by a vote over them. A
per-image metric does not measure that, so ``trivue evaluate --lifts`` turns each labelled photo
into a burst of 5-8 frames as the hopper camera shoots them (camera shake, a zoom that grows over
the burst, an occluder over part of the frame), made with ``albumentations`` so that the boxes move
with the pixels. Each burst then runs through ``edge.pipeline.Pipeline`` with the truck's
``Detector``, ``Tracker``, ``LiftRecorder`` and burst trigger, and the lift's counts are compared
with the labels.

Ground truth of a burst, stated once here: a labelled object counts when it is visible in at least
``min_track_frames`` of the burst's frames (the recorder's own rule for a track), "visible" meaning
that at least ``min_visible`` of its box survives the zoom's crop and the occluder (albumentations'
``min_visibility``). Objects the camera never shows well enough are reported as ``hidden``, per
class: ``truth + hidden`` is always the photo's labels.

Every burst is seeded from ``--seed`` and the photo's file name: the same data and seed give the
same frames, whatever the order or subset of photos.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from edge.camera import Frame
from edge.config import EdgeSettings, TrackingSettings
from edge.pipeline import Pipeline
from edge.trigger import BurstTrigger
from training.bursts import Burst, BurstStyle, BurstTruth, bursts
from training.evaluate import DEPLOY_IOU, EvaluateError, check_labels, read_split, resolve_data
from vision.detection import Detections
from vision.lift import LiftContext, LiftRecorder
from vision.model import Detector
from vision.rules import SortingRules
from vision.schema import ModelInfo, Stream
from vision.tracking import Tracker, TrackerSettings


class _WatchedRecorder(LiftRecorder):
    """The truck's recorder, also keeping the tracked boxes of each frame (for the contact sheet)."""

    def begin(self, started_at: datetime, stream: Stream) -> None:
        super().begin(started_at, stream)
        self.tracked: list[Detections] = []

    def add(self, image: np.ndarray, detections: Detections) -> tuple[str, ...]:
        self.tracked.append(detections)
        return super().add(image, detections)


@dataclass(frozen=True, slots=True)
class LiftResult:
    """One burst's lift as the truck counted it (model class -> items), beside its truth."""

    name: str
    source: str
    frames: int
    truth: BurstTruth
    counted: dict[str, int]

    def error(self, min_track_frames: int) -> int:
        """Items miscounted, all classes together (a bottle counted as a cup is two)."""
        truth, _hidden = self.truth.counts(min_track_frames)
        return sum(abs(self.counted.get(n, 0) - truth.get(n, 0)) for n in set(truth) | set(self.counted))


class LabelledBoxes:
    """A stand-in detector that returns a burst's visible labelled boxes, frame after frame.

    Run through the same pipeline it measures what the tracker and the recorder alone cost: a
    lift miscounted with perfect detections (camera shake swapping or splitting tracks in a pile
    of bags) is not the detector's fault.
    """

    concurrent = False  # frames must come in order

    def __init__(self, names: Sequence[str], meta: object) -> None:
        self.names, self.meta = tuple(names), meta
        self._index = {name: i for i, name in enumerate(self.names)}
        self._frames: list[Detections] = []

    def load(self, burst: Burst) -> None:
        classes = np.array([self._index[name] for name in burst.truth.labels], np.int32)
        self._frames = [Detections(boxes, np.full(len(boxes), 0.9, np.float32), classes[objects])
                        for boxes, objects in zip(burst.truth.boxes, burst.truth.visible, strict=True)]

    def detect(self, _image: np.ndarray) -> Detections:
        return self._frames.pop(0) if self._frames else Detections.empty()


class LiftCounter:
    """Runs bursts through ``edge.pipeline.Pipeline`` built as ``edge.app.Agent`` builds it."""

    def __init__(self, detector: Detector, rules: SortingRules, stream: Stream, tracking: TrackingSettings,
                 frame_rate: float, workers: int) -> None:
        self.detector, self.stream, self.frame_rate = detector, stream, frame_rate
        self.tracking = tracking
        model = ModelInfo(name=detector.meta.name, version=detector.meta.version)
        self.recorder = _WatchedRecorder(detector.names, rules, model, tracking.min_track_frames)
        t = tracking
        tracker = Tracker(TrackerSettings(t.activation_conf, t.high_conf, t.match_iou, t.lost_frames, frame_rate))
        self._lifts = 0
        self._burst: Burst | None = None
        self._last: tuple[LiftResult, list[Detections]] | None = None
        # as edge.app.Agent: several frames at once only with a detector that allows it
        workers = workers if getattr(detector, "concurrent", False) else 1
        self.pipeline = Pipeline(detector.detect, tracker, self.recorder, BurstTrigger(), self._deliver,
                                 lambda _classes: None, lambda: stream, workers)

    def _deliver(self, last: Frame) -> None:
        burst = self._burst
        if burst is None or self._last is not None:
            raise EvaluateError(f"{last.burst}: the pipeline closed more than one lift for one burst")
        counted, tracked = self.recorder.counts(), self.recorder.tracked
        self.recorder.finish(last.captured_at, LiftContext("evaluate", self._lifts))
        self._last = (LiftResult(burst.name, burst.source, len(burst.frames), burst.truth, counted), tracked)

    def count(self, burst: Burst) -> tuple[LiftResult, list[Detections]]:
        """The lift's result, and the tracked detections of each of its frames."""
        start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=self._lifts)
        step = timedelta(seconds=1 / self.frame_rate)
        frames = [Frame(image, start + i * step, i, burst.name) for i, image in enumerate(burst.frames)]
        self._burst, self._last = burst, None
        self.pipeline.run(frames)
        if self._last is None:
            raise EvaluateError(f"{burst.name}: the pipeline closed no lift")
        self._lifts += 1
        return self._last


def _stats(errors: Sequence[int]) -> dict:
    values = np.asarray(errors, np.float64)
    if not len(values):
        return {"lifts": 0, "mae": None, "within_1": None, "bias": None}
    return {"lifts": len(values), "mae": round(float(np.abs(values).mean()), 3),
            "within_1": round(float((np.abs(values) <= 1).mean()), 3), "bias": round(float(values.mean()), 3)}


def summarise(results: Sequence[LiftResult], min_track_frames: int) -> dict:
    """Count errors (counted - truth) per lift, per class and per source.

    A source labels only its own classes (hopper photos hold unlabelled bottles): a lift is scored
    on the classes its source labels anywhere in the split; items of other classes are listed
    apart as ``unlabelled_class_items``, neither right nor wrong.
    """
    labelled_by_source: dict[str, set[str]] = {}
    for result in results:
        labelled_by_source.setdefault(result.source, set()).update(result.truth.labels)
    per_lift, totals = [], []
    by_class: dict[str, list[int]] = {}
    by_source: dict[str, list[int]] = {}
    by_source_class: dict[str, dict[str, list[int]]] = {}
    items: dict[str, Counter[str]] = {}
    hidden_all: Counter[str] = Counter()
    unlabelled: dict[str, Counter[str]] = {}
    for result in results:
        truth, hidden = result.truth.counts(min_track_frames)
        classes = sorted(labelled_by_source[result.source])
        errors = {name: result.counted.get(name, 0) - truth.get(name, 0) for name in classes}
        total = sum(errors.values())
        totals.append(total)
        by_source.setdefault(result.source, []).append(total)
        for name, error in errors.items():
            by_class.setdefault(name, []).append(error)
            by_source_class.setdefault(result.source, {}).setdefault(name, []).append(error)
            tally = items.setdefault(name, Counter())
            tally["truth"] += truth.get(name, 0)
            tally["counted"] += result.counted.get(name, 0)
        hidden_all.update(hidden)
        others = {n: c for n, c in result.counted.items() if n not in labelled_by_source[result.source]}
        unlabelled.setdefault(result.source, Counter()).update(others)
        per_lift.append({"image": result.name, "source": result.source, "frames": result.frames,
                         "labelled": dict(Counter(result.truth.labels)), "truth": dict(truth),
                         "hidden": dict(hidden), "counted": dict(result.counted), "error": total,
                         "class_errors": {n: e for n, e in errors.items() if e}})
    return {
        "lifts": len(results), "frames": sum(r.frames for r in results),
        "count": _stats(totals),
        "per_class": {name: _stats(errors) | {"truth": items[name]["truth"], "counted": items[name]["counted"]}
                      for name, errors in sorted(by_class.items())},
        "per_source": {source: _stats(errors) | {
            "classes": sorted(labelled_by_source[source]),
            "per_class": {n: _stats(e) for n, e in sorted(by_source_class[source].items())},
            "unlabelled_class_items": dict(unlabelled[source])}
            for source, errors in sorted(by_source.items())},
        "hidden": dict(hidden_all),
        "per_lift": per_lift,
    }


def evaluate_lifts(data: Path, model: Path, split: str = "val", conf: float = 0.25, stream: str = "recyclables",
                   rules: Path | None = None, seed: int = 0, style: BurstStyle | None = None,
                   sheet: Path | None = None) -> dict:
    """Every photo of ``split`` as a burst through the truck's pipeline; the report (JSON-ready dict).

    ``sheet`` gets a contact sheet of the lift with the largest count error (the first such lift;
    the first lift when every count is right).
    """
    from rich.progress import track

    try:
        stream_value = Stream(stream)
    except ValueError:
        raise EvaluateError(f"--stream {stream}: choose one of {[s.value for s in Stream]}") from None
    style = style or BurstStyle()
    sorting = SortingRules.load(rules)
    tracking = TrackingSettings()  # the truck's defaults (edge/config.py)
    frame_rate = EdgeSettings.model_fields["frame_rate"].default
    workers = len(os.sched_getaffinity(0))  # as the truck's ``workers: auto``, one thread each
    detector = Detector(model, conf=conf, iou=DEPLOY_IOU, threads=1)
    counter = LiftCounter(detector, sorting, stream_value, tracking, frame_rate, workers)
    labelled = LabelledBoxes(detector.names, detector.meta)
    tracking_only = LiftCounter(labelled, sorting, stream_value, tracking, frame_rate, 1)  # type: ignore[arg-type]
    results: list[LiftResult] = []
    floor: list[LiftResult] = []
    worst: tuple[int, Burst, list[Detections], LiftResult] | None = None
    with tempfile.TemporaryDirectory() as workdir:  # holds a merged mapping until the end
        items, names = read_split(resolve_data(Path(data), Path(workdir)), split)
        check_labels(items, names)
        unknown = sorted(set(names) - set(detector.names))
        if unknown:
            raise EvaluateError(f"{model}: the data's classes {unknown} are not among the model's "
                                f"{list(detector.names)}")
        started = time.perf_counter()
        for burst in track(bursts(items, names, style, seed), total=len(items), description="lifts",
                           transient=True):
            result, tracked = counter.count(burst)
            results.append(result)
            labelled.load(burst)
            floor.append(tracking_only.count(burst)[0])
            error = result.error(tracking.min_track_frames)
            if sheet is not None and (worst is None or error > worst[0]):
                worst = (error, burst, tracked, result)
        seconds = time.perf_counter() - started
    report = summarise(results, tracking.min_track_frames)
    report["tracking_only"] = summarise(floor, tracking.min_track_frames)["count"]
    if worst is not None and sheet is not None:
        _error, burst, tracked, result = worst
        contact_sheet(burst, tracked, result.counted, detector.names, sheet)
        report["sheet"] = {"path": str(sheet), "image": burst.name}
    report.update(model=str(model), data=str(data), split=split, conf=conf, seed=seed,
                  min_track_frames=tracking.min_track_frames, min_visible=style.min_visible,
                  ms_per_frame=round(1000 * seconds / max(report["frames"], 1), 1))
    return report


def contact_sheet(burst: Burst, tracked: Sequence[Detections], counted: dict[str, int], names: Sequence[str],
                  out: Path, columns: int = 4, side: int = 240) -> Path:
    """The burst's frames in a grid: labelled boxes visible in the frame (green), the pipeline's
    tracked boxes (one colour per track, ``#id class``), and the lift's truth against its count."""
    truth, hidden = burst.truth.counts(TrackingSettings().min_track_frames)
    tiles = []
    for index, frame in enumerate(burst.frames):
        scale = side / max(frame.shape[:2])
        tile = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        for box in burst.truth.boxes[index]:
            x1, y1, x2, y2 = (round(v * scale) for v in box)
            cv2.rectangle(tile, (x1, y1), (x2, y2), (0, 200, 0), 2)
        detections = tracked[index] if index < len(tracked) else Detections.empty()
        ids = detections.tracker_id if detections.tracker_id.size else np.full(len(detections), -1)
        for box, cls, track in zip(detections.xyxy, detections.class_id, ids, strict=True):
            colour = _track_colour(int(track))
            x1, y1, x2, y2 = (round(v * scale) for v in box)
            cv2.rectangle(tile, (x1 + 2, y1 + 2), (x2 - 2, y2 - 2), colour, 1)
            label = f"#{track} {names[int(cls)]}" if track >= 0 else names[int(cls)]
            cv2.putText(tile, label, (x1 + 4, max(y1 + 14, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1,
                        cv2.LINE_AA)
        cv2.putText(tile, f"frame {index + 1}", (4, tile.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
        canvas = np.zeros((side, side, 3), np.uint8)
        canvas[:tile.shape[0], :tile.shape[1]] = tile
        tiles.append(canvas)
    while len(tiles) % columns:
        tiles.append(np.zeros((side, side, 3), np.uint8))
    grid = np.vstack([np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)])
    header = np.full((48, grid.shape[1], 3), 255, np.uint8)
    lines = (f"{burst.source}: {burst.name} ({len(burst.frames)} frames)  green: labelled, visible; "
             "colour: tracked (#id); grey: detected, not tracked",
             f"truth {dict(sorted(truth.items()))}  hidden {dict(sorted(hidden.items()))}  "
             f"counted {dict(sorted(counted.items()))}")
    for row, text in enumerate(lines):
        cv2.putText(header, text, (6, 18 + row * 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    sheet = np.vstack([header, grid])
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".png":  # a 256-colour palette: a third of the size, enough to look at
        from PIL import Image

        Image.fromarray(cv2.cvtColor(sheet, cv2.COLOR_BGR2RGB)).quantize(256).save(out, optimize=True)
    elif not cv2.imwrite(str(out), sheet):
        raise EvaluateError(f"{out}: cannot write the contact sheet (use a .png or .jpg name)")
    return out


def _track_colour(track: int) -> tuple[int, int, int]:
    if track < 0:
        return (160, 160, 160)
    hue = (track * 47) % 180  # spread neighbouring ids around the colour wheel
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def format_lifts(report: dict) -> str:
    count = report["count"]
    lines = [f"{report['model']} on {report['data']} ({report['split']}): {report['lifts']} lifts, "
             f"{report['frames']} frames, {report['ms_per_frame']} ms/frame, seed {report['seed']}",
             "lift count error (counted - labelled, classes its source labels): "
             f"MAE {_num(count['mae'])}, within ±1 {_pct(count['within_1'])}, bias {_num(count['bias'])}",
             f"{'class':<12} {'lifts':>5} {'labelled':>8} {'counted':>7} {'MAE':>6} {'±1':>6} {'bias':>6}"]
    for name, m in report["per_class"].items():
        lines.append(f"{name:<12} {m['lifts']:>5} {m['truth']:>8} {m['counted']:>7} {_num(m['mae']):>6} "
                     f"{_pct(m['within_1']):>6} {_num(m['bias']):>6}")
    floor = report["tracking_only"]
    lines.append(f"tracking only (the labelled boxes as detections, same pipeline): MAE {_num(floor['mae'])}, "
                 f"within ±1 {_pct(floor['within_1'])}, bias {_num(floor['bias'])}")
    for source, m in report["per_source"].items():
        lines.append(f"  {source}: {m['lifts']} lifts, MAE {_num(m['mae'])}, within ±1 {_pct(m['within_1'])}, "
                     f"bias {_num(m['bias'])}; items of classes it does not label: {m['unlabelled_class_items']}")
    lines.append(f"labelled but hidden (visible < {report['min_visible']:.0%} of the box in fewer than "
                 f"{report['min_track_frames']} frames; not in the truth): {report['hidden']}")
    if "sheet" in report:
        lines.append(f"contact sheet of {report['sheet']['image']}: {report['sheet']['path']}")
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
