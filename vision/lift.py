"""LiftRecorder: the tracked detections of one bin lift -> one LiftEvent (+ its evidence frame).

Each track is one item: counted once however many frames show it, labelled by a majority vote
over its frames (confidence-weighted, so one confident frame outweighs two doubtful ones), and
dropped when seen in fewer than ``min_track_frames`` frames (a flicker, a reflection), unless the
lift itself had fewer frames than that (a short burst).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import cv2
import numpy as np

from vision.detection import Detections
from vision.rules import ACCEPTED, Disposition, SortingRules
from vision.schema import MAX_FRAMES, EvidenceReason, GpsFix, LiftEvent, ModelInfo, Stream

SHARPNESS_SIDE = 320  # sharpness is measured on a small grey copy: cheap, and ranks frames the same


@dataclass(frozen=True, slots=True)
class LiftContext:
    """What the truck knows about a lift besides the pictures."""

    truck_id: str
    sequence: int
    gps: GpsFix | None = None
    bin_id: str | None = None


@dataclass(frozen=True, slots=True)
class EvidenceFrame:
    """The sharpest frame showing the worst wrong items (then the most items), and every tracked box on it."""

    image: np.ndarray
    detections: Detections


@dataclass(frozen=True, slots=True)
class PhotoPolicy:
    """Which clean lifts keep a photo for labelling, besides every contaminated one: a random share
    (``sample_rate``, drawn when the lift begins) and those with an item whose best confidence lies in
    ``uncertain`` [low, high). The recorder looks for a clean lift's best frame only while the lift may
    be kept: measuring sharpness on every frame of every clean lift would cost ~2.7 ms a frame."""

    sample_rate: float = 0.0
    uncertain: tuple[float, float] | None = None
    draw: Callable[[], float] = field(default=random.random, repr=False)  # tests pass a fixed draw

    def unsure(self, confidence: float) -> bool:
        return self.uncertain is not None and self.uncertain[0] <= confidence < self.uncertain[1]


@dataclass(frozen=True, slots=True)
class RecordedLift:
    event: LiftEvent
    evidence: EvidenceFrame | None  # the frame to keep, when the lift keeps a photo
    reason: EvidenceReason | None = None  # why: contaminated, uncertain or sample


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian: high for crisp edges, low for motion blur."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    scale = SHARPNESS_SIDE / max(grey.shape)
    if scale < 1:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    _mean, std = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_64F))  # a third faster than numpy's var()
    return float(std[0, 0]) ** 2


class LiftRecorder:
    """``begin`` -> ``add`` per frame -> ``finish``; one lift at a time."""

    def __init__(
        self, names: Sequence[str], rules: SortingRules, model: ModelInfo, min_track_frames: int = 2,
        photos: PhotoPolicy | None = None,
    ) -> None:
        if min_track_frames < 1:
            raise ValueError(f"min_track_frames must be >= 1, got {min_track_frames}")
        self.names, self.rules, self.model = tuple(names), rules, model
        self.min_track_frames = min_track_frames
        self.photos = photos or PhotoPolicy()  # default: contaminated lifts only, as before wire 1.1
        self._stream: Stream | None = None

    @property
    def active(self) -> bool:
        return self._stream is not None

    @property
    def started_at(self) -> datetime:
        return self._started_at

    def severity_map(self, stream: Stream) -> dict[str, Disposition]:
        """Model class -> disposition (info/error/alert) of the classes that are wrong in ``stream``."""
        table = {}
        for name in self.names:
            rule_class = self.rules.canonical(name)
            disposition = self.rules.disposition(stream, rule_class) if rule_class else None
            if disposition not in (None, ACCEPTED):
                table[name] = disposition
        return table

    def begin(self, started_at: datetime, stream: Stream) -> None:
        self._stream, self._started_at, self._frames = stream, started_at, 0
        self._votes: dict[int, Counter[int]] = defaultdict(Counter)
        self._seen: Counter[int] = Counter()
        self._alerted: set[int] = set()
        self._top_conf: dict[int, float] = {}
        self._best: tuple[tuple[int, int, int], int, float] = ((0, 0, 0), 0, 0.0)
        self._evidence: EvidenceFrame | None = None
        rate = self.photos.sample_rate
        self._sampled = rate > 0 and self.photos.draw() < rate
        self._unsure = False  # a detection was seen with a confidence in the uncertain band
        # Detections in the band that never became a track (ByteTrack starts tracks only above its
        # high_conf, 0.45 by default): frames seen, per class. Seen in as many frames as an item
        # needs, the model hesitated over something real, not a one-frame flicker.
        self._hesitant: Counter[int] = Counter()
        self._severity = [self._disposition(name) for name in self.names]

    def _disposition(self, model_class: str) -> Disposition | None:
        rule_class = self.rules.canonical(model_class)
        if rule_class is None or self._stream is None:
            return None
        return self.rules.disposition(self._stream, rule_class)

    def add(self, image: np.ndarray, detections: Detections) -> tuple[str, ...]:
        """Record one frame; returns alert-severity classes seen on tracks for the first time."""
        if self._stream is None:
            raise RuntimeError("add() outside a lift: call begin() first")
        self._frames += 1
        tracked = detections[detections.tracker_id >= 0] if detections.tracker_id.size else Detections.empty()
        alerts = []
        for track, cls, conf in zip(tracked.tracker_id, tracked.class_id, tracked.confidence, strict=True):
            self._votes[int(track)][int(cls)] += float(conf)
            self._seen[int(track)] += 1
            self._top_conf[int(track)] = max(self._top_conf.get(int(track), 0.0), float(conf))
            self._unsure = self._unsure or self.photos.unsure(float(conf))
            if self._severity_of(int(cls)) == Disposition.alert and int(track) not in self._alerted:
                self._alerted.add(int(track))
                alerts.append(self.names[int(cls)])
        hesitant = self._hesitations(detections)
        # the photo shows the items and what the model hesitated over: both for the annotator to judge
        shown = detections[(detections.tracker_id >= 0) | hesitant] if hesitant.any() else tracked
        self._consider_evidence(image, tracked, shown)
        return tuple(alerts)

    def _hesitations(self, detections: Detections) -> np.ndarray:
        """Mask of the untracked detections in the uncertain band (counted per class and frame)."""
        if self.photos.uncertain is None or not detections.tracker_id.size:
            return np.zeros(len(detections), bool)
        low, high = self.photos.uncertain
        mask = (detections.tracker_id < 0) & (detections.confidence >= low) & (detections.confidence < high)
        for cls in set(detections.class_id[mask].tolist()):
            self._hesitant[int(cls)] += 1
        self._unsure = self._unsure or bool(mask.any())
        return mask

    def _severity_of(self, class_id: int) -> Disposition | None:
        return self._severity[class_id] if 0 <= class_id < len(self._severity) else None

    def _wrong(self, tracked: Detections) -> tuple[int, int, int]:
        """(alert, error, info) items on a frame: what the photo must show first. Counted by
        severity, not all together: in the residual bin bottles are ``info`` (missed recycling, not
        contamination), and a frame of three bottles beat the one showing the appliance that made the
        lift contaminated; two closed bags beat the battery that raised the crew alert."""
        severities = Counter(self._severity_of(int(c)) for c in tracked.class_id)
        return severities[Disposition.alert], severities[Disposition.error], severities[Disposition.info]

    def _consider_evidence(self, image: np.ndarray, tracked: Detections, shown: Detections) -> None:
        # The best frame: worst wrong items (alerts, then errors, then info), then most items, then
        # sharpest. Frames without a contaminating item count only while the lift may keep a clean
        # photo (sampled, or an unsure item seen); sharpness (the costly part) only for frames that
        # tie or beat the best so far; an empty frame only fills an empty slot.
        wrong = self._wrong(tracked)
        items = len(tracked)
        if not any(wrong[:2]) and not (self._sampled or self._unsure):
            return
        if (wrong, items) < self._best[:2] or (items == 0 and self._evidence is not None):
            return
        score = (wrong, items, sharpness(image) if items else 0.0)
        if score > self._best or self._evidence is None:
            self._best = score
            self._evidence = EvidenceFrame(image.copy(), shown)

    def _counted(self) -> list[int]:
        """Tracks seen long enough to be items."""
        needed = min(self.min_track_frames, max(self._frames, 1))
        return [track for track in self._votes if self._seen[track] >= needed]

    def counts(self) -> dict[str, int]:
        """Model-class -> items, one per track long enough, labelled by majority vote."""
        counts: Counter[str] = Counter()
        for track in self._counted():
            counts[self.names[self._votes[track].most_common(1)[0][0]]] += 1
        return dict(counts)

    def finish(self, ended_at: datetime, context: LiftContext) -> RecordedLift:
        """Close the lift: judge the counts against the stream's rules, build the LiftEvent."""
        if self._stream is None:
            raise RuntimeError("finish() outside a lift: call begin() first")
        # The model's counts, merged by the aliases once: judging the merged counts merged them again,
        # and an alias onto an aliased class gave error items the counts do not hold (refused on the wire).
        stream, seen = self._stream, self.counts()
        counts, verdict = self.rules.canonical_counts(seen), self.rules.judge(stream, seen)
        event = LiftEvent(
            truck_id=context.truck_id,
            sequence=context.sequence,
            stream=stream,
            started_at=self._started_at,
            ended_at=max(ended_at, self._started_at),
            gps=context.gps,
            bin_id=context.bin_id,
            counts=counts,
            errors=list(verdict.errors),
            contaminated=verdict.contaminated,
            score=verdict.score,
            model=self.model,
            # capped at the wire's bound: a motion-triggered lift has no time limit, and an event over
            # it failed validation, which stopped the agent and lost the lift
            frames=min(self._frames, MAX_FRAMES),
        )
        reason = self._reason(verdict.contaminated)
        self._stream = None
        return RecordedLift(event, self._evidence if reason else None, reason)

    def _reason(self, contaminated: bool) -> EvidenceReason | None:
        """Why the lift keeps a photo: contaminated first (the evidence a manager needs), then an
        item the model was unsure of (its best confidence in the band), then the random sample."""
        if self._evidence is None:
            return None
        if contaminated:
            return EvidenceReason.contaminated
        needed = min(self.min_track_frames, max(self._frames, 1))
        if (any(self.photos.unsure(self._top_conf[track]) for track in self._counted())
                or any(frames >= needed for frames in self._hesitant.values())):
            return EvidenceReason.uncertain
        return EvidenceReason.sample if self._sampled else None
