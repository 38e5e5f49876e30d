"""Synthetic bursts: one labelled photo -> the 5-8 frames a hopper camera shoots of it during a lift.

Camera shake, a zoom that grows as the hopper comes closer, motion blur and an occluder; the labels
follow the pixels (albumentations' own box bookkeeping). ``training.lifts`` runs them through the
truck's pipeline to measure lift counting.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from training.evaluate import EvaluateError, LabelledImage
from training.labels import read_labels

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
