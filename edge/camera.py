"""Frames from the truck's camera: burst folders, video files, RTSP/HTTP streams or USB cameras.

``frames(source)`` is a plain generator of ``Frame``. Live sources never end on a transient: a
failed read reconnects with exponential back-off. Burst folders (one folder of stills per lift,
as written by camera boxes that shoot a burst at each emptying) carry their lift in ``Frame.burst``.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from base.paths import images_in

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mjpeg", ".mjpg"}
LIVE_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")


class SourceError(ValueError):
    """A source that cannot be read at all (missing file, not a video); names the source."""


@dataclass(frozen=True, slots=True)
class Frame:
    image: np.ndarray  # BGR
    captured_at: datetime
    index: int
    burst: str | None = None  # the burst this frame belongs to: its folder's ``burst_key``
    # The source knows the lift ends here (a burst folder's last photo): the loop closes the lift at
    # once, where a lift used to stay open until the next burst arrived (the round's last for hours).
    ends_lift: bool = False


class Backoff:
    """1 s, 2 s, 4 s ... up to ``maximum``; ``reset`` after a success."""

    def __init__(self, initial: float = 1.0, maximum: float = 30.0) -> None:
        self.initial, self.maximum, self._next = initial, maximum, initial

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


def read_image(path: Path) -> np.ndarray | None:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:  # gone or unreadable since the folder was listed
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


_DIGITS = re.compile(r"(\d+)")


def shot_order(path: Path) -> tuple[tuple[int, int | str], ...]:
    """Sort key: the name with its numbers compared as numbers (``IMG_9`` before ``IMG_10``).

    Camera boxes often number a burst's photos without zero padding; sorted as text, frame 10 came
    before frame 2 and the tracker, seeing every item jump back, counted it again at each jump.
    """
    # numbers before text, as digits sort before letters in plain text order
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(path.name) if part)


def _images(folder: Path) -> list[Path]:
    return sorted(images_in(folder), key=shot_order)


def _look(folder: Path) -> tuple[int, int, int]:
    """(entries, newest mtime in ns, bytes): moves when the camera box adds a photo or writes on."""
    count = newest = size = 0
    for path in folder.iterdir():
        try:
            stat = path.stat()
        except OSError:  # removed since listed
            continue
        count, newest, size = count + 1, max(newest, stat.st_mtime_ns), size + stat.st_size
    return count, newest or folder.stat().st_mtime_ns, size


class _Settling:
    """Whether a burst folder has not changed for ``settle_s`` (the camera box may still be writing).

    Its newest mtime ``settle_s`` in the past says so at once. An mtime in the future (the camera
    box's clock ahead of ours, or ours set back an hour) held its lift back until our clock caught
    up: a folder this agent has seen unchanged for ``settle_s`` of its monotonic clock is settled too.
    """

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self._seen: dict[Path, tuple[tuple[int, int, int], float]] = {}  # folder -> (look, since)

    def __call__(self, folder: Path) -> bool:
        look, now = _look(folder), time.monotonic()
        seen = self._seen.get(folder)
        if seen is None or seen[0] != look:
            self._seen[folder] = seen = (look, now)
        if time.time() - look[1] / 1e9 < self.settle_s and now - seen[1] < self.settle_s:
            return False
        del self._seen[folder]  # settled: only folders still changing are watched
        return True

    def forget(self, listed: set[Path]) -> None:
        """Folders removed before they settled are not watched: memory stays flat over weeks."""
        self._seen = {folder: seen for folder, seen in self._seen.items() if folder in listed}


def burst_key(folder: Path) -> str | None:
    """``NAME@BEGUN``: the folder's name and its oldest photo's mtime (ns); None while it holds none.

    A camera box numbers its bursts, and the counter starts again after a reset or a new card:
    keyed by name alone, a new ``burst-0001`` was taken for the one consumed last week and skipped,
    its lift lost. The oldest photo's time tells the two apart and does not move when a late
    photo lands in the folder after its lift was counted (a key over every file would recount it).
    """
    return _key(folder.name, _images(folder))


def _key(name: str, photos: list[Path]) -> str | None:
    times = []
    for path in photos:
        try:
            times.append(path.stat().st_mtime_ns)
        except OSError:  # removed since listed
            continue
    return f"{name}@{min(times)}" if times else None


def _burst(photos: list[Path], key: str, start_index: int) -> Iterator[Frame]:
    """The burst's readable photos as frames, the last one marked ``ends_lift``."""
    previous: Frame | None = None
    for frame in _burst_photos(photos, key, start_index):
        if previous is not None:
            yield previous
        previous = frame
    if previous is not None:
        yield replace(previous, ends_lift=True)


def _burst_photos(photos: list[Path], key: str, start_index: int) -> Iterator[Frame]:
    for offset, path in enumerate(photos):
        image = read_image(path)
        try:
            taken = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except OSError:  # removed while the burst was read (a camera box cleaning up): not a crash
            image = None
        if image is None:
            log.warning("%s: not a readable image, skipped", path)
            continue
        yield Frame(image, taken, start_index + offset, burst=key)


def burst_frames(
    root: Path, consumed: Callable[[str], bool], follow: bool = False, settle_s: float = 2.0
) -> Iterator[Frame]:
    """Frames of every burst folder under ``root`` not yet consumed (by ``burst_key``), oldest name first.

    With ``follow`` the root is watched for new bursts (a live truck); otherwise the generator
    ends after the bursts present now. A root holding images directly is a single burst.
    """
    if not root.is_dir():
        raise SourceError(f"{root}: burst folder root not found")
    index, done = 0, set()
    keys: dict[Path, tuple[int, str | None]] = {}  # folder -> (its mtime, its key): a day's bursts not re-read
    settled, backoff, missing = _Settling(settle_s), Backoff(), False
    while True:
        try:
            folders = sorted(p for p in root.iterdir() if p.is_dir()) or ([root] if _images(root) else [])
        except OSError as error:  # the camera box's card or USB disk is gone (unplugged, remounted)
            if not follow:
                raise SourceError(f"{root}: burst folder root cannot be read: {error.strerror or error}") from None
            missing, delay = True, backoff.next()
            log.warning("burst folder root %s cannot be read (%s); retrying in %.0f s", root,
                        error.strerror or error, delay)
            time.sleep(delay)
            continue
        if missing:
            log.info("burst folder root %s is back", root)
            missing = False
            backoff.reset()
        settled.forget(set(folders))
        for folder in folders:
            try:
                stamp = folder.stat().st_mtime_ns  # moves when a photo is added or removed
                if (known := keys.get(folder)) is not None and known[0] == stamp and known[1] in done:
                    continue
                if follow and not settled(folder):
                    continue
                photos = _images(folder)  # listed once: keyed, then read
            except OSError:  # removed since listed (a camera box cleaning up, the card pulled out)
                continue
            key = _key(folder.name, photos)  # None: no photo yet, looked at again on the next pass
            keys[folder] = stamp, key
            if key is None or key in done:
                continue
            done.add(key)
            if consumed(key):
                continue
            for frame in _burst(photos, key, index):
                index = frame.index + 1
                yield frame
        if not follow:
            return
        time.sleep(0.5)


def _open_capture(target: str | int) -> cv2.VideoCapture:
    return cv2.VideoCapture(target) if isinstance(target, int) else cv2.VideoCapture(target, cv2.CAP_FFMPEG)


def video_frames(
    target: str | int, live: bool, backoff: Backoff | None = None, resume_after: int = -1
) -> Iterator[Frame]:
    """Frames of a video file (ends at its end; starts after ``resume_after``) or a live camera."""
    backoff = backoff or Backoff()
    index = 0
    while True:
        capture = _open_capture(target)
        if not capture.isOpened():
            capture.release()
            if not live:
                raise SourceError(f"{target}: cannot open as a video")
            delay = backoff.next()
            log.warning("camera %s unavailable; retrying in %.0f s", target, delay)
            time.sleep(delay)
            continue
        started = datetime.now(UTC)
        while not live and index <= resume_after and capture.grab():  # skip without decoding
            index += 1
        while True:
            ok, image = capture.read()
            if not ok or image is None:
                break
            backoff.reset()
            at = datetime.now(UTC) if live else started + timedelta(milliseconds=capture.get(cv2.CAP_PROP_POS_MSEC))
            yield Frame(image, at, index)
            index += 1
        capture.release()
        if not live:
            if index == 0:
                raise SourceError(f"{target}: no frame could be decoded")
            return
        delay = backoff.next()
        log.warning("camera %s stopped delivering frames; reconnecting in %.0f s", target, delay)
        time.sleep(delay)


def _is_live(source: str) -> bool:
    return source.startswith("usb:") or source.isdigit() or source.lower().startswith(LIVE_SCHEMES)


def check_source(source: str) -> None:
    """Refuse at start-up a file or folder source that cannot be read (live cameras may come later)."""
    if source.startswith("usb:") and not source.removeprefix("usb:").isdigit():
        raise SourceError(f"{source}: a USB camera is usb:N, N its index (usb:0 for the first)")
    if _is_live(source):
        return
    path = Path(source)
    if path.is_dir():
        return
    if not path.exists():
        raise SourceError(f"{source}: no such file, folder or camera")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise SourceError(f"{source}: not a video file ({', '.join(sorted(VIDEO_SUFFIXES))}) nor a burst folder")
    probe = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    readable = probe.isOpened() and probe.read()[0]
    probe.release()
    if not readable:
        raise SourceError(f"{source}: cannot decode this video")


def frames(
    source: str, consumed: Callable[[str], bool] = lambda _key: False, follow: bool = False,
    settle_s: float = 2.0, resume_after: int = -1,
) -> Iterator[Frame]:
    """Frames from ``source``: a burst root folder, a video file, ``usb:N`` or a stream URL."""
    check_source(source)
    if _is_live(source):
        usb = source.startswith("usb:") or source.isdigit()
        return video_frames(int(source.removeprefix("usb:")) if usb else source, live=True)
    if Path(source).is_dir():
        return burst_frames(Path(source), consumed, follow, settle_s)
    return video_frames(source, live=False, resume_after=resume_after)


def is_file_source(source: str) -> bool:
    """A video file: its lifts are replayable, so progress through it is recorded."""
    return not _is_live(source) and Path(source).is_file()


def throttle(source: Iterator[Frame], rate: float) -> Iterator[Frame]:
    """Drop video frames closer than 1/rate s to the previous one kept (burst frames all pass)."""
    last: datetime | None = None
    gap = timedelta(seconds=1 / rate)
    for frame in source:
        if frame.burst is None and last is not None and frame.captured_at - last < gap:
            continue
        last = frame.captured_at
        yield frame


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


_END = object()


class Prefetched(Iterator[Frame]):
    """The frames of ``prefetch``; ``ready()`` says whether the next one would come without waiting."""

    def __init__(self, frames: Iterator[Frame], ahead: queue.Queue[object] | None) -> None:
        self._frames, self._ahead = frames, ahead

    def __next__(self) -> Frame:
        return next(self._frames)

    def ready(self) -> bool:
        """A frame (or the source's end or error) is waiting: ``next`` returns at once. The edge loop
        asks before it blocks, to finish the frames it has in flight first (``edge.pipeline``)."""
        return self._ahead is None or not self._ahead.empty()

    def close(self) -> None:
        """Stops the reading thread at its next frame (it closes the source)."""
        close = getattr(self._frames, "close", None)
        if close is not None:
            close()


def prefetch(source: Iterator[Frame], depth: int = 2) -> Prefetched:
    """``source`` read ``depth`` frames ahead by a thread: capture and JPEG decode overlap inference.

    OpenCV's decode and onnxruntime's run both release the GIL, so on a 2-core truck computer the
    next frame is decoded while this one is detected. The bounded queue keeps memory flat and
    applies back-pressure: a source faster than the detector waits as it did without the thread.
    An error of the source is raised here, in the consumer, with its own type; closing the result
    stops the thread at its next frame.
    """
    if depth <= 0:
        return Prefetched(iter(source), None)
    ahead: queue.Queue[object] = queue.Queue(maxsize=depth)
    return Prefetched(_read_ahead(source, ahead), ahead)


def _read_ahead(source: Iterator[Frame], ahead: queue.Queue[object]) -> Iterator[Frame]:
    stop = threading.Event()

    def hand_over(item: object) -> bool:
        while not stop.is_set():  # poll, so that a closed consumer never leaves the thread blocked
            try:
                ahead.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for frame in source:
                if not hand_over(frame):
                    return
            hand_over(_END)
        except BaseException as error:  # re-raised in the consumer's thread, with its type
            hand_over(_Failed(error))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # a generator source releases its capture or folder scan in this thread

    thread = threading.Thread(target=produce, name="frame-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = ahead.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
