"""Evidence photos (contaminated, sampled and uncertain lifts): privacy first, then small.

Order matters: downscale (cheaper blur, smaller file), then hide everything outside the hopper
polygon (pavement, people, number plates never leave the truck recognisable); the JPEG is kept
under ``max_bytes`` (the broker drops a larger packet with the connection). No box is drawn on the
photo: it is labelling and training material, so the model's boxes travel beside it as data
(``Evidence.detections``) and the dashboard draws them. A copy is kept on the device for ``retention_days``
(7 by default, docs/privacy.md): a background thread deletes older copies every hour, whether or not
new photos arrive (a parked truck's agent runs for weeks without a contaminated lift). The same pass
drops the outbox's unsent photos older than that (``Outbox.expire_photos``): weeks without signal
keep no photo longer on the truck. The local copies give way first on a short disk: none is written
with less than ``KEEP_FREE_BYTES`` free, so that they never take the room the outbox needs.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from base.paths import images_in
from edge.camera import burst_key
from edge.config import ConfigError, EvidenceSettings
from edge.disk import free_bytes
from edge.outbox import Outbox
from vision.detection import Detections
from vision.lift import EvidenceFrame, PhotoPolicy
from vision.region import Region
from vision.schema import Evidence, EvidenceBox, EvidenceReason

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
# Local copies are copies (the outbox holds each photo until the server has it): with less than this
# free on their disk they are not written, so the outbox's photos and lifts never lack room for them.
KEEP_FREE_BYTES = 64 * 1024 * 1024
FUTURE_S = 86_400.0  # a photo dated further ahead than this was written by a clock set wrong
# Encodings tried, in order, until one fits evidence.max_bytes: the configured quality, these lower
# ones (40 still shows what lies in the hopper), then the side shrunk by SHRINK down to MIN_SIDE.
FALLBACK_QUALITIES = (70, 55, 40)
SHRINK = 0.75
MIN_SIDE = 320
# Mosaic cells along the longest side outside the hopper: a face filling a quarter of the frame is
# 3 cells across, a number plate's characters less than one.
HIDE_CELLS = 16
SMOOTH_PX = 8  # pixels a mosaic cell while it is smoothed (see hide_outside)


def _qualities(first: int) -> list[int]:
    return [first, *(q for q in FALLBACK_QUALITIES if q < first)]


@dataclass(frozen=True, slots=True)
class Photo:
    jpeg: bytes
    evidence: Evidence


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    scale = min(1.0, max_side / max(image.shape[:2]))
    if scale < 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return image, scale


def hide_outside(image: np.ndarray, region: Region, mode: str) -> np.ndarray:
    """Blur (beyond recognition, and beyond any deblurring) or black out everything outside ``region``.

    The blur is a mosaic: the frame is averaged into ``HIDE_CELLS`` cells along its longest side,
    then smoothed. Averaging throws the detail away, where a Gaussian only attenuates it: a
    plate or a face near the camera under a Gaussian of 1/40 of the side came back readable with
    a Wiener deconvolution. The cells are a share of the frame, so every size the photo is
    re-rendered at hides as much.
    """
    height, width = image.shape[:2]
    if mode == "black":
        hidden = np.zeros_like(image)
    else:
        side = max(width, height)
        cells = (max(1, round(width * HIDE_CELLS / side)), max(1, round(height * HIDE_CELLS / side)))
        mosaic = cv2.resize(image, cells, interpolation=cv2.INTER_AREA)
        # The smoothing that hides the cells' grid (a Gaussian of half a cell) is done at SMOOTH_PX
        # pixels a cell, then scaled up: the cells hold all there is to show, so the photo is the
        # same within a few grey levels, where smoothing at full size cost 150-230 ms a 960 px
        # photo on a 2-core truck (a kernel of half a cell is ~80 px wide there).
        smooth = cv2.resize(mosaic, (cells[0] * SMOOTH_PX, cells[1] * SMOOTH_PX), interpolation=cv2.INTER_LINEAR)
        smooth = cv2.GaussianBlur(smooth, (0, 0), SMOOTH_PX / 2)
        hidden = cv2.resize(smooth, (width, height), interpolation=cv2.INTER_LINEAR)
    # Copied under the mask by OpenCV: numpy's broadcast np.where took ~10 ms a 960 px photo.
    return cv2.copyTo(image, region.mask(width, height), hidden)


def as_bgr8(image: np.ndarray) -> np.ndarray:
    """3-channel BGR whatever the camera gave (grey, BGRA): a grey frame used to fail the blur's mask."""
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR) if image.shape[2] == 4 else image


