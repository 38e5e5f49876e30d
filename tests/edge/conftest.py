"""Fixtures of the edge tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    """(master fd to play the device, slave path the agent opens)."""
    master, slave = os.openpty()
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


@pytest.fixture
def camera_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[int, Callable[[], None]]], Any]]:
    """``edge.camera``'s clocks scripted (``CameraTime``): each sleep of the scanner one step."""
    import edge.camera
    from tests.edge.test_camera_clock import CameraTime

    made: list[CameraTime] = []

    def make(actions: dict[int, Callable[[], None]]) -> Any:
        made.append(fake := CameraTime(actions))
        monkeypatch.setattr(edge.camera, "time", fake)
        return fake

    yield make
    for fake in made:  # before ``monkeypatch`` puts the real clocks back: a scanner left sleeps here
        fake.end()
