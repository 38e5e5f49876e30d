"""The motion trigger under constant motion: rain on the hopper window, a loose camera shaking."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from edge.camera import Frame
from edge.config import ConfigError, load_settings
from edge.trigger import MotionTrigger
from vision.region import Region

WHOLE = Region.from_points([(0, 0), (1, 0), (1, 1), (0, 1)])
START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def shaking(count: int, rate: float = 10.0, first: int = 0) -> Iterator[Frame]:
    """Frames at ``rate`` fps in which every pixel changes: a camera that never stops moving."""
    rng = np.random.default_rng(first)
    for index in range(first, first + count):
        yield Frame(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), START + timedelta(seconds=index / rate), index)


def still(count: int, rate: float = 10.0, first: int = 0) -> Iterator[Frame]:
    image = np.full((120, 160, 3), 90, np.uint8)
    for index in range(first, first + count):
        yield Frame(image, START + timedelta(seconds=index / rate), index)


def test_constant_motion_does_not_make_one_endless_lift(caplog) -> None:
    """An hour of rain on the window was one lift: nothing published for the whole round, the
    tracker's state growing. The lift is closed after max_lift_s (its frames go to the detector,
    its event out) and no made-up lift follows while the motion goes on."""
    trigger = MotionTrigger(WHOLE, threshold=0.02, quiet_frames=8, max_lift_s=60)
    with caplog.at_level(logging.WARNING, logger="edge.trigger"):
        keys = [trigger.lift_of(frame) for frame in shaking(10 * 600)]  # 10 minutes at 10 fps
    lifted = [index for index, key in enumerate(keys) if key is not None]
    assert set(keys) == {None, "motion-1"}
    assert lifted[0] == 1  # the first frame has nothing to compare with
    assert lifted[-1] == 601  # 60 s after the start: then closed
    assert keys[602:] == [None] * (len(keys) - 602)
    assert trigger.lifts_cut == 1
    assert [r.getMessage() for r in caplog.records].count(
        "motion in the hopper for over 60 s (rain on the window? camera loose?): lift 1 closed; the next lift "
        "starts once the hopper has been still for 8 frames") == 1


def test_after_a_cut_lift_stillness_rearms_the_trigger() -> None:
    trigger = MotionTrigger(WHOLE, threshold=0.02, quiet_frames=8, max_lift_s=60)
    for frame in shaking(700):
        trigger.lift_of(frame)
    calm = [trigger.lift_of(frame) for frame in still(10, first=700)]
    assert calm == [None] * 10  # the first still frame differs from the last shaken one: 8 more are still
    after = [trigger.lift_of(frame) for frame in shaking(50, first=710)]
    assert set(after) == {"motion-2"}
    assert trigger.lifts_cut == 1


def test_a_real_lift_is_not_cut() -> None:
    trigger = MotionTrigger(WHOLE, threshold=0.02, quiet_frames=8, max_lift_s=60)
    keys = [trigger.lift_of(frame) for frame in [*still(5), *shaking(200, first=5), *still(20, first=205)]]
    assert {key for key in keys if key} == {"motion-1"}
    # from the first shaken frame to the 8th still one after the first still frame (itself a change)
    assert keys.count("motion-1") == 200 + 1 + 7
    assert trigger.lifts_cut == 0


def test_camera_clock_stepped_back_does_not_stretch_the_bound() -> None:
    """A live camera's frames carry the computer's time: an NTP step back of an hour must not keep
    a lift open an hour more."""
    trigger = MotionTrigger(WHOLE, threshold=0.02, quiet_frames=8, max_lift_s=60)
    frames = [frame if frame.index < 300 else replace(frame, captured_at=frame.captured_at - timedelta(hours=1))
              for frame in shaking(1200)]
    keys = [trigger.lift_of(frame) for frame in frames]
    assert trigger.lifts_cut == 1
    assert keys[-1] is None


@pytest.mark.parametrize("value", [0, -5, 3601, float("inf"), "a minute"])
def test_max_lift_s_is_checked(value) -> None:
    with pytest.raises(ConfigError, match="max_lift_s"):
        load_settings(None, {"truck_id": "T-1", "source": "x", "trigger": {"max_lift_s": value}}, environ={})


def test_unknown_trigger_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_lift_seconds"):
        load_settings(None, {"truck_id": "T-1", "source": "x", "trigger": {"max_lift_seconds": 60}}, environ={})


def test_the_truck_setting_reaches_the_motion_trigger(tmp_path) -> None:
    """``trigger.max_lift_s`` was handed to the lift-signal triggers only: a truck with no signal
    wired (motion) kept its lifts open for as long as the motion went on."""
    import cv2

    from edge.app import Agent
    from tests.edge.helpers import ScriptedDetector, unique_truck

    clip = tmp_path / "hopper.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for frame in shaking(3):
        writer.write(frame.image)
    writer.release()
    settings = load_settings(None, {
        "truck_id": unique_truck(), "source": str(clip), "trigger": {"kind": "motion", "max_lift_s": 20},
        "outbox": {"path": str(tmp_path / "outbox.sqlite3")}, "evidence": {"dir": str(tmp_path / "evidence")},
    }, environ={})
    agent = Agent.create(settings, detector=ScriptedDetector([]))
    try:
        assert isinstance(agent.trigger, MotionTrigger) and agent.trigger.max_lift_s == 20
    finally:
        agent.close()