def forget_burst(root: Path, key: str) -> int:
    """Delete the photos of burst ``key`` (``NAME@BEGUN``, ``edge.camera.burst_key``) under ``root``,
    then its folder once empty; returns how many photos. The camera's raw frames are personal data
    (docs/privacy.md: analysed, then forgotten); a single burst written in ``root`` itself loses its
    photos, never the root the camera box writes into. Other files are the camera box's own: left."""
    folder = _burst_folder(root, key.rpartition("@")[0])
    if folder is None:
        return 0
    removed = 0
    # Newest first, the oldest photo (the key's BEGUN) last: until the folder is empty it keeps its
    # key, so a scanner listing it mid-way, or an agent restarted after a kill mid-way, finds the
    # burst counted. Deleted in name order, the rest became a new burst and was counted again.
    for path in sorted(images_in(folder), key=_mtime_ns, reverse=True):
        with contextlib.suppress(FileNotFoundError):  # a camera box cleaning up too
            path.unlink()
            removed += 1
    if folder != root:
        with contextlib.suppress(OSError):  # not empty (the camera box's own files): left
            folder.rmdir()
    return removed


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # gone since listed: nothing to keep for last
        return 0


def _burst_folder(root: Path, name: str) -> Path | None:
    return root / name if (root / name).is_dir() else root if root.name == name else None


def burst_on_disk(root: Path, key: str) -> bool:
    """Whether burst ``key`` (``NAME@BEGUN``; a mark from before keyed bursts: ``NAME``) can still be
    read under ``root`` (``edge.consumed``). A folder that cannot be looked at counts as there."""
    name, _, begun = key.rpartition("@")
    try:
        folder = _burst_folder(root, name or begun)
        return folder is not None and (burst_key(folder) == key if name else bool(images_in(folder)))
    except OSError:
        return True


def photo_policy(settings: EvidenceSettings, draw: Callable[[], float]) -> PhotoPolicy:
    """The lifts whose photo the truck keeps besides the contaminated ones (docs/field-loop.md)."""
    return PhotoPolicy(settings.sample_clean_rate, settings.uncertain_band, draw)


def boxes(detections: Detections, names: tuple[str, ...], width: int, height: int) -> list[EvidenceBox]:
    """The detections as fractions of the frame (clipped to it; boxes empty once clipped are left out)."""
    out = []
    scale = np.array([width, height, width, height], float)
    for xyxy, conf, cls in zip(detections.xyxy, detections.confidence, detections.class_id, strict=True):
        x1, y1, x2, y2 = (float(v) for v in np.clip(xyxy / scale, 0.0, 1.0))
        if x2 > x1 and y2 > y1 and 0 <= int(cls) < len(names):
            out.append(EvidenceBox(class_=names[int(cls)], confidence=round(min(max(float(conf), 0.0), 1.0), 4),
                                   x1=round(x1, 5), y1=round(y1, 5), x2=round(x2, 5), y2=round(y2, 5)))
    return out


def make_evidence_dir(settings: EvidenceSettings) -> None:
    """``evidence.dir``, made if missing; ConfigError naming the setting when it cannot be a folder."""
    try:
        settings.dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file there, no permission: say which setting, at start-up
        raise ConfigError(f"evidence.dir: {str(settings.dir)!r} cannot be used as a folder: "
                          f"{error.strerror or error}") from None


