"""The camera clock's estimate outlives a restart (``edge.camera_clock_file``): a truck loses power
many times a day, and the estimate was learnt afresh at each start, so the bursts shot while the
agent was down took the camera's own times (the GPS fix of minutes before, another street)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

import edge.camera
import edge.gps
from edge.app import Agent
from edge.camera_clock import RESTORED_MAX_AGE_S, CameraClock, ClockState
from edge.camera_clock_file import clock_file, persistent_camera_clock, read_state, write_state
from tests.edge.helpers import ScriptedDetector, unique_truck
from tests.edge.test_agent import settings_for
from tests.edge.test_camera_clock import (
    BOTTLE,
    NOW_TICK,
    NOWHERE,
    lifts_of,
    place,
    shoot,
)

BEHIND = timedelta(minutes=3)


def camera(ago_s: float) -> datetime:
    """The camera box's clock, 3 minutes behind, ``ago_s`` ago."""
    return datetime.now(UTC) - BEHIND - timedelta(seconds=ago_s)


def drive(agent: Agent, tick: list[float]) -> None:
    """The last 10 minutes of the drive, a fix every 10 s, on the GPS's clock the test sets."""
    for step in range(61):
        tick[0] = 700 + step * 10
        agent.gps.update(*place(tick[0]), speed_mps=5.5, heading_deg=0.0)


def test_a_restarted_agent_corrects_the_bursts_shot_while_it_was_down(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, camera_time, litter_val_images) -> None:
    """Before: the burst shot a minute ago, waiting when the agent came back, took the camera's time
    (4 minutes ago) and the fix of then, 700 m south. Now: the estimate saved before the restart
    gives it the fix of its own time."""
    root, photo = tmp_path / "bursts", litter_val_images[0]
    root.mkdir()
    tick = [0.0]
    monkeypatch.setattr(edge.gps, "time", SimpleNamespace(monotonic=lambda: tick[0]))
    settings = settings_for(tmp_path, root, NOWHERE, unique_truck(), alert={"broker": None}, gps={"source": None})
    # the first run: a burst seen being written teaches the camera's clock
    camera_time({1: lambda: shoot(root, "burst-001", photo, camera(0))})
    agent = Agent.create(settings, detector=ScriptedDetector([[BOTTLE]] * 3))
    try:
        drive(agent, tick)
        lifts_of(agent, 1)
    finally:
        agent.close()
    # that run was 2 minutes ago (the file's times moved back as the clocks went on); a power cut; the
    # camera box shoots a lift a minute ago while the agent boots; the agent starts again
    saved = read_state(clock_file(settings.outbox.path))
    assert saved is not None and saved.offset_s() == pytest.approx(BEHIND.total_seconds(), abs=5)
    write_state(clock_file(settings.outbox.path), replace(saved, seen_at=saved.seen_at - timedelta(minutes=2),
                                                          stamped_at=saved.stamped_at - timedelta(minutes=2)))
    shoot(root, "burst-002", photo, camera(60))
    camera_time({})
    agent = Agent.create(settings, detector=ScriptedDetector([[BOTTLE]] * 3))
    try:
        restored = agent.camera_clock.offset_s()
        drive(agent, tick)
        first, after = lifts_of(agent, 1)
        heartbeat = agent.stats()
    finally:
        agent.close()
    assert after.frames == 3 and after.sequence > first.sequence
    assert after.gps is not None and (after.gps.lat, after.gps.lon) == pytest.approx(place(NOW_TICK - 60), abs=5e-4)
    assert abs((datetime.now(UTC) - after.ended_at).total_seconds() - 60) < 10
    assert restored == pytest.approx(BEHIND.total_seconds(), abs=5)  # from the first lift on, and said
    assert heartbeat.camera_clock_offset_s == round(restored, 1)


def _at(seconds: float) -> datetime:
    return datetime(2026, 12, 5, 8, 0, tzinfo=UTC) + timedelta(seconds=seconds)


SAVED = ClockState((180.6, 180.4, 181.0), seen_at=_at(1000), stamped_at=_at(820))


@pytest.mark.parametrize(("age_h", "trusted"), [(0.1, True), (11.9, True), (12.1, False), (-1, False)])
def test_a_saved_estimate_is_trusted_for_12_hours(age_h: float, trusted: bool) -> None:
    """A camera box's crystal drifts up to ~100 ppm, 4 s in 12 hours; an estimate saved later than
    the agent's now (its clock not set yet at boot) proves nothing either."""
    assert RESTORED_MAX_AGE_S == 12 * 3600
    clock, now = CameraClock(), _at(1000 + age_h * 3600)
    assert clock.restore(SAVED, now=now) is trusted
    assert clock.offset_s() == (180.4 if trusted else None)


