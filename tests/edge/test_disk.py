"""The truck's disk over weeks without signal: a full disk costs photos, never a lift, and says so;
unsent photos are kept no longer than the retention period. Real mounts: a small tmpfs filled up."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from edge.app import Agent
from edge.config import EvidenceSettings
from edge.evidence import EvidenceStore
from edge.outbox import EVIDENCE, LIFT, Outbox
from tests.edge.helpers import ScriptedDetector, make_bursts, unique_truck
from tests.edge.test_agent import SCRIPT, settings_for
from tests.edge.test_evidence import FakeClock, wait_for
from vision.detection import Detections
from vision.lift import EvidenceFrame
from vision.region import Region

PHOTO = bytes(range(256)) * 400  # 100 kB, a photo's usual size
LIFT_JSON = b'{"sequence": 0, "counts": {}}' * 30


def mount(path: Path, size: str) -> Path:
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    return path


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a truck's disk, a thousand times smaller."""
    yield mount(tmp_path / "disk", "2m")
    subprocess.run(["umount", "-l", str(tmp_path / "disk")], check=False)


@pytest.fixture
def big_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs: room for the outbox's 8 MiB reserve."""
    yield mount(tmp_path / "big", "24m")
    subprocess.run(["umount", "-l", str(tmp_path / "big")], check=False)


def fill(mount: Path) -> None:
    """Another program (the system's logs) takes every byte left."""
    with (mount / "filler").open("ab", buffering=0) as sink:
        try:
            while True:
                sink.write(b"\0" * 4096)
        except OSError:  # ENOSPC
            pass


def test_a_full_disk_drops_the_oldest_photos_never_a_lift(disk: Path, caplog) -> None:
    """The write of a lift and its photo failed with 'database or disk is full', and every lift after
    it: the truck stopped (exit 2) at each restart while its outbox was full of photos."""
    outbox = Outbox(disk / "outbox.sqlite3", reserve_bytes=256 * 1024)
    for n in range(300):
        outbox.put_lift(f"event-{n}", ("t/lift", LIFT_JSON), ("t/evidence", PHOTO) if n % 2 == 0 else None,
                        f"burst-{n}@1")
        if n == 10:
            fill(disk)
    rows = outbox.oldest(limit=1000)
    assert [r.event_id for r in rows if r.kind == LIFT] == [f"event-{n}" for n in range(300)]
    photos = [r.event_id for r in rows if r.kind == EVIDENCE]
    assert photos and photos == sorted(photos, key=lambda e: int(e.split("-")[1]))[-len(photos):]
    assert photos[-1] == "event-298"  # the newest photos are the ones kept
    assert outbox.photos_dropped() == 150 - len(photos)
    assert all(outbox.is_consumed(f"burst-{n}@1") for n in range(300))
    assert "disk full" in caplog.text and "every lift is kept" in caplog.text


def test_the_full_disk_is_said_once_naming_the_folder_free_space_reserve_and_what_to_do(disk: Path, caplog) -> None:
    """The technician read "the disk of the outbox ... is full (262144 bytes free): its reserve given up":
    full with space free (the reserve just given back was counted), no unit, no word of what to do."""
    outbox = Outbox(disk / "outbox.sqlite3", reserve_bytes=256 * 1024)
    for n in range(60):
        outbox.put_lift(f"event-{n}", ("t/lift", LIFT_JSON), ("t/evidence", PHOTO) if n % 2 == 0 else None)
        if n == 10:
            fill(disk)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, errors
    message = errors[0]
    assert message.startswith(f"disk full: {disk} (the outbox's folder) has 0.0 MiB free"), message
    assert "gave up its 0.2 MiB reserve" in message and "every lift is kept" in message
    assert f"free space on {disk}" in message and "made again once 0.5 MiB is free" in message
    assert "is short" not in caplog.text  # one word for one state: the photos dropped next say "disk full" too
    outbox.close()


def test_the_truck_starts_and_counts_on_when_its_disk_is_full(tmp_path, big_disk: Path, litter_val_images) -> None:
    """Weeks without signal, and the disk filled up: the agent could not even open its outbox
    ('disk I/O error', exit 2); with room to open it, it stopped at its first lift, saying the lift
    could not be kept, and again at every restart."""
    path = big_disk / "outbox.sqlite3"
    backlog = Outbox(path)
    for n in range(8):  # the weeks before: lifts and photos waiting for the link
        backlog.put_lift(f"old-{n}", ("t/lift", LIFT_JSON), ("t/evidence", PHOTO))
    backlog.close()
    fill(big_disk)
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=3, frames=3)
    settings = settings_for(tmp_path, tmp_path / "bursts", "mqtt://127.0.0.1:9", unique_truck(),
                            outbox={"path": str(path)}, uplink={"flush_timeout_s": 0.5})
    agent = Agent.create(settings, detector=ScriptedDetector(SCRIPT))
    try:
        assert agent.run(once=True) == 1  # no broker: everything waits in the outbox
        rows = agent.outbox.oldest(limit=100)
        stats = agent.stats()
    finally:
        agent.close()
    lifts = [r.event_id for r in rows if r.kind == LIFT]
    assert lifts[:8] == [f"old-{n}" for n in range(8)] and len(lifts) == 11  # no lift lost, old or new
    assert stats.outbox_photos_dropped > 0 and stats.outbox_depth == len(rows)  # the heartbeat says it
    assert stats.disk_short and stats.outbox_photos_expired == 0  # the fleet page flags the truck


