"""What a truck computer lives through: a full or read-only disk, a camera card pulled out, a
clock set wrong. Real mounts (a tiny tmpfs, a read-only remount) where the machine allows them."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.app import Agent
from edge.camera import burst_frames
from edge.config import EvidenceSettings
from edge.evidence import EvidenceStore
from edge.outbox import EVIDENCE, LIFT
from tests.edge.helpers import ScriptedDetector, make_bursts, unique_truck
from tests.edge.test_agent import SCRIPT, settings_for
from vision.detection import Detections
from vision.lift import EvidenceFrame
from vision.region import Region


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a disk that fills up, or that ``remount,ro`` turns read-only."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path) -> None:
    with (mount / "filler").open("wb", buffering=0) as sink:
        try:
            while True:
                sink.write(b"\0" * 4096)
        except OSError:  # ENOSPC: the disk is full
            pass


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_photo_copy_that_cannot_be_written_does_not_stop_the_truck(tmp_path, small_disk, litter_val_images,
                                                                      fault) -> None:
    """The lift and its photo were committed to the outbox, then the local copy failed (evidence.dir
    full, or remounted read-only after an ext4 error): the agent stopped, exit 2, saying the lift
    'could not be kept', and stopped again at the next contaminated lift after each restart."""
    evidence = small_disk / "evidence"
    evidence.mkdir()
    if fault == "full":
        _fill(small_disk)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=3, frames=3)
    settings = settings_for(tmp_path, tmp_path / "bursts", "mqtt://127.0.0.1:9", unique_truck(),
                            evidence={"dir": str(evidence)}, uplink={"flush_timeout_s": 0.5})
    agent = Agent.create(settings, detector=ScriptedDetector(SCRIPT))
    try:
        assert agent.run(once=True) == 1  # no broker here: everything waits in the outbox
        rows = agent.outbox.oldest(limit=100)
    finally:
        agent.close()
    assert [m.kind for m in rows].count(LIFT) == 3  # every lift counted, the truck read on
    assert [m.kind for m in rows].count(EVIDENCE) == 2  # and the photos travel from the outbox
    assert not list(evidence.rglob("*.jpg"))  # no half-written copy left behind


def _wait(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_a_camera_card_pulled_out_and_back_in_is_waited_for(tmp_path, litter_val_images) -> None:
    """The burst root vanished (USB disk unplugged): FileNotFoundError went up through the loop and
    the agent died with a traceback; at the restart the missing source stopped it again (exit 2)."""
    root = tmp_path / "bursts"
    make_bursts(root, litter_val_images, lifts=1, frames=2)
    stream = burst_frames(root, consumed=lambda _key: False, follow=True, settle_s=0)
    assert [next(stream).index, next(stream).index] == [0, 1]
    got: list[tuple[str | None, int]] = []
    reader = threading.Thread(target=lambda: got.extend((f.burst, f.index) for f in [next(stream), next(stream)]),
                              daemon=True)
    shutil.move(root, tmp_path / "away")  # unplugged
    reader.start()
    time.sleep(1.5)  # the agent looks for it meanwhile, and must not die
    assert reader.is_alive() and not got
    shutil.move(tmp_path / "away", root)  # plugged back: its burst was counted already
    make_bursts(tmp_path / "new", litter_val_images, lifts=1, frames=2)
    shutil.move(tmp_path / "new" / "burst-000", root / "burst-001")  # the next lift, written meanwhile
    assert _wait(lambda: len(got) == 2)
    assert [index for _key, index in got] == [2, 3] and all(key and key.startswith("burst-001@") for key, _i in got)


def test_a_burst_dated_in_the_future_is_read_once_it_stops_changing(tmp_path, litter_val_images) -> None:
    """The camera box's clock ahead of ours, or ours set back an hour (a badly set RTC, GPS time
    arriving): the photos' mtimes lie in the future, and the folder waited until our clock caught up."""
    root = tmp_path / "bursts"
    make_bursts(root, litter_val_images, lifts=1, frames=2)
    ahead = time.time() + 3600
    for path in (root / "burst-000").iterdir():
        os.utime(path, (ahead, ahead))
    stream = burst_frames(root, consumed=lambda _key: False, follow=True, settle_s=0.5)
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.extend(next(stream).index for _ in range(2)), daemon=True)
    started = time.monotonic()
    reader.start()
    assert _wait(lambda: len(got) == 2, timeout=10), "a burst dated an hour ahead was never read"
    assert got == [0, 1] and time.monotonic() - started >= 0.5  # still waited to see it settle


def test_a_photo_dated_years_ahead_is_kept_for_the_retention_period_from_now(tmp_path) -> None:
    """Written while the RTC said 2030, the clock then corrected: its mtime kept it for years (privacy:
    7 days). Its retention now counts from the pass that finds it."""
    now = time.time()
    whole = Region.from_points([(0, 0), (1, 0), (1, 1), (0, 1)])
    settings = EvidenceSettings(dir=tmp_path / "ev", retention_days=7)
    store = EvidenceStore(settings, whole, ("bottle",), clock=lambda: now)
    photo = store.render(EvidenceFrame(np.full((64, 64, 3), 90, np.uint8), Detections.from_rows([])))
    assert photo is not None
    path = store.keep("event-1", photo)
    years_ahead = now + 4 * 365 * 86_400
    os.utime(path, (years_ahead, years_ahead))
    assert store.prune(now) == 0 and path.exists()  # not yet 7 days, counted from now
    assert store.prune(now + 6 * 86_400) == 0 and path.exists()
    assert store.prune(now + 7.1 * 86_400) == 1 and not path.exists()
