"""The camera's raw (unblurred) burst photos are forgotten once their lift is committed, when asked.

docs/privacy.md promises that the hopper camera's images are analysed and forgotten; a burst
folder's stills are those images, street, crew and passers-by unblurred, of every lift, clean
ones included. ``trigger.burst_delete`` deletes them once the lift is in the outbox.
"""

from __future__ import annotations

from pathlib import Path

from edge.app import Agent
from edge.outbox import LIFT
from tests.edge.helpers import ScriptedDetector, make_bursts, unique_truck
from tests.edge.test_agent import SCRIPT, settings_for
from vision.schema import parse_lift_event

NOWHERE = "mqtt://127.0.0.1:9"  # no broker: the lifts stay in the outbox, which is what counts here


def _run(settings_tree: dict, tmp_path: Path) -> list:
    settings = settings_for(tmp_path, tmp_path / "bursts", NOWHERE, unique_truck(),
                            uplink={"flush_timeout_s": 0.5}, **settings_tree)
    agent = Agent.create(settings, detector=ScriptedDetector(SCRIPT))
    try:
        agent.run(once=True)
        rows = agent.outbox.oldest(limit=100)
    finally:
        agent.close()
    return [parse_lift_event(m.payload) for m in rows if m.kind == LIFT]


def test_burst_photos_are_deleted_once_their_lift_is_committed(tmp_path: Path, litter_val_images) -> None:
    folders = make_bursts(tmp_path / "bursts", litter_val_images, lifts=3, frames=3)
    events = _run({"trigger": {"burst_delete": True}}, tmp_path)
    assert [e.frames for e in events] == [3, 3, 3]  # every photo was analysed before it went
    assert not any(folder.exists() for folder in folders)  # no unblurred frame is left on the disk
    assert (tmp_path / "bursts").is_dir()  # the camera box's root stays, it writes the next bursts there


def test_a_single_burst_in_the_root_loses_its_photos_not_the_root(tmp_path: Path, litter_val_images) -> None:
    (folder,) = make_bursts(tmp_path / "spool", litter_val_images, lifts=1, frames=2)
    folder.rename(tmp_path / "bursts")
    (tmp_path / "bursts" / "notes.txt").write_text("the camera box's own file")
    events = _run({"trigger": {"burst_delete": True}}, tmp_path)
    assert len(events) == 1 and events[0].frames == 2
    assert [p.name for p in (tmp_path / "bursts").iterdir()] == ["notes.txt"]  # photos only


def test_burst_photos_stay_by_default(tmp_path: Path, litter_val_images) -> None:
    # a folder of one's own photos (`trivue edge --source photos/ --once`) is never deleted unasked
    folders = make_bursts(tmp_path / "bursts", litter_val_images, lifts=2, frames=2)
    assert len(_run({}, tmp_path)) == 2
    assert all(len(list(folder.iterdir())) == 2 for folder in folders)
