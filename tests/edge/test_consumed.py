"""The outbox's marks of consumed bursts are forgotten once their burst is gone for good, never while
it can still be read (``edge.consumed``): the table no longer grows by a mark a lift forever, and no
burst is counted twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.app import Agent
from edge.camera import burst_frames, burst_key
from edge.outbox import LIFT, Outbox
from tests.edge.helpers import ScriptedDetector, make_bursts, unique_truck
from tests.edge.test_agent import SCRIPT, settings_for

NOWHERE = "mqtt://127.0.0.1:9"  # no broker: lifts stay in the outbox, which is what counts here
CHECKS = 3  # edge.consumed.GONE_CHECKS, made small: the rule is the same at 168


@pytest.fixture(autouse=True)
def few_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("edge.consumed.GONE_CHECKS", CHECKS)


def _agent(tmp_path: Path, burst_delete: bool) -> Agent:
    settings = settings_for(tmp_path, tmp_path / "bursts", NOWHERE, unique_truck(), uplink={"flush_timeout_s": 0.2},
                            trigger={"burst_delete": burst_delete})
    return Agent.create(settings, detector=ScriptedDetector(SCRIPT))


def _lifts(agent: Agent) -> int:
    return sum(m.kind == LIFT for m in agent.outbox.oldest(limit=1000))


def _restarted(tmp_path: Path, burst_delete: bool) -> int:
    """The lifts in the outbox after a new agent has read the burst root to its end."""
    agent = _agent(tmp_path, burst_delete)
    try:
        agent.run(once=True)
        return _lifts(agent)
    finally:
        agent.close()


def _marks(agent: Agent) -> int:
    return agent.outbox._db.execute("SELECT COUNT(*) FROM consumed").fetchone()[0]


def test_a_burst_still_on_the_disk_keeps_its_mark_and_is_never_counted_again(tmp_path, litter_val_images) -> None:
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=2, frames=2)
    agent = _agent(tmp_path, burst_delete=False)  # the photos stay on the camera's disk
    try:
        agent.run(once=True)
        assert (_lifts(agent), _marks(agent)) == (2, 2)
        for _ in range(CHECKS * 3):
            assert agent.check_bursts() == 0
        assert _marks(agent) == 2
    finally:
        agent.close()
    assert _restarted(tmp_path, burst_delete=False) == 2  # the root read again: nothing counted twice


def test_a_deleted_burst_loses_its_mark_after_enough_checks_only(tmp_path, litter_val_images) -> None:
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=3, frames=2)
    agent = _agent(tmp_path, burst_delete=True)
    try:
        agent.run(once=True)
        assert (_lifts(agent), _marks(agent)) == (3, 3)
        assert not any((tmp_path / "bursts").iterdir())
        for _ in range(CHECKS):  # gone at every check, but not yet for GONE_CHECKS checks after the first
            assert agent.check_bursts() == 0
        assert agent.check_bursts() == 3
        assert _marks(agent) == 0
    finally:
        agent.close()


def test_a_burst_that_comes_back_before_its_mark_goes_is_not_counted(tmp_path, litter_val_images) -> None:
    # The camera box's card pulled out (its mount point empty but readable), then put back
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=2, frames=2)
    agent = _agent(tmp_path, burst_delete=False)
    try:
        agent.run(once=True)
        (tmp_path / "bursts").rename(tmp_path / "card")
        (tmp_path / "bursts").mkdir()
        for _ in range(CHECKS):
            assert agent.check_bursts() == 0
        (tmp_path / "bursts").rmdir()
        (tmp_path / "card").rename(tmp_path / "bursts")
        for _ in range(CHECKS * 2):  # back: the count of checks starts again at its next absence
            assert agent.check_bursts() == 0
        assert _marks(agent) == 2
    finally:
        agent.close()
    assert _restarted(tmp_path, burst_delete=False) == 2


def test_a_root_that_cannot_be_listed_forgets_nothing(tmp_path, litter_val_images) -> None:
    make_bursts(tmp_path / "bursts", litter_val_images, lifts=1, frames=2)
    agent = _agent(tmp_path, burst_delete=True)
    try:
        agent.run(once=True)
        (tmp_path / "bursts").rmdir()  # the card's mount point gone
        for _ in range(CHECKS * 2):
            assert agent.check_bursts() == 0
        assert _marks(agent) == 1
        assert agent.outbox.counter("burst_checks") == 0
    finally:
        agent.close()


def test_a_counted_burst_left_on_the_disk_is_deleted_at_the_next_start(tmp_path, litter_val_images) -> None:
    # The agent stopped between a lift's commit and the deletion of its photos (or mid-burst, on
    # SIGTERM: the lift is committed with the frames read): its raw photos stayed for good.
    left, fresh = make_bursts(tmp_path / "bursts", litter_val_images, lifts=2, frames=2)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.put_lift("e-left", ("t/lift", b"{}"), source_key=burst_key(left))
    outbox.close()
    agent = _agent(tmp_path, burst_delete=True)
    try:
        agent.run(once=True)
        assert not left.exists() and not fresh.exists()
        assert _lifts(agent) == 2  # the one committed before, and the fresh burst: not counted twice
    finally:
        agent.close()


def test_an_outbox_from_before_gets_the_column_and_keeps_its_marks(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE consumed (source_key TEXT PRIMARY KEY, event_id TEXT NOT NULL)")
    db.execute("INSERT INTO consumed VALUES ('burst-001@5', 'e1'), ('burst-000', 'e0')")
    db.commit()
    db.close()
    outbox = Outbox(path)
    try:
        assert outbox.is_consumed("burst-001@5") and outbox.is_consumed("burst-000@7")  # a name-only mark
        assert not outbox.is_consumed("burst-000@7", exact=True)
        outbox.put_lift("e2", ("t/lift", b"{}"), source_key="burst-002@9")
        assert outbox.is_consumed("burst-002@9", exact=True)
        assert outbox.forget_consumed(lambda key: key != "burst-000") == 0  # the first check: stamped only
        for _ in range(CHECKS - 1):
            outbox.forget_consumed(lambda key: key != "burst-000")
        assert outbox.forget_consumed(lambda key: key != "burst-000") == 1
        assert not outbox.is_consumed("burst-000@7") and outbox.is_consumed("burst-001@5")
    finally:
        outbox.close()


def test_a_pruned_key_is_one_whose_burst_the_scanner_would_count_as_new(tmp_path, litter_val_images) -> None:
    # What "gone" means is what the scanner reads: a folder of the same name whose oldest photo is
    # another (a camera box's counter started again) is another burst, and the old mark may go.
    (folder,) = make_bursts(tmp_path / "bursts", litter_val_images, lifts=1, frames=2)
    old_key = burst_key(folder)
    from edge.evidence import burst_on_disk

    assert burst_on_disk(tmp_path / "bursts", old_key)
    oldest = min(folder.iterdir())
    oldest.unlink()
    assert not burst_on_disk(tmp_path / "bursts", old_key)
    assert [f.burst for f in burst_frames(tmp_path / "bursts", lambda key: key == old_key)] == [burst_key(folder)]
