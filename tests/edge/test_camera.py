"""Frames from burst folders and video files; the motion trigger finds lifts in a real-photo clip."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera import Backoff, Frame, SourceError, burst_frames, frames, throttle
from edge.prefetch import prefetch
from edge.trigger import MotionTrigger
from tests.edge.helpers import make_bursts
from vision.region import Region


def write_clip(path: Path, background: np.ndarray, item: np.ndarray, moving: range, count: int) -> Path:
    """A 10 fps clip of ``background`` with ``item`` sliding across during the ``moving`` frames."""
    h, w = background.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    for index in range(count):
        image = background.copy()
        if index in moving:
            x = 10 + 12 * (index - moving.start)
            image[60:60 + item.shape[0], x:x + item.shape[1]] = item
        writer.write(image)
    writer.release()
    return path


@pytest.fixture
def photo(litter_val_images: list[Path]) -> np.ndarray:
    return cv2.resize(cv2.imread(str(litter_val_images[0])), (320, 240))


def _name(key: str | None) -> str:
    """The folder name in a burst key (``NAME@BEGUN``, ``edge.camera.burst_key``)."""
    assert key is not None and "@" in key, key
    return key.rpartition("@")[0]


def test_burst_folders_skip_consumed_and_unreadable(tmp_path, litter_val_images) -> None:
    make_bursts(tmp_path, litter_val_images, lifts=3, frames=2)
    (tmp_path / "burst-001" / "broken.jpg").write_bytes(b"not a jpeg")
    seen = [(_name(f.burst), f.index) for f in burst_frames(tmp_path, consumed=lambda key: _name(key) == "burst-002")]
    assert seen == [("burst-000", 0), ("burst-000", 1), ("burst-001", 2), ("burst-001", 3)]


def test_follow_waits_for_a_settled_burst(tmp_path, litter_val_images) -> None:
    make_bursts(tmp_path, litter_val_images, lifts=2, frames=1)
    old = time.time() - 60

    def age(burst: str) -> None:
        for path in (tmp_path / burst).iterdir():
            os.utime(path, (old, old))

    age("burst-001")  # burst-000, first by name, is still being written: held back
    stream = burst_frames(tmp_path, consumed=lambda _k: False, follow=True, settle_s=30)
    assert _name(next(stream).burst) == "burst-001"
    age("burst-000")  # the camera box has finished it
    assert _name(next(stream).burst) == "burst-000"


def test_video_file_frames_and_throttle(tmp_path, photo) -> None:
    clip = write_clip(tmp_path / "clip.avi", photo, photo[:40, :40], range(0), 20)
    all_frames = list(frames(str(clip)))
    assert len(all_frames) == 20 and all_frames[0].image.shape == (240, 320, 3)
    assert (all_frames[-1].captured_at - all_frames[0].captured_at).total_seconds() == pytest.approx(1.9, abs=0.05)
    assert len(list(throttle(iter(all_frames), rate=5))) == 10


@pytest.mark.parametrize(("source", "message"), [("missing.mp4", "no such file"), (__file__, "not a video file"),
                                               ("usb:abc", "a USB camera is usb:N")])
def test_unusable_sources(source: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        frames(source)


def test_motion_trigger_finds_one_lift(tmp_path, photo, litter_val_images) -> None:
    item = cv2.resize(cv2.imread(str(litter_val_images[1])), (60, 60))
    clip = write_clip(tmp_path / "lift.avi", photo, item, range(10, 22), 40)
    trigger = MotionTrigger(Region.from_points([(0, 0), (1, 0), (1, 1), (0, 1)]), threshold=0.01, quiet_frames=4)
    keys = [trigger.lift_of(frame) for frame in frames(str(clip))]
    lifted = [i for i, key in enumerate(keys) if key is not None]
    assert set(keys) == {None, "motion-1"}
    assert lifted[0] == 10 and 22 <= lifted[-1] <= 27  # ends after the quiet frames


def test_motion_outside_the_hopper_is_ignored(tmp_path, photo, litter_val_images) -> None:
    item = cv2.resize(cv2.imread(str(litter_val_images[1])), (60, 60))
    clip = write_clip(tmp_path / "lift.avi", photo, item, range(10, 22), 30)
    bottom = Region.from_points([(0, 0.7), (1, 0.7), (1, 1), (0, 1)])  # the item slides across y 60-120
    trigger = MotionTrigger(bottom, threshold=0.01)
    assert {trigger.lift_of(frame) for frame in frames(str(clip))} == {None}


def test_backoff() -> None:
    backoff = Backoff(1, 5)
    assert [backoff.next() for _ in range(5)] == [1, 2, 4, 5, 5]
    backoff.reset()
    assert backoff.next() == 1


def test_live_source_reconnects_after_the_stream_stops(tmp_path, photo) -> None:
    from itertools import islice

    from edge.camera import video_frames

    clip = write_clip(tmp_path / "cam.avi", photo, photo[:40, :40], range(0), 5)
    got = list(islice(video_frames(str(clip), live=True, backoff=Backoff(0.01, 0.02)), 12))
    assert [f.index for f in got] == list(range(12))  # 5 frames, stream "drops", reconnects, goes on


class CountingBackoff(Backoff):
    """Gives up (raises) after ``limit`` waits, so the test can count the retries."""

    def __init__(self, limit: int) -> None:
        super().__init__(0.001, 0.001)
        self.limit, self.calls = limit, 0

    def next(self) -> float:
        self.calls += 1
        if self.calls > self.limit:
            raise TimeoutError
        return super().next()


def test_live_source_unavailable_keeps_retrying(caplog) -> None:
    from edge.camera import video_frames

    backoff = CountingBackoff(limit=4)
    with pytest.raises(TimeoutError):
        next(video_frames("/nonexistent/cam.avi", live=True, backoff=backoff))
    assert backoff.calls == 5  # retried on every failure; only the test's back-off gave up
    assert caplog.text.count("unavailable; retrying") == 4


def numbered(count: int, fail_at: int | None = None) -> Iterator[Frame]:
    for index in range(count):
        if index == fail_at:
            raise SourceError("camera unplugged")
        yield Frame(np.full((2, 2, 3), index, np.uint8), datetime.now(UTC), index)


def test_prefetch_keeps_order_and_raises_source_errors_in_the_consumer() -> None:
    assert [f.index for f in prefetch(numbered(7))] == list(range(7))
    assert [f.index for f in prefetch(numbered(3), depth=0)] == [0, 1, 2]
    seen: list[int] = []
    with pytest.raises(SourceError, match="unplugged"):
        for frame in prefetch(numbered(9, fail_at=4)):
            seen.append(frame.index)
    assert seen == [0, 1, 2, 3]


def test_prefetch_reads_a_bounded_number_ahead_and_stops_when_closed() -> None:
    produced: list[int] = []
    closed = threading.Event()

    def source() -> Iterator[Frame]:
        try:
            for frame in numbered(1000):
                produced.append(frame.index)
                yield frame
        finally:
            closed.set()

    stream = prefetch(source(), depth=2)
    assert next(stream).index == 0
    for _ in range(1000):  # the reader fills the queue (2) and holds one more it cannot hand over
        if len(produced) >= 4:
            break
        threading.Event().wait(0.01)
    threading.Event().wait(0.3)  # room for a reader that would overrun the bound to do so
    assert len(produced) == 4
    stream.close()
    assert closed.wait(10), "the reader thread did not close its source"


@pytest.mark.parametrize("fail_at", [None, 2])
def test_prefetch_leaves_no_thread_once_its_frames_are_over(fail_at: int | None) -> None:
    """A source slow to close (a camera released, a folder scan ended): the reader thread was still
    closing it when the last frame (or the source's error) had come, a thread left behind, which
    made the pipeline's own leftover-thread check fail (seen once in a full run)."""

    class SlowToClose(Iterator[Frame]):  # a capture whose release takes a moment, after its last frame
        def __init__(self) -> None:
            self.frames = numbered(4, fail_at=fail_at)

        def __next__(self) -> Frame:
            return next(self.frames)

        def close(self) -> None:
            threading.Event().wait(0.3)

    seen: list[int] = []
    before = set(threading.enumerate())  # other tests' readers, still on a source that never yields
    try:
        seen.extend(f.index for f in prefetch(SlowToClose()))
    except SourceError:
        assert fail_at is not None
    assert seen == list(range(fail_at if fail_at is not None else 4))
    assert not [t.name for t in set(threading.enumerate()) - before if t.name == "frame-prefetch"]


def test_a_photo_removed_while_its_burst_is_read_is_skipped(tmp_path) -> None:
    from edge.camera import read_image

    assert read_image(tmp_path / "gone.jpg") is None  # was FileNotFoundError: the agent crashed


def test_the_last_photo_of_each_burst_ends_its_lift(tmp_path, litter_val_images) -> None:
    make_bursts(tmp_path, litter_val_images, lifts=2, frames=3)
    (tmp_path / "burst-001" / "zz-broken.jpg").write_bytes(b"not a jpeg")  # the last readable one ends it
    seen = [(_name(f.burst), f.index, f.ends_lift) for f in burst_frames(tmp_path, consumed=lambda _k: False)]
    assert [s for s in seen if s[2]] == [("burst-000", 2, True), ("burst-001", 5, True)]
    assert len(seen) == 6


def test_a_burst_folder_name_used_again_is_a_new_lift(tmp_path, litter_val_images) -> None:
    """A camera box whose counter starts again (a reset, a new card) writes ``burst-000`` anew: a
    new lift, where keyed by name it was skipped, by the running agent (done) and after a restart
    (consumed)."""
    import os

    make_bursts(tmp_path, litter_val_images, lifts=1, frames=2)
    stream = burst_frames(tmp_path, consumed=lambda _k: False, follow=True, settle_s=0)
    first = {next(stream).burst, next(stream).burst}
    assert len(first) == 1 and _name(next(iter(first))) == "burst-000"
    shot = min(p.stat().st_mtime for p in (tmp_path / "burst-000").iterdir())
    for photo in (tmp_path / "burst-000").iterdir():  # the old burst gone, a new one under its name
        photo.unlink()
    make_bursts(tmp_path / "again", litter_val_images[2:], lifts=1, frames=2)
    for photo in (tmp_path / "again" / "burst-000").iterdir():
        os.utime(photo, (shot + 1,) * 2)  # a second later (file times may tick coarser than copies)
        photo.rename(tmp_path / "burst-000" / photo.name)
    again = next(stream).burst
    assert _name(again) == "burst-000" and again not in first
    restarted = burst_frames(tmp_path, consumed=first.__contains__)
    assert {f.burst for f in restarted} == {again}


def test_a_late_photo_in_a_counted_burst_does_not_count_it_again(tmp_path, litter_val_images) -> None:
    import shutil

    make_bursts(tmp_path, litter_val_images, lifts=1, frames=2)
    stored = {f.burst for f in burst_frames(tmp_path, consumed=lambda _k: False)}
    shutil.copy(litter_val_images[5], tmp_path / "burst-000" / "zz-late.jpg")  # newer than the burst's first photo
    assert [f.burst for f in burst_frames(tmp_path, consumed=stored.__contains__)] == []


def test_closing_the_prefetch_ends_an_idle_scanner_thread(tmp_path: Path, litter_val_images: list[Path]) -> None:
    """A live truck's burst scanner between two bursts: closing the frames (the agent stopping) left
    its reader thread listing the empty folder every 0.5 s for good (it looked at its stop only when
    it had a frame to hand over)."""
    make_bursts(tmp_path / "root", litter_val_images, lifts=1, frames=1)
    before = set(threading.enumerate())
    stop = threading.Event()
    stream = prefetch(frames(str(tmp_path / "root"), follow=True, settle_s=0, stop=stop), stop=stop)
    assert next(stream).index == 0  # the one burst; the scanner now waits for the next
    readers = [t for t in set(threading.enumerate()) - before if t.name == "frame-prefetch"]
    assert len(readers) == 1
    time.sleep(0.7)  # idle: a pass or two over the folder
    started = time.monotonic()
    stream.close()
    readers[0].join(5)
    assert not readers[0].is_alive(), "the idle scanner's thread outlived close()"
    assert time.monotonic() - started < 2  # promptly: not at its next frame, which may never come
