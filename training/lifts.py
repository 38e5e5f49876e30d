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
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge.camera import Frame
from edge.config import EdgeSettings, TrackingSettings
from edge.pipeline import Pipeline
from edge.trigger import BurstTrigger
from training.evaluate import DEPLOY_IOU, EvaluateError, LabelledImage, read_labels, read_split, resolve_data
from vision.detection import Detections
from vision.lift import LiftContext, LiftRecorder
from vision.model import Detector
from vision.rules import SortingRules
from vision.schema import ModelInfo, Stream
from vision.tracking import Tracker, TrackerSettings

if TYPE_CHECKING:
    import albumentations as A

OCCLUDER_GREY = 40  # a dark, flat occluder (an arm, the bin's lid): nothing a detector takes for waste


@dataclass(frozen=True, slots=True)
class BurstStyle:
    """How a photo becomes a burst. Defaults: a hopper camera's burst as the truck shoots it."""

    min_frames: int = 5
    max_frames: int = 8
    shake: float = 0.03  # camera shake: translation per frame, share of the frame side
    tilt_deg: float = 2.0  # camera shake: rotation per frame
    blur: float = 0.5  # probability of motion blur on a frame
    zoom: tuple[float, float] = (1.05, 1.35)  # zoom of the burst's last frame, drawn in this range
    occlusion: float = 0.6  # probability that a frame has an occluder
    occluder: tuple[float, float] = (0.15, 0.35)  # occluder side, share of the frame side
    min_visible: float = 0.4  # a box less visible than this in a frame is not in that frame

    def __post_init__(self) -> None:
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError(f"frames: need 1 <= min_frames <= max_frames, got {self.min_frames}..{self.max_frames}")
        if not 1.0 <= self.zoom[0] <= self.zoom[1]:
            raise ValueError(f"zoom: need 1 <= low <= high, got {self.zoom}")
        # albumentations reads 1.0 as one pixel (an int), so a share must stay below 1
        if not 0.0 < self.occluder[0] <= self.occluder[1] < 1.0:
            raise ValueError(f"occluder: need 0 < low <= high < 1 (shares of the frame side), got {self.occluder}")
        if not 0.0 < self.min_visible <= 1.0:
            raise ValueError(f"min_visible must be within (0, 1], got {self.min_visible}")


@dataclass(frozen=True, slots=True)
class BurstTruth:
    """What a burst shows of its photo's labelled objects, frame by frame."""

    labels: tuple[str, ...]  # class name of each labelled object of the photo
    visible: tuple[np.ndarray, ...]  # per frame: indices (into labels) of the objects visible enough
    boxes: tuple[np.ndarray, ...]  # per frame: (k, 4) xyxy boxes of those objects, in frame pixels

    def frames_seen(self) -> np.ndarray:
        seen = np.zeros(len(self.labels), np.int64)
        for objects in self.visible:
            seen[objects] += 1
        return seen

    def counts(self, min_track_frames: int) -> tuple[Counter[str], Counter[str]]:
        """(truth, hidden) per class: objects seen in enough frames (as the recorder clamps it to
        a burst shorter than ``min_track_frames``), and the others."""
        needed = min(min_track_frames, max(len(self.visible), 1))
        seen = self.frames_seen()
        truth: Counter[str] = Counter()
        hidden: Counter[str] = Counter()
        for name, frames in zip(self.labels, seen, strict=True):
            (truth if frames >= needed else hidden)[name] += 1
        return truth, hidden


@dataclass(frozen=True, slots=True)
class Burst:
    name: str
    source: str
    frames: tuple[np.ndarray, ...]
    truth: BurstTruth


def burst_seed(seed: int, name: str) -> int:
    """A burst's seed from the run's seed and the photo's name (not its position in the list)."""
    return zlib.crc32(f"{seed}/{name}".encode())


def _frame_transform(zoom: float, style: BurstStyle, seed: int) -> A.Compose:
    import albumentations as A

    side = style.occluder
    return A.Compose(
        [
            A.Affine(scale=(zoom, zoom), translate_percent={"x": (-style.shake, style.shake),
                                                           "y": (-style.shake, style.shake)},
                     rotate=(-style.tilt_deg, style.tilt_deg), border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0),
            A.MotionBlur(blur_limit=(3, 7), p=style.blur),
            A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=side, hole_width_range=side,
                            fill=OCCLUDER_GREY, p=style.occlusion),
        ],
        # clip + min_visibility: a box cut by the zoom or covered by the occluder beyond
        # 1 - min_visible leaves the frame's labels (albumentations' own bookkeeping).
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["objects"], min_visibility=style.min_visible,
                                 clip=True),
        seed=seed,
    )


def make_burst(image: np.ndarray, xyxy: np.ndarray, labels: Sequence[str], name: str, source: str,
               style: BurstStyle, seed: int) -> Burst:
    """One photo -> one burst; ``xyxy`` are its labelled boxes (pixels), ``labels`` their class names."""
    rng = np.random.default_rng(seed)
    count = int(rng.integers(style.min_frames, style.max_frames + 1))
    final_zoom = float(rng.uniform(*style.zoom))
    h, w = image.shape[:2]
    boxes = np.clip(np.asarray(xyxy, np.float32).reshape(-1, 4), 0, [w, h, w, h])
    keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)  # albumentations refuses empty boxes
    objects = np.flatnonzero(keep)
    frames, visible, frame_boxes = [], [], []
    for index in range(count):
        zoom = 1.0 + (final_zoom - 1.0) * index / max(count - 1, 1)  # the hopper comes closer over the burst
        transform = _frame_transform(zoom, style, int(rng.integers(2**31)))
        out = transform(image=image, bboxes=boxes[keep], objects=objects.tolist())
        frames.append(out["image"])
        visible.append(np.asarray(out["objects"], np.int64))
        frame_boxes.append(np.asarray(out["bboxes"], np.float32).reshape(-1, 4))
    return Burst(name, source, tuple(frames), BurstTruth(tuple(labels), tuple(visible), tuple(frame_boxes)))


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


def bursts(items: Sequence[LabelledImage], names: Sequence[str], style: BurstStyle, seed: int) -> Iterator[Burst]:
    """The burst of each labelled photo, made when needed (a split's bursts do not fit in memory)."""
    for item in items:
        image = cv2.imread(str(item.image))
        if image is None:
            raise EvaluateError(f"{item.image}: not a readable image")
        xyxy, classes = read_labels(item.label, image.shape[1], image.shape[0])
        bad = sorted({int(c) for c in classes if not 0 <= c < len(names)})
        if bad:
            raise EvaluateError(f"{item.label}: class ids {bad} outside the data's {len(names)} names")
        labels = [names[int(c)] for c in classes]
        yield make_burst(image, xyxy, labels, item.image.name, item.source, style,
                         burst_seed(seed, item.image.name))


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