class EvidenceStore:
    """Renders evidence photos and keeps local copies for a limited time."""

    def __init__(self, settings: EvidenceSettings, region: Region, names: tuple[str, ...],
                 clock: Callable[[], float] = time.time) -> None:
        self.settings, self.region, self.names = settings, region, names
        make_evidence_dir(settings)
        if region.mask(100, 100).mean() > 255 * 0.98:  # the shipped default: the whole frame
            log.warning("the hopper polygon (hopper) covers the whole frame: evidence photos are not blurred "
                        "anywhere (street, crew, passers-by, number plates); set it to the hopper's outline")
        self._clock = clock  # wall clock (file ages are mtimes); tests pass a fake one
        self.prune_passes = 0  # lets tests wait for a pass instead of sleeping
        self._stop = threading.Event()
        self._pruner: threading.Thread | None = None
        self._short = False  # the disk was short at the last photo: said once, until it has room again

    def _compose(self, frame: EvidenceFrame, max_side: int) -> np.ndarray:
        image, _scale = downscale(as_bgr8(frame.image), max_side)
        return hide_outside(image, self.region, self.settings.outside)

    def render(self, frame: EvidenceFrame, reason: EvidenceReason = EvidenceReason.contaminated) -> Photo | None:
        """The photo as JPEG of at most ``max_bytes``, or None when even the smallest encoding is larger.

        A photo over the broker's max_packet_size would get the truck disconnected at every try, so
        the size is settled here: the configured quality first, then lower qualities, then smaller
        sides (each re-rendered from the frame, so the blur stays right at every size). The boxes are
        fractions of the frame, right at whatever size the photo ends.
        """
        cap, side = self.settings.max_bytes, min(self.settings.max_side, max(frame.image.shape[:2]))
        detections = boxes(frame.detections, self.names, frame.image.shape[1], frame.image.shape[0])
        while True:
            image = self._compose(frame, side)
            for quality in _qualities(self.settings.jpeg_quality):
                ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
                if not ok:
                    raise ValueError("JPEG encoding failed")
                if buffer.size <= cap:
                    jpeg = buffer.tobytes()
                    evidence = Evidence(sha256=hashlib.sha256(jpeg).hexdigest(), width=image.shape[1],
                                        height=image.shape[0], reason=reason, detections=detections)
                    return Photo(jpeg, evidence)
            if side <= MIN_SIDE:
                log.warning("evidence photo over %d bytes even at %d px, quality %d (%d bytes): not sent",
                            cap, side, quality, buffer.size)
                return None
            side = max(MIN_SIDE, int(side * SHRINK))

    def keep(self, event_id: str, photo: Photo) -> Path | None:
        """Local copy under ``<dir>/<YYYY-MM-DD>/<event_id>.jpg``; None when the disk is short."""
        free = free_bytes(self.settings.dir) - len(photo.jpeg)
        if free < KEEP_FREE_BYTES:
            if not self._short:
                log.warning("%s has less than %d MiB free: local copies of evidence photos are not written until "
                            "it has room (the outbox keeps each photo for the server)", self.settings.dir,
                            KEEP_FREE_BYTES >> 20)
            self._short = True
            return None
        if self._short:
            log.warning("%s has room again: local copies of evidence photos are written", self.settings.dir)
            self._short = False
        folder = self.settings.dir / time.strftime("%Y-%m-%d", time.gmtime())
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{event_id}.jpg"
        try:
            path.write_bytes(photo.jpeg)
        except OSError:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)  # no half photo left on a full disk
            raise
        return path

    def start_pruning(self, every_s: float | None = None, outbox: Outbox | None = None,
                      hourly: Callable[[], object] | None = None) -> None:
        """Prune now, then every ``every_s`` (default hourly) in a daemon thread until ``stop_pruning``;
        ``outbox``'s unsent photos past the retention period go too (kept a day at least: a photo is
        not dropped before it had a chance to leave). ``hourly`` runs at each pass but the first, so
        that it counts hours of running, not starts (the check of consumed bursts, ``edge.consumed``)."""
        if self._pruner is not None:
            return
        every_s = PRUNE_EVERY_S if every_s is None else every_s
        self._stop.clear()
        self._pruner = threading.Thread(target=self._prune_loop, args=(every_s, outbox, hourly),
                                        name="evidence-prune", daemon=True)
        self._pruner.start()

    def stop_pruning(self) -> None:
        self._stop.set()
        if self._pruner is not None:
            self._pruner.join(timeout=5)
            self._pruner = None

    def _prune_loop(self, every_s: float, outbox: Outbox | None, hourly: Callable[[], object] | None) -> None:
        first = True
        while True:
            try:
                now = self._clock()
                if outbox is not None:
                    outbox.expire_photos(max(1, self.settings.retention_days) * 86_400, now)
                self.prune(now)
                if hourly is not None and not first:
                    hourly()
            except (OSError, sqlite3.Error):  # a full or flaky disk must not end the schedule: next pass retries
                log.exception("evidence pruning failed; retrying in %.0f s", every_s)
            first = False
            if self._stop.wait(every_s):
                return

    def prune(self, now: float | None = None) -> int:
        """Delete local photos older than the retention period; returns how many."""
        now = self._clock() if now is None else now
        limit = now - self.settings.retention_days * 86_400
        removed = 0
        for path in self.settings.dir.glob("*/*.jpg"):
            try:
                mtime = path.stat().st_mtime
                if mtime < limit:
                    path.unlink(missing_ok=True)
                    removed += 1
                elif mtime > now + FUTURE_S:
                    # Written while the clock ran ahead (an RTC set years on, then corrected by GPS):
                    # its age is unknown, and it would be kept until the clock caught up. Its
                    # retention counts from now instead.
                    os.utime(path, (now, now))
            except FileNotFoundError:  # deleted meanwhile (by hand, or an overlapping pass)
                continue
        for folder in self.settings.dir.iterdir():
            if folder.is_dir() and not any(folder.iterdir()):
                with contextlib.suppress(OSError):  # keep() just made it for a new photo: leave it
                    folder.rmdir()
        if removed:
            log.info("deleted %d evidence photo(s) older than %d days", removed, self.settings.retention_days)
        self.prune_passes += 1
        return removed
