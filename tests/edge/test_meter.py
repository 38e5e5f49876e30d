"""The heartbeat's frames/s: what the loop analyses per second while a lift is in view."""

from __future__ import annotations

import pytest

from edge.pipeline import Meter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_two_frames_in_flight_count_as_the_rate_they_make_together() -> None:
    """Two workers hand frames back in pairs, a moment apart then a frame time apart: 12.5 frames/s,
    not the mean of the two instantaneous rates (~500, what the fleet page showed: 382 images/s
    beside 80 ms of inference)."""
    clock = Clock()
    meter = Meter(clock=clock)
    for i in range(200):
        clock.now += 0.001 if i % 2 else 0.159
        meter.frame_done(0.08)
    assert meter.fps == pytest.approx(12.5, rel=0.1)  # the average swings a little with each pair


def test_the_wait_between_two_lifts_is_not_a_slow_frame() -> None:
    clock = Clock()
    meter = Meter(clock=clock)
    for _ in range(3):
        for _ in range(40):
            clock.now += 0.05
            meter.frame_done(0.04)
        meter.lift_done()
        clock.now += 30.0  # the truck drives to the next bin
    assert meter.lifts == 3
    assert meter.fps == pytest.approx(20.0, rel=0.01)
    assert meter.inference_ms == pytest.approx(40.0)


def test_no_rate_before_two_frames_of_one_lift() -> None:
    clock = Clock()
    meter = Meter(clock=clock)
    meter.frame_done(0.04)
    meter.lift_done()
    clock.now += 10
    meter.frame_done(0.04)
    assert meter.fps is None and meter.frames == 2
