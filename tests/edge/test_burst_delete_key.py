"""Deleting a counted burst never shows the scanner a burst it has not counted.

A burst is known by ``NAME@BEGUN``, its oldest photo's time (``edge.camera.burst_key``). Its photos
used to be deleted in name order, the camera's first (oldest) shot first: from the first deletion
the folder's key was another one, so the running scanner listing the folder mid-deletion, or an
agent restarted after a ``kill -9`` mid-deletion, took the photos left for a new burst and counted
them as a second lift (seen on a truck: a 400-photo burst counted as 400 frames, then again as 4).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.camera import burst_key
from edge.evidence import forget_burst

T0 = 1_796_500_000  # the camera box's clock, seconds


def _burst(root: Path, photos: int = 6) -> Path:
    """A burst whose photos were shot in name order, one a second (the oldest is IMG_1)."""
    folder = root / "burst-0001"
    folder.mkdir(parents=True)
    for n in range(1, photos + 1):
        path = folder / f"IMG_{n}.jpg"
        path.write_bytes(b"\xff\xd8 not decoded here")
        os.utime(path, (T0 + n, T0 + n))
    return folder


def test_the_key_holds_at_every_step_of_the_deletion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _burst(tmp_path / "bursts")
    key = burst_key(folder)
    seen: list[str | None] = []
    unlink = Path.unlink

    def watched(path: Path, missing_ok: bool = False) -> None:
        unlink(path, missing_ok=missing_ok)
        if path.parent == folder:
            seen.append(burst_key(folder))  # what a scanner listing now would take the folder for

    monkeypatch.setattr(Path, "unlink", watched)
    assert forget_burst(tmp_path / "bursts", key) == 6
    assert seen[:-1] == [key] * 5 and seen[-1] is None  # the same burst until no photo is left
    assert not folder.exists()


def test_a_deletion_cut_short_leaves_the_counted_burst(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``kill -9`` (or a power cut) after two photos of six: the restarted agent must find the key it
    marked consumed, not a new burst of the four photos left."""
    folder = _burst(tmp_path / "bursts")
    key = burst_key(folder)
    unlink, calls = Path.unlink, []

    def dying(path: Path, missing_ok: bool = False) -> None:
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process ends here
        calls.append(path)
        unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", dying)
    with pytest.raises(KeyboardInterrupt):
        forget_burst(tmp_path / "bursts", key)
    monkeypatch.setattr(Path, "unlink", unlink)
    assert len(list(folder.iterdir())) == 4
    assert burst_key(folder) == key
