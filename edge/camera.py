"""Frames from the truck's camera: burst folders, video files, RTSP/HTTP streams or USB cameras.

``frames(source)`` is a plain generator of ``Frame``. Live sources never end on a transient: a
failed read reconnects with exponential back-off. Burst folders (one folder of stills per lift,
as written by camera boxes that shoot a burst at each emptying) carry their lift in ``Frame.burst``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from base.paths import images_in
from edge.camera_clock import CameraClock

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mjpeg", ".mjpg"}
# Bursts handed out lately, remembered even once their folder is no longer listed: their lifts may
# still be between the prefetch queue and the outbox (a few frames), far fewer than this.
RECENT_BURSTS = 64
# A folder that appeared between two listings at most this far apart was written then: it tells the
# camera box's clock (edge.camera_clock). Further apart (the loop busy with other bursts), it may have
# waited there for as long: not a sample.
LIVE_GAP_S = 5.0
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


class Change(NamedTuple):
    """A settled folder's last change: its newest mtime (the camera box's clock) and when this agent
    saw it (its own clock)."""

    newest_ns: int
    seen_at: datetime


class _Settling:
    """Whether a burst folder has not changed for ``settle_s`` (the camera box may still be writing).

    A folder this agent has seen unchanged for ``settle_s`` of its monotonic clock is settled. One
    that was there when the scan began (a backlog) is also settled at once by its newest mtime
    ``settle_s`` in the past; never one that appeared since (``appeared``): a camera box's clock
    minutes behind made every burst look settled at first sight, and its lift was cut to the photos
    written by then (the others, landing later, were never counted).
    """

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self._seen: dict[Path, tuple[tuple[int, int, int], float]] = {}  # folder -> (look, since)

    def __call__(self, folder: Path, appeared: bool = False) -> Change | None:
        """None while the folder may still change; else its last change."""
        look, now = _look(folder), time.monotonic()
        seen = self._seen.get(folder)
        if seen is None or seen[0] != look:
            self._seen[folder] = seen = (look, now)
        stamped_long_ago = not appeared and time.time() - look[1] / 1e9 >= self.settle_s
        if not stamped_long_ago and now - seen[1] < self.settle_s:
            return None
        del self._seen[folder]  # settled: only folders still changing are watched
        return Change(look[1], datetime.now(UTC) - timedelta(seconds=now - seen[1]))

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


def _burst(photos: list[Path], key: str, start_index: int, clock: CameraClock | None = None) -> Iterator[Frame]:
    """The burst's readable photos as frames, the last one marked ``ends_lift``; their times on the
    agent's clock as far as ``clock`` knows the camera box's."""
    previous: Frame | None = None
    for frame in _burst_photos(photos, key, start_index):
        if clock is not None:
            frame = replace(frame, captured_at=clock.correct(frame.captured_at))
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


def _idle(delay: float, stop: threading.Event | None) -> bool:
    """Wait ``delay`` (a live source between frames or retries); True when ``stop`` was set meanwhile:
    the reader of a closed ``edge.prefetch`` then ends, where it waited on for a frame that may never come."""
    if stop is None:
        time.sleep(delay)
        return False
    while delay > 0 and not stop.is_set():  # time.sleep in short steps (tests script this module's clock)
        time.sleep(min(delay, 0.5))
        delay -= 0.5
    return stop.is_set()


def burst_frames(
    root: Path, consumed: Callable[[str], bool], follow: bool = False, settle_s: float = 2.0,
    clock: CameraClock | None = None, stop: threading.Event | None = None,
) -> Iterator[Frame]:
    """Frames of every burst folder under ``root`` not yet consumed (by ``burst_key``), oldest name first.

    With ``follow`` the root is watched for new bursts (a live truck); otherwise the generator
    ends after the bursts present now. A root holding images directly is a single burst. With
    ``clock``, a burst seen appearing alone between two listings tells it the camera box's clock
    (``edge.camera_clock``), and every burst's times are corrected by what it knows.
    """
    if not root.is_dir():
        raise SourceError(f"{root}: burst folder root not found")
    # What the scanner remembers is what the root holds now: the folders listed (their mtime and key,
    # so that a day's bursts are not re-read at every pass) and which of their keys are counted. They
    # used to be kept for every burst ever seen, two entries a lift for months. A burst forgotten here
    # and seen again (a card put back) is asked of ``consumed`` (the outbox's durable marks) again.
    index = 0
    keys: dict[Path, tuple[int, str | None]] = {}  # folder listed -> (its mtime, its key)
    done: set[str] = set()  # keys of listed folders already handed out or found consumed
    # the last bursts handed out, whatever the listing says: their lifts may not be in the outbox yet
    recent: deque[str] = deque(maxlen=RECENT_BURSTS)
    settled, backoff, missing = _Settling(settle_s), Backoff(), False
    before: tuple[set[Path], float] | None = None  # the previous listing and its tick; None at the start
    # and when the root is back (a card put back brings its folders at once: none appeared one by one)
    appeared: dict[Path, bool] = {}  # folders that appeared since the scan began -> seen being written
    while True:
        try:
            folders = sorted(p for p in root.iterdir() if p.is_dir()) or ([root] if _images(root) else [])
        except OSError as error:  # the camera box's card or USB disk is gone (unplugged, remounted)
            if not follow:
                raise SourceError(f"{root}: burst folder root cannot be read: {error.strerror or error}") from None
            missing, delay, before = True, backoff.next(), None
            log.warning("burst folder root %s cannot be read (%s); retrying in %.0f s", root,
                        error.strerror or error, delay)
            if _idle(delay, stop):
                return
            continue
        if missing:
            log.info("burst folder root %s is back", root)
            missing = False
            backoff.reset()
        listed, listed_at = set(folders), time.monotonic()
        if before is not None:
            new = listed - before[0]
            live = len(new) == 1 and listed_at - before[1] <= LIVE_GAP_S
            appeared.update((folder, live) for folder in new)
        appeared = {folder: live for folder, live in appeared.items() if folder in listed}
        before = listed, listed_at
        settled.forget(listed)
        keys = {folder: seen for folder, seen in keys.items() if folder in listed}
        done &= {key for _stamp, key in keys.values()}
        for folder in folders:
            try:
                stamp = folder.stat().st_mtime_ns  # moves when a photo is added or removed
                if (known := keys.get(folder)) is not None and known[0] == stamp and known[1] in done:
                    continue
                change = settled(folder, folder in appeared) if follow else None
                if follow and change is None:
                    continue
                photos = _images(folder)  # listed once: keyed, then read
            except OSError:  # removed since listed (a camera box cleaning up, the card pulled out)
                continue
            key = _key(folder.name, photos)  # None: no photo yet, looked at again on the next pass
            keys[folder] = stamp, key
            if key is None:
                continue
            live = appeared.pop(folder, False)
            if key in done:
                continue
            done.add(key)
            if key in recent or consumed(key):
                continue
            recent.append(key)
            if live and change is not None and clock is not None:
                # written while this agent watched: the last change it saw, against the camera's stamp
                clock.observe(change.seen_at, datetime.fromtimestamp(change.newest_ns / 1e9, UTC))
            for frame in _burst(photos, key, index, clock):
                index = frame.index + 1
                yield frame
        if not follow or _idle(0.5, stop):
            return


def _open_capture(target: str | int) -> cv2.VideoCapture:
    return cv2.VideoCapture(target) if isinstance(target, int) else cv2.VideoCapture(target, cv2.CAP_FFMPEG)


def video_frames(
    target: str | int, live: bool, backoff: Backoff | None = None, resume_after: int = -1,
    stop: threading.Event | None = None,
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
            if _idle(delay, stop):
                return
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
        if _idle(delay, stop):
            return


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
    settle_s: float = 2.0, resume_after: int = -1, clock: CameraClock | None = None,
    stop: threading.Event | None = None,
) -> Iterator[Frame]:
    """Frames from ``source``: a burst root folder, a video file, ``usb:N`` or a stream URL; ``clock``
    corrects burst photos' times (``burst_frames``); a live source waiting ends once ``stop`` is set."""
    check_source(source)
    if _is_live(source):
        usb = source.startswith("usb:") or source.isdigit()
        return video_frames(int(source.removeprefix("usb:")) if usb else source, live=True, stop=stop)
    if Path(source).is_dir():
        return burst_frames(Path(source), consumed, follow, settle_s, clock, stop)
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
