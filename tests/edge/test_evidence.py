"""Evidence photos: nothing recognisable outside the hopper, downscaled, boxes drawn, kept N days."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import EvidenceSettings
from edge.evidence import EvidenceStore, hide_outside
from vision.detection import Detections
from vision.lift import EvidenceFrame
from vision.region import Region

LEFT_HALF = Region.from_points([(0, 0), (0.5, 0), (0.5, 1), (0, 1)])


@pytest.fixture
def photo(litter_val_images: list[Path]) -> np.ndarray:
    return cv2.resize(cv2.imread(str(litter_val_images[2])), (800, 600))


@pytest.mark.parametrize("mode", ["blur", "black"])
def test_outside_is_hidden_inside_untouched(photo: np.ndarray, mode: str) -> None:
    hidden = hide_outside(photo, LEFT_HALF, mode)
    np.testing.assert_array_equal(hidden[:, :395], photo[:, :395])
    outside, original = hidden[:, 410:], photo[:, 410:]
    detail = cv2.Laplacian(cv2.cvtColor(original, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    left = cv2.Laplacian(cv2.cvtColor(outside, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    assert left < detail / 20  # faces and plates out there are no longer readable
    if mode == "black":
        assert outside.max() == 0


def test_render_and_retention(tmp_path: Path, photo: np.ndarray) -> None:
    settings = EvidenceSettings(dir=tmp_path / "ev", max_side=400, retention_days=7)
    store = EvidenceStore(settings, LEFT_HALF, ("bottle", "battery"))
    frame = EvidenceFrame(photo, Detections.from_rows([(100, 100, 300, 300, 0.9, 1)]))
    rendered = store.render(frame, {"battery": "alert"})
    image = cv2.imdecode(np.frombuffer(rendered.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (300, 400, 3) and (rendered.evidence.width, rendered.evidence.height) == (400, 300)
    assert rendered.evidence.sha256 == hashlib.sha256(rendered.jpeg).hexdigest()
    # the alert box is drawn in red at the downscaled place (x 50..150)
    b, g, r = image[60:140, 50].astype(int).mean(axis=0)  # the box's left edge
    assert r > g + 60 and r > b + 60
    kept = store.keep("event-1", rendered)
    stale = settings.dir / "2020-01-01"
    stale.mkdir()
    old = store.keep("event-0", rendered).rename(stale / "event-0.jpg")
    os.utime(old, (time.time() - 8 * 86400,) * 2)
    assert store.prune() == 1 and kept.exists() and not stale.exists()