def test_local_copies_give_way_first_on_a_short_disk(disk: Path, litter_val_images, caplog) -> None:
    """The local copies (the outbox holds each photo until the server has it) filled the disk to
    the last byte, and then the outbox had no room for the lifts."""
    store = EvidenceStore(EvidenceSettings(dir=disk / "evidence"), Region.from_points([(0, 0), (1, 0), (1, 1)]),
                          ("bottle",))
    image = cv2.resize(cv2.imread(str(litter_val_images[0])), (640, 480))
    photo = store.render(EvidenceFrame(image, Detections.from_rows([])))
    assert photo is not None
    assert store.keep("event-1", photo) is None and store.keep("event-2", photo) is None
    assert not list((disk / "evidence").rglob("*"))
    assert caplog.text.count("local copies of evidence photos are not written") == 1  # said once, not per lift


def test_unsent_photos_expire_after_the_retention_period(tmp_path: Path) -> None:
    """Three weeks without signal kept three weeks of photos on the truck, where the privacy notice
    promises seven days; lifts wait as long as needed."""
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    for n in range(3):
        outbox.put_lift(f"event-{n}", ("t/lift", LIFT_JSON), ("t/evidence", PHOTO))
    # one photo written while the clock ran two years ahead (then corrected by GPS)
    outbox._db.execute("UPDATE messages SET created_at = '2099-01-01T00:00:00.000Z' WHERE event_id = 'event-2'")
    clock = FakeClock()
    store = EvidenceStore(EvidenceSettings(dir=tmp_path / "ev"), Region.from_points([(0, 0), (1, 0), (1, 1)]),
                          ("bottle",), clock=clock)
    clock.now += 3 * 86_400  # the first pass, three days on, finds the photo dated ahead
    store.start_pruning(every_s=0.01, outbox=outbox)
    try:
        clock.now += 3.9 * 86_400
        seen = store.prune_passes
        assert wait_for(lambda: store.prune_passes >= seen + 2)
        assert outbox.depth() == 6  # within the 7 days: all kept
        clock.now += 0.2 * 86_400
        assert wait_for(lambda: outbox.depth() == 4), "a 7.1-day-old unsent photo was kept"
        assert [(r.kind, r.event_id) for r in outbox.oldest()] == [
            (LIFT, "event-0"), (LIFT, "event-1"), (LIFT, "event-2"), (EVIDENCE, "event-2")]
        assert outbox.counter("photos_expired") == 2 and outbox.photos_dropped() == 2
        clock.now += 3.1 * 86_400  # the photo dated ahead: its seven days counted from the pass that found it
        assert wait_for(lambda: outbox.depth() == 3)
    finally:
        store.stop_pruning()


def test_the_agent_expires_unsent_photos_while_it_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("edge.evidence.PRUNE_EVERY_S", 0.01)
    (tmp_path / "bursts").mkdir()
    settings = settings_for(tmp_path, tmp_path / "bursts", "mqtt://127.0.0.1:9", unique_truck(),
                            uplink={"flush_timeout_s": 0.5})
    agent = Agent.create(settings, detector=ScriptedDetector([]))
    clock = FakeClock()
    agent.evidence._clock = clock
    agent.outbox.put_lift("event-0", ("t/lift", LIFT_JSON), ("t/evidence", PHOTO))
    try:
        assert agent.run(once=True) == 1  # no broker: the lift and its photo wait
        clock.now += 8 * 86_400
        assert wait_for(lambda: agent.outbox.depth() == 1), "the running agent kept an 8-day-old unsent photo"
        stats = agent.stats()  # the heartbeat tells age from a full disk
        assert (stats.outbox_photos_expired, stats.outbox_photos_dropped, stats.disk_short) == (1, 0, False)
    finally:
        agent.close()


def test_the_reserve_comes_back_once_the_disk_has_room(disk: Path) -> None:
    outbox = Outbox(disk / "outbox.sqlite3", reserve_bytes=256 * 1024)
    assert outbox.reserve.path.stat().st_size == 256 * 1024
    for n in range(6):
        outbox.put_lift(f"event-{n}", ("t/lift", LIFT_JSON), ("t/evidence", PHOTO))
    fill(disk)
    for n in range(6, 18):
        outbox.put_lift(f"event-{n}", ("t/lift", LIFT_JSON), ("t/evidence", PHOTO))
    assert not outbox.reserve.path.exists() and outbox.photos_dropped() > 0
    (disk / "filler").unlink()  # the logs rotated away
    outbox.put_lift("event-18", ("t/lift", LIFT_JSON))
    assert outbox.reserve.path.stat().st_size == 256 * 1024
    lifts = [r.event_id for r in outbox.oldest(limit=100) if r.kind == LIFT]
    assert lifts == [f"event-{n}" for n in range(19)]