def test_a_saved_estimate_corrects_only_what_the_camera_clock_could_have_stamped(monkeypatch) -> None:
    """A box restarted from 1970 (or set back) stamps before the saved sample; one set right (NTP)
    would be put in the future by the old offset: their own times stand, as before any estimate."""
    clock = CameraClock()
    assert clock.restore(SAVED, now=_at(1100))
    monkeypatch.setattr("edge.camera_clock.datetime", SimpleNamespace(now=lambda _tz: _at(1100)))
    assert clock.correct(_at(900)) == _at(1080.4)  # shot 20 s ago by the box's clock, 3 min behind
    set_back = datetime(1970, 1, 1, 0, 3, tzinfo=UTC)
    assert clock.correct(set_back) == set_back
    set_right = _at(1090)
    assert clock.correct(set_right) == set_right


def test_the_first_live_burst_after_a_restart_continues_or_restarts_the_window() -> None:
    going_on = CameraClock()
    going_on.restore(SAVED, now=_at(1100))
    going_on.observe(_at(1200.0 + 190), _at(1200))  # seen late: the saved samples stand
    assert going_on.offset_s() == pytest.approx(180.4)
    rebooted = CameraClock()
    rebooted.restore(SAVED, now=_at(1100))
    boot = datetime(1970, 1, 1, 0, 2, tzinfo=UTC)
    rebooted.observe(_at(1200.5), boot)  # the box restarted from 1970 while the agent was down
    assert rebooted.offset_s() == pytest.approx((_at(1200.5) - boot).total_seconds())


def test_the_estimate_is_saved_at_each_live_burst_and_read_back(tmp_path: Path) -> None:
    outbox = tmp_path / "state" / "outbox.sqlite3"
    outbox.parent.mkdir()
    clock = persistent_camera_clock(outbox)
    assert clock.offset_s() is None and not clock_file(outbox).exists()  # nothing saved: from nothing
    now = datetime.now(UTC)
    clock.observe(now - timedelta(seconds=30), now - timedelta(seconds=210.5))
    clock.observe(now, now - timedelta(seconds=180.2))
    assert read_state(clock_file(outbox)) == ClockState((180.5, 180.2), now, now - timedelta(seconds=180.2))
    assert persistent_camera_clock(outbox).offset_s() == pytest.approx(180.2)
    assert [p.name for p in outbox.parent.iterdir()] == ["outbox.sqlite3.camera-clock.json"]  # no .part left


@pytest.mark.parametrize("content", [b"", b"{", b"\xff\xfe", b"[]", b'{"version": 1}', b"null",
                                     b'{"version": 1, "samples": [], "seen_at": "2026-12-05T08:00:00+00:00", '
                                     b'"stamped_at": "2026-12-05T08:00:00+00:00"}',
                                     b'{"version": 1, "samples": [NaN], "seen_at": "2026-12-05T08:00:00+00:00", '
                                     b'"stamped_at": "2026-12-05T08:00:00+00:00"}',
                                     b'{"version": 1, "samples": [3.0], "seen_at": "yesterday", '
                                     b'"stamped_at": "2026-12-05T08:00:00+00:00"}',
                                     b'{"version": 2, "samples": [3.0], "seen_at": "2026-12-05T08:00:00+00:00", '
                                     b'"stamped_at": "2026-12-05T08:00:00+00:00"}',
                                     b'{"version": 1, "samples": [3.0], "seen_at": "2026-12-05T08:00:00", '
                                     b'"stamped_at": "2026-12-05T08:00:00"}'])
def test_a_damaged_file_is_said_and_the_clock_learnt_afresh(tmp_path: Path, caplog, content: bytes) -> None:
    outbox = tmp_path / "outbox.sqlite3"
    clock_file(outbox).write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="edge.camera_clock_file"):
        clock = persistent_camera_clock(outbox)
    assert clock.offset_s() is None
    assert f"{clock_file(outbox)} " in caplog.text and "learning the camera's clock afresh" in caplog.text
    now = datetime.now(UTC)
    clock.observe(now, now - timedelta(seconds=60))  # and is replaced by the next estimate
    assert json.loads(clock_file(outbox).read_text())["samples"] == [60.0]


def test_a_file_that_cannot_be_written_is_said_once(tmp_path: Path, caplog) -> None:
    outbox = tmp_path / "gone" / "outbox.sqlite3"  # its folder removed under the agent
    clock = persistent_camera_clock(outbox)
    now = datetime.now(UTC)
    with caplog.at_level(logging.WARNING, logger="edge.camera_clock_file"):
        for k in range(3):
            clock.observe(now + timedelta(seconds=k), now - timedelta(seconds=60 - k))
    assert clock.offset_s() == pytest.approx(60)
    assert caplog.text.count("cannot be written") == 1
